"""The e2e tier: one real local cluster (kube-apiserver, kubelet, Flux controllers, Tekton) per session."""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from localcluster.cluster import LocalCluster
from localcluster.gitserver import seed_repo
from localcluster.toolchain import ROOT, binaries, missing_binaries, optional_binaries
from tests.conftest import EXAMPLE_APPS
from tests.support.readme import block_with

README = ROOT / "README.md"

FLUX_DIR = Path(__file__).resolve().parents[2] / "flux" / "druppie-apps"
_ids = itertools.count()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    missing = missing_binaries()
    if missing:
        pytest.fail(f"the e2e tier needs the cluster cache (make cluster-build); missing: {', '.join(missing)}")
    c = LocalCluster(tmp_path_factory.mktemp("cluster")).up()
    yield c
    c.down()


def wait_for(what: str, check, timeout: float = 90, interval: float = 0.3):
    """Poll ``check`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def condition(obj: dict, kind: str) -> dict:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def load_flux(name: str) -> dict:
    return yaml.safe_load((FLUX_DIR / name).read_text())


@dataclass
class FluxApp:
    """A druppie-apps copy with its own GitRepository, Kustomization and target namespace."""

    cluster: LocalCluster
    name: str
    namespace: str
    kustomization: str

    @property
    def repo_url(self) -> str:
        return f"http://{self.cluster.host_ip}:{self.cluster.ports['git']}/{self.name}.git"

    def ks(self) -> dict:
        return self.cluster.get_json("kustomization", "-n", "flux-system", self.kustomization)

    def gitrepo(self) -> dict:
        return self.cluster.get_json("gitrepository", "-n", "flux-system", self.name)

    def deployment(self) -> dict:
        return self.cluster.get_json("deployment", "-n", self.namespace, "drone-service")

    def image(self) -> str:
        return self.deployment()["spec"]["template"]["spec"]["containers"][0]["image"]

    def request_reconcile(self) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S") + f".{time.time_ns() % 10**9:09d}Z"
        patch = json.dumps({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}})
        self.cluster.kubectl(
            "annotate",
            "--overwrite",
            "-n",
            "flux-system",
            "gitrepository",
            self.name,
            f"reconcile.fluxcd.io/requestedAt={stamp}",
        )
        self.cluster.kubectl(
            "patch", "-n", "flux-system", "kustomization", self.kustomization, "--type=merge", "-p", patch
        )

    def wait_ready(self, revision: str | None = None, timeout: float = 90) -> dict:
        def ready():
            ks = self.ks()
            cond = condition(ks, "Ready")
            applied = ks.get("status", {}).get("lastAppliedRevision", "")
            ok = cond.get("status") == "True" and bool(applied) and (revision is None or applied.endswith(revision))
            return ks if ok else None

        return wait_for(f"Kustomization {self.kustomization} Ready at {revision or 'any revision'}", ready, timeout)


def make_flux_app(
    cluster: LocalCluster, name: str, namespace: str, kustomization: str, git_interval: str, ks_interval: str
) -> FluxApp:
    """Apply the shipped flux/ manifests, pointed at the local git server, with shorter intervals."""
    app = FluxApp(cluster, name, namespace, kustomization)
    cluster.publish_image("registry.example/druppie/drone-service:1.0.4")  # the tag the example deploys
    seed_repo(cluster.git_root / f"{name}.git", source_dir=EXAMPLE_APPS)
    cluster.kubectl("create", "namespace", namespace, check=False)
    repo = load_flux("gitrepository.yaml")
    repo["metadata"]["name"] = name
    repo["spec"].update(url=app.repo_url, interval=git_interval)
    ks = load_flux("kustomization-drone-service-prod.yaml")
    ks["metadata"]["name"] = kustomization
    ks["spec"].update(targetNamespace=namespace, interval=ks_interval, retryInterval="5s")
    ks["spec"]["sourceRef"]["name"] = name
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [repo, ks]}))
    return app


@pytest.fixture
def flux_app(cluster):
    """An isolated app: its own repo, namespace, GitRepository and Kustomization (intervals 10s/5s)."""
    n = next(_ids)
    return make_flux_app(cluster, f"apps-{n}", f"app-{n}", f"drone-service-{n}", "10s", "5s")


@pytest.fixture(autouse=True)
def _release_flux_app(request):
    """After a test with a ``flux_app``: suspend its Flux objects and delete its namespace. Each app
    runs pods that request CPU; on a 2-core node about 20 apps fill it, and later apps never become
    Ready. Suspending also stops the retries of apps left failing on purpose."""
    app = request.getfixturevalue("flux_app") if "flux_app" in request.fixturenames else None
    yield
    if app is not None:
        for kind, name in (("kustomization", app.kustomization), ("gitrepository", app.name)):
            app.cluster.kubectl(
                "patch", "-n", "flux-system", kind, name, "--type=merge", "-p", '{"spec":{"suspend":true}}', check=False
            )
        app.cluster.kubectl("delete", "namespace", app.namespace, "--wait=false", check=False)


# ---- Tekton: the catalog installed as README.md says, runs started with its tkn commands ----
class Tekton:
    def __init__(self, cluster, workdir: Path) -> None:
        self.cluster, self.workdir = cluster, workdir

    def run(
        self, command: str, extra: list[str] | None = None, substitute: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run one README command (kubectl or tkn) against the cluster, with the stated substitutions."""
        for old, new in (substitute or {}).items():
            command = command.replace(old, new)
        words = shlex.split(command) + (extra or [])
        tool = {"kubectl": binaries()["kubectl"], "tkn": optional_binaries()["tkn"]}[words[0]]
        proc = subprocess.run(
            [str(tool), *words[1:]],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            env={**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)},
            timeout=300,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"{command} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def tkn(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(shlex.join(["tkn", *args]), check=check)

    def finished(self, kind: str, name: str) -> dict:
        """The run once Tekton marked it done (`--showlog` can return a moment before that)."""

        def done():
            run = json.loads(self.tkn(kind, "describe", name, "-n", "ci", "-o", "json").stdout)
            return run if run.get("status", {}).get("completionTime") else None

        return wait_for(f"{kind} {name} to finish", done, timeout=240, interval=1)

    def taskrun(self, name: str) -> dict:
        return self.finished("taskrun", name)

    def results(self, run: dict) -> dict[str, str]:
        return {r["name"]: r["value"] for r in run.get("status", {}).get("results", [])}


def _started(output: str, kind: str) -> str:
    """The run name from tkn's "TaskRun started: NAME" / "PipelineRun started: NAME" line."""
    for line in output.splitlines():
        if line.startswith(f"{kind} started: "):
            return line.split(": ", 1)[1].strip()
    pytest.fail(f"no '{kind} started' line in tkn output:\n{output}")


@pytest.fixture(scope="module")
def tekton(cluster):
    if not cluster.with_tekton:
        pytest.skip("this cluster runs without Tekton (kwok node side or DRUPPIE_TEKTON=0)")
    # The step image the unmodified Tasks name (ghcr.io/waterschap/druppie-step), built and pushed
    # as `make images` does; ghcr.io is mirrored to the cluster registry.
    subprocess.run(
        [str(ROOT / "hack" / "images.sh")],
        check=True,
        capture_output=True,
        env={**os.environ, "REGISTRY": cluster.registry},
    )
    t = Tekton(cluster, ROOT)
    # A fresh namespace, as on a cluster where the catalog was never installed (other e2e
    # modules of this session use ci too).
    cluster.kubectl("delete", "namespace", "ci", "--ignore-not-found", "--wait=true", "--timeout=120s")
    for command in block_with(README, "kubectl create namespace ci"):
        t.run(command)
    return t
