"""The seed's promise, tested on real Flux controllers: Flux pulls the commit, applies it, corrects drift."""

from __future__ import annotations

import json
import subprocess

from localcluster.gitserver import run
from testbed.fluxapp import FLUX_DIR, condition, environments, make_flux_app
from tests.support.e2e import wait_for
from tests.support.paths import STEP

IMAGE = "registry.example/druppie/drone-service"


def available(deployment: dict) -> bool:
    return condition(deployment, "Available").get("status") == "True"


def test_flux_applies_the_shipped_setup_and_the_deployment_becomes_available(cluster):
    """The flux/ manifests as shipped (names, namespace productie, path), with the git URL pointed here."""
    app = make_flux_app(cluster, "druppie-apps", "productie", "drone-service-prod", "1m", "5m")
    ks = app.wait_ready(timeout=120)
    head = run("git", "--git-dir", str(cluster.git_root / "druppie-apps.git"), "rev-parse", "main").stdout.strip()
    assert ks["status"]["lastAppliedRevision"] == f"main@sha1:{head}"
    assert condition(ks, "Ready")["reason"] == "ReconciliationSucceeded"
    dep = wait_for("drone-service Available", lambda: (d := app.deployment()) and available(d) and d)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:1.0.4"
    assert dep["metadata"]["labels"]["app.kubernetes.io/part-of"] == "druppie"  # the kustomization's labels


def test_tag_commit_is_applied_and_the_image_changes(flux_app):
    flux_app.wait_ready()
    flux_app.cluster.publish_image(f"{IMAGE}:1.0.5")  # CI pushes the image before it commits the tag
    step = subprocess.run(
        [
            str(STEP),
            "tag-commit",
            "--repo-url",
            flux_app.repo_url,
            "--path",
            "envs/prod/drone-service",
            "--image",
            IMAGE,
            "--tag",
            "1.0.5",
        ],
        capture_output=True,
        text=True,
    )
    assert step.returncode == 0, step.stderr
    revision = step.stdout.split("revision=")[1].split()[0]
    flux_app.request_reconcile()
    flux_app.wait_ready(revision=revision.split("@")[1])
    assert flux_app.image() == f"{IMAGE}:1.0.5"
    wait_for("rolled-out Deployment Available", lambda: available(flux_app.deployment()))


def test_drift_is_corrected(flux_app):
    flux_app.wait_ready()
    flux_app.cluster.kubectl(
        "set", "image", "-n", flux_app.namespace, "deployment/drone-service", f"drone-service={IMAGE}:6.6.6-hand-edit"
    )
    assert flux_app.image() == f"{IMAGE}:6.6.6-hand-edit"
    wait_for("Flux to restore the image from git", lambda: flux_app.image() == f"{IMAGE}:1.0.4", timeout=60)


def test_a_kustomization_without_its_service_account_applies_nothing(flux_app):
    """kustomize-controller runs locked down (flux/README.md step 5): the shipped Kustomization with
    its serviceAccountName taken out applies as flux-system's `default` ServiceAccount, which may
    create nothing, instead of with the controller's own rights."""
    flux_app.wait_ready()
    ks = flux_app.ks()
    target = f"{flux_app.namespace}-bare"
    bare = {
        "apiVersion": ks["apiVersion"],
        "kind": "Kustomization",
        "metadata": {"name": f"{flux_app.kustomization}-bare", "namespace": "flux-system"},
        "spec": {**{k: v for k, v in ks["spec"].items() if k != "serviceAccountName"}, "targetNamespace": target},
    }
    cluster = flux_app.cluster
    cluster.kubectl("create", "namespace", target)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(bare))
    try:

        def refused() -> dict | None:
            cond = condition(cluster.get_json("kustomization", "-n", "flux-system", bare["metadata"]["name"]), "Ready")
            return cond if cond.get("status") == "False" and "forbidden" in cond.get("message", "") else None

        cond = wait_for("Flux to refuse the Kustomization without a ServiceAccount", refused, timeout=90)
        assert 'User "system:serviceaccount:flux-system:default" cannot' in cond["message"], cond
        assert cluster.get_json("deployments", "-n", target)["items"] == []
    finally:
        cluster.kubectl("delete", "kustomization", "-n", "flux-system", bare["metadata"]["name"], "--wait=false")
        cluster.kubectl("delete", "namespace", target, "--wait=false")


def test_broken_manifest_makes_the_kustomization_not_ready_with_fluxs_reason(flux_app, tmp_path):
    flux_app.wait_ready()
    work = tmp_path / "clone"
    run("git", "clone", "--quiet", flux_app.repo_url, str(work))
    (work / "apps/drone-service/deployment.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\nspec: [\n")
    run(
        "git",
        "-C",
        str(work),
        "commit",
        "--quiet",
        "-am",
        "break it",
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        },
    )
    run("git", "-C", str(work), "push", "--quiet", "origin", "main")
    broken = run("git", "-C", str(work), "rev-parse", "HEAD").stdout.strip()
    flux_app.request_reconcile()

    def failed():
        ks = flux_app.ks()
        ready = condition(ks, "Ready")
        attempted = ks.get("status", {}).get("lastAttemptedRevision", "")
        return ready if ready.get("status") == "False" and attempted.endswith(broken) else None

    ready = wait_for("Ready=False for the broken revision", failed)
    assert ready["reason"] == "BuildFailed"
    assert "deployment.yaml" in ready["message"]
    assert flux_app.image() == f"{IMAGE}:1.0.4"  # the running app is untouched


def test_the_whole_shipped_flux_setup_is_accepted_by_the_api_server(cluster):
    """`kubectl apply -k flux/druppie-apps` as a user runs it, validated server-side against the real CRD
    schemas (the Receiver's from notification-controller's published API types)."""
    # A dry run creates no namespace, so the tenants' RoleBindings need theirs to exist already.
    for namespace in ("ci", *environments().values()):
        cluster.kubectl("create", "namespace", namespace, check=False)
    out = cluster.kubectl("apply", "-k", str(FLUX_DIR), "--dry-run=server").stdout
    for line in (
        "receiver.notification.toolkit.fluxcd.io/druppie-apps",
        "gitrepository.source.toolkit.fluxcd.io/druppie-apps",
        *(f"kustomization.kustomize.toolkit.fluxcd.io/drone-service-{env}" for env in ("test", "acceptatie", "prod")),
        *(f"rolebinding.rbac.authorization.k8s.io/flux-drone-service-{env}" for env in ("test", "acceptatie", "prod")),
        "rolebinding.rbac.authorization.k8s.io/druppie-flux-wait-ci",
    ):
        assert line in out
    # What the platform installs once per cluster (README), accepted too.
    out = cluster.kubectl("apply", "-k", str(FLUX_DIR.parents[1] / "install/cluster"), "--dry-run=server").stdout
    for line in (
        "clusterrole.rbac.authorization.k8s.io/druppie-flux-wait",
        "clusterrole.rbac.authorization.k8s.io/druppie-triggers-cluster-read",
        "validatingadmissionpolicy.admissionregistration.k8s.io/druppie-flux-wait-annotate-only",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/druppie-flux-wait-annotate-only",
    ):
        assert line in out
    bad = (FLUX_DIR / "receiver.yaml").read_text().replace("type: github", "type: carrier-pigeon")
    rejected = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=bad, check=False)
    assert rejected.returncode != 0 and "carrier-pigeon" in rejected.stderr
