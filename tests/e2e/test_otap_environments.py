"""The environments test, acceptatie and prod on real Flux (issue 18): flux/'s three Kustomizations
over examples/druppie-apps' overlays, each Ready and serving the real app in its own namespace; a
tag committed to one environment reaches that one only; a broken test does not hold productie (no
dependsOn, flux/README.md); each shipped tenant may write into its own namespace only; and build once:
druppie-promotion-gate's sample promotes to acceptatie exactly the digest test runs, and the gate
refuses another digest and an unhealthy test (as its ServiceAccount, which may only read).

The Kustomizations, tenants and namespaces are the shipped ones with the prefix ``otap-``, over a
copy of druppie-apps on the cluster's git server: the loop and other modules run the shipped
drone-service-prod in productie in the same session. Paths, specs and RBAC are as shipped. The
image is the loop's real drone-service 1.0.4 (the example's pause image serves nothing), copied
under this module's own repository: its tags never meet the loop's versions.

Its name sorts after test_loop.py on purpose: it needs the ``loop`` fixture, and test_flux_gitops.py
applies the shipped GitRepository ``druppie-apps`` pointed at the cluster's git server, which would
take the loop's druppie-apps away from it if the loop were set up before that module runs."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from localcluster.gitserver import COMMIT_ENV, run, seed_repo
from localcluster.process import http_request
from localcluster.toolchain import ROOT
from testbed.fluxapp import (
    EXAMPLE_APP,
    EXAMPLE_APPS,
    EXAMPLE_IMAGE,
    FLUX_DIR,
    FluxApp,
    app_files,
    condition,
    environments,
    load_flux,
    tenant,
)
from tests.support.e2e import Tekton, wait_for
from tests.support.paths import STEP

GATE_SAMPLE = ROOT / "tasks/druppie-promotion-gate/0.1/samples/promote-test-to-acceptatie.yaml"

PREFIX = "otap-"
REPLICAS = {"test": 1, "acceptatie": 1, "prod": 2}  # as the overlays set them
TAGS = ("1.0.4", "1.0.5", "1.0.6")  # all the same image: what matters here is which tag runs where


@dataclass
class Environments:
    apps: dict[str, FluxApp]  # environment -> its Kustomization and namespace
    image: str  # what every overlay deploys (newName), tagged TAGS

    @property
    def repo_url(self) -> str:
        return self.apps["prod"].repo_url

    def head(self) -> str:
        cluster, name = self.apps["prod"].cluster, self.apps["prod"].name
        return run("git", "--git-dir", str(cluster.git_root / f"{name}.git"), "rev-parse", "main").stdout.strip()

    def reconcile_all(self) -> None:
        for app in self.apps.values():
            app.request_reconcile()


@pytest.fixture(scope="module")
def otap(cluster, loop, tmp_path_factory) -> Iterator[Environments]:
    image = f"{cluster.registry}/otap/{EXAMPLE_APP}"
    for tag in TAGS:
        subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                        f"docker://{loop.image}:1.0.4", f"docker://{image}:{tag}"],
                       check=True, capture_output=True)  # fmt: skip
    tree = tmp_path_factory.mktemp("otap") / "druppie-apps"
    shutil.copytree(EXAMPLE_APPS, tree)
    for path, text in app_files(EXAMPLE_APP, image).items():
        (tree / path).write_text(text)
    name = f"{PREFIX}apps"
    seed_repo(cluster.git_root / f"{name}.git", source_dir=tree)
    repo = load_flux("gitrepository.yaml")
    repo["metadata"]["name"] = name
    repo["spec"].update(url=cluster.git_repo_url(name), suspend=False)  # a second run of the module resumes
    items, apps = [repo], {}
    for env, namespace in environments().items():
        ks = load_flux(f"kustomization-{EXAMPLE_APP}-{env}.yaml")
        app = FluxApp(cluster, name, PREFIX + namespace, PREFIX + ks["metadata"]["name"])
        ks["metadata"]["name"] = app.kustomization
        ks["spec"].update(targetNamespace=app.namespace, serviceAccountName=app.kustomization, retryInterval="5s",
                          suspend=False)  # fmt: skip
        ks["spec"]["sourceRef"]["name"] = name
        cluster.kubectl("create", "namespace", app.namespace, check=False)
        items += [ks, *tenant(app.namespace, app.kustomization, env)]
        apps[env] = app
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    yield Environments(apps, image)
    # Four pods on a 2-core node: stop and remove them for the modules after this one.
    suspend = '{"spec":{"suspend":true}}'
    for app in apps.values():
        cluster.kubectl("patch", "-n", "flux-system", "kustomization", app.kustomization, "--type=merge",
                        "-p", suspend, check=False)  # fmt: skip
        cluster.kubectl("delete", "namespace", app.namespace, "--wait=false", check=False)
    cluster.kubectl("patch", "-n", "flux-system", "gitrepository", name, "--type=merge", "-p", suspend, check=False)


def answer(app: FluxApp) -> dict | None:
    """What the app's Service in its namespace answers on /, or None while it does not."""
    ip = app.cluster.get_json("service", "-n", app.namespace, EXAMPLE_APP)["spec"]["clusterIP"]
    try:
        with http_request(f"http://{ip}/", timeout=3) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def tag_commit(otap: Environments, env: str, tag: str, digest: str = "") -> str:
    """``druppie-step tag-commit`` into envs/<env>/drone-service, as CI runs it; returns the commit."""
    step = subprocess.run([str(STEP), "tag-commit", "--repo-url", otap.repo_url, "--path", f"envs/{env}/{EXAMPLE_APP}",
                           "--image", EXAMPLE_IMAGE, "--tag", tag, "--digest", digest],
                          capture_output=True, text=True)  # fmt: skip
    assert step.returncode == 0, step.stderr
    return step.stdout.split("revision=")[1].split()[0].split("@sha1:")[1]


def test_each_environment_is_ready_and_serving_in_its_namespace(otap, cluster):
    head = otap.head()
    for env, app in otap.apps.items():
        ks = app.wait_ready(revision=head, timeout=240)
        assert condition(ks, "Ready")["reason"] == "ReconciliationSucceeded"
        deployment = app.deployment()
        assert deployment["spec"]["replicas"] == deployment["status"].get("readyReplicas") == REPLICAS[env]
        assert app.image() == f"{otap.image}:1.0.4"
        served = wait_for(f"drone-service in {app.namespace} to answer", lambda app=app: answer(app), timeout=60)
        assert served["service"] == EXAMPLE_APP, served
        # Each Kustomization put its objects into its own namespace and nowhere else.
        inventory = {e["id"].split("_")[0] for e in ks["status"]["inventory"]["entries"]}
        assert inventory == {app.namespace}, ks["status"]["inventory"]
        names = [d["metadata"]["name"] for d in cluster.get_json("deployments", "-n", app.namespace)["items"]]
        assert names == [EXAMPLE_APP]


def test_a_tag_committed_to_test_reaches_test_only(otap):
    head = otap.head()
    for app in otap.apps.values():
        app.wait_ready(revision=head, timeout=240)
    generations = {env: app.deployment()["metadata"]["generation"] for env, app in otap.apps.items()}
    revision = tag_commit(otap, "test", "1.0.5")
    otap.reconcile_all()
    for app in otap.apps.values():
        app.wait_ready(revision=revision, timeout=180)  # every environment applied the new commit
    test = otap.apps["test"]
    assert test.image() == f"{otap.image}:1.0.5"
    wait_for("test to serve 1.0.5", lambda: answer(test), timeout=60)
    for env in ("acceptatie", "prod"):
        app = otap.apps[env]
        assert app.image() == f"{otap.image}:1.0.4", env
        assert app.deployment()["metadata"]["generation"] == generations[env], f"{env} rolled out"


def digest_of(otap: Environments, tag: str) -> str:
    inspect = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{otap.image}:{tag}"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(inspect.stdout)["Digest"]


def gate(otap: Environments, env: str, digest: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``druppie-step promotion-gate`` on an environment, as its Task runs it."""
    cluster = otap.apps[env].cluster
    return subprocess.run([str(STEP), "promotion-gate", "--kustomization", otap.apps[env].kustomization, "--image",
                           EXAMPLE_IMAGE, "--digest", digest, "--repo-url", otap.repo_url, "--kubeconfig",
                           str(cluster.kubeconfig), *extra], capture_output=True, text=True, timeout=180)  # fmt: skip


def run_sample(cluster, tekton, params: dict[str, str]) -> dict:
    """druppie-promotion-gate's sample: its Pipeline as written, its PipelineRun with these params and
    without the credential workspaces (the cluster's git server takes anonymous pushes); the finished run."""
    pipeline, pipeline_run = (d for d in yaml.safe_load_all(GATE_SAMPLE.read_text()) if d)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pipeline))
    pipeline_run["spec"]["params"] = [{"name": k, "value": v} for k, v in params.items()]
    pipeline_run["spec"].pop("workspaces")
    name = cluster.kubectl("create", "-o", "name", "-f", "-", input=json.dumps(pipeline_run)).stdout.strip()
    return tekton.finished("pipelinerun", name.split("/", 1)[1])


def test_build_once_the_sample_promotes_to_acceptatie_exactly_the_digest_test_runs(otap, cluster):
    tekton = Tekton(cluster, ROOT)  # the loop's catalog in ci (the tekton fixture would make ci afresh)
    digest = digest_of(otap, "1.0.5")
    revision = tag_commit(otap, "test", "1.0.5", digest)
    otap.apps["test"].request_reconcile()
    otap.apps["test"].wait_ready(revision=revision, timeout=180)
    head = otap.head()
    params = {"gitops-repo-url": otap.repo_url, "image": EXAMPLE_IMAGE, "allow-plain-http": "true",
              "from-kustomization": otap.apps["test"].kustomization,
              "to-kustomization": otap.apps["acceptatie"].kustomization,
              "to-path": f"envs/acceptatie/{EXAMPLE_APP}"}  # fmt: skip

    # Another build than the one test runs: refused at the gate, nothing written.
    other = "sha256:" + "0" * 64
    refused = run_sample(cluster, tekton, {**params, "digest": other})
    assert condition(refused, "Succeeded")["status"] == "False", refused["status"]
    logs = tekton.tkn("pipelinerun", "logs", refused["metadata"]["name"], "-n", "ci").stdout
    said = f"refused to promote {EXAMPLE_IMAGE}@{other}: Kustomization flux-system/{otap.apps['test'].kustomization}"
    assert said in logs and f"runs {EXAMPLE_IMAGE}:1.0.5@{digest}, not that digest" in logs, logs
    assert otap.head() == head

    run = run_sample(cluster, tekton, {**params, "digest": digest})
    assert condition(run, "Succeeded")["status"] == "True", run["status"]
    results = {r["name"]: r["value"] for r in run["status"]["results"]}
    assert results == {"promoted": f"{EXAMPLE_IMAGE}:1.0.5@{digest}"}
    acceptatie = otap.apps["acceptatie"]
    assert acceptatie.image() == f"{otap.image}:1.0.5@{digest}"  # what the kubelet pulls: that build
    assert f"digest: {digest}" in run_git(otap, "show", f"main:envs/acceptatie/{EXAMPLE_APP}/kustomization.yaml")
    wait_for("acceptatie to serve the promoted build", lambda: answer(acceptatie), timeout=60)


def test_the_gates_service_account_may_read_flux_objects_only(cluster, loop):
    who = "--as=system:serviceaccount:ci:druppie-promotion-gate"

    def can(*args: str) -> str:
        return cluster.kubectl("auth", "can-i", *args, who, check=False).stdout.strip()

    assert can("get", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system") == "yes"
    assert can("get", "gitrepositories.source.toolkit.fluxcd.io", "-n", "flux-system") == "yes"
    for verb in ("list", "watch", "patch", "update", "delete"):
        assert can(verb, "kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system") == "no", verb
    assert can("get", "secrets", "-n", "ci") == "no" and can("get", "secrets", "-n", "flux-system") == "no"
    assert can("get", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", "ci") == "no"


def run_git(otap: Environments, *args: str) -> str:
    cluster, name = otap.apps["prod"].cluster, otap.apps["prod"].name
    return run("git", "--git-dir", str(cluster.git_root / f"{name}.git"), *args).stdout


def test_a_broken_test_environment_does_not_hold_productie(otap, tmp_path):
    """With dependsOn on test, prod would apply nothing while test fails (DependencyNotReady)."""
    work = tmp_path / "clone"
    run("git", "clone", "--quiet", otap.repo_url, str(work))
    overlay = work / "envs" / "test" / EXAMPLE_APP / "kustomization.yaml"
    overlay.write_text(overlay.read_text().replace("resources:\n", "resources:\n  - missing.yaml\n", 1))
    run("git", "-C", str(work), "commit", "--quiet", "-am", "break test", env=COMMIT_ENV)
    run("git", "-C", str(work), "push", "--quiet", "origin", "main")
    revision = tag_commit(otap, "prod", "1.0.6")  # on top of the broken test
    otap.reconcile_all()
    prod, test = otap.apps["prod"], otap.apps["test"]
    prod.wait_ready(revision=revision, timeout=180)
    assert prod.image() == f"{otap.image}:1.0.6"
    otap.apps["acceptatie"].wait_ready(revision=revision, timeout=180)

    def test_failed() -> dict | None:
        ks = test.ks()
        ready = condition(ks, "Ready")
        attempted = ks.get("status", {}).get("lastAttemptedRevision", "")
        return ready if ready.get("status") == "False" and attempted.endswith(revision) else None

    ready = wait_for("test to fail on the broken overlay", test_failed, timeout=120)
    assert ready["reason"] == "BuildFailed" and "missing.yaml" in ready["message"], ready
    # Build once: nothing leaves a failing environment, whatever it still runs.
    refused = gate(otap, "test", "")
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith(
        f"error: refused to promote: Kustomization flux-system/{test.kustomization} is not healthy (Ready=False: "
        "BuildFailed: "
    ), refused.stderr
    assert refused.stderr.count("\n") == 1 and refused.stdout == "", refused


def test_each_shipped_tenant_may_write_into_its_own_namespace_only(cluster):
    """flux/'s namespaces and tenants as shipped, asked of the real API server's authorizer."""
    shipped = environments()
    for env, namespace in shipped.items():
        cluster.kubectl("apply", "-f", str(FLUX_DIR / f"namespace-{namespace}.yaml"))
        cluster.kubectl("apply", "-f", str(FLUX_DIR / f"tenant-{EXAMPLE_APP}-{env}.yaml"))
    for env, own in shipped.items():
        who = f"--as=system:serviceaccount:flux-system:{EXAMPLE_APP}-{env}"

        def can(*args: str, who: str = who) -> str:
            return cluster.kubectl("auth", "can-i", *args, who, check=False).stdout.strip()

        assert can("create", "deployments", "-n", own) == "yes", env
        for other in set(shipped.values()) - {own}:
            assert can("create", "deployments", "-n", other) == "no", (env, other)
            assert can("delete", "services", "-n", other) == "no", (env, other)
        assert can("create", "clusterrolebindings") == "no" and can("create", "namespaces") == "no", env
    # A real write as the test tenant, through authorization and admission (not stored).
    probe = ("create", "configmap", "otap-probe", "--dry-run=server",
             f"--as=system:serviceaccount:flux-system:{EXAMPLE_APP}-test")  # fmt: skip
    assert cluster.kubectl(*probe, "-n", shipped["test"]).returncode == 0
    refused = cluster.kubectl(*probe, "-n", shipped["prod"], check=False)
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
