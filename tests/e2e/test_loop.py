"""The whole loop on the local cluster: a push to the app's repository in Gitea starts druppie-ci-cd
through Gitea's webhook and the EventListener, and ends with Flux running the new image, serving
the changed response. Set up by testbed.loop exactly as `make demo` does (its docstring lists
what differs from a real install).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from localcluster.process import http_request
from localcluster.toolchain import ROOT
from testbed.loop import APP, BASE_REPO, BOT, Loop
from testbed.readme import block_with

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def loop(cluster):
    if not cluster.with_loop:  # .ci/run says so up front, in one line
        from localcluster.cluster import missing

        pytest.skip(
            f"the loop's parts are not in the cache (make cluster-build); missing: {', '.join(missing('loop'))}"
        )
    lp = Loop(cluster, say=lambda m: print(f"[loop] {m}", flush=True))
    if not lp.installed:
        # Another module's tekton fixture may have left a namespace ci behind: start clean.
        cluster.kubectl("delete", "namespace", "ci", "--ignore-not-found", "--wait=true", "--timeout=120s")
        lp.install()
    return lp


def results(run: dict) -> dict[str, str]:
    return {r["name"]: r["value"] for r in run["status"].get("results", [])}


def taskrun_reasons(cluster, pipelinerun: str) -> dict[str, str]:
    items = cluster.get_json("taskruns", "-n", "ci", "-l", f"tekton.dev/pipelineRun={pipelinerun}")["items"]
    return {t["metadata"]["labels"]["tekton.dev/pipelineTask"]: t["status"]["conditions"][0]["reason"] for t in items}


def test_a_push_to_gitea_runs_the_loop_and_the_new_pods_serve_the_change(loop, cluster):
    greeting = "Drones inspecteren de dijken (e2e)"
    commit = loop.push_change(greeting)
    name = loop.pipelinerun_for(commit)
    run = loop.finished(name)
    out = results(run)
    assert run["status"]["conditions"][0]["reason"] == "Succeeded", (out, taskrun_reasons(cluster, name))

    assert out["CHAINS-GIT_COMMIT"] == commit
    assert out["CHAINS-GIT_URL"] == loop.gitea.clone_url(APP)
    served = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{out['IMAGE_URL']}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out["IMAGE_DIGEST"] == served and out["IMAGE_URL"].startswith(loop.image + ":1.0.")
    gitops_head = loop.gitea.head("druppie-apps")
    assert out["GITOPS_COMMIT"] == gitops_head
    assert out["APPLIED_REVISION"] == f"main@sha1:{gitops_head}"
    assert out["status"] == "Succeeded" and out["failed-task"] == ""
    # tag-commit's commit is the bot's, with the trailer the EventListener's loop guard looks for.
    message = loop.gitea.api("GET", f"/repos/druppie-admin/druppie-apps/git/commits/{gitops_head}")["commit"]["message"]
    assert f"Tekton-Pipeline-Run: {name}" in message

    loop.wait("the new pods to serve the change", lambda: loop.service_says() == greeting, 180)
    assert loop.deployed_image() == f"{out['IMAGE_URL']}@{out['IMAGE_DIGEST']}"


def _deliver(loop, cluster, body: dict, signature: str | None, event: str = "push") -> int:
    ip = cluster.get_json("service", "-n", "ci", "el-druppie-ci-cd")["spec"]["clusterIP"]
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event, "X-Gitea-Event": event}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    try:
        with http_request(f"http://{ip}:8080", "POST", data, headers) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def _sign(loop, body: dict) -> str:
    return "sha256=" + hmac.new(loop.webhook_secret.encode(), json.dumps(body).encode(), hashlib.sha256).hexdigest()


def _body(
    loop, after: str, ref: str = "refs/heads/main", sender: str = "druppie-admin", message: str = "a change"
) -> dict:
    return {
        "ref": ref,
        "after": after,
        "repository": {"name": APP, "clone_url": loop.gitea.clone_url(APP)},
        "sender": {"login": sender},
        "pusher": {"login": sender},
        "head_commit": {"message": message},
    }


@pytest.mark.parametrize("case", ["unsigned", "wrongly-signed", "other-branch", "tag-commit-made", "other-event"])
def test_deliveries_that_must_not_start_a_run_start_none(loop, cluster, case):
    after = hashlib.sha1(case.encode(), usedforsecurity=False).hexdigest()  # a made-up commit id
    body = _body(loop, after)
    signature = _sign(loop, body)
    event = "push"
    if case == "unsigned":
        signature = None
    elif case == "wrongly-signed":
        signature = "sha256=" + hmac.new(b"not-the-secret", json.dumps(body).encode(), hashlib.sha256).hexdigest()
    elif case == "other-branch":
        body = _body(loop, after, ref="refs/heads/feature")
        signature = _sign(loop, body)
    elif case == "tag-commit-made":
        body = _body(loop, after, sender=BOT, message=f"{APP}: deploy 1.0.9\n\nTekton-Pipeline-Run: x-ci-cd-abc")
        signature = _sign(loop, body)
    else:
        event = "issues"
    assert _deliver(loop, cluster, body, signature, event) == 202
    time.sleep(8)
    runs = cluster.get_json("pipelineruns", "-n", "ci")["items"]
    assert not [r for r in runs if any(p["value"] == after for p in r["spec"].get("params", []))]
    logs = cluster.kubectl("logs", "-n", "ci", "deployment/el-druppie-ci-cd", "--since=60s").stdout
    # The reasons the triggers README lists under "What a sender sees".
    reason = {
        "unsigned": "no X-Hub-Signature-256 header set",
        "wrongly-signed": "payload signature check failed",
        "other-branch": "expression body.ref == 'refs/heads/' + extensions.branch did not return true",
        "tag-commit-made": "expression !(body.sender.login == extensions.bot",
        "other-event": "event type issues is not allowed",
    }[case]
    assert reason in logs, logs[-3000:]


def test_a_failing_test_stops_the_run_before_build_and_the_summary_says_why(loop, cluster):
    before = loop.gitea.head("druppie-apps")
    source = loop.gitea.read_file(APP, "tests/test_app.py")
    broken = source + "\n\ndef test_a_planted_failure():\n    assert 1 + 1 == 3\n"
    commit = loop.gitea.commit_file(APP, "tests/test_app.py", broken, "A failing test")
    try:
        name = loop.pipelinerun_for(commit)
        run = loop.finished(name)
        assert run["status"]["conditions"][0]["status"] == "False"
        reasons = taskrun_reasons(cluster, name)
        assert reasons["test"] == "StepFailed" and "build" not in reasons and "tag-commit" not in reasons, reasons
        out = results(run)
        assert out["status"] == "Failed" and out["failed-task"] == "test", out
        assert "exited with code 1" in out["failed-reason"] and "failed=1" in out["failed-reason"], out
        assert loop.gitea.head("druppie-apps") == before  # Flux untouched
    finally:
        loop.gitea.commit_file(APP, "tests/test_app.py", source, "Remove the failing test")
        # that push runs a pipeline too; let it finish so it does not race the next test
        loop.finished(loop.pipelinerun_for(loop.gitea.head(APP)))


def test_two_quick_pushes_both_finish_and_the_newer_stays_deployed(loop, cluster):
    first = loop.push_change("Eerste van twee")
    # The next committer second: the version is <prefix>.<committer epoch>, and two commits of one
    # second share it (the pipeline README says what happens then).
    time.sleep(max(0.0, 1.1 - (time.time() % 1)) + 0.05)
    second = loop.push_change("Tweede van twee")
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda c: loop.finished(loop.pipelinerun_for(c)), [first, second]))
    newer = results(runs[1])
    assert all(r["status"]["conditions"][0]["reason"] == "Succeeded" for r in runs), [
        (results(r).get("failed-task"), results(r).get("failed-reason")) for r in runs
    ]
    tag = newer["IMAGE_URL"].rsplit(":", 1)[1]
    kustomization = loop.gitea.read_file("druppie-apps", "envs/prod/drone-service/kustomization.yaml")
    assert f"newTag: {tag}" in kustomization, kustomization
    loop.wait("the newer version to serve", lambda: loop.service_says() == "Tweede van twee", 180)


def test_a_broken_manifest_in_druppie_apps_fails_flux_wait_with_fluxs_reason(loop, cluster):
    path = "envs/prod/drone-service/deployment.yaml"
    good = loop.gitea.read_file("druppie-apps", path)
    loop.gitea.commit_file(
        "druppie-apps", path, good.replace("containerPort: 8080", "containerPort: not-a-port"), "A broken manifest"
    )
    try:
        commit = loop.push_change("Dit komt er niet door")
        name = loop.pipelinerun_for(commit)
        run = loop.finished(name)
        reasons = taskrun_reasons(cluster, name)
        assert reasons.get("flux-wait") == "StepFailed", reasons
        out = results(run)
        assert out["failed-task"] == "flux-wait"
        logs = subprocess.run(
            [str(loop.tool("tkn")), "pr", "logs", name, "-n", "ci"], env=loop.env(), capture_output=True, text=True
        ).stdout
        assert "BuildFailed" in logs or "ReconciliationFailed" in logs, logs[-3000:]
    finally:
        loop.gitea.commit_file("druppie-apps", path, good, "Repair the manifest")


def test_a_scan_finding_stops_the_run_before_build(loop, cluster):
    before = loop.gitea.head("druppie-apps")
    planted = (ROOT / "tests/fixtures/drone-variants/planted-secret/drone_service/settings.py").read_text()
    commit = loop.gitea.commit_file(APP, "drone_service/settings.py", planted, "Settings with a token in them")
    try:
        name = loop.pipelinerun_for(commit)
        run = loop.finished(name)
        reasons = taskrun_reasons(cluster, name)
        assert reasons["scan"] == "StepFailed" and "build" not in reasons and "tag-commit" not in reasons, reasons
        out = results(run)
        assert out["failed-task"] == "scan" and "exited with code" in out["failed-reason"], out
        assert loop.gitea.head("druppie-apps") == before
    finally:
        loop.gitea.api(
            "DELETE",
            f"/repos/druppie-admin/{APP}/contents/drone_service/settings.py",
            {
                "message": "Remove the token",
                "sha": loop.gitea.api("GET", f"/repos/druppie-admin/{APP}/contents/drone_service/settings.py")["sha"],
            },
        )
        loop.finished(loop.pipelinerun_for(loop.gitea.head(APP)))


def test_the_readme_tkn_command_runs_the_pipeline(loop, cluster):
    """README's `tkn pipeline start druppie-ci-cd`, with this cluster's site settings as extra params."""
    command = next(
        c
        for c in block_with(ROOT / "README.md", "tkn pipeline start druppie-ci-cd")
        if c.startswith("tkn pipeline start druppie-ci-cd")
    )
    command = command.replace("https://github.com/waterschap/drone-service.git", loop.gitea.clone_url(APP))
    extra = [
        "-p",
        f"image-registry={cluster.registry}/druppie",
        "-p",
        f"gitops-repo-url={loop.gitea.clone_url('druppie-apps')}",
        "-p",
        f"build-args=BASE_IMAGE={cluster.registry}/{BASE_REPO}",
        "-p",
        "allow-plain-http=true",
        "-p",
        "tls-verify=false",
        "-p",
        "offline=true",
        "-p",
        f"revision={loop.gitea.head(APP)}",
    ]
    words = shlex.split(command)
    proc = subprocess.run(
        [loop.tool("tkn"), *words[1:], *extra], cwd=ROOT, env=loop.env(), capture_output=True, text=True, timeout=600
    )
    name = next(
        line.split(": ", 1)[1].strip() for line in proc.stdout.splitlines() if line.startswith("PipelineRun started: ")
    )
    run = loop.finished(name)
    assert run["status"]["conditions"][0]["reason"] == "Succeeded", (
        proc.stdout[-3000:],
        taskrun_reasons(cluster, name),
    )
    assert results(run)["GITOPS_COMMIT"] == loop.gitea.head("druppie-apps")
