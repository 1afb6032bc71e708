"""druppie-ci-cd and its trigger, checked for structure: order, wiring, results, ServiceAccounts,
the README command, and the trigger's interceptors as written. Their behaviour on a real Tekton and
Triggers is the e2e tier's (the CEL expressions are asserted as strings here, not evaluated)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hack import catalog
from testbed.readme import bash_blocks
from tests.support.catalog import TASK_ACCOUNTS

ROOT = catalog.ROOT
FOLDER = ROOT / "pipelines/druppie-ci-cd/0.1"
TRIGGERS = ROOT / "triggers/druppie-ci-cd"
PIPELINE = yaml.safe_load((FOLDER / "druppie-ci-cd.yaml").read_text())
SPEC = PIPELINE["spec"]
TASKS = {d["metadata"]["name"]: d for f, _, d in catalog.resources() if f == "tasks"}
BY_NAME = {t["name"]: t for t in SPEC["tasks"] + SPEC["finally"]}
VERSION = "$(params.version-prefix).$(tasks.clone.results.committer-date)"
IMAGE = "$(params.image-registry)/$(params.app-name)"
# The ServiceAccount of every pipeline task, finally included.
ACCOUNTS = {t["name"]: TASK_ACCOUNTS[t["taskRef"]["name"]] for t in SPEC["tasks"] + SPEC["finally"]}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def params_of(task: str) -> dict[str, str]:
    return {p["name"]: p["value"] for p in BY_NAME[task].get("params", [])}


def workspaces_of(task: str) -> dict[str, str]:
    return {w["name"]: w["workspace"] for w in BY_NAME[task].get("workspaces", [])}


def test_clone_then_test_and_scan_in_parallel_then_build_tag_commit_and_flux_wait():
    assert [t["name"] for t in SPEC["tasks"]] == ["clone", "test", "scan", "build", "tag-commit", "flux-wait"]
    assert {t["name"]: t["taskRef"]["name"] for t in SPEC["tasks"]} == {
        "clone": "druppie-git-clone",
        "test": "druppie-test",
        "scan": "druppie-scan",
        "build": "druppie-build",
        "tag-commit": "druppie-tag-commit",
        "flux-wait": "druppie-flux-reconcile-wait",
    }
    assert {t["name"]: sorted(t.get("runAfter", [])) for t in SPEC["tasks"]} == {
        "clone": [],
        "test": ["clone"],
        "scan": ["clone"],
        "build": ["scan", "test"],
        "tag-commit": ["build"],
        "flux-wait": ["tag-commit"],
    }
    # A result reference is an ordering edge too: each must point at a task already before it.
    before = {
        "clone": set(),
        "test": {"clone"},
        "scan": {"clone"},
        "build": {"clone", "test", "scan"},
        "tag-commit": {"clone", "test", "scan", "build"},
        "flux-wait": {"clone", "test", "scan", "build", "tag-commit"},
    }
    for task in SPEC["tasks"]:
        referenced = set(re.findall(r"\$\(tasks\.([\w-]+)\.results\.", yaml.safe_dump(task)))
        assert referenced <= before[task["name"]], task["name"]


def test_the_summary_is_the_only_finally_task_and_references_no_result():
    (final,) = SPEC["finally"]
    assert final["name"] == "summary" and final["taskRef"] == {"name": "druppie-summary"}
    text = yaml.safe_dump(final)
    # Tekton v1.15 skips a finally task whose referenced result was never written.
    assert "results." not in text
    assert params_of("summary")["pipeline-run"] == "$(context.pipelineRun.name)"
    lines = params_of("summary")["tasks"].splitlines()
    assert lines == [f"{t['name']} $(tasks.{t['name']}.status) $(tasks.{t['name']}.reason)" for t in SPEC["tasks"]]


def test_everything_is_derived_from_the_app_name():
    assert params_of("clone") == {
        "url": "$(params.repo-url)",
        "revision": "$(params.revision)",
        "allow-plain-http": "$(params.allow-plain-http)",
    }
    assert params_of("build")["image"] == params_of("tag-commit")["image"] == IMAGE
    assert params_of("build")["version"] == params_of("tag-commit")["tag"] == VERSION
    assert params_of("build")["commit"] == "$(tasks.clone.results.commit)"
    assert params_of("tag-commit")["path"] == "envs/$(params.environment)/$(params.app-name)"
    assert params_of("tag-commit")["digest"] == "$(tasks.build.results.IMAGE_DIGEST)"
    assert params_of("tag-commit")["pipeline-run"] == "$(context.pipelineRun.name)"  # the loop guard's trailer
    assert params_of("flux-wait")["kustomization"] == "$(params.app-name)-$(params.environment)"
    assert params_of("flux-wait")["revision"] == "$(tasks.tag-commit.results.revision)"
    assert params_of("flux-wait")["repo-url"] == params_of("tag-commit")["repo-url"] == "$(params.gitops-repo-url)"


def test_the_defaults_follow_the_repos_conventions():
    defaults = {p["name"]: p.get("default") for p in SPEC["params"]}
    assert {n for n, d in defaults.items() if d is None} == {"repo-url", "app-name"}
    assert defaults | {"repo-url": None, "app-name": None} == {
        "repo-url": None,
        "app-name": None,
        "revision": "main",
        "environment": "prod",
        "image-registry": "registry.example/druppie",
        "version-prefix": "1.0",
        "gitops-repo-url": "https://github.com/waterschap/druppie-apps.git",
        "gitops-branch": "main",
        "flux-namespace": "flux-system",
        "flux-timeout": "5m",
        "fail-on": "high",
        "offline": "false",
        "build-args": "",
        "tls-verify": "true",
        "allow-plain-http": "false",
    }
    # drone-service with the defaults lands where flux/ and examples/druppie-apps have it.
    kustomization = yaml.safe_load((ROOT / "flux/druppie-apps/kustomization-drone-service-prod.yaml").read_text())
    assert kustomization["metadata"]["name"] == "drone-service-prod"
    assert kustomization["spec"]["path"] == "./envs/prod/drone-service"
    assert (ROOT / "examples/druppie-apps/envs/prod/drone-service/kustomization.yaml").is_file()
    assert (
        "registry.example/druppie/drone-service"
        in (ROOT / "examples/druppie-apps/envs/prod/drone-service/kustomization.yaml").read_text()
    )


def test_every_pipeline_param_is_used_and_every_task_param_exists():
    text = yaml.safe_dump(SPEC["tasks"] + SPEC["finally"])
    for param in SPEC["params"]:
        assert f"$(params.{param['name']})" in text, param["name"]
        assert param.get("description"), param["name"]
    for name, task in BY_NAME.items():
        declared = {p["name"]: p for p in TASKS[task["taskRef"]["name"]]["spec"]["params"]}
        assert set(params_of(name)) <= set(declared), name
        assert {n for n, p in declared.items() if "default" not in p} <= set(params_of(name)), name


def test_results_map_to_the_right_task_results():
    assert {r["name"]: r["value"] for r in SPEC["results"]} == {
        "CHAINS-GIT_URL": "$(tasks.clone.results.url)",
        "CHAINS-GIT_COMMIT": "$(tasks.clone.results.commit)",
        "IMAGE_URL": "$(tasks.build.results.IMAGE_URL)",
        "IMAGE_DIGEST": "$(tasks.build.results.IMAGE_DIGEST)",
        "GITOPS_COMMIT": "$(tasks.tag-commit.results.commit)",
        "APPLIED_REVISION": "$(tasks.flux-wait.results.applied-revision)",
        "status": "$(finally.summary.results.status)",
        "failed-task": "$(finally.summary.results.failed-task)",
        "failed-reason": "$(finally.summary.results.failed-reason)",
        "summary": "$(finally.summary.results.summary)",
    }
    summary_results = {r["name"] for r in TASKS["druppie-summary"]["spec"]["results"]}
    assert summary_results == {"status", "failed-task", "failed-reason", "summary"}


def test_only_source_is_a_volume_and_the_credentials_go_where_they_are_needed():
    workspaces = {w["name"]: bool(w.get("optional")) for w in SPEC["workspaces"]}
    assert workspaces == {"source": False, "git-credentials": True, "registry-credentials": True, "osv-db": True}
    assert workspaces_of("clone") == {"output": "source", "basic-auth": "git-credentials"}
    assert workspaces_of("test") == {"source": "source"}
    assert workspaces_of("scan") == {"source": "source", "osv-db": "osv-db"}
    assert workspaces_of("build") == {"source": "source", "dockerconfig": "registry-credentials"}
    assert workspaces_of("tag-commit") == {"basic-auth": "git-credentials"}
    assert workspaces_of("flux-wait") == {"basic-auth": "git-credentials"}
    assert workspaces_of("summary") == {}


def _run_workspaces_and_accounts(spec: dict) -> tuple[dict, dict]:
    accounts = {s["pipelineTaskName"]: s["serviceAccountName"] for s in spec["taskRunSpecs"]}
    return {w["name"]: w for w in spec["workspaces"]}, accounts


def _check_run(spec: dict) -> None:
    assert spec["pipelineRef"] == {"name": "druppie-ci-cd"}
    workspaces, accounts = _run_workspaces_and_accounts(spec)
    assert accounts == ACCOUNTS  # the summary too, which test_least_privilege does not see (finally)
    assert "serviceAccountName" not in spec.get("taskRunTemplate", {})
    assert spec["taskRunTemplate"]["podTemplate"]["securityContext"] == {"fsGroup": 65532}
    assert set(workspaces) == {"source", "git-credentials", "registry-credentials"}
    assert workspaces["source"]["volumeClaimTemplate"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert workspaces["git-credentials"] == {
        "name": "git-credentials",
        "secret": {"secretName": "druppie-apps-basic-auth"},
    }
    assert workspaces["registry-credentials"] == {
        "name": "registry-credentials",
        "secret": {"secretName": "registry-credentials"},
    }


def test_the_sample_run_gives_each_task_its_service_account_and_a_fresh_volume():
    (run,) = _docs(FOLDER / "samples/ci-cd-drone-service.yaml")
    assert run["kind"] == "PipelineRun" and run["metadata"]["generateName"] == "drone-service-ci-cd-"
    _check_run(run["spec"])
    assert {p["name"]: p["value"] for p in run["spec"]["params"]} == {
        "repo-url": "https://github.com/waterschap/drone-service.git",
        "app-name": "drone-service",
    }


def readme_command(path: Path) -> str:
    found = [c for block in bash_blocks(path) for c in block if c.startswith("tkn pipeline start druppie-ci-cd")]
    assert len(found) <= 1, found
    return found[0] if found else ""


def test_the_readme_command_needs_only_the_repo_the_app_name_and_the_workspaces():
    command = readme_command(FOLDER / "README.md")
    words = command.split()
    assert words[:6] == ["tkn", "pipeline", "start", "druppie-ci-cd", "-n", "ci"] and "--use-param-defaults" in words
    pairs = [(words[i], words[i + 1]) for i in range(len(words) - 1) if words[i].startswith("-")]
    assert dict(v.split("=", 1) for f, v in pairs if f == "--task-serviceaccount") == ACCOUNTS
    assert [v for f, v in pairs if f == "-p"] == [
        "repo-url=https://github.com/waterschap/drone-service.git",
        "app-name=drone-service",
    ]
    assert [v for f, v in pairs if f == "-w"] == [
        "name=source,volumeClaimTemplateFile=pipelines/druppie-ci-cd/0.1/source-volume.yaml",
        "name=git-credentials,secret=druppie-apps-basic-auth",
        "name=registry-credentials,secret=registry-credentials",
    ]
    assert [v for f, v in pairs if f == "--pod-template"] == ["pipelines/druppie-ci-cd/0.1/pod-template.yaml"]
    # The files it names exist and are what tkn reads: a PVC and a pod template.
    (pvc,) = _docs(FOLDER / "source-volume.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert yaml.safe_load((FOLDER / "pod-template.yaml").read_text()) == {"securityContext": {"fsGroup": 65532}}


def test_the_readme_command_is_the_one_the_top_readme_shows():
    shown = readme_command(ROOT / "README.md")
    if not shown:
        pytest.skip("README.md does not show `tkn pipeline start druppie-ci-cd` (yet)")
    assert shown == readme_command(FOLDER / "README.md")


# --- the trigger ---

EVENTLISTENER = {d["kind"]: d for d in _docs(TRIGGERS / "eventlistener.yaml")}
BINDING = _docs(TRIGGERS / "triggerbinding.yaml")[0]
TEMPLATE = _docs(TRIGGERS / "triggertemplate.yaml")[0]


def interceptors() -> dict[str, dict]:
    (trigger,) = EVENTLISTENER["EventListener"]["spec"]["triggers"]
    return {i["name"]: i for i in trigger["interceptors"]}


def interceptor_params(name: str) -> dict:
    return {p["name"]: p["value"] for p in interceptors()[name]["params"]}


def test_the_eventlistener_wires_its_binding_template_and_service_account():
    el = EVENTLISTENER["EventListener"]
    assert el["apiVersion"] == BINDING["apiVersion"] == TEMPLATE["apiVersion"] == "triggers.tekton.dev/v1beta1"
    assert el["metadata"] == {"name": "druppie-ci-cd", "namespace": "ci"}
    assert el["spec"]["serviceAccountName"] == "druppie-triggers"
    (trigger,) = el["spec"]["triggers"]
    assert trigger["bindings"] == [{"ref": BINDING["metadata"]["name"]}]
    assert trigger["template"] == {"ref": TEMPLATE["metadata"]["name"]}
    assert BINDING["metadata"]["namespace"] == TEMPLATE["metadata"]["namespace"] == "ci"


def test_interceptors_check_signature_and_event_then_branch_deletion_and_loop():
    assert list(interceptors()) == ["signed-push", "settings", "only-the-branch", "no-deletion", "not-our-own-push"]
    assert {n: i["ref"] for n, i in interceptors().items()} == {
        "signed-push": {"name": "github", "kind": "ClusterInterceptor"},
        **{
            n: {"name": "cel", "kind": "ClusterInterceptor"}
            for n in ("settings", "only-the-branch", "no-deletion", "not-our-own-push")
        },
    }
    assert interceptor_params("signed-push") == {
        "eventTypes": ["push"],
        "secretRef": {"secretName": "druppie-webhook-secret", "secretKey": "secret"},
    }
    assert interceptor_params("settings") == {
        "overlays": [
            {"key": "branch", "expression": "'main'"},
            {"key": "bot", "expression": "'druppie-ci'"},
            {"key": "app_name", "expression": "body.repository.name.lowerAscii()"},
        ]
    }
    assert interceptor_params("only-the-branch") == {"filter": "body.ref == 'refs/heads/' + extensions.branch"}
    assert interceptor_params("no-deletion") == {"filter": "!body.after.matches('^0+$')"}
    assert interceptor_params("not-our-own-push") == {
        "filter": (
            "!(body.sender.login == extensions.bot && body.head_commit.message.matches('(?m)^Tekton-Pipeline-Run: '))"
        )
    }


def test_the_loop_guard_matches_the_trailer_tag_commit_writes():
    source = (ROOT / "steps/druppie_steps/tag_commit.py").read_text()
    assert 'body += f"Tekton-Pipeline-Run: {pipeline_run}\\n"' in source
    assert "Tekton-Pipeline-Run: " in interceptor_params("not-our-own-push")["filter"]


def test_rejection_reasons_are_logged_at_debug():
    config = EVENTLISTENER["Secret"]  # Triggers' admission refuses configMapKeyRef in an EventListener's env
    assert config["metadata"] == {"name": "druppie-ci-cd-el-logging", "namespace": "ci"}
    assert yaml.safe_load(config["stringData"]["K_LOGGING_CONFIG"]) == {"loglevel.eventlistener": "debug"}
    (container,) = EVENTLISTENER["EventListener"]["spec"]["resources"]["kubernetesResource"]["spec"]["template"][
        "spec"
    ]["containers"]
    assert container == {
        "env": [
            {
                "name": "K_LOGGING_CONFIG",
                "valueFrom": {"secretKeyRef": {"name": "druppie-ci-cd-el-logging", "key": "K_LOGGING_CONFIG"}},
            }
        ]
    }


def test_the_binding_gives_what_the_template_needs():
    bound = {p["name"]: p["value"] for p in BINDING["spec"]["params"]}
    assert bound == {
        "repo-url": "$(body.repository.clone_url)",
        "revision": "$(body.after)",
        "app-name": "$(extensions.app_name)",
    }
    declared = {p["name"]: p for p in TEMPLATE["spec"]["params"]}
    assert {n for n, p in declared.items() if "default" not in p} == set(bound)
    assert all(p.get("description") for p in declared.values())
    used = set(re.findall(r"\$\(tt\.params\.([\w-]+)\)", yaml.safe_dump(TEMPLATE["spec"]["resourcetemplates"])))
    assert used == set(declared)


def test_the_template_makes_a_pipelinerun_of_the_pushed_commit_without_a_premade_claim():
    (run,) = TEMPLATE["spec"]["resourcetemplates"]
    assert run["apiVersion"] == "tekton.dev/v1" and run["kind"] == "PipelineRun"
    assert run["metadata"]["generateName"] == "$(tt.params.app-name)-ci-cd-" and "name" not in run["metadata"]
    _check_run(run["spec"])
    assert {p["name"]: p["value"] for p in run["spec"]["params"]} == {
        n: f"$(tt.params.{n})"
        for n in (
            "repo-url",
            "revision",
            "app-name",
            "environment",
            "allow-plain-http",
            "image-registry",
            "gitops-repo-url",
            "build-args",
            "offline",
            "tls-verify",
        )
    }
    assert "persistentVolumeClaim" not in yaml.safe_dump(run)


def test_the_trigger_service_account_has_triggers_two_eventlistener_roles_and_nothing_else():
    docs = _docs(TRIGGERS / "rbac.yaml")
    assert [d["kind"] for d in docs] == ["ServiceAccount", "RoleBinding", "ClusterRoleBinding"]
    sa, rolebinding, clusterrolebinding = docs
    assert sa["metadata"] == {"name": "druppie-triggers", "namespace": "ci"}
    subject = [{"kind": "ServiceAccount", "name": "druppie-triggers", "namespace": "ci"}]
    assert rolebinding["metadata"]["namespace"] == "ci" and rolebinding["subjects"] == subject
    assert rolebinding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "tekton-triggers-eventlistener-roles",
    }
    assert clusterrolebinding["subjects"] == subject
    assert clusterrolebinding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "tekton-triggers-eventlistener-clusterroles",
    }


def test_the_summary_service_account_may_only_get_and_list_taskruns():
    sa, role, binding = _docs(ROOT / "tasks/druppie-summary/0.1/rbac.yaml")
    assert sa["metadata"] == {"name": "druppie-summary", "namespace": "ci"}
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "ci"
    assert role["rules"] == [{"apiGroups": ["tekton.dev"], "resources": ["taskruns"], "verbs": ["get", "list"]}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"] and binding["roleRef"]["kind"] == "Role"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "druppie-summary", "namespace": "ci"}]


def test_trigger_yaml_passes_yamllint():
    """`make lint`'s yamllint does not cover triggers/; this does."""
    from yamllint import config, linter

    conf = config.YamlLintConfig(file=str(ROOT / ".yamllint.yaml"))
    files = sorted(TRIGGERS.glob("*.yaml"))
    problems = [
        f"{f.relative_to(ROOT)}:{p.line}: {p.desc}" for f in files for p in linter.run(f.read_text(), conf, str(f))
    ]
    assert len(files) == 4 and problems == []
