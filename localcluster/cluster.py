"""LocalCluster: starts the components in order, records what runs, and stops it all cleanly.

The components know how to start themselves (one module each); this class only holds the
cluster's shared facts (state folder, ports, host address, running processes) and the order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import controlplane, dns, flux, gitea, network, registry, storage, tekton, triggers
from .gitserver import seed_repo
from .node import KWOK_NODE, NODE_NAME, KubeletNode, start_kwok
from .process import alive, free_port, http_ok, kill, log, tail
from .toolchain import ROOT, binaries, missing_binaries, missing_for_tekton, node_side

PORTS = (
    "etcd",
    "etcd-peer",
    "apiserver",
    "kcm",
    "scheduler",
    "kwok",
    "sc-storage",
    "sc-metrics",
    "sc-health",
    "kc-metrics",
    "kc-health",
    "git",
    "registry",
    "kubelet",
    "kubelet-healthz",
    "proxy-metrics",
    "proxy-health",
    "gitea",
)


def tekton_wanted() -> bool:
    """Tekton runs where it can (kubelet node, cache built) unless DRUPPIE_TEKTON=0."""
    return os.environ.get("DRUPPIE_TEKTON", "1") != "0" and not missing_for_tekton()


def loop_missing() -> list[str]:
    """What the CI/CD loop's parts (cluster DNS, Tekton Triggers, the Gitea forge) lack in the cache."""
    return dns.missing() + triggers.missing() + gitea.missing()


def loop_wanted(with_tekton: bool) -> bool:
    """The loop's parts run with Tekton where their cache is built, unless DRUPPIE_LOOP=0."""
    return with_tekton and os.environ.get("DRUPPIE_LOOP", "1") != "0" and not loop_missing()


@dataclass
class LocalCluster:
    state_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    node_side: str = field(default_factory=node_side)
    with_tekton: bool = False
    extra: dict[str, str] = field(default_factory=dict)  # facts to undo at down (e.g. sysctls)
    with_loop: bool = False  # cluster DNS, Triggers and Gitea (the CI/CD loop of `make demo`)

    def __post_init__(self) -> None:
        self.node = KubeletNode(self) if self.node_side == "kubelet" else None

    # ---- facts -----------------------------------------------------------------------------
    @property
    def host_ip(self) -> str:
        """Where the API server, git server and registry listen: reachable from pods with a kubelet node."""
        return network.gateway(self) if self.node else "127.0.0.1"

    @property
    def node_name(self) -> str:
        return NODE_NAME if self.node else KWOK_NODE

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def git_root(self) -> Path:
        return self.state_dir / "git"

    @property
    def git_url(self) -> str:
        return f"http://{self.host_ip}:{self.ports['git']}/druppie-apps.git"

    @property
    def registry(self) -> str:
        """host:port of the registry; on the bridge address, so build pods push to it too."""
        return f"{self.host_ip}:{self.ports['registry']}"

    @property
    def gitea(self) -> gitea.Gitea:
        """An API client of the cluster's Gitea (the process is the cluster's, not this object's)."""
        return gitea.Gitea(self.state_dir / "gitea", host=self.host_ip, port=self.ports["gitea"])

    @property
    def api_url(self) -> str:
        return f"https://{self.host_ip}:{self.ports['apiserver']}"

    def save(self) -> None:
        (self.state_dir / "state.json").write_text(
            json.dumps(
                {
                    "ports": self.ports,
                    "pids": self.pids,
                    "node_side": self.node_side,
                    "with_tekton": self.with_tekton,
                    "extra": self.extra,
                    "with_loop": self.with_loop,
                },
                indent=2,
            )
        )

    @classmethod
    def load(cls, state_dir: Path) -> LocalCluster:
        data = json.loads((state_dir / "state.json").read_text())
        return cls(
            state_dir,
            data["ports"],
            data["pids"],
            data.get("node_side", "kwok"),
            data.get("with_tekton", False),
            data.get("extra", {}),
            data.get("with_loop", False),
        )

    # ---- processes ---------------------------------------------------------------------------
    def spawn(self, name: str, argv: list, env: dict[str, str] | None = None) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )  # own group: `down` kills children too
        self.pids[name] = proc.pid
        self.save()

    def wait_until(self, name: str, check, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if name in self.pids and not alive(self.pids[name]):
                raise RuntimeError(
                    f"{name} exited; see {self.state_dir / 'logs' / (name + '.log')}:\n"
                    + tail(self.state_dir / "logs" / f"{name}.log")
                )
            try:
                if check():
                    return
            except Exception as err:  # noqa: BLE001 - not ready yet
                last = str(err)
            time.sleep(0.2)
        raise RuntimeError(
            f"{name} not ready after {timeout:.0f}s ({last}); log:\n" + tail(self.state_dir / "logs" / f"{name}.log")
        )

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(binaries()["kubectl"]), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def start_apiserver(self) -> None:
        controlplane.start_apiserver(self)

    def stop_apiserver(self) -> None:
        controlplane.stop_apiserver(self)

    def publish_image(self, reference: str) -> None:
        """Make ``registry.example/<repo>:<tag>`` pullable by the node (a no-op for kwok's fake pods)."""
        if self.node:
            self.node.publish(reference)

    # ---- up / down ---------------------------------------------------------------------------
    def up(self, with_tekton: bool | None = None) -> LocalCluster:
        started = time.monotonic()
        missing = missing_binaries()
        if missing:
            raise RuntimeError(
                f"cluster cache incomplete, run `make cluster-build` first; missing: {', '.join(missing)}"
            )
        self.with_tekton = tekton_wanted() if with_tekton is None else with_tekton
        self.with_loop = loop_wanted(self.with_tekton)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name in PORTS:
            self.ports[name] = free_port()
        self.save()
        try:
            if self.node:
                network.create_bridge(self)
            controlplane.make_certs(self)
            controlplane.start(self)
            controlplane.apply_base_objects(self)
            self._git_server()
            registry.start(self)
            log("git server and registry ready")
            if self.node:
                self.node.start()
            else:
                start_kwok(self)
            if self.with_tekton:
                network.start_kube_proxy(self)
            flux.start(self)
            if self.with_tekton:
                refs = tekton.install(self)
                log("Tekton Pipelines ready (controller and webhook, admission active)")
                storage.install(self, refs["shell"])
                log("local-path-provisioner ready (default StorageClass local-path)")
            if self.with_loop:
                dns.install(self)
                log(f"CoreDNS ready (Service kube-dns {dns.CLUSTER_DNS_IP})")
                triggers.install(self)
                log("Tekton Triggers ready (controller, webhook, core interceptors)")
                self.spawn(
                    "gitea",
                    [
                        sys.executable,
                        "-m",
                        "localcluster.gitea",
                        self.state_dir / "gitea",
                        self.ports["gitea"],
                        self.host_ip,
                    ],
                    env={"PYTHONPATH": str(ROOT)},
                )
                self.wait_until(
                    "gitea",
                    lambda: self.gitea.token_file.is_file() and http_ok(f"{self.gitea.base_url}/api/v1/version"),
                )
                log(f"Gitea ready at {self.gitea.base_url}")
        except BaseException:
            if os.environ.get("DRUPPIE_KEEP_FAILED") != "1":  # keep it for a look: make cluster-down later
                self.down()
            raise
        log(
            f"ready in {time.monotonic() - started:.1f}s: kubeconfig {self.kubeconfig}, git {self.git_url}, "
            f"registry {self.registry}"
        )
        return self

    def _git_server(self) -> None:
        seed_repo(self.git_root / "druppie-apps.git", source_dir=ROOT / "examples" / "druppie-apps")
        self.spawn(
            "git-server",
            [sys.executable, "-m", "localcluster.gitserver", self.git_root, self.ports["git"], self.host_ip],
            env={"PYTHONPATH": str(ROOT)},
        )
        self.wait_until("git-server", lambda: http_ok(f"{self.git_url}/info/refs?service=git-upload-pack"))

    def down(self) -> None:
        if self.node and alive(self.pids.get("kubelet", 0)) and alive(self.pids.get("kube-apiserver", 0)):
            # Stop whatever would recreate pods, then let the kubelet tear every pod down properly.
            for name in ("kube-controller-manager", "kube-scheduler", "source-controller", "kustomize-controller"):
                kill(self.pids.pop(name, 0))
            self.node.drain()
        for name in reversed(list(self.pids)):
            kill(self.pids[name])
        self.pids.clear()
        network.stop_kube_proxy(self)
        if self.node:
            self.node.cleanup()
            network.delete_bridge(self)
            network.remove_kubelet_chains()
            network.restore_forwarding()
        if (self.state_dir / "state.json").exists():
            self.save()


def default_state_dir() -> Path:
    return Path(os.environ.get("DRUPPIE_CLUSTER_DIR", "/tmp/druppie-cluster"))
