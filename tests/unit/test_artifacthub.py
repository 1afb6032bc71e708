"""Artifact Hub's rules for the catalog's two registrations (hack/artifacthub.py, run by `make lint`).

Artifact Hub cannot run on these offline machines: these tests hold the catalog to the rules its
documentation and its Tekton tracker state, and break a copy of a Task, a Pipeline, the layout
and the repository metadata file one rule at a time, expecting a message that names the file and
the annotation (or label, or folder) at fault.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hack import artifacthub, catalog, release

TASK = "tasks/druppie-git-clone/0.1/druppie-git-clone.yaml"
PIPELINE = "pipelines/druppie-promote/0.1/druppie-promote.yaml"


def test_the_catalog_keeps_artifact_hubs_rules():
    assert artifacthub.check(catalog.ROOT) == []


def test_catalog_check_runs_the_artifact_hub_rules(tmp_path):
    """make lint runs hack/catalog.py check, which includes these rules."""
    for item in ("tasks", "pipelines", "catalog.yaml"):
        src = catalog.ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    assert catalog.check(tmp_path) == []
    (tmp_path / "tasks" / "artifacthub-repo.yml").unlink()
    assert catalog.check(tmp_path) == [
        "tasks/artifacthub-repo.yml: missing; Artifact Hub reads the repository metadata (owners, repositoryID) "
        "at the registered path"
    ]


@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory) -> Path:
    """Both registered folders, as Artifact Hub would clone them; no problem to begin with."""
    root = tmp_path_factory.mktemp("catalog")
    for folder in artifacthub.REGISTRATIONS:
        shutil.copytree(catalog.ROOT / folder, root / folder, symlinks=True)
    assert artifacthub.check(root) == []
    return root


@pytest.fixture
def copy(clean_copy, tmp_path) -> Path:
    """A copy of the clean copy, for one test to break."""
    shutil.copytree(clean_copy, tmp_path / "catalog", symlinks=True)
    return tmp_path / "catalog"


def edit(doc_change: Callable[[dict], None]) -> Callable[[Path, str], None]:
    def apply(root: Path, rel: str) -> None:
        path = root / rel
        doc = yaml.safe_load(path.read_text())
        doc_change(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    return apply


def annotate(key: str, value: str | None) -> Callable[[Path, str], None]:
    def change(doc: dict) -> None:
        annotations = doc["metadata"]["annotations"]
        if value is None:
            del annotations[key]
        else:
            annotations[key] = value

    return edit(change)


def label(value: object) -> Callable[[Path, str], None]:
    def change(doc: dict) -> None:
        if value is None:
            del doc["metadata"]["labels"]["app.kubernetes.io/version"]
        else:
            doc["metadata"]["labels"]["app.kubernetes.io/version"] = value

    return edit(change)


def text(old: str, new: str) -> Callable[[Path, str], None]:
    def apply(root: Path, rel: str) -> None:
        path = root / rel
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))

    return apply


def image(value: str) -> Callable[[Path, str], None]:
    def change(doc: dict) -> None:
        doc["spec"]["steps"][0]["image"] = value

    return edit(change)


def spec(field: str, value: object) -> Callable[[Path, str], None]:
    def change(doc: dict) -> None:
        if value is None:
            del doc["spec"][field]
        else:
            doc["spec"][field] = value

    return edit(change)


OTHER_FOLDER = "https://github.com/waterschap/druppie-catalog/tree/main/tasks/druppie-test/0.1"
LINKS = "artifacthub.io/links"
MAINTAINERS = "artifacthub.io/maintainers"
CHANGES = "artifacthub.io/changes"
RECOMMENDATIONS = "artifacthub.io/recommendations"

# (id, file, how it is broken, what the message says after "<file>: ")
BROKEN_MANIFESTS = [
    ("no-version-label", TASK, label(None), "label app.kubernetes.io/version missing; Artifact Hub skips the package"),
    (
        "non-semver-version",
        TASK,
        label("latest"),
        "label app.kubernetes.io/version 'latest' is not a semantic version; Artifact Hub skips the package",
    ),
    (
        "version-not-the-folder",
        TASK,
        label("0.2"),
        "label app.kubernetes.io/version '0.2' is not the folder's version '0.1' (0.2.0 != 0.1.0)",
    ),
    (
        "version-label-unquoted",
        TASK,
        text('app.kubernetes.io/version: "0.1"', "app.kubernetes.io/version: 0.1"),
        "label app.kubernetes.io/version: value 0.1 must be a quoted YAML string",
    ),
    (
        "links-not-a-list",
        TASK,
        annotate(LINKS, "https://github.com/waterschap/druppie-catalog"),
        f"annotation {LINKS}: must be a YAML list",
    ),
    ("links-invalid-yaml", TASK, annotate(LINKS, "- name: [source\n"), f"annotation {LINKS}: is not valid YAML"),
    (
        "link-a-bare-url",
        TASK,
        annotate(LINKS, "- https://github.com/waterschap/druppie-catalog\n"),
        f"annotation {LINKS}: entry 1 must be a mapping of name and url",
    ),
    (
        "link-without-url",
        TASK,
        annotate(LINKS, "- name: Source repository\n"),
        f"annotation {LINKS}: entry 1 url None is not an https:// URL",
    ),
    (
        "link-plain-http",
        TASK,
        annotate(LINKS, "- name: Source\n  url: http://github.com/waterschap/druppie-catalog\n"),
        f"annotation {LINKS}: entry 1 url 'http://github.com/waterschap/druppie-catalog' is not an https:// URL",
    ),
    (
        "links-of-a-copied-task",
        TASK,
        text("tree/main/tasks/druppie-git-clone/0.1", "tree/main/tasks/druppie-test/0.1"),
        f"annotation {LINKS}: no link to this package's folder "
        "(https://github.com/waterschap/druppie-catalog/tree/main/tasks/druppie-git-clone/0.1)",
    ),
    (
        "maintainer-without-email",
        TASK,
        annotate(MAINTAINERS, "- name: Druppie platform team\n"),
        f"annotation {MAINTAINERS}: entry 1 has no email; Artifact Hub skips the package",
    ),
    (
        "maintainers-a-string",
        PIPELINE,
        annotate(MAINTAINERS, "platform@druppie.local"),
        f"annotation {MAINTAINERS}: must be a YAML list",
    ),
    (
        "maintainer-not-the-owner",
        TASK,
        annotate(MAINTAINERS, "- name: Someone\n  email: someone@example.com\n"),
        f"annotation {MAINTAINERS}: must be [{{'name': 'Druppie platform team', 'email': 'platform@druppie.local'}}]",
    ),
    (
        "change-kind-unknown",
        TASK,
        annotate(CHANGES, "- kind: new\n  description: First version\n"),
        f"annotation {CHANGES}: entry 1 kind 'new' is not one of added, changed, deprecated, fixed, removed, security",
    ),
    (
        "change-without-description",
        PIPELINE,
        annotate(CHANGES, "- kind: added\n"),
        f"annotation {CHANGES}: entry 1 has no description; Artifact Hub skips the package",
    ),
    (
        "change-link-without-url",
        TASK,
        annotate(CHANGES, "- kind: added\n  description: First\n  links:\n    - name: Issue 16\n"),
        f"annotation {CHANGES}: entry 1 has a link without name or url",
    ),
    (
        "changes-mixed-forms",
        TASK,
        annotate(CHANGES, "- First version\n- kind: fixed\n  description: A typo\n"),
        f"annotation {CHANGES}: mixes plain strings and mappings; Artifact Hub skips the package",
    ),
    ("changes-missing", TASK, annotate(CHANGES, None), f"annotation {CHANGES} missing"),
    (
        "recommendation-not-a-package-url",
        TASK,
        annotate(RECOMMENDATIONS, "- url: https://github.com/waterschap/druppie-catalog\n"),
        f"annotation {RECOMMENDATIONS}: entry 1 url 'https://github.com/waterschap/druppie-catalog' is not an "
        "Artifact Hub package URL",
    ),
    (
        "recommendation-of-a-missing-package",
        TASK,
        annotate(
            RECOMMENDATIONS, "- url: https://artifacthub.io/packages/tekton-pipeline/druppie-pipelines/druppie-cd\n"
        ),
        f"annotation {RECOMMENDATIONS}: entry 1 recommends tekton-pipeline/druppie-pipelines/druppie-cd, "
        "which this catalog does not have",
    ),
    (
        "recommendation-of-the-wrong-kind",
        TASK,
        annotate(
            RECOMMENDATIONS, "- url: https://artifacthub.io/packages/tekton-task/druppie-pipelines/druppie-ci-cd\n"
        ),
        f"annotation {RECOMMENDATIONS}: entry 1 url "
        "'https://artifacthub.io/packages/tekton-task/druppie-pipelines/druppie-ci-cd': "
        "druppie-pipelines holds tekton-pipeline packages",
    ),
    (
        "pipeline-does-not-recommend-its-tasks",
        PIPELINE,
        annotate(
            RECOMMENDATIONS, "- url: https://artifacthub.io/packages/tekton-task/druppie-tasks/druppie-tag-commit\n"
        ),
        f"annotation {RECOMMENDATIONS}: does not recommend the tasks it runs: druppie-flux-reconcile-wait",
    ),
    (
        "category-unknown",
        TASK,
        annotate("artifacthub.io/category", "Continuous Integration"),
        "annotation artifacthub.io/category 'Continuous Integration' is not one of ai-machine-learning,",
    ),
    (
        "license-missing",
        PIPELINE,
        annotate("artifacthub.io/license", None),
        "annotation artifacthub.io/license missing",
    ),
    (
        "license-not-the-catalogs",
        TASK,
        annotate("artifacthub.io/license", "MIT"),
        "annotation artifacthub.io/license 'MIT' is not the catalog's Apache-2.0",
    ),
    ("provider-missing", TASK, annotate("artifacthub.io/provider", None), "annotation artifacthub.io/provider missing"),
    (
        "deprecated-not-a-bool",
        TASK,
        annotate("tekton.dev/deprecated", "yes"),
        "annotation tekton.dev/deprecated 'yes' is not true or false; Artifact Hub skips the package",
    ),
    (
        "alternative-name-unrelated",
        TASK,
        annotate("artifacthub.io/alternativeName", "checkout"),
        "annotation artifacthub.io/alternativeName 'checkout' must contain or be contained in 'druppie-git-clone'",
    ),
    (
        "platform-not-os-arch",
        TASK,
        annotate("tekton.dev/platforms", "linux/amd64, arm64"),
        "annotation tekton.dev/platforms: 'arm64' is not os/arch",
    ),
    (
        "min-version-not-a-version",
        TASK,
        annotate("tekton.dev/pipelines.minVersion", "0.56"),
        "annotation tekton.dev/pipelines.minVersion '0.56' is not a version like 0.56.0",
    ),
    (
        "image-upper-case",
        TASK,
        image("ghcr.io/Waterschap/druppie-step:0.1.0"),
        "step 'clone' image 'ghcr.io/Waterschap/druppie-step:0.1.0': its repository 'Waterschap/druppie-step' "
        "is not lower-case [a-z0-9_./-]; Artifact Hub skips the package",
    ),
    (
        "image-short-digest",
        TASK,
        image("ghcr.io/waterschap/druppie-step:0.1.0@sha256:abc"),
        "step 'clone' image 'ghcr.io/waterschap/druppie-step:0.1.0@sha256:abc': its digest is not sha256:",
    ),
    (
        "image-a-parameter",
        TASK,
        image("$(params.image)"),
        "step 'clone' image '$(params.image)': a parameter; Artifact Hub lists no image for this step",
    ),
    (
        "description-missing",
        TASK,
        spec("description", None),
        "spec.description missing; Artifact Hub skips the package",
    ),
    (
        "a-pipeline-among-the-tasks",
        TASK,
        text("kind: Task\n", "kind: Pipeline\n"),
        "kind 'Pipeline': the tasks/ registration reads every manifest as a Task",
    ),
    ("not-yaml", PIPELINE, text("metadata:\n", "metadata: [\n"), "is not valid YAML"),
]


@pytest.mark.parametrize(
    "rel,breakage,message", [c[1:] for c in BROKEN_MANIFESTS], ids=[c[0] for c in BROKEN_MANIFESTS]
)
def test_a_broken_manifest_is_reported_naming_file_and_annotation(copy, rel, breakage, message):
    breakage(copy, rel)
    problems = artifacthub.check(copy)
    assert any(p.startswith(f"{rel}: ") and message in p for p in problems), "\n".join(problems)
    assert all(p.startswith(rel) for p in problems), "\n".join(problems)  # nothing else is blamed


def test_accepted_forms_are_not_reported(copy):
    """What Artifact Hub accepts passes: a full semver label for folder 0.1 (both are 0.1.0), changes
    as plain strings, a mixed-case change kind, no recommendations on a Task, deprecated false."""
    label("0.1.0")(copy, TASK)
    annotate(CHANGES, "- First version\n- A typo fixed\n")(copy, TASK)
    annotate(CHANGES, "- kind: Fixed\n  description: A typo\n")(copy, PIPELINE)
    annotate(RECOMMENDATIONS, None)(copy, TASK)
    annotate("tekton.dev/deprecated", "false")(copy, TASK)
    assert artifacthub.check(copy) == []


def relink(root: Path, folder: str, target: str) -> None:
    """Replace a file by a symlink to target (a regular file Artifact Hub would read)."""
    path = root / folder
    path.unlink()
    path.symlink_to(target)


# (id, how the layout is broken, the path the message starts with, what it says)
BROKEN_LAYOUTS = [
    (
        "version-folder-not-semver",
        lambda r: (r / "tasks/druppie-git-clone/0.1").rename(r / "tasks/druppie-git-clone/latest"),
        "tasks/druppie-git-clone/latest",
        "folder name is not a semantic version; Artifact Hub skips it without a word",
    ),
    (
        "manifest-not-named-after-its-folder",
        lambda r: (r / TASK).rename(r / "tasks/druppie-git-clone/0.1/task.yaml"),
        "tasks/druppie-git-clone/0.1",
        "no druppie-git-clone.yaml (the manifest is named after its package folder); Artifact Hub skips the package",
    ),
    (
        "package-without-a-version",
        lambda r: (r / "tasks/druppie-extra").mkdir(),
        "tasks/druppie-extra",
        "no version folder; Artifact Hub lists nothing for it",
    ),
    (
        "readme-missing",
        lambda r: (r / "pipelines/druppie-promote/0.1/README.md").unlink(),
        "pipelines/druppie-promote/0.1/README.md",
        "missing or not a regular file; Artifact Hub shows no README",
    ),
    (
        "readme-a-symlink",
        lambda r: relink(r, "tasks/druppie-git-clone/0.1/README.md", "../../druppie-test/0.1/README.md"),
        "tasks/druppie-git-clone/0.1/README.md",
        "missing or not a regular file",
    ),
    (
        "sample-a-symlink",
        lambda r: relink(r, "tasks/druppie-git-clone/0.1/samples/source-pvc.yaml", "clone-with-basic-auth.yaml"),
        "tasks/druppie-git-clone/0.1/samples/source-pvc.yaml",
        "sample is not a regular file; Artifact Hub skips the package",
    ),
    (
        "pipelines-folder-missing",
        lambda r: shutil.rmtree(r / "pipelines"),
        "pipelines/",
        "missing, but registered on Artifact Hub as druppie-pipelines",
    ),
]


@pytest.mark.parametrize("breakage,where,message", [c[1:] for c in BROKEN_LAYOUTS], ids=[c[0] for c in BROKEN_LAYOUTS])
def test_a_layout_the_tracker_would_skip_is_reported(copy, breakage, where, message):
    breakage(copy)
    problems = artifacthub.check(copy)
    assert any(p.startswith(f"{where}: ") and message in p for p in problems), "\n".join(problems)


REPO_FILE = "tasks/artifacthub-repo.yml"
BROKEN_REPO_FILES = [
    (
        "repository-id-not-a-uuid",
        "repositoryID: druppie-tasks\nowners: []\n",
        "repositoryID 'druppie-tasks' is not a UUID",
    ),
    (
        "owner-without-email",
        "owners:\n  - name: Druppie platform team\n",
        "owners: entry 1 needs a name and an email",
    ),
    ("no-owners", "repositoryID: 00000000-0000-0000-0000-000000000000\n", "owners: must list the repository's owners"),
    (
        "unknown-key",
        "repositoryName: druppie-tasks\nowners:\n  - {name: Druppie platform team, email: platform@druppie.local}\n",
        "unknown keys ['repositoryName']",
    ),
    (
        "ignore-bad-regex",
        "ignore:\n  - {name: druppie-test, version: '('}\n",
        "ignore: entry 1 version '(' is not a regular",
    ),
    ("not-a-mapping", "- druppie-tasks\n", "must be a mapping (repositoryID, owners, ignore)"),
]


@pytest.mark.parametrize("content,message", [c[1:] for c in BROKEN_REPO_FILES], ids=[c[0] for c in BROKEN_REPO_FILES])
def test_a_broken_repository_metadata_file_is_reported(copy, content, message):
    (copy / REPO_FILE).write_text(content)
    problems = artifacthub.check(copy)
    assert any(p.startswith(f"{REPO_FILE}: ") and message in p for p in problems), "\n".join(problems)


def test_the_metadata_file_belongs_at_each_registered_path_not_the_root(copy):
    shutil.move(copy / "pipelines/artifacthub-repo.yml", copy / "artifacthub-repo.yml")
    assert artifacthub.check(copy) == [
        "artifacthub-repo.yml: at the repository root no registration reads it; it belongs at the registered paths "
        "(tasks/artifacthub-repo.yml, pipelines/artifacthub-repo.yml)",
        "pipelines/artifacthub-repo.yml: missing; Artifact Hub reads the repository metadata (owners, repositoryID) "
        "at the registered path",
    ]
    assert not (catalog.ROOT / "artifacthub-repo.yml").exists()


@pytest.mark.parametrize(
    "version,normalised",
    [
        ("0.1", "0.1.0"),
        ("0.1.0", "0.1.0"),
        ("v1", "1.0.0"),
        ("1.2.3-rc.1+build.5", "1.2.3-rc.1+build.5"),
        ("latest", None),
        ("0.1.x", None),
        ("1.2.3-rc.01", None),
        ("1.2.3+", None),
        ("", None),
        (0.1, None),
    ],
)
def test_versions_are_normalised_as_artifact_hub_does(version, normalised):
    assert artifacthub.hub_version(version) == normalised


@pytest.mark.parametrize(
    "ref,problem",
    [
        ("ghcr.io/waterschap/druppie-step:0.1.0", None),
        ("ghcr.io/waterschap/druppie-step:0.1.0@sha256:" + "a" * 64, None),
        ("ghcr.io/waterschap/druppie-step@sha256:" + "0" * 64, None),
        ("localhost:5000/druppie-step", None),
        ("busybox", None),
        ("ghcr.io/waterschap/Druppie-step:0.1.0", "its repository 'waterschap/Druppie-step' is not lower-case"),
        ("ghcr.io/waterschap/druppie-step:0.1.0@sha256:" + "A" * 64, "its digest is not sha256:<64 hex digits>"),
        ("ghcr.io/waterschap/druppie-step:0.1.0@md5:abc", "its digest is not sha256:<64 hex digits>"),
        ("ghcr.io/waterschap/druppie-step:" + "1" * 129, "is not [A-Za-z0-9_.-]{1,128}"),
        ("ghcr.io/waterschap/druppie-step:v1+b", "its tag 'v1+b'"),
    ],
)
def test_image_references_are_parsed_as_artifact_hub_does(ref, problem):
    found = artifacthub.image_reference_problem(ref)
    assert found == problem if problem is None else problem in found


def test_released_tasks_name_their_images_by_digest(tmp_path):
    """Artifact Hub lists the images a Task's steps name. The released files in dist/ (hack/release.py)
    pin each by digest and form a catalog folder the tracker takes as it is; the tasks/ files name
    the version tag, which the pinned check reports."""
    digests = {name: "sha256:" + f"{i:x}" * 64 for i, name in enumerate(release.IMAGES, 1)}
    written = release.write_released_tasks(tmp_path / "dist", digests)
    assert {p.parent.parent.name for p, _ in written} == {
        p.name for p in (catalog.ROOT / "tasks").iterdir() if p.is_dir()
    }
    assert artifacthub.check(tmp_path / "dist", folders=("tasks",), pinned=True) == []
    pinned = "\n".join((tmp_path / "dist" / TASK).read_text().splitlines())
    assert f"image: {release.IMAGES[0]}:{release.version()}@{digests[release.IMAGES[0]]}" in pinned

    unpinned = artifacthub.check(catalog.ROOT, folders=("tasks",), pinned=True)
    assert unpinned and all("a released Task names its image by digest" in p for p in unpinned)
    assert any(p.startswith(f"{TASK}: step 'clone' image 'ghcr.io/waterschap/druppie-step:") for p in unpinned)


def test_the_readme_references_a_task_through_artifact_hub():
    """README.md's hub resolver example names the tasks registration, a task and a version it has."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", (catalog.ROOT / "README.md").read_text(), re.M | re.S)
    blocks = [b for b in blocks if "resolver: hub" in b]
    assert blocks, "README.md has no hub resolver example"
    for block in blocks:
        ref = yaml.safe_load(block)
        ref = ref.get("taskRef") or ref.get("pipelineRef")
        assert ref["resolver"] == "hub"
        params = {p["name"]: p["value"] for p in ref["params"]}
        assert params["type"] == "artifact"
        folder = {"task": "tasks", "pipeline": "pipelines"}[params["kind"]]
        assert params["catalog"] == artifacthub.REGISTRATIONS[folder].name
        versions = [p.name for p in (catalog.ROOT / folder / params["name"]).iterdir() if p.is_dir()]
        assert params["version"] in versions and re.fullmatch(r"\d+\.\d+", params["version"])
