"""Pull request checks through the loop's Gitea (issue 18), on real Tekton and Triggers.

A pull request from a branch of the app's repository runs druppie-pr-check at once: clone, test and
scan of its head, reported as druppie/test and druppie/scan on that commit; nothing is built or
deployed. A stranger's pull request from a fork starts nothing (webhook-gate says why in its log),
not even after the stranger's own /ok-to-test; a trusted login's /ok-to-test starts it, on
refs/pull/<n>/head. No pod of either run mounts a git, registry or GitOps credential: only the
status tasks get the app's status token."""

from __future__ import annotations

import re
import secrets
import time
import urllib.error
import uuid

import pytest

from localcluster.process import http_request
from testbed.loop import APP, succeeded
from tests.support import github_deliveries as github
from tests.support.e2e import wait_for

pytestmark = pytest.mark.e2e
STRANGER = "mallory-e2e"  # not a collaborator, not in the gate's trusted list
STATUS_TASKS = {"statuses-pending", "statuses"}


def _gate_log(cluster) -> str:
    return cluster.kubectl("logs", "-n", "ci", "deployment/druppie-webhook-gate", "--since=300s").stdout


def _runs_of(cluster, number: int) -> list[str]:
    names = [r["metadata"]["name"] for r in cluster.get_json("pipelineruns", "-n", "ci")["items"]]
    return [n for n in names if n.startswith(f"{APP}-pr{number}-")]


def _mounted_secrets(cluster, run: str) -> dict[str, set[str]]:
    """{pipeline task: the Secrets its pod mounts}."""
    mounted = {}
    for taskrun in cluster.get_json("taskruns", "-n", "ci", "-l", f"tekton.dev/pipelineRun={run}")["items"]:
        pod = cluster.get_json("pod", "-n", "ci", taskrun["status"]["podName"])
        task = taskrun["metadata"]["labels"]["tekton.dev/pipelineTask"]
        mounted[task] = {v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v}
    return mounted


def _assert_checked_without_credentials(loop, cluster, run: str, commit: str) -> None:
    finished = loop.finished(run)
    assert succeeded(finished), loop.failures(run)
    results = {r["name"]: r["value"] for r in finished["status"].get("results", [])}
    assert results["commit"] == commit, results
    mounted = _mounted_secrets(cluster, run)
    assert set(mounted) == {"clone", "test", "scan", *STATUS_TASKS}, mounted  # nothing built or deployed
    assert {t: s for t, s in mounted.items() if t not in STATUS_TASKS} == {"clone": set(), "test": set(),
                                                                           "scan": set()}, mounted  # fmt: skip
    assert all(mounted[t] == {f"{APP}-commit-status"} for t in STATUS_TASKS), mounted
    statuses = loop.commit_statuses(commit)
    assert {c: s for c, (s, _) in statuses.items()} == {"druppie/test": "success", "druppie/scan": "success"}, statuses


def _changed_app(loop, repo: str, greeting: str, branch: str = "main") -> str:
    source = loop.gitea.read_file(repo, "drone_service/app.py", ref=branch)
    return re.sub(r'^GREETING = ".*"$', f'GREETING = "{greeting}"', source, count=1, flags=re.M)


def _close(loop, number: int) -> None:
    loop.gitea.api("PATCH", f"/repos/{loop.gitea.admin}/{APP}/pulls/{number}", {"state": "closed"})


def test_a_pull_request_from_a_branch_is_tested_and_scanned_at_once_without_credentials(loop, cluster):
    gitea, owner = loop.gitea, loop.gitea.admin
    apps_before = gitea.head("druppie-apps")
    branch = f"feature-{uuid.uuid4().hex[:6]}"
    gitea.api("POST", f"/repos/{owner}/{APP}/branches", {"new_branch_name": branch, "old_branch_name": "main"})
    commit = gitea.commit_file(APP, "drone_service/app.py", _changed_app(loop, APP, "Voorstel van een collega"),
                               "A colleague's proposal", branch=branch)  # fmt: skip
    pull = gitea.api("POST", f"/repos/{owner}/{APP}/pulls", {"head": branch, "base": "main", "title": "Proposal"})
    try:
        run = f"{APP}-pr{pull['number']}-{commit[:12]}"
        wait_for(f"PipelineRun {run}", lambda: run in _runs_of(cluster, pull["number"]), 60)
        _assert_checked_without_credentials(loop, cluster, run, commit)
        assert gitea.head("druppie-apps") == apps_before  # nothing deployed
    finally:
        _close(loop, pull["number"])


def _strangers_pull_request(loop, greeting: str) -> tuple[int, str]:
    """A pull request from the stranger's fork (made once), with a new commit: (its number, that commit)."""
    gitea, owner = loop.gitea, loop.gitea.admin
    if not any(u["login"] == STRANGER for u in gitea.api("GET", "/admin/users?limit=50")):
        gitea.create_user(STRANGER, uuid.uuid4().hex)
        gitea.api("POST", f"/repos/{owner}/{APP}/forks", {}, token=gitea.token_for(STRANGER))
    fork = f"{STRANGER}/{APP}"
    commit = gitea.commit_file(fork, "drone_service/app.py", _changed_app(loop, fork, greeting),
                               "A stranger's proposal", user=STRANGER)  # fmt: skip
    pull = gitea.api("POST", f"/repos/{owner}/{APP}/pulls",
                     {"head": f"{STRANGER}:main", "base": "main", "title": "From outside"},
                     token=gitea.token_for(STRANGER))  # fmt: skip
    return pull["number"], commit


def test_a_strangers_fork_waits_for_a_trusted_ok_to_test_and_then_runs_without_credentials(loop, cluster):
    gitea, owner = loop.gitea, loop.gitea.admin
    number, commit = _strangers_pull_request(loop, "Voorstel van buiten")
    gated = f"repository {owner}/{APP}: pull request #{number}"
    try:
        wait_for("the gate's refusal", lambda: f"{gated} comes from a fork of a login not in the trusted list"
                 in _gate_log(cluster), 60)  # fmt: skip
        comments = f"/repos/{owner}/{APP}/issues/{number}/comments"
        gitea.api("POST", comments, {"body": "/ok-to-test"}, token=gitea.token_for(STRANGER))  # not trusted
        wait_for("the gate's refusal of the stranger's /ok-to-test",
                 lambda: f"a comment on #{number}: /ok-to-test by a login not in the trusted list"
                 in _gate_log(cluster), 60)  # fmt: skip
        time.sleep(3)  # a run, had one been started, would exist by now
        assert _runs_of(cluster, number) == []

        ok = gitea.api("POST", comments, {"body": "Read it: no secrets touched.\n/ok-to-test"})  # the admin: trusted
        run = f"{APP}-pr{number}-ok{ok['id']}"
        wait_for(f"PipelineRun {run}", lambda: _runs_of(cluster, number) == [run], 60)
        _assert_checked_without_credentials(loop, cluster, run, commit)
    finally:
        _close(loop, number)


def _send_as_github(loop, cluster, event: str, payload: dict) -> int:
    """POST a delivery in GitHub's shape and headers to the app's EventListener, signed with its secret."""
    ip = cluster.get_json("service", "-n", "ci", "el-druppie-ci-cd")["spec"]["clusterIP"]
    body = github.encode(payload)
    try:
        with http_request(f"http://{ip}:8080", "POST", body,
                          github.headers(event, body, loop.webhook_secret.encode())) as response:  # fmt: skip
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_githubs_pull_request_and_ok_to_test_deliveries_start_the_same_checks(loop, cluster):
    """GitHub cannot be reached from here: deliveries in GitHub's shapes and headers
    (tests/support/github_deliveries.py), naming this Gitea's app, go to the real EventListener. A
    pull request from a branch of the repository runs at once, at its head; a trusted login's
    /ok-to-test on a stranger's pull request starts its checks on refs/pull/<n>/head."""
    gitea, owner = loop.gitea, loop.gitea.admin
    base = github.repository(f"{owner}/{APP}", gitea.clone_url(APP))
    # A branch with a commit and no pull request in Gitea: only the GitHub-shaped delivery tells of one.
    branch = f"gh-{uuid.uuid4().hex[:6]}"
    gitea.api("POST", f"/repos/{owner}/{APP}/branches", {"new_branch_name": branch, "old_branch_name": "main"})
    commit = gitea.commit_file(APP, "drone_service/app.py", _changed_app(loop, APP, "Voorstel via GitHub"),
                               "A proposal, told in GitHub's words", branch=branch)  # fmt: skip
    number = 90000 + secrets.randbelow(9999)  # above Gitea's own numbers
    opened = github.pull_request(number, "opened", "carla", base, base, branch, commit)
    assert _send_as_github(loop, cluster, "pull_request", opened) == 202
    run = f"{APP}-pr{number}-{commit[:12]}"
    wait_for(f"PipelineRun {run}", lambda: run in _runs_of(cluster, number), 60)
    _assert_checked_without_credentials(loop, cluster, run, commit)

    # A stranger's pull request (Gitea's own delivery of it starts nothing), then /ok-to-test in GitHub's words.
    stranger, stranger_commit = _strangers_pull_request(loop, "Voorstel van buiten, via GitHub")
    try:
        comment_id = 10**8 + secrets.randbelow(9 * 10**8)
        ok = github.issue_comment(stranger, comment_id, owner, "Read it.\r\n/ok-to-test\r\n", base)
        assert _send_as_github(loop, cluster, "issue_comment", ok) == 202
        checked = f"{APP}-pr{stranger}-ok{comment_id}"
        wait_for(f"PipelineRun {checked}", lambda: _runs_of(cluster, stranger) == [checked], 60)
        revision = cluster.get_json("pipelinerun", "-n", "ci", checked)["spec"]["params"]
        assert {"name": "revision", "value": f"refs/pull/{stranger}/head"} in revision, revision
        _assert_checked_without_credentials(loop, cluster, checked, stranger_commit)
    finally:
        _close(loop, stranger)
