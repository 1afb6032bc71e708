"""What a component may see and do: the narrow context every component's start and stop receive.

Modelled on kind's ``Action.Execute(ctx)``: a component reads facts (state folder, kubeconfig, the
host address, the registry), asks for its own named ports, starts and stops its own processes and
talks to the API server, all through this object. It never writes the cluster's fields; what it
needs to remember between start and stop it keeps in its own files under ``component_dir``.

The context is thread-safe: the runner starts components that do not depend on each other at the
same time (see cluster.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .process import alive, free_port, kill, tail
from .toolchain import binaries

STATE_FILE = "state.json"
# Cluster-wide network facts, as kubeadm chooses them.
SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_DNS_IP = "10.96.0.10"  # CoreDNS's Service, the kubelet's clusterDNS
CLUSTER_DOMAIN = "cluster.local"


@dataclass
class ClusterState:
    """What `up` decided and what runs, saved in ``state.json`` so `down` (another process) can undo it."""

    features: list[str] = field(default_factory=list)  # e.g. ["kubelet", "tekton", "loop"]
    components: list[str] = field(default_factory=list)  # started, in start order
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    subnet_index: int = 0  # the node bridge's 10.244.<index>.0/24, unique per running cluster
    timings: dict[str, float] = field(default_factory=dict)  # seconds from up() to each component ready

    @classmethod
    def load(cls, state_dir: Path) -> ClusterState:
        data = json.loads((state_dir / STATE_FILE).read_text())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


class Context:
    """The cluster as its components see it."""

    def __init__(self, state_dir: Path, state: ClusterState) -> None:
        self.state_dir = state_dir
        self.state = state
        self._lock = threading.RLock()

    # ---- facts ---------------------------------------------------------------------------------
    @property
    def features(self) -> frozenset[str]:
        return frozenset(self.state.features)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def host_ip(self) -> str:
        """Where the API server, git server, registry and forge listen; pods reach it through the node bridge."""
        return self.pod_subnet.replace(".0/24", ".1") if "kubelet" in self.features else "127.0.0.1"

    @property
    def pod_subnet(self) -> str:
        """This cluster's pod /24 on the node bridge (two clusters on one machine get two)."""
        return f"10.244.{self.state.subnet_index}.0/24"

    @property
    def bridge(self) -> str:
        """The node bridge's interface name."""
        return f"druppie{self.state.subnet_index}"

    @property
    def node_name(self) -> str:
        return "druppie-node" if "kubelet" in self.features else "kwok-node-0"

    @property
    def registry(self) -> str:
        """host:port of the cluster's registry (on the host address, so pods push to it too)."""
        return f"{self.host_ip}:{self.port('registry')}"

    @property
    def api_url(self) -> str:
        return f"https://{self.host_ip}:{self.port('apiserver')}"

    def component_dir(self, name: str) -> Path:
        """A component's own folder under the state folder (configs, data, what stop must undo)."""
        path = self.state_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def port(self, name: str) -> int:
        """The port named ``name``: allocated on the first ask, the same one afterwards (and after load)."""
        with self._lock:
            if name not in self.state.ports:
                taken = set(self.state.ports.values())
                port = free_port()
                while port in taken:
                    port = free_port()
                self.state.ports[name] = port
                self.save()
            return self.state.ports[name]

    def save(self) -> None:
        with self._lock:
            tmp = self.state_dir / f".{STATE_FILE}.tmp"
            tmp.write_text(self.state.to_json())
            tmp.replace(self.state_dir / STATE_FILE)

    # ---- processes -----------------------------------------------------------------------------
    def log_path(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def spawn(self, name: str, argv: Sequence[object], env: Mapping[str, str] | None = None) -> int:
        """Start ``argv`` in its own process group (stop kills its children too), output to logs/NAME.log."""
        self.log_path(name).parent.mkdir(exist_ok=True)
        with self.log_path(name).open("ab") as out:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        with self._lock:
            self.state.pids[name] = proc.pid
            self.save()
        return proc.pid

    def running(self, name: str) -> bool:
        return alive(self.state.pids.get(name, 0))

    def stop(self, name: str) -> None:
        """Stop the process ``name`` and its group (SIGTERM, then SIGKILL after 10 s)."""
        with self._lock:
            pid = self.state.pids.pop(name, 0)
            self.save()
        kill(pid)

    def wait_until(self, name: str, check: Callable[[], object], timeout: float = 60, interval: float = 0.1) -> None:
        """Poll ``check`` until truthy; fail early, with its log, when the process ``name`` exits."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if name in self.state.pids and not alive(self.state.pids[name]):
                raise RuntimeError(f"{name} exited; see {self.log_path(name)}:\n{tail(self.log_path(name))}")
            try:
                if check():
                    return
            except Exception as err:  # noqa: BLE001 - any failure of a readiness probe means "not yet"
                last = str(err)
            time.sleep(interval)
        raise RuntimeError(f"{name} not ready after {timeout:.0f}s ({last}); log:\n{tail(self.log_path(name))}")

    # ---- the API server ------------------------------------------------------------------------
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

    def has_condition(self, *get_args: str, condition: str = "Ready") -> bool:
        """Does the object (``kubectl get`` arguments) exist with ``condition`` True?"""
        proc = self.kubectl("get", "-o", "json", *get_args, check=False)
        obj = json.loads(proc.stdout) if proc.returncode == 0 else {}
        conditions = obj.get("status", {}).get("conditions", [])
        return any(c["type"] == condition and c["status"] == "True" for c in conditions)

    def apply(self, docs: list[dict], server_side: bool = False) -> None:
        """Apply objects given as dicts (one kubectl call)."""
        flags = ["--server-side", "--force-conflicts"] if server_side else []
        self.kubectl("apply", *flags, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))

    def rollout(self, namespace: str, *deployments: str, timeout: str = "180s") -> None:
        """Wait (a watch, not a poll) until each Deployment has rolled out."""
        for deployment in deployments:
            self.kubectl("rollout", "status", "-n", namespace, f"deployment/{deployment}", f"--timeout={timeout}")
