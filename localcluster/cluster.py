"""LocalCluster: the ordered list of components, the runner that starts and stops them, and the
cluster's facts for its users (tests, benchmarks, the demo).

Which components run is data: each names the features it needs (``kubelet`` or ``kwok`` node
side, ``tekton``, ``loop``), and `up` runs those the cluster has. `up` starts every component
as soon as the components it ``needs`` are ready, so independent ones start side by side (etcd,
the registry, the git server and Gitea at once; Tekton, local-path and CoreDNS once the node is
up); `down` stops the controllers that would recreate pods first, then every component in
reverse start order. Adding a component is one new file and one line in ``COMPONENTS``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import containerd
from .apiserver import ApiServer
from .bridge import Bridge, used_subnet_indexes
from .component import Component
from .containerd import Containerd
from .containerd2 import Containerd2
from .context import STATE_FILE, ClusterState, Context
from .controller_manager import ControllerManager
from .dns import CoreDNS
from .etcd import Etcd
from .flux import Flux
from .gitea import GiteaComponent, client_of
from .gitea_api import GiteaClient
from .gitserver import GitServerComponent
from .kube_proxy import KubeProxy
from .kube_router import KubeRouter
from .kubelet import Kubelet
from .kwok import Kwok
from .process import kill, log
from .registry import Registry
from .scheduler import Scheduler
from .storage import LocalPath
from .tekton import Tekton
from .toolchain import node_runtime, node_side
from .triggers import Triggers

# Every component, in start order (a component starts once what it `needs` is ready).
COMPONENTS: tuple[Component, ...] = (
    Bridge(),  # the node's network, whose gateway address the servers below listen on
    Etcd(),
    Registry(),
    GitServerComponent(),  # druppie-apps for Flux
    GiteaComponent(),  # the forge of the CI/CD loop
    ApiServer(),
    ControllerManager(),
    Scheduler(),
    Flux(),
    Containerd(),
    Containerd2(),  # instead of Debian's containerd: DRUPPIE_CONTAINERD=2
    Kubelet(),
    KubeRouter(),  # NetworkPolicy enforcement, egress included
    Kwok(),
    KubeProxy(),
    Tekton(),
    LocalPath(),
    CoreDNS(),
    Triggers(),
)
# The optional tiers, each on top of the one before; a tier runs where its cache is built.
TIERS = ("tekton", "loop")
TIER_SWITCHES = {"tekton": "DRUPPIE_TEKTON", "loop": "DRUPPIE_LOOP"}  # "0" leaves the tier out


def plan(features: frozenset[str]) -> list[Component]:
    """The components a cluster with ``features`` runs, in start order."""
    return [c for c in COMPONENTS if c.features <= features and not c.unless & features]


def missing(tier: str = "cluster") -> list[str]:
    """What the cache (or the machine) lacks for ``tier``: "cluster", "tekton" or "loop"; empty when it can run.

    For a tier, only what it adds to the tiers below it."""
    side = node_features()
    if tier == "cluster":
        return [m for c in plan(side) for m in c.missing()]
    if tier not in TIERS:
        raise ValueError(f"no tier {tier!r}: use cluster, {', '.join(TIERS)}")
    if node_side() != "kubelet":
        return ["a kubelet node (DRUPPIE_NODE_SIDE=kubelet)"]
    below = side | frozenset(TIERS[: TIERS.index(tier)])
    added = [c for c in plan(below | {tier}) if c not in plan(below)]
    return [m for c in added for m in c.missing()]


def node_features() -> frozenset[str]:
    """The node side (DRUPPIE_NODE_SIDE) and, on a kubelet node, containerd v2 if DRUPPIE_CONTAINERD=2."""
    runtime = node_runtime()
    return frozenset({node_side(), runtime} if runtime == "containerd2" and node_side() == "kubelet" else {node_side()})


def wanted_features() -> frozenset[str]:
    """The node's features, and each tier that is built and not switched off (DRUPPIE_TEKTON=0, DRUPPIE_LOOP=0)."""
    features = set(node_features())
    for tier in TIERS:
        if os.environ.get(TIER_SWITCHES[tier], "1") == "0" or missing(tier):
            break
        features.add(tier)
    return frozenset(features)


class LocalCluster:
    def __init__(self, state_dir: Path, state: ClusterState | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.ctx = Context(self.state_dir, state or ClusterState())

    @classmethod
    def load(cls, state_dir: Path) -> LocalCluster:
        return cls(state_dir, ClusterState.load(state_dir))

    @classmethod
    def exists(cls, state_dir: Path) -> bool:
        return (state_dir / STATE_FILE).is_file()

    # ---- facts ---------------------------------------------------------------------------------
    @property
    def features(self) -> frozenset[str]:
        return self.ctx.features

    @property
    def with_tekton(self) -> bool:
        return "tekton" in self.features

    @property
    def with_loop(self) -> bool:
        return "loop" in self.features

    @property
    def node_side(self) -> str:
        return "kubelet" if "kubelet" in self.features else "kwok"

    @property
    def kubeconfig(self) -> Path:
        return self.ctx.kubeconfig

    @property
    def host_ip(self) -> str:
        return self.ctx.host_ip

    @property
    def node_name(self) -> str:
        return self.ctx.node_name

    @property
    def registry(self) -> str:
        return self.ctx.registry

    @property
    def api_url(self) -> str:
        return self.ctx.api_url

    @property
    def kubelet_root(self) -> Path:
        """The node's kubelet --root-dir (a real node's /var/lib/kubelet)."""
        return Kubelet.root_dir(self.ctx)

    @property
    def git_root(self) -> Path:
        """The folder of bare repos the cluster's git server serves."""
        return GitServerComponent.root(self.ctx)

    def git_repo_url(self, repo: str) -> str:
        return GitServerComponent.url(self.ctx, repo)

    @property
    def git_url(self) -> str:
        return self.git_repo_url("druppie-apps")

    @property
    def gitea(self) -> GiteaClient:
        """An API client of the cluster's Gitea, as its admin."""
        return client_of(GiteaComponent.state_dir(self.ctx), GiteaComponent.base_url(self.ctx))

    @property
    def gitea_password_file(self) -> Path:
        return GiteaComponent.state_dir(self.ctx) / "admin-password"

    @property
    def timings(self) -> dict[str, float]:
        """Seconds from the start of `up` until each component was ready."""
        return dict(self.ctx.state.timings)

    def running(self, name: str) -> bool:
        """Is the process ``name`` (a component's, e.g. "kube-apiserver" or "registry") running?"""
        return self.ctx.running(name)

    def processes(self) -> dict[str, int]:
        return dict(self.ctx.state.pids)

    # ---- what tests and the demo do with it ----------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.ctx.kubectl(*args, input=input, check=check)

    def get_json(self, *args: str) -> dict:
        return self.ctx.get_json(*args)

    def publish_image(self, reference: str) -> None:
        """Make ``registry.example/<repo>:<tag>`` pullable by the node (kwok's fake pods pull nothing)."""
        if "kubelet" in self.features:
            containerd.publish_image(self.ctx, reference)

    def stop_apiserver(self) -> None:
        self.ctx.stop("kube-apiserver")

    def start_apiserver(self) -> None:
        """(Re)start kube-apiserver on its port; the e2e tests restart it to test resuming watches."""
        apiserver = next(c for c in COMPONENTS if isinstance(c, ApiServer))
        apiserver.start(self.ctx)
        apiserver.ready(self.ctx)

    # ---- up / down -----------------------------------------------------------------------------
    def up(self, features: frozenset[str] | None = None) -> LocalCluster:
        """Start the components of ``features`` (default: what is built and not switched off)."""
        started = time.monotonic()
        features = wanted_features() if features is None else features
        lacking = [m for c in plan(features) for m in c.missing()]
        if lacking:
            raise RuntimeError(
                f"cluster cache incomplete, run `make cluster-build` first; missing: {', '.join(lacking)}"
            )
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        state = self.ctx.state
        state.features = sorted(features)
        taken = used_subnet_indexes()
        state.subnet_index = next(i for i in range(1, 251) if i not in taken)
        self.ctx.save()
        log(f"starting {', '.join(c.name for c in plan(features))}")
        try:
            self._start_all(plan(features), started)
        except BaseException:
            if os.environ.get("DRUPPIE_KEEP_FAILED") != "1":  # keep it for a look: make cluster-down later
                self.down()
            raise
        log(f"ready in {time.monotonic() - started:.1f}s: kubeconfig {self.kubeconfig}, registry {self.registry}")
        return self

    def _start_all(self, components: list[Component], started: float) -> None:
        """Start each component once what it needs is ready; independent ones side by side."""
        names = {c.name for c in components}
        ready = {c.name: threading.Event() for c in components}
        failed = threading.Event()
        lock = threading.Lock()

        def wait_for(needs: tuple[str, ...]) -> bool:
            for need in needs:
                while need in names and not ready[need].wait(0.05):
                    if failed.is_set():
                        return False
            return not failed.is_set()

        def run(component: Component) -> None:
            if not wait_for(component.prepare_needs):
                return
            with lock:
                self.ctx.state.components.append(component.name)
                self.ctx.save()
            try:
                component.prepare(self.ctx)
                if not wait_for(component.needs):
                    return
                component.start(self.ctx)
                component.ready(self.ctx)
            except BaseException:
                failed.set()
                raise
            done = time.monotonic()
            with lock:
                self.ctx.state.timings[component.name] = round(done - started, 2)
                self.ctx.save()
            log(f"{component.name} ready at {done - started:.1f}s")
            ready[component.name].set()

        with ThreadPoolExecutor(max_workers=len(components), thread_name_prefix="component") as pool:
            futures = [pool.submit(run, c) for c in components]
            errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise RuntimeError(str(errors[0])) from errors[0]

    def down(self) -> None:
        """Stop what runs: the controllers that would recreate pods first, then the rest in reverse
        start order; then anything left (a process whose component failed to start)."""
        by_name = {c.name: c for c in COMPONENTS}
        started = [by_name[n] for n in self.ctx.state.components if n in by_name]
        for component in [c for c in reversed(started) if c.stops_early] + [
            c for c in reversed(started) if not c.stops_early
        ]:
            began = time.monotonic()
            try:
                component.stop(self.ctx)
            except Exception as err:  # noqa: BLE001 - one component's failure must not keep the others running
                log(f"stopping {component.name} failed: {err}")
            if time.monotonic() - began > 2:
                log(f"{component.name} stopped in {time.monotonic() - began:.1f}s")
        for name in list(self.ctx.state.pids):
            kill(self.ctx.state.pids.pop(name))
        self.ctx.state.components.clear()
        if self.exists(self.state_dir):
            self.ctx.save()


def default_state_dir() -> Path:
    # A fixed, documented place, so `cluster-down` finds what `cluster-up` started; made 0700 by `up`.
    return Path(os.environ.get("DRUPPIE_CLUSTER_DIR", "/tmp/druppie-cluster"))  # noqa: S108


def remove_state(state_dir: Path) -> None:
    shutil.rmtree(state_dir, ignore_errors=True)
