"""flux-wait against real Flux controllers: exact revision, fail fast, suspended, timeout, apiserver restart,
stale failures, parallel waits, and the ServiceAccount's admission policy.

With DRUPPIE_RECORD_FIXTURES=1 the status objects seen here are written to
tests/fixtures/flux-status/, which the unit tests of the decision logic read.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from localcluster.gitserver import COMMIT_ENV, run
from testbed.fluxapp import condition
from testbed.kubewatch import KubectlWatch
from tests.support.e2e import wait_for
from tests.support.paths import STEP

IMAGE = "registry.example/druppie/drone-service"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flux-status"
ROOT = Path(__file__).resolve().parents[2]


def grant_flux_wait(cluster, namespace: str = "ci") -> None:
    """What the platform installs (install/cluster) and grants `ci` (flux/druppie-apps), and the
    task's own ServiceAccount (its rbac.yaml, through the catalog's kustomization)."""
    cluster.kubectl("create", "namespace", namespace, check=False)
    cluster.kubectl("apply", "-k", str(ROOT / "install/cluster"))
    cluster.kubectl("apply", "-n", namespace, "-f", str(ROOT / "tasks/druppie-flux-reconcile-wait/0.1/rbac.yaml"))
    cluster.kubectl("apply", "-f", str(ROOT / "flux/druppie-apps/rbac-flux-reconcile-wait.yaml"))


def record(name: str, obj: dict) -> None:
    if os.environ.get("DRUPPIE_RECORD_FIXTURES") == "1":
        FIXTURES.mkdir(parents=True, exist_ok=True)
        obj = json.loads(json.dumps(obj))
        obj.get("metadata", {}).pop("managedFields", None)
        (FIXTURES / f"{name}.json").write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def flux_wait(app, revision: str, *extra: str, timeout: str = "2m") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(STEP),
            "flux-wait",
            "--kustomization",
            app.kustomization,
            "--revision",
            revision,
            "--timeout",
            timeout,
            "--kubeconfig",
            str(app.cluster.kubeconfig),
            "--repo-url",
            app.repo_url,
            *extra,
        ],
        capture_output=True,
        text=True,
    )


def tag_commit(app, tag: str) -> str:
    """What CI does: push the image, then commit its tag to the GitOps repo. The image is a stand-in:
    its tag must be one no other module builds (test_ci_tasks builds the README's 1.0.5 meanwhile)."""
    app.cluster.publish_image(f"{IMAGE}:{tag}")
    step = subprocess.run(
        [
            str(STEP),
            "tag-commit",
            "--repo-url",
            app.repo_url,
            "--path",
            "envs/prod/drone-service",
            "--image",
            IMAGE,
            "--tag",
            tag,
        ],
        capture_output=True,
        text=True,
    )
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
    revision = tag_commit(flux_app, "1.2.5")
    result = flux_wait(flux_app, revision)
    seen = [obj for _, obj in recorder.stop()]
    assert result.returncode == 0, result.stderr
    assert f"applied-revision={revision}" in result.stdout and "reason=ReconciliationSucceeded" in result.stdout
    # Each progress step Flux reports is printed once, with the elapsed time.
    for step in (
        f"GitRepository flux-system/{flux_app.name}: source has revision {revision}",
        f"Kustomization flux-system/{flux_app.kustomization}: Running health checks for revision {revision}",
        f"Kustomization flux-system/{flux_app.kustomization}: applied {revision} and Ready",
    ):
        assert len([line for line in result.stderr.splitlines() if step in line]) == 1, step
    assert flux_app.image() == f"{IMAGE}:1.2.5"
    ks = flux_app.ks()
    assert ks["status"]["lastAppliedRevision"] == revision
    record("gitrepository-ready", flux_app.gitrepo())
    ready = [
        o
        for o in seen
        if condition(o, "Ready").get("status") == "True" and o["status"].get("lastAppliedRevision") == revision
    ]
    assert ready, "the watch saw the Kustomization Ready at the revision"
    # The attempt that handled our request (the first Ready may be from one the new artifact started).
    handled = wait_for(
        "the Kustomization to have handled a request",
        lambda: (
            (k := flux_app.ks())["status"].get("lastHandledReconcileAt")
            and condition(k, "Ready").get("status") == "True"
            and k["status"]["lastAppliedRevision"] == revision
            and k
        ),
        timeout=30,
    )
    record("kustomization-ready", handled)
    messages = {}
    for obj in seen:  # one object per distinct progress message: fetching, building, health checks
        if condition(obj, "Reconciling").get("status") == "True":
            messages.setdefault(condition(obj, "Reconciling")["message"].split(" for ")[0], obj)
    for i, obj in enumerate(messages.values()):
        record(f"kustomization-progressing-{i}", obj)


def test_broken_manifest_fails_fast_with_fluxs_message(flux_app, tmp_path):
    flux_app.wait_ready()
    work, broken = commit_locally(
        flux_app,
        tmp_path,
        "apps/drone-service/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nspec: [\n",
        "break it",
    )
    run("git", "-C", str(work), "push", "--quiet", "origin", "main")
    started = time.monotonic()
    result = flux_wait(flux_app, broken, timeout="3m")
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: Kustomization flux-system/{flux_app.kustomization} failed for revision "
        f"main@sha1:{broken}: BuildFailed:"
    )
    assert "deployment.yaml" in last
    assert elapsed < 120, "must not wait out its 3m timeout"
    record("kustomization-build-failed", flux_app.ks())


def test_suspended_kustomization_fails_at_once(flux_app):
    flux_app.wait_ready()
    head = flux_app.ks()["status"]["lastAppliedRevision"]
    flux_app.cluster.kubectl(
        "patch",
        "-n",
        "flux-system",
        "kustomization",
        flux_app.kustomization,
        "--type=merge",
        "-p",
        '{"spec":{"suspend":true}}',
    )
    result = flux_wait(flux_app, head)
    assert result.returncode == 1
    assert f"Kustomization flux-system/{flux_app.kustomization} is suspended" in result.stderr
    record("kustomization-suspended", flux_app.ks())


def test_revision_that_never_arrives_times_out_with_diagnostics(flux_app):
    flux_app.wait_ready()
    never = "0123456789abcdef0123456789abcdef01234567"
    result = flux_wait(flux_app, f"main@sha1:{never}", timeout="12s")
    assert result.returncode == 1
    assert (
        f"timed out waiting for Kustomization flux-system/{flux_app.kustomization} to apply 0123456789ab"
        in result.stderr
    )
    assert f"GitRepository {flux_app.name}:" in result.stderr and "Ready=True" in result.stderr
    record("gitrepository-behind", flux_app.gitrepo())


@pytest.mark.exclusive  # restarts the API server every other test talks to
def test_apiserver_restart_during_the_wait_is_survived(flux_app, tmp_path):
    """Start waiting for a commit not pushed yet, restart the apiserver, then push: the wait ends well."""
    flux_app.wait_ready()
    work, sha = commit_locally(
        flux_app,
        tmp_path,
        "envs/prod/drone-service/kustomization.yaml",
        flux_app_kustomization(flux_app).replace("newTag: 1.0.4", "newTag: 1.0.9"),
        "1.0.9",
    )
    flux_app.cluster.publish_image(f"{IMAGE}:1.0.9")
    waiter = subprocess.Popen(
        [
            str(STEP),
            "flux-wait",
            "--kustomization",
            flux_app.kustomization,
            "--revision",
            sha,
            "--timeout",
            "3m",
            "--kubeconfig",
            str(flux_app.cluster.kubeconfig),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
    return run(
        "git",
        "--git-dir",
        str(app.cluster.git_root / f"{app.name}.git"),
        "show",
        "main:envs/prod/drone-service/kustomization.yaml",
    ).stdout


# In group ci (tests.support.e2e_groups.CI_GROUP_TESTS): it uses ci's druppie-flux-wait.
def test_the_tasks_rbac_is_enough_and_no_more(flux_app, tmp_path):
    """Run the step as the ServiceAccount from rbac.yaml, with a token the apiserver issued for it."""
    cluster = flux_app.cluster
    grant_flux_wait(cluster)
    sa = "system:serviceaccount:ci:druppie-flux-wait"
    for verb in ("get", "list", "watch", "patch"):
        assert (
            cluster.kubectl(
                "auth",
                "can-i",
                verb,
                "kustomizations.kustomize.toolkit.fluxcd.io",
                "-n",
                "flux-system",
                "--as",
                sa,
                check=False,
            ).stdout.strip()
            == "yes"
        )
    for args in (
        ("delete", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system"),
        ("get", "secrets", "-n", "flux-system"),
        ("patch", "deployments", "-n", flux_app.namespace),
    ):
        assert cluster.kubectl("auth", "can-i", *args, "--as", sa, check=False).stdout.strip() == "no"
    token = cluster.kubectl("create", "token", "druppie-flux-wait", "-n", "ci").stdout.strip()
    config = json.loads(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    kubeconfig = tmp_path / "sa-kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    flux_app.wait_ready()
    revision = tag_commit(flux_app, "1.0.6")
    result = subprocess.run(
        [
            str(STEP),
            "flux-wait",
            "--kustomization",
            flux_app.kustomization,
            "--revision",
            revision,
            "--timeout",
            "2m",
            "--kubeconfig",
            str(kubeconfig),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert f"applied-revision={revision}" in result.stdout
    assert token not in result.stdout + result.stderr


def test_kustomization_without_health_checks_is_warned_about(flux_app):
    flux_app.cluster.kubectl(
        "patch",
        "-n",
        "flux-system",
        "kustomization",
        flux_app.kustomization,
        "--type=merge",
        "-p",
        '{"spec":{"wait":false}}',
    )
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

    # Without the repository nothing proves that the newer revision contains the target: the
    # source keeps reporting the newer one after our requests, so the older wait gives up, early.
    started = time.monotonic()
    unproved = subprocess.run(
        [
            str(STEP),
            "flux-wait",
            "--kustomization",
            flux_app.kustomization,
            "--revision",
            target,
            "--timeout",
            "2m",
            "--kubeconfig",
            str(flux_app.cluster.kubeconfig),
        ],
        capture_output=True,
        text=True,
    )
    assert unproved.returncode == 1, unproved.stderr
    assert f"superseded by {newer}" in unproved.stderr and "pass --repo-url" in unproved.stderr
    assert time.monotonic() - started < 75, "fails well before its 2m timeout"


def start_wait(app, revision: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(STEP),
            "flux-wait",
            "--kustomization",
            app.kustomization,
            "--revision",
            revision,
            "--timeout",
            "2m",
            "--kubeconfig",
            str(app.cluster.kubeconfig),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_parallel_waits_for_consecutive_commits(flux_app):
    """Two pipelines finish together: each waits for its own commit; the second landed on top of the first."""
    flux_app.wait_ready()
    older, newer = tag_commit(flux_app, "1.4.0"), tag_commit(flux_app, "1.4.1")
    # The same repository by another name: allowed, but flux-wait says it differs from spec.url.
    # (curl removes the dot segment when it fetches, so the server sees the same path.)
    other_name = flux_app.repo_url.replace(f"/{flux_app.name}.git", f"/./{flux_app.name}.git")
    waits = [
        start_wait(flux_app, older, "--repo-url", other_name),
        start_wait(flux_app, newer, "--repo-url", flux_app.repo_url),
    ]
    results = [wait.communicate(timeout=150) for wait in waits]
    for wait, (out, err) in zip(waits, results, strict=True):
        assert wait.returncode == 0, err
        assert f"applied-revision={newer}" in out  # the older one's commit is contained in the newer
    assert (
        f"warning: --repo-url {other_name} is not GitRepository flux-system/{flux_app.name}'s spec.url" in results[0][1]
    )
    assert "warning: --repo-url" not in results[1][1]

    older, newer = tag_commit(flux_app, "1.4.2"), tag_commit(flux_app, "1.4.3")
    started = time.monotonic()
    waits = [start_wait(flux_app, rev) for rev in (older, newer)]
    (_, older_err), (newer_out, newer_err) = (wait.communicate(timeout=150) for wait in waits)
    assert waits[1].returncode == 0, newer_err
    assert f"applied-revision={newer}" in newer_out
    assert waits[0].returncode == 1, older_err
    last = older_err.strip().splitlines()[-1]
    assert f"superseded by {newer}" in last and "pass --repo-url" in last
    assert time.monotonic() - started < 75, "the older one fails well before its 2m timeout"


def test_rerun_for_the_same_revision_after_an_outside_fix_succeeds(flux_app, tmp_path):
    """A rollout fails for a cause outside git (the image was not pushed yet); once it is pushed, the
    pipeline is re-run: tag-commit changes nothing (same revision), and flux-wait must wait for the
    reconcile it asks for instead of failing on the old Ready=False."""
    cluster = flux_app.cluster
    flux_app.wait_ready()
    # Give up on an unpullable image in seconds, not in the default 10 minutes; and no retries of
    # Flux's own in between, so that only a reconcile flux-wait asks for can end the old failure.
    cluster.kubectl(
        "patch",
        "-n",
        "flux-system",
        "kustomization",
        flux_app.kustomization,
        "--type=merge",
        "-p",
        '{"spec":{"timeout":"20s","interval":"10m","retryInterval":"10m"}}',
    )
    deployment = flux_app_file(flux_app, "apps/drone-service/deployment.yaml")
    work, _ = commit_locally(
        flux_app,
        tmp_path,
        "apps/drone-service/deployment.yaml",
        deployment.replace("  replicas: 2\n", "  replicas: 1\n  progressDeadlineSeconds: 10\n"),
        "fail fast",
    )
    run("git", "-C", str(work), "push", "--quiet", "origin", "main")
    tag = [
        str(STEP),
        "tag-commit",
        "--repo-url",
        flux_app.repo_url,
        "--path",
        "envs/prod/drone-service",
        "--image",
        IMAGE,
        "--tag",
        "1.3.0",
    ]
    first = subprocess.run(tag, capture_output=True, text=True)  # the image is not in the registry yet
    assert first.returncode == 0, first.stderr
    revision = first.stdout.split("revision=")[1].split()[0]
    failed = flux_wait(flux_app, revision, timeout="3m")
    assert failed.returncode == 1, failed.stderr
    assert f"failed for revision {revision}: HealthCheckFailed:" in failed.stderr.strip().splitlines()[-1]
    record("kustomization-health-check-failed", flux_app.ks())

    cluster.publish_image(f"{IMAGE}:1.3.0")  # the fix, outside git
    # The kubelet backs off image pulls for minutes; a new pod pulls at once.
    cluster.kubectl(
        "delete", "pod", "-n", flux_app.namespace, "-l", "app.kubernetes.io/name=drone-service", "--wait=false"
    )
    again = subprocess.run(tag, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "changed=false" in again.stdout and f"revision={revision}" in again.stdout
    assert condition(flux_app.ks(), "Ready")["reason"] == "HealthCheckFailed"  # the old failure is still there
    result = flux_wait(flux_app, revision, timeout="3m")
    assert result.returncode == 0, result.stderr
    assert f"applied-revision={revision}" in result.stdout


def flux_app_file(app, path: str) -> str:
    return run("git", "--git-dir", str(app.cluster.git_root / f"{app.name}.git"), "show", f"main:{path}").stdout


def test_missing_path_fails_fast_with_artifact_failed(flux_app, tmp_path):
    flux_app.wait_ready()
    work = tmp_path / "clone"
    run("git", "clone", "--quiet", flux_app.repo_url, str(work))
    run("git", "-C", str(work), "rm", "--quiet", "-r", "envs/prod/drone-service")
    run("git", "-C", str(work), "commit", "--quiet", "-m", "remove the app's folder", env=COMMIT_ENV)
    run("git", "-C", str(work), "push", "--quiet", "origin", "main")
    sha = run("git", "-C", str(work), "rev-parse", "HEAD").stdout.strip()
    result = flux_wait(flux_app, sha, timeout="2m")
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"failed for revision main@sha1:{sha}: ArtifactFailed: kustomization path not found" in last
    record("kustomization-artifact-failed", flux_app.ks())


def test_manifest_the_api_server_rejects_fails_fast_with_reconciliation_failed(flux_app, tmp_path):
    flux_app.wait_ready()
    deployment = flux_app_file(flux_app, "apps/drone-service/deployment.yaml")
    work, sha = commit_locally(
        flux_app,
        tmp_path,
        "apps/drone-service/deployment.yaml",
        deployment.replace("replicas: 2", "replicas: -1"),
        "invalid replicas",
    )
    run("git", "-C", str(work), "push", "--quiet", "origin", "main")
    result = flux_wait(flux_app, sha, timeout="2m")
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"failed for revision main@sha1:{sha}: ReconciliationFailed:" in last and "replicas" in last
    record("kustomization-reconciliation-failed", flux_app.ks())


# In group ci (tests.support.e2e_groups.CI_GROUP_TESTS): it uses ci's druppie-flux-wait.
def test_admission_policy_lets_the_service_account_only_request_reconciles(flux_app):
    """RBAC grants patch; the ValidatingAdmissionPolicy of install/cluster narrows it to the requestedAt
    annotation, on objects whose ci.druppie.io/flux-wait-namespaces annotation lists the caller's namespace."""
    cluster = flux_app.cluster
    grant_flux_wait(cluster)
    policy = cluster.get_json("validatingadmissionpolicy", "druppie-flux-wait-annotate-only")
    assert not policy.get("status", {}).get("typeChecking", {}).get("expressionWarnings"), policy["status"]

    def patch(kind: str, name: str, body: dict, *extra: str, team: str = "ci"):
        return cluster.kubectl(
            "patch",
            "-n",
            "flux-system",
            kind,
            name,
            "--type=merge",
            "-p",
            json.dumps(body),
            "--as",
            f"system:serviceaccount:{team}:druppie-flux-wait",
            *extra,
            check=False,
        )

    repo, ks = ("gitrepository", flux_app.name), ("kustomization", flux_app.kustomization)
    evil = {"spec": {"url": "https://attacker.example/apps.git"}}
    # The policy is enforced once the API server has loaded it (within seconds).
    wait_for("the admission policy to deny a spec change", lambda: patch(*repo, evil, "--dry-run=server").returncode)
    stamp = "2026-01-02T03:04:05.000000Z"
    for target in (repo, ks):
        allowed = patch(*target, {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}})
        assert allowed.returncode == 0, allowed.stderr
    assert flux_app.gitrepo()["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"] == stamp
    for target, body, what in (
        (repo, evil, "spec"),
        (repo, {"spec": {"suspend": True}}, "spec"),
        (ks, {"spec": {"suspend": True}}, "spec"),
        (ks, {"spec": {"path": "./envs/other"}}, "spec"),
        (ks, {"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}}}, "annotations"),
        (
            repo,
            {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp + "x", "other": "1"}}},
            "annotations",
        ),
        (ks, {"metadata": {"labels": {"x": "y"}}}, "labels"),
    ):
        denied = patch(*target, body)
        assert denied.returncode != 0, (target, body)
        assert "druppie-flux-wait may only set the reconcile.fluxcd.io/requestedAt annotation, not" in denied.stderr
        assert what in denied.stderr.rsplit(", not ", 1)[1]
    # Nor may it add its namespace to (or strike another team's from) the list of who may reconcile.
    for value in ("ci,team-sluizen", ""):
        body = {"metadata": {"annotations": {"ci.druppie.io/flux-wait-namespaces": value}}}
        denied = patch(*ks, body)
        assert denied.returncode != 0 and "not other annotations" in denied.stderr, denied.stderr
    # Another team's druppie-flux-wait, bound to the same ClusterRole, may reconcile nothing listed for ci only.
    # Its namespace is this test's own (test_teams installs team-dijken and team-gemalen) and goes when it is done.
    outsider = "team-sluizen"
    cluster.kubectl("create", "namespace", outsider)
    try:
        cluster.kubectl("create", "serviceaccount", "druppie-flux-wait", "-n", outsider)
        cluster.kubectl("create", "rolebinding", f"druppie-flux-wait-{outsider}", "-n", "flux-system",
                        "--clusterrole", "druppie-flux-wait",
                        "--serviceaccount", f"{outsider}:druppie-flux-wait")  # fmt: skip
        request = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp + "g"}}}
        other = patch(*ks, request, team=outsider)
    finally:
        cluster.kubectl("delete", "rolebinding", f"druppie-flux-wait-{outsider}", "-n", "flux-system",
                        "--ignore-not-found", "--wait=false")  # fmt: skip
        cluster.kubectl("delete", "namespace", outsider, "--wait=false")
    assert other.returncode != 0, other.stdout
    assert (
        f"druppie-flux-wait of namespace {outsider} may not reconcile Kustomization {flux_app.kustomization}: "
        f"its annotation ci.druppie.io/flux-wait-namespaces does not list {outsider}"
    ) in other.stderr
    assert flux_app.ks()["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"] == stamp
    assert flux_app.gitrepo()["spec"]["url"] == flux_app.repo_url and not flux_app.ks()["spec"].get("suspend")
    # An administrator is not bound by it.
    assert (
        cluster.kubectl(
            "patch",
            "-n",
            "flux-system",
            "kustomization",
            flux_app.kustomization,
            "--type=merge",
            "-p",
            '{"spec":{"suspend":true}}',
            "--dry-run=server",
            check=False,
        ).returncode
        == 0
    )


def test_oci_source_is_refused_at_once(flux_app):
    """A commit sha can never match an OCIRepository's digest revision: say so instead of timing out."""
    ks = flux_app.ks()
    oci = {
        "apiVersion": ks["apiVersion"],
        "kind": "Kustomization",
        "metadata": {"name": f"{flux_app.kustomization}-oci", "namespace": "flux-system"},
        "spec": {**ks["spec"], "sourceRef": {"kind": "OCIRepository", "name": "druppie-apps-oci"}},
    }
    flux_app.cluster.kubectl("apply", "-f", "-", input=json.dumps(oci))
    started = time.monotonic()
    result = subprocess.run(
        [
            str(STEP),
            "flux-wait",
            "--kustomization",
            oci["metadata"]["name"],
            "--revision",
            "0123456789abcdef0123456789abcdef01234567",
            "--timeout",
            "1m",
            "--kubeconfig",
            str(flux_app.cluster.kubeconfig),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: Kustomization flux-system/{oci['metadata']['name']} takes its manifests from OCIRepository "
        "flux-system/druppie-apps-oci, whose revisions are digests, not git commits: flux-wait supports "
        "GitRepository sources only"
    )
    assert time.monotonic() - started < 20
    flux_app.cluster.kubectl("delete", "kustomization", "-n", "flux-system", oci["metadata"]["name"])


UNDELETABLE_POLICY = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": "e2e-undeletable-configmaps"},
    "spec": {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["configmaps"]}
            ]
        },
        "matchConditions": [
            {
                "name": "labelled",
                "expression": "has(oldObject.metadata.labels) && 'e2e-undeletable' in oldObject.metadata.labels",
            }
        ],
        "validations": [{"expression": "false", "message": "e2e: this ConfigMap may not be deleted"}],
    },
}


def test_prune_the_api_server_refuses_fails_fast_with_prune_failed(flux_app, tmp_path):
    """Flux must delete what left git; an admission policy refuses that delete, as a protected object would."""
    cluster = flux_app.cluster
    flux_app.wait_ready()
    work = tmp_path / "clone"
    run("git", "clone", "--quiet", flux_app.repo_url, str(work))
    app_dir = work / "envs/prod/drone-service"
    (app_dir / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: drone-service-extra\n"
        '  labels:\n    e2e-undeletable: "true"\ndata:\n  a: b\n'
    )
    kustomization = (app_dir / "kustomization.yaml").read_text()
    (app_dir / "kustomization.yaml").write_text(
        kustomization.replace("resources:\n", "resources:\n  - configmap.yaml\n")
    )
    run("git", "-C", str(work), "add", ".")
    run("git", "-C", str(work), "commit", "--quiet", "-m", "add a ConfigMap", env=COMMIT_ENV)
    run("git", "-C", str(work), "push", "--quiet", "origin", "main")
    added = run("git", "-C", str(work), "rev-parse", "HEAD").stdout.strip()
    assert flux_wait(flux_app, added).returncode == 0
    cluster.kubectl("apply", "-f", "-", input=json.dumps(UNDELETABLE_POLICY))
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "e2e-undeletable-configmaps"},
        "spec": {"policyName": "e2e-undeletable-configmaps", "validationActions": ["Deny"]},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(binding))
    try:
        wait_for(
            "the API server to refuse the delete",
            lambda: (
                cluster.kubectl(
                    "delete",
                    "configmap",
                    "-n",
                    flux_app.namespace,
                    "drone-service-extra",
                    "--dry-run=server",
                    check=False,
                ).returncode
            ),
        )
        (app_dir / "kustomization.yaml").write_text(kustomization)
        run("git", "-C", str(work), "rm", "--quiet", "envs/prod/drone-service/configmap.yaml")
        run("git", "-C", str(work), "commit", "--quiet", "-am", "drop the ConfigMap", env=COMMIT_ENV)
        run("git", "-C", str(work), "push", "--quiet", "origin", "main")
        removed = run("git", "-C", str(work), "rev-parse", "HEAD").stdout.strip()
        result = flux_wait(flux_app, removed)
        assert result.returncode == 1, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert f"failed for revision main@sha1:{removed}: PruneFailed:" in last
        assert "e2e: this ConfigMap may not be deleted" in last
        record("kustomization-prune-failed", flux_app.ks())
    finally:
        cluster.kubectl(
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            "e2e-undeletable-configmaps",
            check=False,
        )


def test_source_that_cannot_fetch_fails_fast_with_fetch_failed(flux_app):
    flux_app.wait_ready()
    head = flux_app.ks()["status"]["lastAppliedRevision"]
    missing = flux_app.repo_url.replace(f"/{flux_app.name}.git", "/no-such-repo.git")
    flux_app.cluster.kubectl(
        "patch",
        "-n",
        "flux-system",
        "gitrepository",
        flux_app.name,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"url": missing}}),
    )
    result = flux_wait(flux_app, "0123456789abcdef0123456789abcdef01234567", timeout="2m")
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: GitRepository flux-system/{flux_app.name} failed: GitOperationFailed:"), (
        result.stderr
    )
    record("gitrepository-fetch-failed", flux_app.gitrepo())
    assert flux_app.ks()["status"]["lastAppliedRevision"] == head


def test_kustomization_stalled_on_an_invalid_health_check_expression_fails_at_once(flux_app):
    flux_app.wait_ready()
    head = flux_app.ks()["status"]["lastAppliedRevision"]
    bad = {"spec": {"healthCheckExprs": [{"apiVersion": "apps/v1", "kind": "Deployment", "current": "status.(("}]}}
    flux_app.cluster.kubectl(
        "patch", "-n", "flux-system", "kustomization", flux_app.kustomization, "--type=merge", "-p", json.dumps(bad)
    )
    wait_for("the Kustomization to stall", lambda: condition(flux_app.ks(), "Stalled").get("status") == "True")
    result = flux_wait(flux_app, head)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"failed for revision {head}: InvalidCELExpression:" in last, result.stderr
    record("kustomization-stalled", flux_app.ks())


def _add_to_the_apps_folder(app, tmp_path: Path, name: str, content: str) -> str:
    """Commit ``content`` as a new file of the app's folder, listed in its kustomization, and push it."""
    folder = "envs/prod/drone-service"
    kustomization = flux_app_file(app, f"{folder}/kustomization.yaml")
    work = tmp_path / "clone"
    run("git", "clone", "--quiet", app.repo_url, str(work))
    (work / folder / name).write_text(content)
    (work / folder / "kustomization.yaml").write_text(
        kustomization.replace("resources:\n", f"resources:\n  - {name}\n")
    )
    run("git", "-C", str(work), "add", "-A")
    run("git", "-C", str(work), "commit", "--quiet", "-m", f"add {name}", env=COMMIT_ENV)
    run("git", "-C", str(work), "push", "--quiet", "origin", "main")
    return run("git", "-C", str(work), "rev-parse", "HEAD").stdout.strip()


ESCALATIONS = {
    "cluster-role-binding": ("ClusterRoleBinding",
                             "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"
                             "metadata:\n  name: {name}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n"
                             "  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n  - kind: ServiceAccount\n"
                             "    name: default\n    namespace: {namespace}\n"),
    # kustomize renames a Namespace to the target namespace, so a namespaced object never leaves it;
    # what remains is anything cluster-wide.
    "cluster-role": ("ClusterRole", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n"
                     "  name: {name}\nrules:\n  - apiGroups: ['*']\n    resources: ['*']\n    verbs: ['*']\n"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(ESCALATIONS))
def test_a_commit_that_reaches_beyond_the_apps_namespace_is_refused_and_flux_wait_names_it(flux_app, tmp_path, case):
    """Pushing to druppie-apps is not cluster-admin: kustomize-controller applies the app's folder as
    the Kustomization's own ServiceAccount (flux/'s tenant file: admin of the app's namespace only)."""
    flux_app.wait_ready()
    kind, template = ESCALATIONS[case]
    name = f"evil-{flux_app.namespace}"
    sha = _add_to_the_apps_folder(
        flux_app, tmp_path, "evil.yaml", template.format(name=name, namespace=flux_app.namespace)
    )
    started = time.monotonic()
    result = flux_wait(flux_app, sha, timeout="3m")
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"failed for revision main@sha1:{sha}: ReconciliationFailed:" in last, last
    assert f"{kind}/{name}" in last and "forbidden" in last, last
    assert f"system:serviceaccount:flux-system:{flux_app.kustomization}" in last, last
    assert time.monotonic() - started < 120, "must fail fast, not wait out its timeout"
    assert flux_app.cluster.kubectl("get", kind.lower(), name, check=False).returncode != 0  # nothing created
    record(f"kustomization-forbidden-{case}", flux_app.ks())
