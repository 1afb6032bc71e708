"""The whole loop on the local cluster: a push to the app's repository in Gitea starts druppie-ci-cd
through Gitea's webhook and the EventListener, and ends with Flux running the new image, serving
the changed response. Set up by testbed.loop exactly as `make demo` does (its docstring lists
what differs from a real install).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

from hack import release as catalog_release
from localcluster.process import http_request
from localcluster.toolchain import ROOT
from testbed.loop import APP, BASE_REPO, BOT, CREDENTIALS, succeeded
from testbed.readme import block_with, yaml_blocks
from tests.support.release import catalog_repo

pytestmark = pytest.mark.e2e


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
    assert succeeded(run), (out, loop.failures(name))

    assert out["CHAINS-GIT_COMMIT"] == commit
    assert out["CHAINS-GIT_URL"] == loop.gitea.clone_url(APP)
    served = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{out['IMAGE_URL']}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The version is <version-prefix>.<the commit's depth on main>.
    assert out["IMAGE_DIGEST"] == served and out["IMAGE_URL"].startswith(loop.image + ":1.1.")
    gitops_head = loop.gitea.head("druppie-apps")
    assert out["GITOPS_COMMIT"] == gitops_head
    assert out["APPLIED_REVISION"] == f"main@sha1:{gitops_head}"
    assert out["status"] == "Succeeded" and out["failed-task"] == ""
    # A webhook run checks the dependencies against the advisory database the scan pulled.
    assert out["ADVISORIES"].startswith(f"checked: {cluster.registry}/druppie/osv-db@sha256:"), out
    # tag-commit's commit is the bot's, with the trailer the EventListener's loop guard looks for.
    message = loop.gitea.api("GET", f"/repos/druppie-admin/druppie-apps/git/commits/{gitops_head}")["commit"]["message"]
    assert f"Tekton-Pipeline-Run: {name}" in message

    loop.wait("the new pods to serve the change", lambda: loop.service_says() == greeting, 180)
    assert loop.deployed_image() == f"{out['IMAGE_URL']}@{out['IMAGE_DIGEST']}"
    # The commit on Gitea carries each stage's outcome, from the status bot's token.
    statuses = loop.commit_statuses(commit)
    assert {context: state for context, (state, _) in statuses.items()} == {
        "druppie/test": "success", "druppie/scan": "success", "druppie/build": "success",
        "druppie/deploy-prod": "success",
    }, statuses  # fmt: skip


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


def _sign(loop, body: dict, secret: str | None = None) -> str:
    key = (secret or loop.webhook_secret).encode()
    return "sha256=" + hmac.new(key, json.dumps(body).encode(), hashlib.sha256).hexdigest()


def _body(loop, after: str, ref: str = "refs/heads/main", sender: str = "druppie-admin", message: str = "a change",
          owner: str = "druppie-admin", clone_url: str | None = None) -> dict:  # fmt: skip
    return {
        "ref": ref,
        "after": after,
        "repository": {"name": APP, "full_name": f"{owner}/{APP}",
                       "clone_url": clone_url or loop.gitea.clone_url(f"{owner}/{APP}")},
        "sender": {"login": sender},
        "pusher": {"login": sender, "email": f"{sender}@druppie.local"},
        "head_commit": {"message": message, "author": {"email": f"{sender}@druppie.local"}},
    }  # fmt: skip


def _gate_log(cluster, since: str = "120s") -> str:
    return cluster.kubectl("logs", "-n", "ci", "deployment/druppie-webhook-gate", f"--since={since}").stdout


GATED = "repository druppie-admin/drone-service"


@pytest.mark.parametrize(
    "case",
    ["unsigned", "wrongly-signed", "other-apps-secret", "other-owner", "foreign-url", "bad-name", "other-branch",
     "tag-commit-made", "skip-ci", "other-event"],
)  # fmt: skip
def test_deliveries_that_must_not_start_a_run_start_none(loop, cluster, case):
    """What an attacker with one team's secret, or an unlucky sender, can deliver: no run, and the
    gate's log says why in one line, with the event id and no personal data."""
    after = hashlib.sha1(case.encode(), usedforsecurity=False).hexdigest()  # a made-up commit id
    body, secret, event = _body(loop, after), None, "push"
    if case == "other-owner":  # mallory/drone-service: same name, another owner, the real app's secret
        body = _body(loop, after, owner="mallory")
    elif case == "foreign-url":
        body = _body(loop, after, clone_url="https://evil.example/druppie-admin/drone-service.git")
    elif case == "bad-name":
        body = _body(loop, after, owner="druppie-admin")
        body["repository"].update(name="Bad_Name", full_name="druppie-admin/Bad_Name")
    elif case == "other-branch":
        body = _body(loop, after, ref="refs/heads/feature")
    elif case == "tag-commit-made":
        body = _body(loop, after, sender=BOT, message=f"{APP}: deploy 1.0.9\n\nTekton-Pipeline-Run: x-ci-cd-abc")
    elif case == "skip-ci":
        body = _body(loop, after, message="Fix a typo [skip ci]")
    elif case == "other-apps-secret":
        secret = loop.other_webhook_secret
    elif case == "other-event":
        event = "issues"
    signature = None if case == "unsigned" else (
        "sha256=" + hmac.new(b"not-the-secret", json.dumps(body).encode(), hashlib.sha256).hexdigest()
        if case == "wrongly-signed" else _sign(loop, body, secret))  # fmt: skip
    assert _deliver(loop, cluster, body, signature, event) == 202
    reason = {
        "unsigned": f"{GATED}: the signature is missing",
        "wrongly-signed": f"{GATED}: the signature does not match its secret",
        "other-apps-secret": f"{GATED}: the signature does not match its secret",
        "other-owner": "repository mallory/drone-service is not in the gate's list",
        "foreign-url": f"{GATED}: clone_url is not {loop.gitea.clone_url(APP)}",
        "bad-name": "repository druppie-admin/Bad_Name: 'bad_name' cannot be an app name",
        "other-branch": f"{GATED}: a push to 'refs/heads/feature', not to main",
        "tag-commit-made": f"{GATED}: the pipeline's own commit",
        "skip-ci": f"{GATED}: the head commit says [skip ci]",
        "other-event": "not a push event (issues)",
    }[case]
    log = wait_for_text(lambda: _gate_log(cluster), f"refused: {reason}")
    assert "@druppie.local" not in log and "mallory@" not in log
    time.sleep(3)  # a run, had one been started, would exist by now
    runs = cluster.get_json("pipelineruns", "-n", "ci")["items"]
    assert not [r for r in runs if any(p["value"] == after for p in r["spec"].get("params", []))]


def wait_for_text(read, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = read()
        if text in out or time.monotonic() > deadline:
            assert text in out, out[-3000:]
            return out
        time.sleep(0.5)


def test_a_replayed_delivery_starts_no_second_run_and_no_log_holds_personal_data(loop, cluster):
    """Gitea delivers the push of the app's head commit again (its hook test button); that commit
    already has its run (named after app and commit), so the API server refuses a second one."""
    head = loop.gitea.head(APP)
    name = loop.pipelinerun_for(head)
    loop.finished(name)
    [hook] = loop.gitea.hooks(APP)
    loop.gitea.test_hook(APP, hook["id"])
    wait_for_text(lambda: _gate_log(cluster), f"run {APP}-{head[:12]} for {loop.gitea.clone_url(APP)}")
    time.sleep(5)
    runs = [r for r in cluster.get_json("pipelineruns", "-n", "ci")["items"]
            if any(p["name"] == "revision" and p["value"] == head for p in r["spec"]["params"])]  # fmt: skip
    assert [r["metadata"]["name"] for r in runs] == [name] == [f"{APP}-{head[:12]}"]
    for deployment in ("el-druppie-ci-cd", "druppie-webhook-gate"):
        log = cluster.kubectl("logs", "-n", "ci", f"deployment/{deployment}").stdout
        assert "@druppie.local" not in log, (deployment, log[-2000:])


def test_the_eventlistener_cannot_read_any_secret(loop, cluster):
    who = "system:serviceaccount:ci:druppie-triggers"
    for args in (
        ["get", "secret/druppie-webhook-secrets", "-n", "ci"],
        ["list", "secrets", "-n", "ci"],
        ["list", "secrets", "--all-namespaces"],
        ["get", "secret/druppie-apps-write", "-n", "ci"],
    ):
        answer = cluster.kubectl("auth", "can-i", *args, f"--as={who}", check=False).stdout.strip()
        assert answer == "no", args
    assert cluster.kubectl("auth", "can-i", "create", "pipelineruns", "-n", "ci", f"--as={who}").stdout.strip() == "yes"


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
        # The developer sees it on the commit: the test failed, nothing was built or deployed.
        statuses = loop.commit_statuses(commit)
        assert statuses["druppie/test"][0] == "failure", statuses
        assert statuses["druppie/scan"][0] == "success", statuses
        assert statuses["druppie/build"][0] != "success" and statuses["druppie/deploy-prod"][0] != "success", statuses
    finally:
        # main as before, not built again: the gate refuses a head commit that says [skip ci]
        loop.gitea.commit_file(APP, "tests/test_app.py", source, "Remove the failing test [skip ci]")


def test_a_broken_manifest_in_druppie_apps_fails_flux_wait_with_fluxs_reason(loop, cluster):
    path = "apps/drone-service/deployment.yaml"  # the base, under every environment
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
                "message": "Remove the token [skip ci]",  # main as before: the gate starts no run
                "sha": loop.gitea.api("GET", f"/repos/druppie-admin/{APP}/contents/drone_service/settings.py")["sha"],
            },
        )


def test_the_readme_tkn_command_runs_the_pipeline(loop, cluster):
    """README's `tkn pipeline start druppie-ci-cd`, with this cluster's site settings as extra params."""
    command = next(
        c
        for c in block_with(ROOT / "README.md", "tkn pipeline start druppie-ci-cd", without="acceptatie-mode")
        if c.startswith("tkn pipeline start druppie-ci-cd")
    )
    command = command.replace("https://github.com/waterschap/drone-service.git", loop.gitea.clone_url(APP))
    extra = [
        "-p",
        f"image-registry={loop.image.rpartition('/')[0]}",
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
        f"osv-db-ref={cluster.registry}/druppie/osv-db:latest",
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
    assert succeeded(run), (
        proc.stdout[-3000:],
        taskrun_reasons(cluster, name),
    )
    assert results(run)["GITOPS_COMMIT"] == loop.gitea.head("druppie-apps")


def test_each_git_credential_reaches_only_its_task_and_the_read_token_cannot_push(loop, cluster, tmp_path):
    """The write token of druppie-apps is in tag-commit's pod only, never beside the app's own code
    (test, scan, build); clone and flux-wait get tokens that can only read, and cannot push."""
    head = loop.gitea.head(APP)
    name = loop.pipelinerun_for(head)
    loop.finished(name)
    mounted = {}
    for taskrun in cluster.get_json("taskruns", "-n", "ci", "-l", f"tekton.dev/pipelineRun={name}")["items"]:
        pod = cluster.get_json("pod", "-n", "ci", taskrun["status"]["podName"])
        task = taskrun["metadata"]["labels"]["tekton.dev/pipelineTask"]
        mounted[task] = {v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v}
    git = {task: secrets & set(CREDENTIALS) for task, secrets in mounted.items()}
    assert git == {
        "clone": {f"{APP}-git-read"}, "test": set(), "scan": set(), "build": set(),
        "tag-commit": {"druppie-apps-write"}, "flux-wait": {"druppie-apps-read"}, "summary": set(),
        "statuses-pending": set(), "statuses": set(),
    }  # fmt: skip

    work = tmp_path / "apps"
    subprocess.run(["git", "clone", "-q", loop.gitea.clone_url("druppie-apps"), str(work)], check=True)
    (work / "README.md").write_text("not with a read token\n")
    env = {"GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": "x@x", "GIT_COMMITTER_NAME": "x", "GIT_COMMITTER_EMAIL": "x@x"}
    subprocess.run(["git", "-C", str(work), "commit", "-qam", "try"], check=True, env={**os.environ, **env})
    read_token = (loop.state / "bot-read-token").read_text()
    header = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
              "GIT_CONFIG_VALUE_0": f"Authorization: token {read_token}", "GIT_TERMINAL_PROMPT": "0"}  # fmt: skip
    push = subprocess.run(["git", "-C", str(work), "push", "origin", "main"], capture_output=True, text=True,
                          env={**os.environ, **header})  # fmt: skip
    assert push.returncode != 0, push.stderr
    assert loop.gitea.head("druppie-apps") != subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()  # fmt: skip


def test_the_loop_runs_from_a_release_by_reference_with_no_task_or_pipeline_installed(loop, cluster, tmp_path,
                                                                                     monkeypatch):  # fmt: skip
    """A release (hack/release.py --tag, its images and bundles in the cluster registry) pushed to Gitea
    with its tag; the trigger's PipelineRun takes druppie-ci-cd from that tag with Tekton's git resolver,
    and the released Pipeline takes each Task from its bundle by digest. With no Task or Pipeline in the
    namespace, a push runs the whole loop. Then druppie-promote runs from its own bundle, as the
    README's PipelineRun shows."""
    repo = catalog_repo(tmp_path / "catalog", monkeypatch)
    tag = f"v{catalog_release.version(repo)}"
    digests = catalog_release.build_and_push(cluster.registry)  # the images `make images` built, pushed here
    commit = catalog_release.release(repo, tag, cluster.registry, lambda _registry: digests)
    loop.gitea.create_repo("druppie-catalog")
    loop.gitea.push("druppie-catalog", repo, "main", also=(f"refs/tags/{tag}", "release:release"))
    url = loop.gitea.clone_url("druppie-catalog")

    template = cluster.get_json("triggertemplate", "-n", "ci", "druppie-ci-cd")
    referenced = json.loads(json.dumps(template))
    for key in ("resourceVersion", "uid", "generation", "creationTimestamp", "managedFields"):
        referenced["metadata"].pop(key, None)
    path = "pipelines/druppie-ci-cd/0.1/druppie-ci-cd.yaml"
    git_ref = {"url": url, "revision": tag, "pathInRepo": path}
    referenced["spec"]["resourcetemplates"][0]["spec"]["pipelineRef"] = {
        "resolver": "git",
        "params": [{"name": k, "value": v} for k, v in git_ref.items()],
    }
    cluster.kubectl("replace", "-f", "-", input=json.dumps(referenced))
    cluster.kubectl("delete", "tasks,pipelines", "--all", "-n", "ci")
    try:
        assert cluster.get_json("tasks,pipelines", "-n", "ci")["items"] == []
        greeting = "Gemalen pompen op peil (release)"
        name = loop.pipelinerun_for(loop.push_change(greeting))
        run = loop.finished(name)
        assert succeeded(run), loop.failures(name)
        # Where Tekton got them: the Pipeline from the release commit, each Task from its bundle digest.
        source = run["status"]["provenance"]["refSource"]
        assert source["uri"] == f"git+{url}" and source["digest"] == {"sha1": commit}, source
        assert source["entryPoint"] == path
        released = yaml.safe_load(loop.gitea.read_file("druppie-catalog", "catalog.yaml", ref=tag))
        bundles = {b["name"]: f"{b['bundle']}@{b['digest']}" for b in released["bundles"]}
        for taskrun in cluster.get_json("taskruns", "-n", "ci", "-l", f"tekton.dev/pipelineRun={name}")["items"]:
            task = taskrun["spec"]["taskRef"]["params"]
            ref = next(p["value"] for p in task if p["name"] == "bundle")
            assert taskrun["spec"]["taskRef"]["resolver"] == "bundles"
            assert ref == bundles[next(p["value"] for p in task if p["name"] == "name")], ref
        loop.wait("the new pods to serve the change", lambda: loop.service_says() == greeting, 240)

        # druppie-promote from its bundle: the README's PipelineRun, for this cluster.
        docs = [yaml.safe_load(b) for b in yaml_blocks(ROOT / "README.md")]
        (example,) = [d for d in docs if isinstance(d, dict) and d.get("kind") == "PipelineRun"
                      and d["spec"].get("pipelineRef", {}).get("resolver") == "bundles"]  # fmt: skip
        # The deployed reference is image:tag@sha256:digest; copy by digest, not by what follows the last colon.
        named, _, digest = loop.deployed_image().partition("@")
        source = f"{loop.image}@{digest}" if digest else named
        subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                        f"docker://{source}", f"docker://{loop.image}:9.9.9"], check=True)  # fmt: skip
        ref = {p["name"]: p for p in example["spec"]["pipelineRef"]["params"]}
        ref["bundle"]["value"] = bundles["druppie-promote"]
        values = {"gitops-repo-url": loop.gitea.clone_url("druppie-apps"), "image": loop.image, "tag": "9.9.9"}
        example["spec"]["params"] = [
            {**p, "value": values.get(p["name"], p["value"])} for p in example["spec"]["params"]
        ]
        example["spec"]["params"].append({"name": "allow-plain-http", "value": "true"})
        # The README's two credentials of druppie-apps, as the loop made them.
        assert {w["secret"]["secretName"] for w in example["spec"]["workspaces"]} == {"druppie-apps-read",
                                                                                     "druppie-apps-write"}  # fmt: skip
        created = cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(example)).stdout
        promote = loop.finished(json.loads(created)["metadata"]["name"])
        assert succeeded(promote), promote["status"]["conditions"]
        source = promote["status"]["provenance"]["refSource"]
        assert source["uri"] == bundles["druppie-promote"].split("@")[0].rsplit(":", 1)[0], source
        assert source["digest"] == {"sha256": bundles["druppie-promote"].split("@sha256:")[1]}, source
        assert loop.deployed_image().startswith(f"{loop.image}:9.9.9")
    finally:
        template["metadata"].pop("resourceVersion", None)
        cluster.kubectl("replace", "-f", "-", input=json.dumps(template))
        cluster.kubectl("apply", "-k", str(ROOT))  # the catalog, as README's install put it


def test_zz_old_runs_are_pruned_with_their_volumes(loop, cluster):
    """Last in this module (the runs above are what piles up): the CronJob's job, with --keep 1,
    deletes every finished run of the app but the newest; their volume claims go with them."""
    runs = [r for r in cluster.get_json("pipelineruns", "-n", "ci", "-l", f"app.kubernetes.io/name={APP}")["items"]
            if r.get("status", {}).get("completionTime")]  # fmt: skip
    assert len(runs) >= 2, "the tests above ran the pipeline more than once"
    # The README's tkn command labels its run as the trigger does: prune counts it with the app's runs.
    assert any("triggers.tekton.dev/eventlistener" not in r["metadata"]["labels"] for r in runs), "a tkn run"
    newest = max(runs, key=lambda r: (r["metadata"]["creationTimestamp"], r["metadata"]["name"]))["metadata"]["name"]
    claims_before = {c["metadata"]["name"] for c in cluster.get_json("pvc", "-n", "ci")["items"]}
    cluster.kubectl("set", "env", "-n", "ci", "cronjob/druppie-prune", "DRUPPIE_KEEP=1")
    cluster.kubectl("create", "job", "-n", "ci", "--from=cronjob/druppie-prune", "prune-now")
    cluster.kubectl("wait", "-n", "ci", "--for=condition=Complete", "job/prune-now", "--timeout=120s")
    log = cluster.kubectl("logs", "-n", "ci", "job/prune-now").stdout
    assert f"deleted {len(runs) - 1}" in log, log

    def pruned() -> bool:
        left = cluster.get_json("pipelineruns", "-n", "ci", "-l", f"app.kubernetes.io/name={APP}")["items"]
        return [r["metadata"]["name"] for r in left if r.get("status", {}).get("completionTime")] == [newest]

    loop.wait("the older runs to be gone", pruned, 60)
    owners = {r["metadata"]["uid"] for r in runs if r["metadata"]["name"] != newest}

    def claims_gone() -> bool:
        claims = cluster.get_json("pvc", "-n", "ci")["items"]
        return not [c for c in claims if {o["uid"] for o in c["metadata"].get("ownerReferences", [])} & owners]

    loop.wait("their volume claims to be gone", claims_gone, 120)
    assert claims_before - {c["metadata"]["name"] for c in cluster.get_json("pvc", "-n", "ci")["items"]}
