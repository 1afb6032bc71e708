"""Rollback and OTAP through the loop's Gitea (issue 18), on real Tekton, Flux and Gitea.

First the README's rollback (`tkn pipeline start druppie-promote` with rollback-reason) puts prod
back to the build it ran before, the reason in druppie-apps' history. Then the README's OTAP
`tkn pipeline start druppie-ci-cd` (environment test, acceptatie-mode push, prod-mode pull-request)
runs main's head, which prod no longer runs: the build goes to test; the promotion gate lets exactly
the digest test runs healthy on to acceptatie; Flux runs it there; the gate checks acceptatie and the
digest is proposed for prod in Gitea's pull request promote/drone-service/prod, while prod itself is
untouched. The app's commit carries every stage's status, deploy-prod pending with the pull request.

Main's head was built and deployed by test_loop.py's runs (the registry hands the build over, the
same digest: build once), which also gave prod the history a rollback needs: run the module after
it (make test-e2e). The loop applies flux/druppie-apps' three Kustomizations (testbed/loop.py)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from localcluster.gitea_api import GiteaError
from localcluster.process import http_request
from localcluster.toolchain import ROOT
from testbed.loop import APP, BASE_REPO, succeeded
from testbed.protection import protect_druppie_apps, unprotect_druppie_apps
from testbed.readme import bash_blocks

pytestmark = pytest.mark.e2e
PROD_BRANCH = f"promote/{APP}/prod"


def otap_command() -> str:
    """The README's OTAP `tkn pipeline start druppie-ci-cd` (the one with acceptatie-mode)."""
    (command,) = [c for block in bash_blocks(ROOT / "README.md") for c in block
                  if c.startswith("tkn pipeline start druppie-ci-cd") and "acceptatie-mode=push" in c]  # fmt: skip
    return command


def serving(cluster, namespace: str) -> str | None:
    ip = cluster.get_json("service", "-n", namespace, APP)["spec"]["clusterIP"]
    try:
        with http_request(f"http://{ip}/", timeout=3) as response:
            return json.loads(response.read())["message"]
    except (OSError, ValueError, KeyError):
        return None


def running_image(cluster, namespace: str) -> str:
    deployment = cluster.get_json("deployment", "-n", namespace, APP)
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def prod_states(loop) -> list[tuple[str, str, str]]:
    """(commit, tag, digest or "") of envs/prod/drone-service in druppie-apps' history, newest first
    (test_loop.py also writes tags without a digest, e.g. with the read-only token's refused push)."""
    path = f"envs/prod/{APP}/kustomization.yaml"
    commits = loop.gitea.api("GET", f"/repos/{loop.gitea.admin}/druppie-apps/commits?path={path}&limit=20")
    states = []
    for commit in commits:
        (entry, *_) = yaml.safe_load(loop.gitea.read_file("druppie-apps", path, ref=commit["sha"]))["images"]
        states.append((commit["sha"], str(entry["newTag"]), entry.get("digest", "")))
    return states


@pytest.fixture(scope="module")
def rollback(loop, cluster) -> dict:
    """The README's rollback command (druppie-promote): prod back to the build before its current one."""
    states = prod_states(loop)
    now = states[0]
    # The build before the newest one that had a digest (main's head, which the OTAP test runs next).
    built = [state for state in states if state[2]]
    earlier = [state for state in built if built and state[2] != built[0][2]]
    assert earlier, f"prod ran one build only ({built}): run this module after test_loop.py (make test-e2e)"
    previous = earlier[0]
    _, tag, digest = previous
    reason = f"rollback e2e {uuid.uuid4().hex[:6]}"
    (command,) = [c for block in bash_blocks(ROOT / "README.md") for c in block
                  if "rollback-reason=" in c and "mode=pull-request" not in c]  # fmt: skip
    for old, new in {
        "https://github.com/waterschap/druppie-apps.git": loop.gitea.clone_url("druppie-apps"),
        "image=registry.example/druppie/drone-service": f"image={loop.image}",
        "tag=1.0.5": f"tag={tag}",
        "digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": f"digest={digest}",
        "1.0.6 answers 500 on /health": reason,
    }.items():
        assert old in command, old
        command = command.replace(old, new)
    proc = subprocess.run([loop.tool("tkn"), *shlex.split(command)[1:], "-p", "allow-plain-http=true"], cwd=ROOT,
                          env=loop.env(), capture_output=True, text=True, timeout=600)  # fmt: skip
    started = [line for line in proc.stdout.splitlines() if line.startswith("PipelineRun started: ")]
    assert started, proc.stdout[-2000:] + proc.stderr[-2000:]
    name = started[0].split(": ", 1)[1].strip()
    return {"run": loop.finished(name), "name": name, "out": proc.stdout, "now": now, "previous": previous,
            "reason": reason}  # fmt: skip


def test_a_rollback_puts_prod_back_to_the_digest_it_ran_before_and_says_why(loop, cluster, rollback):
    run, (_, tag, digest) = rollback["run"], rollback["previous"]
    assert succeeded(run), (loop.failures(rollback["name"]), rollback["out"])
    assert running_image(cluster, "productie") == f"{loop.image}:{tag}@{digest}"
    head = loop.gitea.log("druppie-apps")[0].split()[0]
    message = loop.gitea.api("GET", f"/repos/{loop.gitea.admin}/druppie-apps/git/commits/{head}")["commit"]["message"]
    assert f"Rollback: {rollback['reason']}" in message and f"(was {rollback['now'][1]})" in message, message


@pytest.fixture(scope="module")
def otap(loop, cluster, rollback):
    """druppie-apps' main protected as its README says (after the rollback, a direct push to prod), a
    reviewer besides the bot, then the README's OTAP command on main's head. Afterwards: no open prod
    proposal and no protection is left to the modules after this one."""
    gitea, owner = loop.gitea, loop.gitea.admin
    loop.reviewer_token()
    protect_druppie_apps(gitea)
    try:
        commit = gitea.head(APP)
        source = gitea.read_file(APP, "drone_service/app.py", ref=commit)
        greeting = re.search(r'^GREETING = "(.*)"$', source, re.M)[1]
        prod_before = running_image(cluster, "productie")  # the rolled-back build: older than main's head

        command = otap_command().replace("https://github.com/waterschap/drone-service.git", gitea.clone_url(APP))
        site = {
            "image-registry": loop.image.rpartition("/")[0],
            "gitops-repo-url": gitea.clone_url("druppie-apps"),
            "build-args": f"BASE_IMAGE={cluster.registry}/{BASE_REPO}",
            "allow-plain-http": "true",
            "tls-verify": "false",
            "offline": "true",
            "osv-db-ref": f"{cluster.registry}/druppie/osv-db:latest",
            "forge": "gitea",  # auto means github.com only: forges look alike from their URLs
            "revision": commit,
        }
        extra = [word for name, value in site.items() for word in ("-p", f"{name}={value}")]
        proc = subprocess.run([loop.tool("tkn"), *shlex.split(command)[1:], *extra], cwd=ROOT, env=loop.env(),
                              capture_output=True, text=True, timeout=900)  # fmt: skip
        started = [line for line in proc.stdout.splitlines() if line.startswith("PipelineRun started: ")]
        assert started, proc.stdout[-2000:] + proc.stderr[-2000:]
        name = started[0].split(": ", 1)[1].strip()
        run = loop.finished(name)
        yield {
            "commit": commit,
            "greeting": greeting,
            "prod_before": prod_before,
            "name": name,
            "run": run,
            "out": proc.stdout,
            "results": {r["name"]: r["value"] for r in run["status"].get("results", [])},
        }
    finally:
        for pull in gitea.api("GET", f"/repos/{owner}/druppie-apps/pulls?state=open"):
            if pull["head"]["ref"] == PROD_BRANCH:
                gitea.api("PATCH", f"/repos/{owner}/druppie-apps/pulls/{pull['number']}", {"state": "closed"})
        unprotect_druppie_apps(gitea)


def test_otap_test_then_acceptatie_serve_the_same_digest_and_prod_gets_a_pull_request(loop, cluster, otap):
    gitea, owner = loop.gitea, loop.gitea.admin
    commit, greeting, results, name = otap["commit"], otap["greeting"], otap["results"], otap["name"]
    assert succeeded(otap["run"]), (loop.failures(name), otap["out"][-3000:])
    assert results["status"] == "Succeeded", results["summary"]

    # Build once: test and acceptatie run the one digest built, and both serve the change.
    reference = f"{results['IMAGE_URL']}@{results['IMAGE_DIGEST']}"
    for namespace in ("test", "acceptatie"):
        assert running_image(cluster, namespace) == reference, namespace
        loop.wait(f"{namespace} serving the change", lambda ns=namespace: serving(cluster, ns) == greeting, 120)
    assert results["ACCEPTATIE_REVISION"].startswith("main@sha1:")

    # Prod: untouched, and one pull request from promote/drone-service/prod proposes that digest.
    assert running_image(cluster, "productie") == otap["prod_before"]
    assert results["IMAGE_DIGEST"] not in gitea.read_file("druppie-apps", f"envs/prod/{APP}/kustomization.yaml")
    proposed = gitea.read_file("druppie-apps", f"envs/prod/{APP}/kustomization.yaml", ref=PROD_BRANCH)
    assert f"digest: {results['IMAGE_DIGEST']}" in proposed, proposed
    pulls = [
        p for p in gitea.api("GET", f"/repos/{owner}/druppie-apps/pulls?state=open") if p["head"]["ref"] == PROD_BRANCH
    ]
    assert [p["html_url"] for p in pulls] == [results["PROD_PULL_REQUEST"]]
    assert results["IMAGE_DIGEST"] in pulls[0]["body"] and commit in pulls[0]["body"], pulls[0]["body"]
    assert f"pull request {results['PROD_PULL_REQUEST']}" in results["summary"]

    # Every stage on the app's commit: deployed to test and acceptatie, prod waiting for approval.
    statuses = loop.commit_statuses(commit)
    assert {c: s for c, (s, _) in statuses.items()} == {
        "druppie/test": "success", "druppie/scan": "success", "druppie/build": "success",
        "druppie/deploy-test": "success", "druppie/deploy-acceptatie": "success", "druppie/deploy-prod": "pending",
    }, statuses  # fmt: skip
    assert results["PROD_PULL_REQUEST"] in statuses["druppie/deploy-prod"][1]


def test_the_prod_pull_request_merges_only_approved_and_the_merge_deploys_that_digest_and_reports_it(
    loop, cluster, otap
):
    """druppie-apps' main protected: the bot cannot merge its own proposal; a second user approves and
    merges; Gitea's pull_request webhook starts druppie-prod-deploy (EventListener druppie-prod-deploy,
    webhook-gate's prod-merge check), which waits until Flux applied the merge commit to prod and
    reports druppie/deploy-prod on the app's commit."""
    gitea, owner, results = loop.gitea, loop.gitea.admin, otap["results"]
    assert succeeded(otap["run"]), loop.failures(otap["name"])
    number = int(results["PROD_PULL_REQUEST"].rstrip("/").rsplit("/", 1)[1])
    pull = f"/repos/{owner}/druppie-apps/pulls/{number}"
    bot = (loop.state / "bot-write-token").read_text()
    with pytest.raises(GiteaError) as unapproved:
        gitea.api("POST", f"{pull}/merge", {"Do": "merge"}, token=bot)
    assert unapproved.value.status in (405, 422), unapproved.value
    assert not gitea.api("GET", pull)["merged"]

    merge = loop.approve_and_merge(number)  # REVIEWER: approves, then merges
    name = f"{APP}-prod-{merge[:12]}"  # the gate's run name: app and merge commit
    loop.wait(f"PipelineRun {name}", lambda: cluster.kubectl("get", "pipelinerun", "-n", "ci", name,
                                                              check=False).returncode == 0, 60)  # fmt: skip
    run = loop.finished(name)
    assert succeeded(run), loop.failures(name)
    out = {r["name"]: r["value"] for r in run["status"].get("results", [])}

    # Prod runs exactly the digest test and acceptatie ran (build once), and serves the change.
    reference = f"{results['IMAGE_URL']}@{results['IMAGE_DIGEST']}"
    assert out["image-ref"] == reference and out["source-commit"] == otap["commit"], out
    assert out["applied-revision"] == f"main@sha1:{merge}", out
    assert running_image(cluster, "productie") == reference
    loop.wait("prod serving the change", lambda: serving(cluster, "productie") == otap["greeting"], 120)

    # The app's commit: deploy-prod pending with the proposal, then success after the merge.
    history = gitea.api("GET", f"/repos/{owner}/{APP}/statuses/{otap['commit']}?limit=50")
    prod = [s["status"] for s in sorted(history, key=lambda s: s["id"]) if s["context"] == "druppie/deploy-prod"]
    assert prod[-2:] == ["pending", "success"], prod
    assert {c: s for c, (s, _) in loop.commit_statuses(otap["commit"]).items()} == dict.fromkeys(
        ["druppie/test", "druppie/scan", "druppie/build", "druppie/deploy-test", "druppie/deploy-acceptatie",
         "druppie/deploy-prod"], "success")  # fmt: skip


def test_two_quick_pushes_through_the_trigger_end_in_one_prod_pull_request_with_the_newer_digest(loop, cluster, otap):
    """The trigger's default, OTAP (the site's binding stops overriding it): two pushes in one second
    get two versions (the commit's depth on main, no clock) and race through test and acceptatie.
    The newer run ends with its digest in acceptatie and proposed for prod; the older either went
    first or stops at the first stage the newer one already passed, saying so in words (tag-commit's
    downgrade guard: "not deployed"; the promotion gate: not the digest the environment runs), never a
    plain green. One prod pull request, holding the newer digest."""
    gitea, owner = loop.gitea, loop.gitea.admin
    loop.set_otap(True)
    try:
        first = loop.push_change("Eerste van twee (OTAP)")
        second = loop.push_change("Tweede van twee (OTAP)")
        with ThreadPoolExecutor(2) as pool:
            names = list(pool.map(loop.pipelinerun_for, [first, second]))
            runs = list(pool.map(loop.finished, names))
        older, newer = ({r["name"]: r["value"] for r in run["status"].get("results", [])} for run in runs)
        assert succeeded(runs[1]), loop.failures(names[1])
        assert int(newer["IMAGE_URL"].rsplit(".", 1)[1]) == int(older["IMAGE_URL"].rsplit(".", 1)[1]) + 1
        if not succeeded(runs[0]):  # a failed task's results do not reach the run's: the summary reads them
            stages = {"tag-commit", "acceptatie-gate", "acceptatie-promote", "prod-gate", "prod-promote"}
            assert older["failed-task"] in stages and older["failed-reason"], older
            if older["failed-task"] in ("tag-commit", "acceptatie-promote"):
                assert "not deployed" in older["summary"], older["summary"]
        reference = f"{newer['IMAGE_URL']}@{newer['IMAGE_DIGEST']}"
        assert running_image(cluster, "acceptatie") == reference
        newest = "Tweede van twee (OTAP)"
        loop.wait("acceptatie serving the newer push", lambda: serving(cluster, "acceptatie") == newest, 120)
        pulls = [p for p in gitea.api("GET", f"/repos/{owner}/druppie-apps/pulls?state=open")
                 if p["head"]["ref"] == PROD_BRANCH]  # fmt: skip
        assert [p["html_url"] for p in pulls] == [newer["PROD_PULL_REQUEST"]], pulls
        proposed = gitea.read_file("druppie-apps", f"envs/prod/{APP}/kustomization.yaml", ref=PROD_BRANCH)
        assert f"digest: {newer['IMAGE_DIGEST']}" in proposed, proposed
        assert newer["IMAGE_DIGEST"] in pulls[0]["body"] and second in pulls[0]["body"], pulls[0]["body"]
    finally:
        loop.set_otap(False)


def test_a_rollback_of_protected_prod_is_a_pull_request_that_says_why(loop, cluster, otap):
    """The README's druppie-promote command with mode pull-request: prod (protected, now running the merged
    digest) proposed back to the build it ran before the merge; nothing deployed until a merge."""
    (command,) = [c for block in bash_blocks(ROOT / "README.md") for c in block
                  if c.startswith("tkn pipeline start druppie-promote") and " -p mode=pull-request" in c]  # fmt: skip
    # The pipeline's README shows the same command (tests/unit/test_catalog.py holds them equal).
    named, _, digest = otap["prod_before"].partition("@")
    tag = named.rsplit(":", 1)[1]
    now = running_image(cluster, "productie")
    reason = f"rollback by pull request e2e {uuid.uuid4().hex[:6]}"
    for old, new in {
        "https://github.com/waterschap/druppie-apps.git": loop.gitea.clone_url("druppie-apps"),
        "image=registry.example/druppie/drone-service": f"image={loop.image}",
        "tag=1.0.5": f"tag={tag}",
        "digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": f"digest={digest}",
        "1.0.6 answers 500 on /health": reason,
        "forge=github": "forge=gitea",
    }.items():
        assert old in command, old
        command = command.replace(old, new)
    proc = subprocess.run([loop.tool("tkn"), *shlex.split(command)[1:], "-p", "allow-plain-http=true"], cwd=ROOT,
                          env=loop.env(), capture_output=True, text=True, timeout=600)  # fmt: skip
    started = [line for line in proc.stdout.splitlines() if line.startswith("PipelineRun started: ")]
    assert started, proc.stdout[-2000:] + proc.stderr[-2000:]
    name = started[0].split(": ", 1)[1].strip()
    run = loop.finished(name)
    assert succeeded(run), loop.failures(name)
    url = {r["name"]: r["value"] for r in run["status"].get("results", [])}["pull-request-url"]
    (pull,) = [p for p in loop.gitea.api("GET", f"/repos/{loop.gitea.admin}/druppie-apps/pulls?state=open")
               if p["head"]["ref"] == PROD_BRANCH]  # fmt: skip
    assert pull["html_url"] == url
    assert pull["body"].startswith(f"Rolls **{APP}** in **prod** back to `{loop.image}:{tag}@{digest}`"), pull["body"]
    assert reason in pull["body"]
    assert running_image(cluster, "productie") == now  # proposed, not deployed
