"""druppie-step summary: the table, the verdict and the failure reasons, from fake TaskRuns (no cluster)."""

from __future__ import annotations

import re

import pytest

from druppie_steps import summary as s
from druppie_steps.cli import main
from druppie_steps.core.errors import InvalidInputError

PR, NS = "drone-service-ci-cd-x7k2q", "ci"
SHA = "4f0c2a9e1b7d3c5a8f6e2d4b0a9c8e7f6d5c4b3a"
APPS_SHA = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b"
DIGEST = "sha256:" + "ab12" * 16
IMAGE = "registry.example/druppie/drone-service:1.0.1767225600"
ALL = ("clone", "test", "scan", "build", "tag-commit", "flux-wait")
TASKS = {
    "clone": "druppie-git-clone",
    "test": "druppie-test",
    "scan": "druppie-scan",
    "build": "druppie-build",
    "tag-commit": "druppie-tag-commit",
    "flux-wait": "druppie-flux-reconcile-wait",
}


def taskrun(
    task: str,
    reason: str = "Succeeded",
    results: dict | None = None,
    seconds: int = 10,
    message: str = "All Steps have completed executing",
    created: str = "2026-01-01T10:00:00Z",
    name: str | None = None,
) -> dict:
    """A TaskRun as the API returns it (tekton.dev/v1), trimmed to what the summary reads."""
    status = "True" if reason == "Succeeded" else "False"
    return {
        "metadata": {
            "name": name or f"{PR}-{task}",
            "creationTimestamp": created,
            "labels": {
                "tekton.dev/pipelineRun": PR,
                "tekton.dev/pipelineTask": task,
                "tekton.dev/task": TASKS.get(task, task),
            },
        },
        "status": {
            "startTime": "2026-01-01T10:00:00Z",
            "completionTime": f"2026-01-01T10:{seconds // 60:02d}:{seconds % 60:02d}Z",
            "conditions": [{"type": "Succeeded", "status": status, "reason": reason, "message": message}],
            "results": [{"name": k, "type": "string", "value": v} for k, v in (results or {}).items()],
        },
    }


CLONE = taskrun(
    "clone",
    results={"commit": SHA, "url": "https://github.com/waterschap/drone-service.git", "committer-date": "1767225600"},
    seconds=3,
)
TEST_OK = taskrun(
    "test",
    results={"passed": "11", "failed": "0", "skipped": "0", "report": ".druppie/junit.xml", "coverage": ""},
    seconds=41,
)
SCAN_OK = taskrun(
    "scan",
    results={"critical": "0", "high": "0", "medium": "1", "low": "0", "info": "0", "report": ".druppie/scan.sarif"},
    seconds=18,
)
BUILD = taskrun(
    "build",
    results={
        "IMAGE_URL": IMAGE,
        "IMAGE_DIGEST": DIGEST,
        "IMAGE_TAGS": "1.0.1767225600,4f0c2a9",
        "sbom": ".druppie/sbom.cdx.json",
    },
    seconds=125,
)
TAG = taskrun(
    "tag-commit",
    results={"commit": APPS_SHA, "revision": f"main@sha1:{APPS_SHA}", "changed": "true", "previous-tag": "1.0.4"},
    seconds=4,
)
WAIT = taskrun(
    "flux-wait",
    results={
        "applied-revision": f"main@sha1:{APPS_SHA}",
        "duration-seconds": "21.3",
        "reason": "ReconciliationSucceeded",
    },
    seconds=22,
)


def statuses(**given: str) -> list[tuple[str, str, str]]:
    """Every task Succeeded unless given; a value is 'Status' or 'Status Reason'."""
    out = []
    for task in ALL:
        words = given.get(task.replace("-", "_"), "Succeeded Succeeded").split()
        out.append((task, words[0], words[1] if len(words) > 1 else ""))
    return out


def test_parse_statuses_as_tekton_substitutes_them():
    text = "clone Succeeded Succeeded\ntest Failed Failed\n\nscan Succeeded Succeeded\nbuild None \n"
    assert s.parse_statuses(text) == [
        ("clone", "Succeeded", "Succeeded"),
        ("test", "Failed", "Failed"),
        ("scan", "Succeeded", "Succeeded"),
        ("build", "None", ""),
    ]


@pytest.mark.parametrize("text", ["", "clone", "clone Done", "clone $(tasks.clone.status)", "a Failed b c"])
def test_parse_statuses_refuses_what_tekton_never_writes(text):
    with pytest.raises(InvalidInputError, match="--tasks"):
        s.parse_statuses(text)


def test_a_successful_run_names_image_digest_gitops_commit_and_applied_revision():
    text, results = s.summarise(statuses(), [CLONE, TEST_OK, SCAN_OK, BUILD, TAG, WAIT], NS)
    assert results == {
        "status": "Succeeded",
        "failed-task": "",
        "failed-reason": "",
        "summary": f"Succeeded: built {IMAGE}@{DIGEST}, GitOps commit {APPS_SHA[:12]}, "
        f"Flux applied main@sha1:{APPS_SHA[:12]}",
    }
    lines = text.splitlines()
    assert lines[0].split() == ["task", "status", "duration", "key", "results"]
    assert lines[1].split() == [
        "clone",
        "Succeeded",
        "3s",
        f"commit={SHA[:12]}",
        "url=https://github.com/waterschap/drone-service.git",
    ]
    assert lines[2].split() == [
        "test",
        "Succeeded",
        "41s",
        "passed=11",
        "failed=0",
        "skipped=0",
    ]  # empty coverage left out
    assert lines[3].split() == ["scan", "Succeeded", "18s", "critical=0", "high=0", "medium=1", "low=0"]
    assert lines[4].split() == ["build", "Succeeded", "2m05s", f"IMAGE_URL={IMAGE}", f"IMAGE_DIGEST={DIGEST[:19]}"]
    assert lines[5].split() == [
        "tag-commit",
        "Succeeded",
        "4s",
        f"commit={APPS_SHA[:12]}",
        "changed=true",
        "previous-tag=1.0.4",
    ]
    assert lines[6].split() == [
        "flux-wait",
        "Succeeded",
        "22s",
        f"applied-revision=main@sha1:{APPS_SHA[:12]}",
        "reason=ReconciliationSucceeded",
    ]
    assert lines[7] == "" and lines[8] == results["summary"] and len(lines) == 9
    # The columns line up.
    assert len({line.index(" Succeeded") for line in lines[1:7] if "Succeeded" in line}) == 1


def test_a_failed_test_names_the_task_its_reason_its_counts_and_the_log_command():
    test = taskrun(
        "test",
        "Failed",
        {"passed": "11", "failed": "1", "skipped": "0", "report": "r", "coverage": ""},
        message='"step-test" exited with code 1',
        seconds=39,
    )
    given = statuses(test="Failed Failed", build="None", tag_commit="None", flux_wait="None")
    text, results = s.summarise(given, [CLONE, test, SCAN_OK], NS)
    why = f'Failed: "step-test" exited with code 1 (passed=11 failed=1 skipped=0) log: tkn taskrun logs {PR}-test -n ci'
    assert results == {
        "status": "Failed",
        "failed-task": "test",
        "failed-reason": f"test: {why}",
        "summary": "Failed at test (Failed); not run: build, tag-commit, flux-wait",
    }
    rows = {line.split()[0]: line for line in text.splitlines()[1:7]}
    assert rows["test"].split()[:3] == ["test", "Failed", "39s"]
    assert rows["build"].split() == ["build", "not", "run", "-", "-"]
    assert text.splitlines()[-1] == f"test failed: {why}"


def test_test_and_scan_failing_together_are_both_named():
    test = taskrun(
        "test", "Failed", {"passed": "3", "failed": "2", "skipped": "0"}, message='"step-test" exited with code 1'
    )
    scan = taskrun(
        "scan",
        "Failed",
        {"critical": "0", "high": "2", "medium": "0", "low": "0"},
        message='"step-scan" exited with code 1',
    )
    given = statuses(test="Failed Failed", scan="Failed Failed", build="None", tag_commit="None", flux_wait="None")
    _, results = s.summarise(given, [CLONE, test, scan], NS)
    assert results["failed-task"] == "test,scan"
    assert "test: Failed" in results["failed-reason"] and "; scan: Failed" in results["failed-reason"]
    assert "(critical=0 high=2 medium=0 low=0)" in results["failed-reason"]
    assert results["summary"].startswith("Failed at test (Failed), scan (Failed); not run: build")


def test_a_timeout_shows_tektons_reason_in_the_status_column():
    wait = taskrun(
        "flux-wait", "TaskRunTimeout", message=f'TaskRun "{PR}-flux-wait" failed to finish within "5m0s"', seconds=300
    )
    given = statuses(flux_wait="Failed TaskRunTimeout")
    text, results = s.summarise(given, [CLONE, TEST_OK, SCAN_OK, BUILD, TAG, wait], NS)
    assert "flux-wait   Failed (TaskRunTimeout)  5m00s" in text
    assert results["failed-reason"].startswith(f'flux-wait: TaskRunTimeout: TaskRun "{PR}-flux-wait" failed to finish')
    # What did happen is still said: the image was built and the tag committed.
    assert results["summary"] == (
        f"Failed at flux-wait (TaskRunTimeout); built {IMAGE}@{DIGEST}, GitOps commit {APPS_SHA[:12]}"
    )


def test_a_build_on_a_node_without_the_seccomp_profile_names_the_fix():
    """The TaskRun's message as Tekton v1.15 writes it from containerd's refusal (the e2e test of a node
    without the profile checks that the real message matches the same pattern)."""
    profile = "/var/lib/kubelet/seccomp/druppie-build.json"
    message = (
        f'the step "build" in TaskRun "{PR}-build" failed to start. The pod errored with the message: '
        f'"failed to create containerd container: cannot load seccomp profile \\"{profile}\\": '
        f'open {profile}: no such file or directory."'
    )
    build = taskrun("build", "PodCreationFailed", message=message)
    given = statuses(build="Failed PodCreationFailed", tag_commit="None", flux_wait="None")
    _, results = s.summarise(given, [CLONE, TEST_OK, SCAN_OK, build], NS)
    assert results["failed-reason"].startswith(
        "build: the node has no seccomp profile druppie-build.json: the platform team installs it on every node "
        "with `kubectl apply -k install/seccomp`"
    ), results["failed-reason"]
    assert "PodCreationFailed: the step" in results["failed-reason"], "Tekton's own words stay"
    other = taskrun("build", "PodCreationFailed", message=message.replace("no such file", "permission denied"))
    _, results = s.summarise(given, [CLONE, TEST_OK, SCAN_OK, other], NS)
    assert "install/seccomp" not in results["failed-reason"]


def test_the_scans_active_suppressions_are_listed_in_the_log_and_the_summary():
    """What the app excepted from its own scan is part of what happened, succeeded or not."""
    excepted = (
        "B602 tools/*.py until 2026-12-31 (2 findings); CVE-2024-35195 requirements.txt until 2027-01-15 (0 findings)"
    )
    scan = taskrun(
        "scan",
        results={
            "critical": "0",
            "high": "0",
            "medium": "1",
            "low": "0",
            "info": "0",
            "report": ".druppie/scan.sarif",
            "suppressed": "2",
            "suppressions": excepted,
        },
    )
    text, results = s.summarise(statuses(), [CLONE, TEST_OK, scan, BUILD, TAG, WAIT], NS)
    lines = text.splitlines()
    assert lines[3].split()[3:] == ["critical=0", "high=0", "medium=1", "low=0", "suppressed=2"]
    assert lines[7:] == ["", f"scan suppressions: {excepted}", results["summary"]]
    assert results["summary"].endswith(f"Flux applied main@sha1:{APPS_SHA[:12]}; scan suppressions: {excepted}")

    failed = taskrun("build", "Failed", message='"step-build" exited with code 1')
    given = statuses(build="Failed Failed", tag_commit="None", flux_wait="None")
    _, results = s.summarise(given, [CLONE, TEST_OK, scan, failed], NS)
    assert results["summary"] == (
        f"Failed at build (Failed); not run: tag-commit, flux-wait; scan suppressions: {excepted}"
    )
    # A scan with none says nothing about them.
    _, results = s.summarise(statuses(), [CLONE, TEST_OK, SCAN_OK, BUILD, TAG, WAIT], NS)
    assert "suppressions" not in results["summary"]


def test_a_scan_that_did_not_check_advisories_says_so_in_the_log_and_the_summary():
    """deps-advisories: skip is a choice the run's summary shows, as an exception is."""
    skipped = "skipped: opted out with --deps-advisories skip"
    scan = taskrun("scan", results={"critical": "0", "high": "0", "medium": "0", "low": "0", "advisories": skipped})
    text, results = s.summarise(statuses(), [CLONE, TEST_OK, scan, BUILD, TAG, WAIT], NS)
    assert f"scan advisories: {skipped}" in text.splitlines()
    assert results["summary"].endswith(f"; scan advisories: {skipped}")
    checked = "checked: registry.example/druppie/osv-db@sha256:ab (updated 2026-11-26T06:17Z)"
    scan = taskrun("scan", results={"critical": "0", "high": "0", "medium": "0", "low": "0", "advisories": checked})
    text, results = s.summarise(statuses(), [CLONE, TEST_OK, scan, BUILD, TAG, WAIT], NS)
    assert "advisories" not in text and "advisories" not in results["summary"]


def test_a_tag_that_was_already_there_or_newer_says_nothing_was_deployed():
    tag = taskrun(
        "tag-commit",
        results={"commit": APPS_SHA, "revision": f"main@sha1:{APPS_SHA}", "changed": "false", "previous-tag": "1.2.0"},
    )
    _, results = s.summarise(statuses(), [CLONE, TEST_OK, SCAN_OK, BUILD, tag, WAIT], NS)
    assert f"GitOps commit {APPS_SHA[:12]} unchanged (already at 1.2.0; nothing deployed)" in results["summary"]


def test_a_build_that_was_not_deployed_says_so_in_words_whatever_the_status():
    reason = "not deployed: envs/prod/drone-service already has 1.1.9, newer than 1.1.8"
    tag = taskrun(
        "tag-commit",
        results={"commit": APPS_SHA, "revision": f"main@sha1:{APPS_SHA}", "changed": "false", "deployed": "false",
                 "reason": reason, "previous-tag": "1.1.9"},
    )  # fmt: skip
    _, results = s.summarise(statuses(), [CLONE, TEST_OK, SCAN_OK, BUILD, tag, WAIT], NS)
    assert reason in results["summary"] and "GitOps commit" not in results["summary"]
    failed = taskrun("tag-commit", "Failed", message='"step-tag-commit" exited with code 1',
                     results={"deployed": "false", "reason": reason})  # fmt: skip
    _, results = s.summarise(statuses(tag_commit="Failed Failed", flux_wait="None"),
                             [CLONE, TEST_OK, SCAN_OK, BUILD, failed], NS)  # fmt: skip
    assert reason in results["summary"] and results["status"] == "Failed"


def test_the_newest_taskrun_of_a_retried_task_counts():
    first = taskrun("test", "Failed", {"failed": "1"}, created="2026-01-01T10:00:00Z", name=f"{PR}-test")
    retry = taskrun(
        "test", results={"passed": "12", "failed": "0"}, created="2026-01-01T10:01:00Z", name=f"{PR}-test-retry1"
    )
    assert s.latest_per_task([retry, first])["test"] is retry
    assert s.latest_per_task([first, retry])["test"] is retry


def test_without_taskruns_the_statuses_alone_give_the_verdict():
    """The API unreachable or forbidden: no durations or results, but the same status and failed task."""
    given = statuses(scan="Failed Failed", build="None", tag_commit="None", flux_wait="None")
    text, results = s.summarise(given, [], NS)
    assert results["status"] == "Failed" and results["failed-task"] == "scan"
    assert results["failed-reason"] == "scan: Failed (no TaskRun was created)"
    assert text.splitlines()[1].split() == ["clone", "Succeeded", "-", "-"]


def test_a_failure_without_a_taskrun_keeps_tektons_reason():
    given = statuses(
        clone="Failed CouldntGetTask", test="None", scan="None", build="None", tag_commit="None", flux_wait="None"
    )
    _, results = s.summarise(given, [], NS)
    assert results["failed-reason"] == "clone: CouldntGetTask (no TaskRun was created)"


def test_a_task_not_run_is_not_success():
    """Succeeded only when every task succeeded (a skipped one means an earlier failure)."""
    assert s.overall_status(s.build_rows(statuses(flux_wait="None"), [])) == "Failed"
    assert s.overall_status(s.build_rows(statuses(), [])) == "Succeeded"


def test_a_task_of_another_catalog_shows_its_first_three_results():
    lint = taskrun("lint", results={"warnings": "4", "errors": "0", "files": "31", "report": "lint.json"})
    text, _ = s.summarise([("lint", "Succeeded", "Succeeded")], [lint], NS)
    assert text.splitlines()[1].split()[3:] == ["errors=0", "files=31", "report=lint.json"]


@pytest.mark.parametrize(
    "seconds,shown", [(0, "0s"), (59.4, "59s"), (60, "1m00s"), (125, "2m05s"), (3599, "59m59s"), (3720, "1h02m")]
)
def test_durations_are_short(seconds, shown):
    assert s.format_duration(seconds) == shown


def test_long_messages_become_one_short_line():
    long = "first line\n" + "x" * 1000
    row = s.build_rows([("test", "Failed", "Failed")], [taskrun("test", "Failed", message=long)])[0]
    assert "\n" not in row.message and len(row.message) == s.MAX_MESSAGE and row.message.endswith("...")


def test_the_command_writes_results_and_the_table(monkeypatch, tmp_path, capsys):
    calls = []

    def fake_fetch(namespace, pipeline_run, kubeconfig, timeout_seconds):
        calls.append((namespace, pipeline_run, kubeconfig, timeout_seconds))
        return [CLONE, TEST_OK, SCAN_OK, BUILD, TAG, WAIT]

    monkeypatch.setattr(s, "fetch_taskruns", fake_fetch)
    monkeypatch.setenv("DRUPPIE_PIPELINE_RUN", PR)
    monkeypatch.setenv("DRUPPIE_NAMESPACE", NS)
    monkeypatch.setenv("DRUPPIE_TASKS", "\n".join(f"{t} Succeeded Succeeded" for t in ALL) + "\n")
    assert main(["summary", "--results-dir", str(tmp_path)]) == 0
    assert calls == [(NS, PR, None, 60.0)]  # --timeout 1m bounds the API call
    monkeypatch.setenv("DRUPPIE_TIMEOUT", "1.5s")
    assert main(["summary", "--results-dir", str(tmp_path)]) == 0
    assert calls[-1] == (NS, PR, None, 1.5)
    written = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert written["status"] == "Succeeded" and written["failed-task"] == "" and written["failed-reason"] == ""
    assert written["summary"].startswith(f"Succeeded: built {IMAGE}@{DIGEST}")
    assert capsys.readouterr().out.startswith("task ")


def test_the_command_still_summarises_when_the_api_refuses(monkeypatch, tmp_path, capsys):
    class ForbiddenError(Exception):
        status, reason = 403, "ForbiddenError"

    def refused(*_):
        raise ForbiddenError("taskruns.tekton.dev is forbidden: User system:serviceaccount:ci:default cannot list")

    monkeypatch.setattr(s, "fetch_taskruns", refused)
    code = main(
        [
            "summary",
            "--results-dir",
            str(tmp_path),
            "--pipeline-run",
            PR,
            "--namespace",
            NS,
            "--tasks",
            "clone Succeeded Succeeded\ntest Failed Failed\nbuild None",
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert f"warning: cannot list the TaskRuns of {PR} in ci (HTTP 403 ForbiddenError)" in err
    assert (tmp_path / "status").read_text() == "Failed"
    assert (tmp_path / "failed-task").read_text() == "test"


def test_bad_statuses_are_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(s, "fetch_taskruns", lambda *_: pytest.fail("the API is not asked"))
    assert main(["summary", "--pipeline-run", PR, "--namespace", NS, "--tasks", "clone"]) == 2
    assert "invalid --tasks line 1 'clone'" in capsys.readouterr().err


def test_fetch_lists_the_pipelineruns_taskruns_by_label(monkeypatch):
    """The one API call: list tekton.dev/v1 taskruns in the namespace, selected by Tekton's label."""
    from kubernetes import client

    seen = {}

    class FakeCustomObjectsApi:
        def __init__(self, api):
            seen["api"] = api

        def list_namespaced_custom_object(self, group, version, namespace, plural, label_selector, _request_timeout):
            seen["call"] = (group, version, namespace, plural, label_selector, _request_timeout)
            return {"items": [CLONE]}

    monkeypatch.setattr(client, "CustomObjectsApi", FakeCustomObjectsApi)
    monkeypatch.setattr("druppie_steps.core.kube.api_client", lambda kubeconfig: f"client:{kubeconfig}")
    assert s.fetch_taskruns(NS, PR, "/k", 7.0) == [CLONE]
    selector = f"tekton.dev/pipelineRun={PR}"
    assert seen == {"api": "client:/k", "call": ("tekton.dev", "v1", NS, "taskruns", selector, 7.0)}


# ---- OTAP: tasks that the run's modes may skip (druppie-ci-cd's acceptatie-mode and prod-mode) ----
OTAP = ("acceptatie-gate", "acceptatie-promote", "acceptatie-wait", "prod-gate", "prod-promote")


def otap_statuses(**given: str) -> list[tuple[str, str, str]]:
    out = statuses(**{k: v for k, v in given.items() if k.replace("_", "-") in ALL})
    for task in OTAP:
        words = given.get(task.replace("-", "_"), "None").split()
        out.append((task, words[0], words[1] if len(words) > 1 else ""))
    return out


def test_tasks_the_modes_skipped_are_skipped_not_failed_when_nothing_failed():
    text, results = s.summarise(otap_statuses(), [CLONE, TEST_OK, SCAN_OK, BUILD, TAG, WAIT], NS, frozenset(OTAP))
    assert results["status"] == "Succeeded" and results["failed-task"] == ""
    assert "not run" not in results["summary"]
    assert all(re.search(rf"^{task}\s+skipped\s", text, re.M) for task in OTAP), text


def test_without_optional_tasks_the_same_statuses_are_a_failure():
    _, results = s.summarise(otap_statuses(), [CLONE, TEST_OK, SCAN_OK, BUILD, TAG, WAIT], NS)
    assert results["status"] == "Failed" and "not run: acceptatie-gate" in results["summary"]


def test_after_a_failure_optional_tasks_left_out_are_not_run_not_skipped():
    failed = taskrun("flux-wait", "Failed", message="Kustomization drone-service-test is not Ready")
    given = otap_statuses(flux_wait="Failed Failed")
    text, results = s.summarise(given, [CLONE, TEST_OK, SCAN_OK, BUILD, TAG, failed], NS, frozenset(OTAP))
    assert results["status"] == "Failed" and results["failed-task"] == "flux-wait"
    assert "not run: acceptatie-gate, acceptatie-promote" in results["summary"]
    assert not re.search(r"^acceptatie-gate\s+skipped", text, re.M)


def test_a_promotion_by_pull_request_is_named_in_the_summary():
    url = "http://gitea.local/druppie-admin/druppie-apps/pulls/7"
    gate = taskrun("acceptatie-gate", results={"digest": DIGEST})
    pushed = taskrun("acceptatie-promote", results={"commit": APPS_SHA, "deployed": "true", "changed": "true"})
    proposed = taskrun("prod-promote", results={"pull-request-url": url, "deployed": "false"})
    refs = {"druppie-promotion-gate": [gate], "druppie-tag-commit": [pushed, proposed]}
    for ref, runs in refs.items():
        for run in runs:
            run["metadata"]["labels"]["tekton.dev/task"] = ref
    given = otap_statuses(**{t.replace("-", "_"): "Succeeded Succeeded" for t in OTAP})
    runs = [CLONE, TEST_OK, SCAN_OK, BUILD, TAG, WAIT, gate, pushed, proposed]
    _, results = s.summarise(given, runs, NS, frozenset(OTAP))
    assert results["status"] == "Succeeded"
    assert f"prod-promote: pull request {url}" in results["summary"], results["summary"]
    assert f"acceptatie-promote: pushed at {APPS_SHA[:12]}" in results["summary"], results["summary"]


def test_an_optional_task_that_is_not_among_the_tasks_is_refused_in_one_line(run_step):
    args = ["--pipeline-run", PR, "--namespace", NS, "--tasks", "clone Succeeded", "--optional-tasks", "prod-gate"]
    out = run_step("summary", *args)
    assert out.returncode == 2 and out.results == {}, out.output
    last = out.stderr.strip().splitlines()[-1]
    assert last.endswith("invalid --optional-tasks 'prod-gate': not among the --tasks lines"), out.stderr
