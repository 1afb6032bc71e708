"""The catalog follows the conventions hubs and catlin check, and each Task matches its step CLI."""

import shutil

import click
import pytest
import yaml

from druppie_steps.cli import STEPS, cli
from hack import catalog


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
    task.write_text(yaml.safe_dump(doc))
    problems = "\n".join(catalog.check(tmp_path))
    assert "$(params.*) in script" in problems
    assert "is not fully qualified" in problems and "must be pinned" in problems
    assert "app.kubernetes.io/version must be '0.1'" in problems
    assert "generated tables are stale" in problems


@pytest.mark.parametrize("folder,path,doc", [r for r in catalog.resources() if r[0] == "tasks"],
                         ids=lambda v: getattr(v, "name", ""))
def test_task_env_is_exactly_the_step_options(folder, path, doc):
    """Every DRUPPIE_* env of a step is an option of its subcommand, and every param reaches one."""
    for step in doc["spec"]["steps"]:
        command = step["command"]
        assert command[0] == "druppie-step" and command[1] in STEPS
        sub = cli.get_command(click.Context(cli), command[1])
        envvars = {p.envvar for p in sub.params if isinstance(p, click.Option)}
        env = {e["name"]: e["value"] for e in step["env"] if e["name"].startswith("DRUPPIE_")}
        for name in env:
            assert name in envvars or (name.endswith("_BOUND") and name[:-6] in envvars), name
        used = " ".join(env.values())
        for param in doc["spec"]["params"]:
            assert f"$(params.{param['name']})" in used, param["name"]
        for ws in doc["spec"].get("workspaces", []):
            assert f"$(workspaces.{ws['name']}.bound)" in used, ws["name"]
