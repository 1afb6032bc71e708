"""The e2e tier: one real local cluster (kube-apiserver, kubelet, Flux controllers, Tekton) per session.

`make test-e2e` runs it on two pytest workers that share that one cluster (-n 2 --dist loadgroup);
tests.support.e2e_groups says which tests run one after the other and which meanwhile. A test
marked ``exclusive`` disrupts the whole cluster (it restarts the API server, or takes the node's
seccomp profile away); it runs alone, in a second session.
"""

from __future__ import annotations

import fcntl
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from localcluster.cluster import LocalCluster, missing
from localcluster.toolchain import ROOT
from testbed.fluxapp import make_flux_app
from testbed.loop import Loop
from testbed.readme import block_with
from testbed.site import apply_site_settings, site_command
from tests.support.e2e import README, Tekton, fresh_namespace, push_step_images
from tests.support.e2e_groups import E2EScheduling

_ids = itertools.count()
SHARED_CLUSTER = "cluster"  # in the controller's basetemp, beside the workers' own folders
SHARED_READY = "cluster.ready"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def pytest_xdist_make_scheduler(config, log):
    """make test-e2e asks for --dist loadgroup: the e2e tier's groups. Any other run: xdist's own."""
    return E2EScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, worker_id):
    lacking = missing("cluster")
    if lacking:
        pytest.fail(f"the e2e tier needs the cluster cache (make cluster-build); missing: {', '.join(lacking)}")
    if worker_id == "master":
        c = LocalCluster(tmp_path_factory.mktemp("cluster")).up()
        yield c
        c.down()
        return
    # One cluster for all workers: the first to ask starts it; the controller stops it when every
    # worker is done (pytest_sessionfinish), so no worker pulls it away under another.
    shared = tmp_path_factory.getbasetemp().parent
    with _locked(shared / "cluster.lock"):
        if (shared / SHARED_READY).exists():
            c = LocalCluster.load(shared / SHARED_CLUSTER)
        else:
            c = LocalCluster(shared / SHARED_CLUSTER).up()
            (shared / SHARED_READY).touch()
    yield c


def pytest_sessionfinish(session):
    """The controller of a run on workers stops the cluster they shared."""
    if hasattr(session.config, "workerinput") or not getattr(session.config.option, "numprocesses", None):
        return
    shared = session.config._tmp_path_factory.getbasetemp()  # the workers' basetemps are its children
    if (shared / SHARED_READY).exists():
        LocalCluster.load(shared / SHARED_CLUSTER).down()


@pytest.fixture
def flux_app(cluster, worker_id):
    """An isolated app: its own repo, namespace, GitRepository and Kustomization (intervals 10s/5s).
    The names carry the worker: two workers count from 0 on the one cluster they share."""
    n = next(_ids) if worker_id == "master" else f"{worker_id}-{next(_ids)}"
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


@pytest.fixture(scope="module")
def tekton(cluster, tmp_path_factory):
    if not cluster.with_tekton:
        pytest.skip("this cluster runs without Tekton (kwok node side or DRUPPIE_TEKTON=0)")
    push_step_images(cluster)
    t = Tekton(cluster, ROOT)
    # A fresh namespace, as on a cluster where the catalog was never installed (other e2e
    # modules of this session use ci too).
    fresh_namespace(cluster)
    for command in block_with(README, "kubectl create namespace ci"):
        proc = t.run(site_command(cluster, command, tmp_path_factory.mktemp("site")), check=False)
        # The platform's ClusterRoleBinding outlives the namespace another module deleted.
        if proc.returncode and "already exists" not in proc.stderr.lower():
            pytest.fail(f"{command} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    # Flux's grant to ci (flux/README.md): its druppie-flux-wait may request reconciles in flux-system.
    cluster.kubectl("apply", "-f", str(ROOT / "flux/druppie-apps/rbac-flux-reconcile-wait.yaml"))
    apply_site_settings(cluster)
    return t


@pytest.fixture(scope="module")
def loop(cluster):
    """The platform's loop in ci (testbed.loop, as `make demo` sets it up), installed once per session."""
    if not cluster.with_loop:  # .ci/run says so up front, in one line
        pytest.skip(
            f"the loop's parts are not in the cache (make cluster-build); missing: {', '.join(missing('loop'))}"
        )
    lp = Loop(cluster, say=lambda m: print(f"[loop] {m}", flush=True))
    if not lp.installed:
        # Another module's tekton fixture may have left a namespace ci behind: start clean.
        fresh_namespace(cluster)
        lp.install()
    return lp
