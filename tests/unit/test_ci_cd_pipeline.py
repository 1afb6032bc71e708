"""druppie-ci-cd and its trigger, checked for structure: order, wiring, results, ServiceAccounts,
the README command, and the trigger's interceptors as written. Their behaviour on a real Tekton and
Triggers is the e2e tier's (the CEL expressions are asserted as strings here, not evaluated)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from hack import catalog
from testbed.readme import bash_blocks
from tests.support import kustomize
from tests.support.catalog import TASK_ACCOUNTS

ROOT = catalog.ROOT
FOLDER = ROOT / "pipelines/druppie-ci-cd/0.1"
TRIGGERS = ROOT / "triggers/druppie-ci-cd"
PIPELINE = yaml.safe_load((FOLDER / "druppie-ci-cd.yaml").read_text())
SPEC = PIPELINE["spec"]
TASKS = {d["metadata"]["name"]: d for f, _, d in catalog.resources() if f == "tasks"}
BY_NAME = {t["name"]: t for t in SPEC["tasks"] + SPEC["finally"]}
VERSION = "$(params.version-prefix).$(tasks.clone.results.commit-depth)"  # no clock can block it
IMAGE = "$(params.image-registry)/$(params.app-name)"
# The ServiceAccount of every pipeline task, finally included.
ACCOUNTS = {t["name"]: TASK_ACCOUNTS[t["taskRef"]["name"]] for t in SPEC["tasks"] + SPEC["finally"]}
# OTAP's tasks (acceptatie-mode, prod-mode): a run that leaves them off names no account for them.
OTAP_ONLY = ("acceptatie-gate", "acceptatie-promote", "acceptatie-wait", "prod-gate", "prod-promote",
             "statuses-proposed", "statuses-acceptatie", "statuses-prod")  # fmt: skip
CORE_ACCOUNTS = {task: account for task, account in ACCOUNTS.items() if task not in OTAP_ONLY}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _installed(path: Path) -> list[dict]:
    """A file's objects as installed: `kubectl apply -k` of the catalog or of the trigger, into `ci`."""
    return kustomize.installed(path, TRIGGERS if path.is_relative_to(TRIGGERS) else ROOT)


def params_of(task: str) -> dict[str, str]:
    return {p["name"]: p["value"] for p in BY_NAME[task].get("params", [])}


def workspaces_of(task: str) -> dict[str, str]:
    return {w["name"]: w["workspace"] + (f"/{w['subPath']}" if "subPath" in w else "")
            for w in BY_NAME[task].get("workspaces", [])}  # fmt: skip


CORE = ("clone", "test", "scan", "statuses-pending", "build", "tag-commit", "flux-wait")
OTAP = ("acceptatie-gate", "acceptatie-promote", "acceptatie-wait", "prod-gate", "prod-promote", "statuses-proposed")


def test_clone_then_test_and_scan_in_parallel_then_build_tag_commit_and_flux_wait():
    assert [t["name"] for t in SPEC["tasks"]] == [*CORE, *OTAP]
    assert {t["name"]: t["taskRef"]["name"] for t in SPEC["tasks"] if t["name"] in CORE} == {
        "clone": "druppie-git-clone",
        "test": "druppie-test",
        "scan": "druppie-scan",
        "statuses-pending": "druppie-commit-status",
        "build": "druppie-build",
        "tag-commit": "druppie-tag-commit",
        "flux-wait": "druppie-flux-reconcile-wait",
    }
    assert {t["name"]: sorted(t.get("runAfter", [])) for t in SPEC["tasks"] if t["name"] in CORE} == {
        "clone": [],
        "test": ["clone"],
        "scan": ["clone"],
        "statuses-pending": ["clone"],  # beside test and scan; nothing waits for it
        "build": ["scan", "test"],
        "tag-commit": ["build"],
        "flux-wait": ["tag-commit"],
    }
    # A result reference is an ordering edge too: each must point at a task already before it.
    before = {
        "clone": set(),
        "test": {"clone"},
        "scan": {"clone"},
        "statuses-pending": {"clone"},
        "build": {"clone", "test", "scan"},
        "tag-commit": {"clone", "test", "scan", "build"},
        "flux-wait": {"clone", "test", "scan", "build", "tag-commit"},
    }
    for task in SPEC["tasks"]:
        if task["name"] in CORE:
            referenced = set(re.findall(r"\$\(tasks\.([\w-]+)\.results\.", yaml.safe_dump(task)))
            assert referenced <= before[task["name"]], task["name"]


def test_otap_promotes_the_digest_the_gate_saw_and_prod_only_by_pull_request():
    refs = {t["name"]: t["taskRef"]["name"] for t in SPEC["tasks"] if t["name"] in OTAP}
    assert refs == {"acceptatie-gate": "druppie-promotion-gate", "acceptatie-promote": "druppie-tag-commit",
                    "acceptatie-wait": "druppie-flux-reconcile-wait", "prod-gate": "druppie-promotion-gate",
                    "prod-promote": "druppie-tag-commit", "statuses-proposed": "druppie-commit-status"}  # fmt: skip
    # Build once: test's gate expects the digest built, each promotion writes what its gate saw,
    # and prod's gate expects the digest acceptatie got.
    assert params_of("acceptatie-gate")["digest"] == "$(tasks.build.results.IMAGE_DIGEST)"
    assert params_of("acceptatie-gate")["kustomization"] == "$(params.app-name)-$(params.environment)"
    assert params_of("prod-gate")["digest"] == "$(tasks.acceptatie-gate.results.digest)"
    assert params_of("prod-gate")["kustomization"] == "$(params.app-name)-acceptatie"
    for env, gate in (("acceptatie", "acceptatie-gate"), ("prod", "prod-gate")):
        promote = params_of(f"{env}-promote")
        assert promote["path"] == f"envs/{env}/$(params.app-name)"
        seen = (f"$(tasks.{gate}.results.tag)", f"$(tasks.{gate}.results.digest)")
        assert (promote["tag"], promote["digest"]) == seen
    # Prod is a pull request whatever the params say; acceptatie as acceptatie-mode says.
    assert params_of("prod-promote")["mode"] == "pull-request"
    assert params_of("acceptatie-promote")["mode"] == "$(params.acceptatie-mode)"
    assert params_of("acceptatie-wait")["revision"] == "$(tasks.acceptatie-promote.results.revision)"
    # Off by default; from test only; prod after acceptatie was pushed (and waited for).
    defaults = {p["name"]: p.get("default") for p in SPEC["params"]}
    assert (defaults["acceptatie-mode"], defaults["prod-mode"]) == ("off", "off")
    when = {t["name"]: t.get("when", []) for t in SPEC["tasks"]}
    assert {"input": "$(params.environment)", "operator": "in", "values": ["test"]} in when["acceptatie-gate"]
    assert {"input": "$(params.acceptatie-mode)", "operator": "notin", "values": ["off"]} in when["acceptatie-gate"]
    assert when["acceptatie-wait"] == [{"input": "$(params.acceptatie-mode)", "operator": "in", "values": ["push"]}]
    assert {"input": "$(params.acceptatie-mode)", "operator": "in", "values": ["push"]} in when["prod-gate"]
    assert BY_NAME["prod-gate"]["runAfter"] == ["acceptatie-wait"]
    # A task without a when of its own is skipped with the one whose results it takes.
    for name in ("acceptatie-promote", "prod-promote", "statuses-proposed"):
        assert not when[name] and re.search(r"\$\(tasks\.[\w-]+\.results\.", yaml.safe_dump(BY_NAME[name])), name


def test_the_finally_tasks_are_the_summary_which_references_no_result_and_the_statuses():
    final, statuses, *otap = SPEC["finally"]
    assert [t["name"] for t in otap] == ["statuses-acceptatie", "statuses-prod"]
    assert final["name"] == "summary" and final["taskRef"] == {"name": "druppie-summary"}
    assert statuses["name"] == "statuses" and statuses["taskRef"] == {"name": "druppie-commit-status"}
    # The statuses need the commit: skipped when the clone failed, when nothing was marked pending either.
    assert set(re.findall(r"\$\(tasks\.[\w-]+\.results\.[\w-]+\)", yaml.safe_dump(statuses))) == {
        "$(tasks.clone.results.commit)"}  # fmt: skip
    text = yaml.safe_dump(final)
    # Tekton v1.15 skips a finally task whose referenced result was never written.
    assert "results." not in text
    assert params_of("summary")["pipeline-run"] == "$(context.pipelineRun.name)"
    lines = params_of("summary")["tasks"].splitlines()
    assert lines == [f"{t['name']} $(tasks.{t['name']}.status) $(tasks.{t['name']}.reason)" for t in SPEC["tasks"]]
    # What acceptatie-mode and prod-mode "off" skip is not a failure of the run.
    assert params_of("summary")["optional-tasks"].split(",") == list(OTAP)


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
        "dashboard-url": "",  # the commit statuses link nowhere
        "repo-url": None,
        "app-name": None,
        "revision": "main",
        "environment": "prod",
        "image-registry": "registry.example/druppie",
        "version-prefix": "1.1",  # above the committer-date scheme's 1.0.<epoch seconds>
        "gitops-repo-url": "https://github.com/waterschap/druppie-apps.git",
        "gitops-branch": "main",
        "flux-namespace": "flux-system",
        "flux-timeout": "5m",
        "fail-on": "high",
        "offline": "false",
        "build-args": "",
        "tls-verify": "true",
        "allow-plain-http": "false",
        "allow-no-change": "false",  # a build that is not deployed fails the run
        "osv-db-ref": "registry.example/druppie/osv-db:latest",  # the scan's advisories, from a registry
        "deps-advisories": "check",  # no advisory database fails the scan
        "acceptatie-mode": "off",  # OTAP is asked for (README), not assumed
        "prod-mode": "off",
        "forge": "auto",
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
        "ADVISORIES": "$(tasks.scan.results.advisories)",
        "DEPLOYED": "$(tasks.tag-commit.results.deployed)",
        "DEPLOY_REASON": "$(tasks.tag-commit.results.reason)",
        "ACCEPTATIE_REVISION": "$(tasks.acceptatie-wait.results.applied-revision)",
        "ACCEPTATIE_PULL_REQUEST": "$(tasks.acceptatie-promote.results.pull-request-url)",
        "PROD_PULL_REQUEST": "$(tasks.prod-promote.results.pull-request-url)",
        "status": "$(finally.summary.results.status)",
        "failed-task": "$(finally.summary.results.failed-task)",
        "failed-reason": "$(finally.summary.results.failed-reason)",
        "summary": "$(finally.summary.results.summary)",
    }
    summary_results = {r["name"] for r in TASKS["druppie-summary"]["spec"]["results"]}
    assert summary_results == {"status", "failed-task", "failed-reason", "summary"}


def test_only_source_is_a_volume_and_the_credentials_go_where_they_are_needed():
    workspaces = {w["name"]: bool(w.get("optional")) for w in SPEC["workspaces"]}
    assert workspaces == {"source": False, "app-read-credentials": True, "gitops-read-credentials": True,
                          "gitops-write-credentials": True, "registry-credentials": True, "osv-db": True,
                          "pip-cache": True, "osv-db-credentials": True, "status-token": True}  # fmt: skip
    # Each credential workspace reaches only the tasks named here.
    # (OTAP: the gates and waits read druppie-apps, the promotions write it, the status tasks report.)
    reads = {"flux-wait", "acceptatie-gate", "acceptatie-wait", "prod-gate"}
    statuses = {"statuses-pending", "statuses", "statuses-proposed", "statuses-acceptatie", "statuses-prod"}
    for credential, tasks in {"app-read-credentials": {"clone"}, "gitops-read-credentials": reads,
                              "gitops-write-credentials": {"tag-commit", "acceptatie-promote", "prod-promote"},
                              "registry-credentials": {"build"}, "osv-db-credentials": {"scan"},
                              "status-token": statuses}.items():  # fmt: skip
        assert {t for t in BY_NAME if credential in workspaces_of(t).values()} == tasks, credential
    # A token that can push to druppie-apps goes to tag-commit only: never beside the app's code.
    # The checkout in src/, the reports beside it (build refuses a tree with files not in the commit).
    assert workspaces_of("clone") == {"output": "source/src", "basic-auth": "app-read-credentials"}
    assert workspaces_of("test") == {"source": "source/src", "reports": "source/reports",
                                     "pip-cache": "pip-cache/$(params.app-name)"}  # fmt: skip
    # The advisory database is pulled with a pull-only credential, never the build's push one.
    assert workspaces_of("scan") == {"source": "source/src", "reports": "source/reports", "osv-db": "osv-db",
                                     "dockerconfig": "osv-db-credentials"}  # fmt: skip
    assert workspaces_of("build") == {"source": "source/src", "reports": "source/reports",
                                      "dockerconfig": "registry-credentials"}  # fmt: skip
    assert workspaces_of("tag-commit") == {"basic-auth": "gitops-write-credentials"}
    assert workspaces_of("flux-wait") == {"basic-auth": "gitops-read-credentials"}
    assert workspaces_of("summary") == {}
    # The token that may write commit statuses: the status tasks', and nothing else in them.
    assert workspaces_of("statuses-pending") == workspaces_of("statuses") == {"status-token": "status-token"}


def _run_workspaces_and_accounts(spec: dict) -> tuple[dict, dict]:
    accounts = {s["pipelineTaskName"]: s["serviceAccountName"] for s in spec["taskRunSpecs"]}
    return {w["name"]: w for w in spec["workspaces"]}, accounts


def _check_run(spec: dict, expected: dict[str, str] = CORE_ACCOUNTS) -> None:
    assert spec["pipelineRef"] == {"name": "druppie-ci-cd"}
    workspaces, accounts = _run_workspaces_and_accounts(spec)
    assert accounts == expected  # the summary too, which test_least_privilege does not see (finally)
    assert "serviceAccountName" not in spec.get("taskRunTemplate", {})
    assert spec["taskRunTemplate"]["podTemplate"]["securityContext"] == {"fsGroup": 65532}
    assert set(workspaces) == {"source", "app-read-credentials", "gitops-read-credentials", "gitops-write-credentials",
                               "registry-credentials", "status-token"}  # fmt: skip
    assert workspaces["source"]["volumeClaimTemplate"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    secrets = {n: w["secret"]["secretName"] for n, w in workspaces.items() if "secret" in w}
    assert secrets["gitops-read-credentials"] == "druppie-apps-read"
    assert secrets["gitops-write-credentials"] == "druppie-apps-write"
    assert secrets["app-read-credentials"] in ("drone-service-git-read", "$(tt.params.app-name)-git-read")
    assert workspaces["registry-credentials"] == {
        "name": "registry-credentials",
        "secret": {"secretName": "registry-credentials"},
    }
    # Per app, like its read credential; optional, so an app without one still runs (with a warning).
    assert workspaces["status-token"]["secret"]["secretName"] in (
        "drone-service-commit-status", "$(tt.params.app-name)-commit-status")  # fmt: skip
    assert workspaces["status-token"]["secret"]["optional"] is True
    assert accounts["statuses-pending"] == accounts["statuses"] == "druppie-commit-status"


def test_the_sample_run_gives_each_task_its_service_account_and_a_fresh_volume():
    docs = _docs(FOLDER / "samples/ci-cd-drone-service.yaml")
    (run,) = [d for d in docs if d["kind"] == "PipelineRun"]
    # The three git credentials it binds, each a basic-auth Secret shown as a placeholder.
    assert sorted(d["metadata"]["name"] for d in docs if d["kind"] == "Secret") == [
        "drone-service-git-read", "druppie-apps-read", "druppie-apps-write"]  # fmt: skip
    assert run["kind"] == "PipelineRun" and run["metadata"]["generateName"] == "drone-service-ci-cd-"
    _check_run(run["spec"])
    assert {p["name"]: p["value"] for p in run["spec"]["params"]} == {
        "repo-url": "https://github.com/waterschap/drone-service.git",
        "app-name": "drone-service",
    }


def readme_command(path: Path, otap: bool = False) -> str:
    """The README's `tkn pipeline start druppie-ci-cd` (the OTAP one: with acceptatie-mode)."""
    found = [c for block in bash_blocks(path) for c in block if c.startswith("tkn pipeline start druppie-ci-cd")
             and ("acceptatie-mode=" in c) == otap]  # fmt: skip
    assert len(found) <= 1, found
    return found[0] if found else ""


def test_the_readme_command_needs_only_the_repo_the_app_name_and_the_workspaces():
    command = readme_command(FOLDER / "README.md")
    words = command.split()
    assert words[:6] == ["tkn", "pipeline", "start", "druppie-ci-cd", "-n", "ci"] and "--use-param-defaults" in words
    pairs = [(words[i], words[i + 1]) for i in range(len(words) - 1) if words[i].startswith("-")]
    assert dict(v.split("=", 1) for f, v in pairs if f == "--task-serviceaccount") == CORE_ACCOUNTS
    assert [v for f, v in pairs if f == "-p"] == [
        "repo-url=https://github.com/waterschap/drone-service.git",
        "app-name=drone-service",
    ]
    assert [v for f, v in pairs if f == "-w"] == [
        "name=source,volumeClaimTemplateFile=pipelines/druppie-ci-cd/0.1/source-volume.yaml",
        "name=app-read-credentials,secret=drone-service-git-read",
        "name=gitops-read-credentials,secret=druppie-apps-read",
        "name=gitops-write-credentials,secret=druppie-apps-write",
        "name=registry-credentials,secret=registry-credentials",
    ]
    assert [v for f, v in pairs if f == "--pod-template"] == ["pipelines/druppie-ci-cd/0.1/pod-template.yaml"]
    # The files it names exist and are what tkn reads: a PVC and a pod template.
    (pvc,) = _docs(FOLDER / "source-volume.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert yaml.safe_load((FOLDER / "pod-template.yaml").read_text()) == {"securityContext": {"fsGroup": 65532}}


def test_the_readme_command_is_the_one_the_top_readme_shows():
    shown = readme_command(ROOT / "README.md")
    assert shown and shown == readme_command(FOLDER / "README.md")


# --- the trigger ---

EVENTLISTENER = {d["kind"]: d for d in _installed(TRIGGERS / "eventlistener.yaml")}
BINDING = _installed(TRIGGERS / "triggerbinding.yaml")[0]
TEMPLATE = _installed(TRIGGERS / "triggertemplate.yaml")[0]


def interceptors(trigger_name: str = "push") -> dict[str, dict]:
    (trigger,) = [t for t in EVENTLISTENER["EventListener"]["spec"]["triggers"] if t["name"] == trigger_name]
    return {i["name"]: i for i in trigger["interceptors"]}


def interceptor_params(name: str) -> dict:
    return {p["name"]: p["value"] for p in interceptors()[name]["params"]}


def test_the_eventlistener_wires_its_binding_template_and_service_account():
    el = EVENTLISTENER["EventListener"]
    assert el["apiVersion"] == BINDING["apiVersion"] == TEMPLATE["apiVersion"] == "triggers.tekton.dev/v1beta1"
    assert el["metadata"] == {"name": "druppie-ci-cd", "namespace": "ci"}
    assert el["spec"]["serviceAccountName"] == "druppie-triggers"
    push, pull_request, ok_to_test = el["spec"]["triggers"]
    assert push["name"] == "push"
    assert push["bindings"] == [{"ref": BINDING["metadata"]["name"]}]
    assert push["template"] == {"ref": TEMPLATE["metadata"]["name"]}
    assert BINDING["metadata"]["namespace"] == TEMPLATE["metadata"]["namespace"] == "ci"
    # Pull requests and /ok-to-test: druppie-pr-check, each trigger asking the gate its own question.
    for trigger in (pull_request, ok_to_test):
        assert trigger["bindings"] == [{"ref": "druppie-pr-check"}] and trigger["template"] == {
            "ref": "druppie-pr-check"
        }
        (gate,) = trigger["interceptors"]
        assert gate["ref"] == {"name": "druppie-webhook-gate", "kind": "NamespacedInterceptor"}
        assert gate["params"] == [{"name": "trigger", "value": trigger["name"]}]
    assert "params" not in interceptors()["gate"]  # the push trigger: the gate's default question


def test_one_interceptor_decides_the_platforms_webhook_gate():
    assert {n: i["ref"] for n, i in interceptors().items()} == {
        "gate": {"name": "druppie-webhook-gate", "kind": "NamespacedInterceptor"}
    }
    gate = {d["kind"]: d for d in _installed(TRIGGERS / "webhook-gate.yaml")}
    assert gate["Interceptor"]["metadata"] == {"name": "druppie-webhook-gate", "namespace": "ci"}
    # By the Service's short name, resolved in the EventListener's own namespace: one file for any team.
    service = gate["Service"]["metadata"]["name"]
    assert gate["Interceptor"]["spec"]["clientConfig"] == {"url": f"http://{service}:8080/"}
    (container,) = gate["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["druppie-step", "webhook-gate"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["DRUPPIE_CONFIG"] == mounts["config"] + "/repositories.yaml"
    assert env["DRUPPIE_SECRETS"] == mounts["secrets"]


def test_the_gate_has_no_api_token_no_capability_and_only_the_eventlistener_reaches_it():
    gate = {d["kind"]: d for d in _installed(TRIGGERS / "webhook-gate.yaml")}
    assert gate["ServiceAccount"]["automountServiceAccountToken"] is False
    pod = gate["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    policy = gate["NetworkPolicy"]["spec"]
    assert policy["podSelector"] == gate["Deployment"]["spec"]["selector"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["egress"] == []
    listeners = {"key": "eventlistener", "operator": "In", "values": ["druppie-ci-cd", "druppie-prod-deploy"]}
    assert policy["ingress"] == [{"from": [{"podSelector": {"matchExpressions": [listeners]}}],
                                  "ports": [{"port": 8080}]}]  # fmt: skip
    # Exactly the pods of the two EventListeners the trigger folder defines.
    defined = {d["metadata"]["name"] for f in TRIGGERS.glob("*.yaml") for d in yaml.safe_load_all(f.read_text())
               if d and d["kind"] == "EventListener"}  # fmt: skip
    assert defined == set(listeners["values"])


def test_the_shipped_repository_list_is_one_the_gate_accepts(tmp_path):
    from druppie_steps.webhook_gate import load_config

    (config_map,) = _installed(TRIGGERS / "repositories.yaml")
    assert config_map["metadata"] == {"name": "druppie-webhook-gate", "namespace": "ci"}
    path = tmp_path / "repositories.yaml"
    path.write_text(config_map["data"]["repositories.yaml"])
    config = load_config(path)
    assert config.bot == "druppie-ci" and config.refused == {}
    (repo,) = config.repositories.values()
    assert (repo.app, repo.secret, repo.clone_url) == (
        "drone-service", "drone-service", "https://github.com/waterschap/drone-service.git")  # fmt: skip


def test_the_loop_guard_matches_the_trailer_tag_commit_writes():
    source = (ROOT / "steps/druppie_steps/tag_commit.py").read_text()
    assert 'body += f"Tekton-Pipeline-Run: {pipeline_run}\\n"' in source
    from druppie_steps.webhook_gate import TRAILER

    assert TRAILER.search("Deploy\n\nTekton-Pipeline-Run: x-1\n")


def test_the_eventlistener_logs_at_triggers_default_level():
    """At debug, the EventListener logs every delivery's body: committers' e-mail addresses."""
    assert set(EVENTLISTENER) == {"EventListener"}
    assert "resources" not in EVENTLISTENER["EventListener"]["spec"]
    assert "K_LOGGING_CONFIG" not in (TRIGGERS / "eventlistener.yaml").read_text()


def test_the_binding_gives_what_the_template_needs():
    bound = {p["name"]: p["value"] for p in BINDING["spec"]["params"]}
    # Only values the gate checked and configured; no payload field reaches the PipelineRun.
    assert bound == {
        "repo-url": "$(extensions.repo_url)",
        "revision": "$(extensions.revision)",
        "app-name": "$(extensions.app_name)",
        "run-name": "$(extensions.run_name)",
    }
    assert "body." not in yaml.safe_dump(BINDING)
    declared = {p["name"]: p for p in TEMPLATE["spec"]["params"]}
    assert {n for n, p in declared.items() if "default" not in p} == set(bound)
    assert all(p.get("description") for p in declared.values())
    used = set(re.findall(r"\$\(tt\.params\.([\w-]+)\)", yaml.safe_dump(TEMPLATE["spec"]["resourcetemplates"])))
    assert used == set(declared)


def test_a_push_goes_through_otap_by_default_and_prod_only_by_pull_request():
    defaults = {p["name"]: p.get("default") for p in TEMPLATE["spec"]["params"]}
    assert (defaults["environment"], defaults["acceptatie-mode"], defaults["prod-mode"]) == (
        "test", "push", "pull-request")  # fmt: skip


def test_the_template_makes_a_pipelinerun_of_the_pushed_commit_without_a_premade_claim():
    (run,) = TEMPLATE["spec"]["resourcetemplates"]
    assert run["apiVersion"] == "tekton.dev/v1" and run["kind"] == "PipelineRun"
    # Named after app and commit: a replayed delivery is refused as AlreadyExists.
    assert run["metadata"]["name"] == "$(tt.params.run-name)" and "generateName" not in run["metadata"]
    _check_run(run["spec"], ACCOUNTS)
    assert {p["name"]: p["value"] for p in run["spec"]["params"]} == {
        n: f"$(tt.params.{n})"
        for n in (
            "repo-url",
            "revision",
            "app-name",
            "environment",
            "acceptatie-mode",
            "prod-mode",
            "forge",
            "allow-plain-http",
            "image-registry",
            "gitops-repo-url",
            "build-args",
            "offline",
            "tls-verify",
            "osv-db-ref",
        )
    }
    assert "persistentVolumeClaim" not in yaml.safe_dump(run)


def test_the_trigger_service_account_reads_no_secret():
    docs = _installed(TRIGGERS / "rbac.yaml")
    assert [d["kind"] for d in docs] == ["ServiceAccount", "RoleBinding"]
    sa, rolebinding = docs
    assert sa["metadata"] == {"name": "druppie-triggers", "namespace": "ci"}
    subject = [{"kind": "ServiceAccount", "name": "druppie-triggers", "namespace": "ci"}]
    assert rolebinding["metadata"]["namespace"] == "ci" and rolebinding["subjects"] == subject
    assert rolebinding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "tekton-triggers-eventlistener-roles",
    }
    # Not Triggers' tekton-triggers-eventlistener-clusterroles: it reads every Secret of the cluster.
    (clusterrole,) = _docs(ROOT / "install/cluster/triggers.yaml")
    assert clusterrole["rules"] == [{"apiGroups": ["triggers.tekton.dev"],
                                     "resources": ["clustertriggerbindings", "clusterinterceptors"],
                                     "verbs": ["get", "list", "watch"]}]  # fmt: skip
    assert clusterrole["metadata"]["name"] == "druppie-triggers-cluster-read"


def test_the_summary_service_account_may_only_get_and_list_taskruns():
    sa, role, binding = _installed(ROOT / "tasks/druppie-summary/0.1/rbac.yaml")
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
    assert len(files) == 10 and problems == []


def test_the_readme_otap_command_names_every_tasks_account_and_asks_for_otap():
    command = readme_command(ROOT / "README.md", otap=True)
    words = command.split()
    pairs = [(words[i], words[i + 1]) for i in range(len(words) - 1) if words[i].startswith("-")]
    assert dict(v.split("=", 1) for f, v in pairs if f == "--task-serviceaccount") == ACCOUNTS
    params = [v for f, v in pairs if f == "-p"]
    assert {"environment=test", "acceptatie-mode=push", "prod-mode=pull-request"} <= set(params)
    assert "name=status-token,secret=drone-service-commit-status" in [v for f, v in pairs if f == "-w"]
