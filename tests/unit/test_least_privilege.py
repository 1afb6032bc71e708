"""Each Task runs with the least it needs: Pod Security "restricted" step settings, and in every
PipelineRun each task under its own ServiceAccount, tag-commit's without an API token."""

import re
from pathlib import Path

import pytest
import yaml

from hack import catalog
from tests.support import kustomize
from tests.support.catalog import TASK_ACCOUNTS

ROOT = catalog.ROOT
SAMPLES = sorted(ROOT.glob("*/*/*/samples/*.yaml"))


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# Pod Security "baseline" allows these capabilities (and no others beyond NET_BIND_SERVICE).
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
# The one documented exception to "restricted": buildah needs root to map into its own user namespace
# (tasks/druppie-build README; measured by hack/userns_measure.py, SYS_CHROOT is not needed).
BUILD_CAPABILITIES = ["SETUID", "SETGID", "SETFCAP"]


# Every task but druppie-build, which test_the_build_step_has_three_capabilities_and_nothing_else holds to baseline.
@pytest.mark.parametrize(
    "folder,path,doc",
    [r for r in catalog.resources() if r[0] == "tasks" and r[2]["metadata"]["name"] != "druppie-build"],
    ids=lambda v: getattr(v, "name", ""),
)
def test_every_step_meets_pod_security_restricted(folder, path, doc):
    for step in doc["spec"]["steps"]:
        ctx = step.get("securityContext") or {}
        assert ctx.get("runAsNonRoot") is True, step["name"]
        assert ctx.get("allowPrivilegeEscalation") is False, step["name"]
        assert ctx.get("capabilities") == {"drop": ["ALL"]}, step["name"]
        assert ctx.get("seccompProfile") == {"type": "RuntimeDefault"}, step["name"]
        assert not ctx.get("privileged"), step["name"]


def test_the_build_step_has_three_capabilities_and_nothing_else():
    (step,) = _docs(ROOT / "tasks/druppie-build/0.1/druppie-build.yaml")[0]["spec"]["steps"]
    ctx = step["securityContext"]
    assert ctx == {
        "runAsUser": 0,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": BUILD_CAPABILITIES},
        "seccompProfile": {"type": "Localhost", "localhostProfile": "druppie-build.json"},
    }
    assert set(BUILD_CAPABILITIES) <= BASELINE_CAPABILITIES  # so a baseline namespace admits it
    assert (ROOT / "tasks/druppie-build/0.1/seccomp/druppie-build.json").is_file()


def test_tag_commit_service_account_gets_no_api_token():
    (sa,) = kustomize.installed(ROOT / "tasks/druppie-tag-commit/0.1/rbac.yaml", ROOT)
    assert sa["kind"] == "ServiceAccount" and sa["metadata"] == {"name": "druppie-tag-commit", "namespace": "ci"}
    assert sa["automountServiceAccountToken"] is False


def _pipelines() -> dict[str, dict]:
    found = {}
    for path in [p for _, p, _ in catalog.resources()] + SAMPLES:
        for doc in _docs(path):
            if doc.get("kind") == "Pipeline":
                found[doc["metadata"]["name"]] = doc
    return found


def _skipped_by_params(pipeline: dict, run_params: dict[str, str]) -> set[str]:
    """The pipeline tasks a run's params skip: a when-expression on params that is false (e.g.
    druppie-ci-cd's OTAP tasks with acceptatie-mode "off"), and the tasks taking their results."""
    params = {p["name"]: p.get("default") for p in pipeline["spec"]["params"]} | run_params
    skipped: set[str] = set()
    for task in pipeline["spec"]["tasks"]:
        for when in task.get("when", []):
            name = re.fullmatch(r"\$\(params\.([\w-]+)\)", when["input"])
            if name and (params.get(name[1]) in when["values"]) != (when["operator"] == "in"):
                skipped.add(task["name"])
        if set(re.findall(r"\$\(tasks\.([\w-]+)\.results\.", yaml.safe_dump(task))) & skipped:
            skipped.add(task["name"])
    return skipped


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_sample_run_gives_each_task_its_own_service_account(path):
    pipelines = _pipelines()
    for doc in _docs(path):
        if doc.get("kind") == "TaskRun":
            expected = TASK_ACCOUNTS.get(doc["spec"]["taskRef"]["name"])
            assert doc["spec"].get("serviceAccountName") == expected
        if doc.get("kind") != "PipelineRun":
            continue
        spec = doc["spec"]
        assert "serviceAccountName" not in (spec.get("taskRunTemplate") or {}), (
            "one ServiceAccount for all tasks gives each the rights of all"
        )
        accounts = {s["pipelineTaskName"]: s["serviceAccountName"] for s in spec.get("taskRunSpecs", [])}
        pipeline = pipelines[spec["pipelineRef"]["name"]]
        skipped = _skipped_by_params(pipeline, {p["name"]: p["value"] for p in spec.get("params", [])})
        for task in pipeline["spec"]["tasks"]:
            if task["name"] in skipped:  # no pod, no account; a run that turns it on names one
                continue
            expected = TASK_ACCOUNTS.get(task["taskRef"]["name"])
            assert accounts.get(task["name"]) == expected, task["name"]
