"""The pure parts of the bundles and of the release commit: a Pipeline's taskRefs turned into bundle
refs and a Task's images pinned (in place, every other byte kept), catalog.yaml's bundles block as
written and as `make lint` checks it, the README's PipelineRun, and what `make release TAG=...`
refuses before it builds anything. Pushing to a real registry: tests/integration/test_bundles.py."""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hack import bundles, catalog, release
from tests.support.release import catalog_repo, refs

ROOT = catalog.ROOT
CATALOG_TEXT = (ROOT / "catalog.yaml").read_text()
ENTRIES = bundles.entries(CATALOG_TEXT)
TASKS = [e for e in ENTRIES if e.kind == "task"]
PIPELINES = [e for e in ENTRIES if e.kind == "pipeline"]
REGISTRY = "registry.example:5000"
VERSION = catalog.step_version()
IMAGES = {name: (VERSION, "sha256:" + f"{i}" * 64) for i, name in enumerate(catalog.CATALOG_IMAGES, 1)}


def fake_digest(name: str) -> str:
    return "sha256:" + (name.encode().hex() * 8)[:64]


REFS = {e.name: f"{bundles.repository(REGISTRY, e.name)}:{e.version}@{fake_digest(e.name)}" for e in TASKS}


def read(path: str) -> str:
    return (ROOT / path).read_text()


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


# ---- a Pipeline's taskRefs ---------------------------------------------------------------------


@pytest.mark.parametrize("entry", PIPELINES, ids=lambda e: e.name)
def test_every_taskref_of_a_real_pipeline_becomes_a_bundle_ref_by_digest_and_nothing_else_changes(entry):
    before = read(entry.path)
    after = bundles.bundle_refs(before, REFS, entry.path)
    doc, original = yaml.safe_load(after), yaml.safe_load(before)
    pipeline_tasks = [*doc["spec"]["tasks"], *doc["spec"].get("finally", [])]
    names = [t["taskRef"]["name"] for t in [*original["spec"]["tasks"], *original["spec"].get("finally", [])]]
    assert [t["taskRef"] for t in pipeline_tasks] == [
        {
            "resolver": "bundles",
            "params": [
                {"name": "bundle", "value": REFS[name]},
                {"name": "name", "value": name},
                {"name": "kind", "value": "task"},
            ],
        }
        for name in names
    ]
    removed, added = changed_lines(before, after)
    # Only each taskRef's `name:` line goes; comments, flow lists and quoting elsewhere stay byte for byte.
    assert sorted(line.strip() for line in removed) == sorted(f"name: {n}" for n in names)
    assert all(re.fullmatch(r" *(resolver: bundles|params:|- name: (bundle|name|kind)|value: \S+)", a) for a in added)
    with pytest.raises(bundles.BundleError, match="a taskRef other than by name to a Task"):
        bundles.bundle_refs(after, REFS, entry.path)  # bundles are made from main's files, not released ones


def test_a_taskref_to_a_task_outside_the_catalog_or_by_resolver_or_in_flow_style_is_refused():
    text = read(PIPELINES[0].path)
    first = re.search(r"taskRef:\n\s+name: (\S+)\n", text)
    with pytest.raises(bundles.BundleError, match=r"taskRef to 'git-clone', which is no Task of catalog.yaml"):
        bundles.bundle_refs(text.replace(f"name: {first[1]}\n", "name: git-clone\n", 1), REFS, "p.yaml")
    git_ref = "taskRef:\n        resolver: git\n        params:\n          - {name: url, value: x}\n"
    with pytest.raises(bundles.BundleError, match="a taskRef other than by name to a Task"):
        bundles.bundle_refs(text.replace(first[0], git_ref, 1), REFS, "p.yaml")
    with pytest.raises(bundles.BundleError, match="could not rewrite it in place"):
        bundles.bundle_refs(text.replace(first[0], f"taskRef: {{name: {first[1]}}}\n", 1), REFS, "p.yaml")


# ---- a Task's images ---------------------------------------------------------------------------


@pytest.mark.parametrize("entry", TASKS, ids=lambda e: e.name)
def test_every_catalog_image_of_a_real_task_is_pinned_by_the_recorded_digest(entry):
    before = read(entry.path)
    after = bundles.pin_images(before, IMAGES, entry.path)
    steps = yaml.safe_load(after)["spec"]["steps"]
    assert steps and all(
        s["image"] == f"{s['image'].split('@')[0]}@{IMAGES[s['image'].split(':')[0]][1]}" for s in steps
    )
    removed, added = changed_lines(before, after)
    assert len(removed) == len(added) == len(steps)
    assert all(
        a.startswith(r.rstrip()) and a.removeprefix(r) in {f"@{d}" for _, d in IMAGES.values()}
        for r, a in zip(removed, added, strict=True)
    )


def test_pinning_refuses_an_image_version_other_than_recorded_and_a_task_with_none():
    task = read(TASKS[0].path)
    old = {name: ("0.0.9", digest) for name, (_, digest) in IMAGES.items()}
    with pytest.raises(
        bundles.BundleError, match=rf"uses ghcr.io/waterschap/druppie-\w+:{VERSION}, catalog.yaml's images record 0.0.9"
    ):
        bundles.pin_images(task, old, "t.yaml")
    with pytest.raises(bundles.BundleError, match=r"uses none of the images catalog\.yaml records"):
        bundles.pin_images(re.sub(r"image: ghcr.io/waterschap/", "image: docker.io/library/", task), IMAGES, "t.yaml")


# ---- catalog.yaml's bundles block ----------------------------------------------------------------


def some_bundles(registry: str = REGISTRY) -> list[bundles.Bundle]:
    return [bundles.Bundle(e.kind, e.name, e.version, f"{bundles.repository(registry, e.name)}:{e.version}",
                           fake_digest(e.name)) for e in ENTRIES]  # fmt: skip


def test_the_bundles_block_goes_after_the_images_block_and_is_replaced_in_place():
    once = bundles.record(CATALOG_TEXT, some_bundles())
    assert once.startswith(CATALOG_TEXT.split(bundles.IMAGES_END)[0])
    assert bundles.IMAGES_END + "\n" + catalog.BUNDLES_BEGIN + "\nbundles:\n" in once
    assert once.rstrip().endswith(catalog.BUNDLES_END)
    index = yaml.safe_load(once)
    assert index["bundles"][0] == {
        "name": TASKS[0].name,
        "kind": "task",
        "version": TASKS[0].version,
        "bundle": f"{REGISTRY}/waterschap/druppie-catalog/{TASKS[0].name}:{TASKS[0].version}",
        "digest": fake_digest(TASKS[0].name),
    }
    assert [b["kind"] for b in index["bundles"]] == ["task"] * len(TASKS) + ["pipeline"] * len(PIPELINES)
    assert index["images"] == yaml.safe_load(CATALOG_TEXT)["images"]
    assert bundles.record(once, some_bundles()) == once
    again = bundles.record(once, some_bundles("other.example"))
    assert again.count(catalog.BUNDLES_BEGIN) == 1 and "other.example/waterschap/druppie-catalog/" in again
    assert REGISTRY not in again


@pytest.fixture
def released_tree(tmp_path):
    """A copy of the catalog as a release commit has it: pinned Tasks, Pipelines by bundle digest, both blocks."""
    for item in ("tasks", "pipelines", "steps/pyproject.toml", "README.md"):
        (tmp_path / item).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, tmp_path / item)
    pushed = some_bundles()
    refs = {b.name: b.ref for b in pushed if b.kind == "task"}
    for e in ENTRIES:
        text = read(e.path)
        released = (
            bundles.pin_images(text, IMAGES, e.path) if e.kind == "task" else bundles.bundle_refs(text, refs, e.path)
        )
        (tmp_path / e.path).write_text(released)
    digests = {name: digest for name, (_, digest) in IMAGES.items()}
    (tmp_path / "catalog.yaml").write_text(bundles.record(release.with_images(CATALOG_TEXT, digests, VERSION), pushed))
    return tmp_path


def test_the_check_accepts_a_release_commits_files(released_tree):
    assert catalog.check(released_tree) == []


@pytest.mark.parametrize(
    "breakage,problem",
    [
        (lambda t: t.replace("digest: " + fake_digest("druppie-summary"), "digest: sha256:abc"),
         "bundles: druppie-summary: digest 'sha256:abc' is not sha256:<64 hex digits>"),
        (lambda t: t.replace("druppie-catalog/druppie-test:0.1\n", "druppie-catalog/druppie-test:latest\n"),
         "bundles: druppie-test: bundle 'registry.example:5000/waterschap/druppie-catalog/druppie-test:latest' "
         "must be"),
        (lambda t: t.replace(f"{REGISTRY}/waterschap/druppie-catalog/druppie-ci-cd",
                             "x.example/waterschap/druppie-catalog/druppie-ci-cd"),
         "bundles: pushed to more than one registry"),
        (lambda t: re.sub(r"  - name: druppie-promote\n    kind: pipeline\n(    .*\n)+", "", t),
         "bundles: no bundle of pipeline druppie-promote 0.1"),
        (lambda t: t.replace("    kind: pipeline\n", "    kind: pipelines\n", 1),
         "is no task or pipeline of catalog.yaml"),
        (lambda t: t.replace("# END bundles\n", ""), "the bundles list must stand between"),
        # the Pipelines name the Tasks' bundles by the digests pushed: another one recorded is caught
        (lambda t: t.replace(fake_digest("druppie-tag-commit"), fake_digest("other")),
         "its bundles taskRef (bundle "
         "'registry.example:5000/waterschap/druppie-catalog/druppie-tag-commit:0.1@sha256:"),
        (lambda t: t.replace(IMAGES["ghcr.io/waterschap/druppie-scan"][1], "sha256:" + "f" * 64),
         "tasks/druppie-scan/0.1/druppie-scan.yaml: step 'scan': image 'ghcr.io/waterschap/druppie-scan:"),
    ],
    ids=["digest", "bundle-name", "two-registries", "missing", "kind", "markers", "pipeline-ref", "pinned-image"],
)  # fmt: skip
def test_the_check_catches_a_broken_bundles_block(released_tree, breakage, problem):
    path = released_tree / "catalog.yaml"
    path.write_text(breakage(path.read_text()))
    assert problem in "\n".join(catalog.check(released_tree))


def test_a_pipeline_by_bundle_ref_without_a_bundles_block_is_caught(released_tree):
    path = released_tree / "catalog.yaml"
    path.write_text(path.read_text().split(catalog.BUNDLES_BEGIN)[0])
    problems = catalog.check(released_tree)
    assert problems and all("its bundles taskRef" in p for p in problems)
    assert len(problems) == sum(read(p.path).count("taskRef:") for p in PIPELINES)


# ---- the README ---------------------------------------------------------------------------------


def readme_pipelinerun() -> dict:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (run,) = [yaml.safe_load(b) for b in blocks if "kind: PipelineRun" in b and "resolver: bundles" in b]
    return run


def test_the_readmes_pipelinerun_names_a_pipeline_bundle_as_make_bundles_pushes_it():
    run = readme_pipelinerun()
    ref = run["spec"]["pipelineRef"]
    params = {p["name"]: p["value"] for p in ref["params"]}
    assert ref["resolver"] == "bundles" and set(params) == {"bundle", "name", "kind"} and params["kind"] == "pipeline"
    entry = next(e for e in PIPELINES if e.name == params["name"])
    assert (
        params["bundle"]
        == f"{bundles.repository('registry.example', entry.name)}:{entry.version}@sha256:<digest from catalog.yaml>"
    )
    pipeline = yaml.safe_load(read(entry.path))["spec"]
    required = {p["name"] for p in pipeline["params"] if "default" not in p}
    given = {p["name"] for p in run["spec"]["params"]}
    assert required <= given <= {p["name"] for p in pipeline["params"]}
    assert {s["pipelineTaskName"] for s in run["spec"]["taskRunSpecs"]} == {t["name"] for t in pipeline["tasks"]}
    assert {w["name"] for w in run["spec"]["workspaces"]} <= {w["name"] for w in pipeline["workspaces"]}


# ---- the registry, as go-containerregistry sees it -----------------------------------------------


@pytest.mark.parametrize(
    "registry,plain",
    [("127.0.0.1:5000", True), ("localhost:5000", True), ("10.244.0.1:40123", True), ("192.168.1.2", True),
     ("172.16.0.9:80/path", True), ("ghcr.io/waterschap", False), ("8.8.8.8:5000", False), ("registry.example", False)],
)  # fmt: skip
def test_plain_http_is_what_tkn_and_the_bundles_resolver_use_without_being_told(registry, plain):
    assert bundles.plain_http(registry) is plain


# ---- what a release refuses, before it builds anything -------------------------------------------


def never_build(registry):
    raise AssertionError("a refused release built images")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    return catalog_repo(tmp_path / "catalog", monkeypatch)


def refusal(repo: Path, *argv: str) -> str:
    before = refs(repo)
    with pytest.raises(SystemExit) as raised:
        release.main(["--registry", "127.0.0.1:9", *argv], root=repo, build_images=never_build)
    message = str(raised.value.code)
    assert "\n" not in message and message.startswith("release: ")
    assert refs(repo) == before
    return message


def test_a_tag_other_than_the_version_is_refused(repo):
    assert refusal(repo, "--tag", "v9.9.9") == (
        f"release: --tag v9.9.9 does not match steps/pyproject.toml's version {VERSION}: "
        f"use --tag v{VERSION}, or change the version there first"
    )
    assert (
        refusal(repo, "--tag", VERSION)
        == f"release: --tag '{VERSION}' is not vX.Y.Z (this release would be --tag v{VERSION})"
    )


def test_an_existing_tag_is_refused(repo):
    subprocess.run(["git", "-C", str(repo), "tag", f"v{VERSION}"], check=True)
    assert refusal(repo, "--tag", f"v{VERSION}").startswith(f"release: --tag v{VERSION} already exists (commit ")


def test_a_dirty_tree_is_refused(repo):
    (repo / "catalog.yaml").write_text((repo / "catalog.yaml").read_text() + "# edited\n")
    (repo / "tasks/new.yaml").write_text("kind: Task\n")
    assert refusal(repo, "--tag", f"v{VERSION}") == (
        f"release: --tag v{VERSION} needs a clean work tree; uncommitted: catalog.yaml, tasks/new.yaml "
        "(commit or stash them)"
    )


def test_a_release_branch_checked_out_in_a_worktree_is_refused(repo, tmp_path):
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "-b", "release", str(tmp_path / "wt")], check=True)
    assert f"branch release is checked out in {tmp_path / 'wt'}" in refusal(repo, "--tag", f"v{VERSION}")


def test_catalog_and_dist_do_not_go_with_a_tag(repo):
    assert refusal(repo, "--tag", f"v{VERSION}", "--dist", "dist") == (
        f"release: --tag v{VERSION} writes the release commit, not --catalog or --dist: leave those out"
    )
