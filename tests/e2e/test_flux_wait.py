"""flux-wait against real Flux controllers: exact revision, fail fast, suspended, timeout, apiserver restart.

With DRUPPIE_RECORD_FIXTURES=1 the status objects seen here are written to
tests/fixtures/flux-status/, which the unit tests of the decision logic read.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.conftest import STEP
from tests.e2e.conftest import condition
from tests.support.gitserver import COMMIT_ENV, run
from tests.support.kubewatch import KubectlWatch

IMAGE = "registry.example/druppie/drone-service"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flux-status"


def record(name: str, obj: dict) -> None:
    if os.environ.get("DRUPPIE_RECORD_FIXTURES") == "1":
        FIXTURES.mkdir(parents=True, exist_ok=True)
        obj = json.loads(json.dumps(obj))
        obj.get("metadata", {}).pop("managedFields", None)
        (FIXTURES / f"{name}.json").write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def flux_wait(app, revision: str, *extra: str, timeout: str = "2m") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(STEP), "flux-wait", "--kustomization", app.kustomization, "--revision", revision,
                           "--timeout", timeout, "--kubeconfig", str(app.cluster.kubeconfig), "--repo-url",
                           app.repo_url, *extra], capture_output=True, text=True)


def tag_commit(app, tag: str) -> str:
    """What CI does: push the image, then commit its tag to the GitOps repo."""
    app.cluster.publish_image(f"{IMAGE}:{tag}")
    step = subprocess.run([str(STEP), "tag-commit", "--repo-url", app.repo_url, "--path", "envs/prod/drone-service",
                           "--image", IMAGE, "--tag", tag], capture_output=True, text=True)
    assert step.returncode == 0, step.stderr
    return step.stdout.split("revision=")[1].split()[0]


def commit_locally(app, tmp_path: Path, path: str, content: str, message: str) -> tuple[Path, str]:
    work = tmp_path / "clone"
    if not work.exists():
        run("git", "clone", "--quiet", app.repo_url, str(work))
    (work / path).write_text(content)
    run("git", "-C", str(work), "commit", "--quiet", "-am", message, env=COMMIT_ENV)
    return work, run("git", "-C", str(work), "rev-parse", "HEAD").stdout.strip()


def test_success_after_tag_commit_reports_the_exact_revision(flux_app):
    flux_app.wait_ready()
    recorder = KubectlWatch(flux_app.cluster, "kustomization", "flux-system", flux_app.kustomization)
    revision = tag_commit(flux_app, "1.0.5")
    result = flux_wait(flux_app, revision)
    seen = [obj for _, obj in recorder.stop()]
    assert result.returncode == 0, result.stderr
    assert f"applied-revision={revision}" in result.stdout and "reason=ReconciliationSucceeded" in result.stdout
    # Each progress step Flux reports is printed once, with the elapsed time.
    for step in (f"GitRepository flux-system/{flux_app.name}: source has revision {revision}",
                 f"Kustomization flux-system/{flux_app.kustomization}: Running health checks for revision {revision}",
                 f"Kustomization flux-system/{flux_app.kustomization}: applied {revision} and Ready"):
        assert len([line for line in result.stderr.splitlines() if step in line]) == 1, step
    assert flux_app.image() == f"{IMAGE}:1.0.5"
    ks = flux_app.ks()
    assert ks["status"]["lastAppliedRevision"] == revision
    record("gitrepository-ready", flux_app.gitrepo())
    ready = [o for o in seen if condition(o, "Ready").get("status") == "True"
             and o["status"].get("lastAppliedRevision") == revision]
    assert ready, "the watch saw the Kustomization Ready at the revision"
    record("kustomization-ready", ready[0])
    messages = {}
    for obj in seen:  # one object per distinct progress message: fetching, building, health checks
        if condition(obj, "Reconciling").get("status") == "True":
            messages.setdefault(condition(obj, "Reconciling")["message"].split(" for ")[0], obj)
    for i, obj in enumerate(messages.values()):
        record(f"kustomization-progressing-{i}", obj)


def test_broken_manifest_fails_fast_with_fluxs_message(flux_app, tmp_path):
    flux_app.wait_ready()
    work, broken = commit_locally(flux_app, tmp_path, "envs/prod/drone-service/deployment.yaml",
                                  "apiVersion: apps/v1\nkind: Deployment\nspec: [\n", "break it")
    run("git", "-C", str(work), "push", "--quiet", "origin", "main")
    started = time.monotonic()
    result = flux_wait(flux_app, broken, timeout="3m")
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: Kustomization flux-system/{flux_app.kustomization} failed for revision "
                           f"main@sha1:{broken}: BuildFailed:")
    assert "deployment.yaml" in last
    assert elapsed < 120, "must not wait out its 3m timeout"
    record("kustomization-build-failed", flux_app.ks())


def test_suspended_kustomization_fails_at_once(flux_app):
    flux_app.wait_ready()
    head = flux_app.ks()["status"]["lastAppliedRevision"]
    flux_app.cluster.kubectl("patch", "-n", "flux-system", "kustomization", flux_app.kustomization, "--type=merge",
                             "-p", '{"spec":{"suspend":true}}')
    result = flux_wait(flux_app, head)
    assert result.returncode == 1
    assert f"Kustomization flux-system/{flux_app.kustomization} is suspended" in result.stderr
    record("kustomization-suspended", flux_app.ks())


def test_revision_that_never_arrives_times_out_with_diagnostics(flux_app):
    flux_app.wait_ready()
    never = "0123456789abcdef0123456789abcdef01234567"
    result = flux_wait(flux_app, f"main@sha1:{never}", timeout="12s")
    assert result.returncode == 1
    assert f"timed out waiting for Kustomization flux-system/{flux_app.kustomization} to apply 0123456789ab" in result.stderr
    assert f"GitRepository {flux_app.name}:" in result.stderr and "Ready=True" in result.stderr
    record("gitrepository-behind", flux_app.gitrepo())


def test_apiserver_restart_during_the_wait_is_survived(flux_app, tmp_path):
    """Start waiting for a commit not pushed yet, restart the apiserver, then push: the wait ends well."""
    flux_app.wait_ready()
    work, sha = commit_locally(flux_app, tmp_path, "envs/prod/drone-service/kustomization.yaml",
                               flux_app_kustomization(flux_app).replace("newTag: 1.0.4", "newTag: 1.0.9"), "1.0.9")
    flux_app.cluster.publish_image(f"{IMAGE}:1.0.9")
    waiter = subprocess.Popen([str(STEP), "flux-wait", "--kustomization", flux_app.kustomization, "--revision", sha,
                               "--timeout", "3m", "--kubeconfig", str(flux_app.cluster.kubeconfig)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # the step is now re-asking the source, which keeps fetching the old head
    flux_app.cluster.stop_apiserver()
    time.sleep(3)
    flux_app.cluster.start_apiserver()
    run("git", "-C", str(work), "push", "--quiet", "origin", "main")
    out, err = waiter.communicate(timeout=200)
    assert waiter.returncode == 0, err
    assert f"applied-revision=main@sha1:{sha}" in out
    assert "resuming" in err  # it noticed the lost connection and carried on
    assert "asked again" in err  # the source fetched before the push was visible
    assert flux_app.image() == f"{IMAGE}:1.0.9"


def flux_app_kustomization(app) -> str:
    return run("git", "--git-dir", str(app.cluster.git_root / f"{app.name}.git"), "show",
               "main:envs/prod/drone-service/kustomization.yaml").stdout


def test_the_tasks_rbac_is_enough_and_no_more(flux_app, tmp_path):
    """Run the step as the ServiceAccount from rbac.yaml, with a token the apiserver issued for it."""
    cluster = flux_app.cluster
    rbac = Path(__file__).resolve().parents[2] / "tasks/druppie-flux-reconcile-wait/0.1/rbac.yaml"
    cluster.kubectl("create", "namespace", "ci", check=False)
    cluster.kubectl("apply", "-f", str(rbac))
    sa = "system:serviceaccount:ci:druppie-flux-wait"
    for verb in ("get", "list", "watch", "patch"):
        assert cluster.kubectl("auth", "can-i", verb, "kustomizations.kustomize.toolkit.fluxcd.io", "-n",
                               "flux-system", "--as", sa, check=False).stdout.strip() == "yes"
    for args in (("delete", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system"),
                 ("get", "secrets", "-n", "flux-system"), ("patch", "deployments", "-n", flux_app.namespace)):
        assert cluster.kubectl("auth", "can-i", *args, "--as", sa, check=False).stdout.strip() == "no"
    token = cluster.kubectl("create", "token", "druppie-flux-wait", "-n", "ci").stdout.strip()
    config = json.loads(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    kubeconfig = tmp_path / "sa-kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    flux_app.wait_ready()
    revision = tag_commit(flux_app, "1.0.6")
    result = subprocess.run([str(STEP), "flux-wait", "--kustomization", flux_app.kustomization, "--revision",
                             revision, "--timeout", "2m", "--kubeconfig", str(kubeconfig)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"applied-revision={revision}" in result.stdout
    assert token not in result.stdout + result.stderr


def test_kustomization_without_health_checks_is_warned_about(flux_app):
    flux_app.cluster.kubectl("patch", "-n", "flux-system", "kustomization", flux_app.kustomization, "--type=merge",
                             "-p", '{"spec":{"wait":false}}')
    revision = tag_commit(flux_app, "1.0.7")
    result = flux_wait(flux_app, revision)
    assert result.returncode == 0, result.stderr
    assert 'has neither wait nor healthChecks: Ready means "applied", not "healthy"' in result.stderr
    assert f"applied-revision={revision}" in result.stdout


def test_newer_revision_containing_the_target_counts_when_repo_url_proves_it(flux_app):
    flux_app.wait_ready()
    target = tag_commit(flux_app, "1.1.0")
    newer = tag_commit(flux_app, "1.1.1")  # another pipeline landed on top before we waited
    proved = flux_wait(flux_app, target)  # flux_wait passes --repo-url
    assert proved.returncode == 0, proved.stderr
    assert f"applied-revision={newer}" in proved.stdout
    assert "which contains the target" in proved.stderr

    unproved = subprocess.run([str(STEP), "flux-wait", "--kustomization", flux_app.kustomization, "--revision",
                               target, "--timeout", "8s", "--kubeconfig", str(flux_app.cluster.kubeconfig)],
                              capture_output=True, text=True)
    assert unproved.returncode == 1 and "timed out" in unproved.stderr  # without the repo, only the exact commit counts
