"""The catalog follows the conventions hubs and catlin check, and each Task matches its step CLI."""

import json
import re
import shutil

import click
import pytest
import yaml

from druppie_steps.cli import DEBUG_ENV, STEPS, cli
from hack import catalog
from localcluster.toolchain import toolchain


def test_catalog_has_no_problems():
    assert catalog.check() == []


def test_check_catches_broken_conventions(tmp_path):
    for item in ("tasks", "catalog.yaml"):
        src = catalog.ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    task = tmp_path / "tasks/druppie-tag-commit/0.1/druppie-tag-commit.yaml"
    doc = yaml.safe_load(task.read_text())
    step = doc["spec"]["steps"][0]
    step["script"] = "echo $(params.tag)"
    step["image"] = "druppie-step:latest"
    doc["metadata"]["labels"]["app.kubernetes.io/version"] = "0.2"
    doc["spec"]["params"][0]["description"] = "changed"
    doc["metadata"]["annotations"]["tekton.dev/platforms"] = "linux/amd64,linux/s390x"
    task.write_text(yaml.safe_dump(doc))
    problems = "\n".join(catalog.check(tmp_path))
    assert "$(params.*) in script" in problems
    assert "is not fully qualified" in problems and "must be pinned" in problems
    assert "app.kubernetes.io/version must be '0.1'" in problems
    assert "generated tables are stale" in problems
    built = ", ".join(catalog.BUILT_PLATFORMS)
    assert f"tekton.dev/platforms claims linux/s390x, but the images are built for {built} only" in problems


def test_a_task_claims_only_what_its_seccomp_profile_is_made_for_and_a_pipeline_only_what_its_tasks_claim(tmp_path):
    """druppie-build runs under a Localhost seccomp profile measured on x86_64: an arm64 claim (and one of a
    Pipeline that uses it) is a problem until the profile lists SCMP_ARCH_AARCH64."""
    for item in ("tasks", "pipelines", "catalog.yaml"):
        src = catalog.ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    assert catalog.check(tmp_path) == []

    def claim(path: str, platforms: str) -> None:
        text = (tmp_path / path).read_text()
        old = re.search(r'tekton\.dev/platforms: "[^"]*"', text)
        assert old
        (tmp_path / path).write_text(text.replace(old.group(0), f'tekton.dev/platforms: "{platforms}"'))

    claim("pipelines/druppie-ci-cd/0.1/druppie-ci-cd.yaml", "linux/amd64,linux/arm64")
    pipeline = "pipelines/druppie-ci-cd/0.1/druppie-ci-cd.yaml: tekton.dev/platforms claims linux/arm64, "
    assert catalog.check(tmp_path) == [pipeline + "but its Tasks claim linux/amd64 only"]
    claim("tasks/druppie-build/0.1/druppie-build.yaml", "linux/amd64,linux/arm64")
    task = "tasks/druppie-build/0.1/druppie-build.yaml: tekton.dev/platforms claims linux/arm64, "
    assert catalog.check(tmp_path) == [task + "but its seccomp profile is made for linux/amd64 only"]

    # With aarch64 in the profile the Task may claim arm64, and then the Pipeline too.
    profile = tmp_path / "tasks/druppie-build/0.1/seccomp/druppie-build.json"
    doc = json.loads(profile.read_text())
    doc["architectures"].append("SCMP_ARCH_AARCH64")
    profile.write_text(json.dumps(doc))
    assert not [p for p in catalog.check(tmp_path) if "platforms" in p]


@pytest.mark.parametrize(
    "folder,path,doc", [r for r in catalog.resources() if r[0] == "tasks"], ids=lambda v: getattr(v, "name", "")
)
def test_task_env_is_exactly_the_step_options(folder, path, doc):
    """Every DRUPPIE_* env of a step is an option of its subcommand, and every param and workspace
    reaches a step (not necessarily every step: druppie-test's run step never gets the index URL)."""
    used = ""
    for step in doc["spec"]["steps"]:
        command = step["command"]
        assert command[0] == "druppie-step" and command[1] in STEPS
        sub = cli.get_command(click.Context(cli), command[1])
        options = [p for p in sub.params if isinstance(p, click.Option)]
        # An option's first variable is its own; the others are old names (hidden aliases). cli.main reads DEBUG_ENV.
        envvars = {p.envvar if isinstance(p.envvar, str) else p.envvar[0] for p in options} | {DEBUG_ENV}
        env = {e["name"]: e["value"] for e in step["env"] if e["name"].startswith("DRUPPIE_")}
        for name in env:
            assert name in envvars or (name.endswith("_BOUND") and name[:-6] in envvars), name
        mine = " ".join(env.values())
        for ws in doc["spec"].get("workspaces", []):
            if ws.get("optional") and f"$(workspaces.{ws['name']}.path)" in mine:
                # an unbound optional workspace still has a path: the step that reads it must know
                assert f"$(workspaces.{ws['name']}.bound)" in mine, (step["name"], ws["name"])
        used += " " + mine
    for param in doc["spec"]["params"]:
        assert f"$(params.{param['name']})" in used, param["name"]
    for ws in doc["spec"].get("workspaces", []):
        assert f"$(workspaces.{ws['name']}.path)" in used, ws["name"]


@pytest.mark.parametrize(
    "folder,path,doc", [r for r in catalog.resources() if r[0] == "tasks"], ids=lambda v: getattr(v, "name", "")
)
def test_every_task_passes_its_debug_param_to_every_step(folder, path, doc):
    """debug: "true" makes an unexpected error print its traceback, in whichever step of the Task it happens."""
    (param,) = [p for p in doc["spec"]["params"] if p["name"] == "debug"]
    assert param["type"] == "string" and param["default"] == "false" and "traceback" in param["description"]
    steps = [
        s
        for s in doc["spec"]["steps"]
        if s.get("command", [""])[0] == "druppie-step" or "druppie-step" in s.get("script", "")
    ]
    assert steps
    for step in steps:
        env = {e["name"]: e.get("value") for e in step.get("env", [])}
        assert env.get(DEBUG_ENV) == "$(params.debug)", step["name"]


@pytest.mark.parametrize(
    "folder,path,doc", [r for r in catalog.resources() if r[0] == "pipelines"], ids=lambda v: getattr(v, "name", "")
)
def test_pipeline_wires_existing_params_and_results(folder, path, doc):
    tasks = {d["metadata"]["name"]: d for f, _, d in catalog.resources() if f == "tasks"}
    spec = doc["spec"]
    own_params = {p["name"] for p in spec.get("params", [])}
    results_of = {}
    for pt in spec["tasks"]:
        task = tasks[pt["taskRef"]["name"]]["spec"]
        declared = {p["name"]: p for p in task["params"]}
        given = {p["name"]: p["value"] for p in pt.get("params", [])}
        assert set(given) <= set(declared), f"{pt['name']}: unknown params {set(given) - set(declared)}"
        required = {n for n, p in declared.items() if "default" not in p}
        assert required <= set(given), f"{pt['name']}: required params missing {required - set(given)}"
        for value in given.values():
            for ref in re.findall(r"\$\(params\.([\w-]+)\)", value):
                assert ref in own_params, ref
        results_of[pt["name"]] = {r["name"] for r in task.get("results", [])}
        ws = {w["name"] for w in task.get("workspaces", [])}
        assert {w["name"] for w in pt.get("workspaces", [])} <= ws
    text = yaml.safe_dump(doc)
    for task_name, result in re.findall(r"\$\(tasks\.([\w-]+)\.results\.([\w-]+)\)", text):
        assert result in results_of[task_name], f"{task_name}.{result}"


def test_catalog_yaml_passes_yamllint():
    from yamllint import config, linter

    conf = config.YamlLintConfig(file=str(catalog.ROOT / ".yamllint.yaml"))
    files = [
        p for folder in ("tasks", "pipelines", "flux", "examples") for p in (catalog.ROOT / folder).rglob("*.yaml")
    ]
    files += [catalog.ROOT / "catalog.yaml", catalog.ROOT / "tasks/artifacthub-repo.yml"]
    files += [catalog.ROOT / "pipelines/artifacthub-repo.yml"]
    problems = [
        f"{f.relative_to(catalog.ROOT)}:{p.line}: {p.desc}"
        for f in files
        for p in linter.run(f.read_text(), conf, str(f))
    ]
    assert len(files) > 15 and problems == []


def test_the_step_image_version_has_one_source(tmp_path):
    """Task images and catalog.yaml's image entry follow steps/pyproject.toml's version."""
    for item in ("tasks", "pipelines", "catalog.yaml"):
        src = catalog.ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    assert catalog.check(tmp_path) == []
    task = tmp_path / "tasks/druppie-tag-commit/0.1/druppie-tag-commit.yaml"
    task.write_text(
        task.read_text().replace(f"{catalog.STEP_IMAGE}:{catalog.step_version()}", f"{catalog.STEP_IMAGE}:9.9.9")
    )
    (tmp_path / "catalog.yaml").write_text(
        (tmp_path / "catalog.yaml").read_text()
        + (f"images:\n  - name: {catalog.STEP_IMAGE}\n    version: 9.9.9\n    digest: sha256:{'0' * 64}\n")
    )
    problems = "\n".join(catalog.check(tmp_path))
    assert f"image '{catalog.STEP_IMAGE}:9.9.9' must be {catalog.STEP_IMAGE}:{catalog.step_version()}" in problems
    assert f"catalog.yaml: images: {catalog.STEP_IMAGE} version '9.9.9' is not" in problems


def test_task_and_pipeline_readmes_show_the_tested_commands():
    """A tkn command in a task or pipeline README is one the e2e tier runs from README.md."""
    from testbed.readme import bash_blocks

    tested = {c for block in bash_blocks(catalog.ROOT / "README.md") for c in block if c.startswith("tkn ")}
    shown = {
        c
        for readme in sorted(catalog.ROOT.glob("*/*/*/README.md"))
        for block in bash_blocks(readme)
        for c in block
        if c.startswith("tkn ")
    }
    assert shown and shown <= tested, shown - tested


def test_the_minimum_tekton_version_is_the_lts_the_e2e_tier_runs_on():
    """tekton.dev/pipelines.minVersion and the README claim what make test-e2e-lts tests: the
    minor release of TEKTON_LTS_VERSION (hack/toolchain.env), no older one."""
    lts = toolchain()["TEKTON_LTS_VERSION"].lstrip("v")
    claimed = ".".join(lts.split(".")[:2]) + ".0"
    for _folder, path, doc in catalog.resources():
        assert doc["metadata"]["annotations"]["tekton.dev/pipelines.minVersion"] == claimed, path
    major, minor = lts.split(".")[:2]
    assert f"Tekton Pipelines v{major}.{minor} or newer" in (catalog.ROOT / "README.md").read_text()
