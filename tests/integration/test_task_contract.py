"""Run each Task's step the way Tekton would: its env with params substituted, nothing else."""

import os
import subprocess

import yaml

from hack import catalog
from tests.support.paths import STEP
from tests.support.tekton_env import tekton_env

TASK = catalog.ROOT / "tasks/druppie-tag-commit/0.1/druppie-tag-commit.yaml"


def test_tag_commit_task_env_runs_the_step(druppie_apps, tmp_path):
    task = yaml.safe_load(TASK.read_text())
    env = tekton_env(
        task,
        {
            "repo-url": druppie_apps.url,
            "path": "envs/prod/drone-service",
            "image": "registry.example/druppie/drone-service",
            "tag": "1.0.5",
            "pipeline-run": "ci-run-1",
        },
        {},
        str(tmp_path / "results"),
    )
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [str(STEP), *task["spec"]["steps"][0]["command"][1:]],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **env},
    )
    assert proc.returncode == 0, proc.stderr
    results = {p.name: p.read_text() for p in (tmp_path / "results").iterdir()}
    declared = {r["name"] for r in task["spec"]["results"]}
    assert set(results) == declared
    assert results["changed"] == "true" and results["revision"] == f"main@sha1:{druppie_apps.head()}"
    assert "Tekton-Pipeline-Run: ci-run-1" in druppie_apps.server.log(druppie_apps.name, fmt="%B")
