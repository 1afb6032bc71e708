"""The node side of the local cluster: a real kubelet on Debian's containerd and runc.

Two settings make it work on these machines: `failCgroupV1: false` (the host has v1/v2 hybrid
cgroups) and containerd's `restrict_oom_score_adj` (root here lacks CAP_SYS_RESOURCE, so the
pod sandbox's default oom_score_adj of -998 made runc fail with "can't get final child's PID
from pipe: EOF"). Pods get a real network namespace from the bridge CNI plugin, and images come
from the cluster's registry: `registry.example/...` and `ghcr.io/...` are mirrored to it, so an e2e
test publishes an image exactly as CI would, and the kubelet pulls it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import network
from .dns import CLUSTER_DNS_IP, CLUSTER_DOMAIN
from .ociimage import build_image, build_pause_binary, push, write_oci_archive
from .process import log
from .toolchain import ROOT, binaries

if TYPE_CHECKING:
    from .cluster import LocalCluster

NODE_NAME = "druppie-node"
KWOK_NODE = "kwok-node-0"
PAUSE_IMAGE = "druppie.local/pause:1"
MIRRORED_REGISTRY = "registry.example"  # the registry named in examples/druppie-apps
# Hosts containerd pulls from the cluster registry instead: the examples' registry, and the one the
# catalog's Task YAML names (ghcr.io/waterschap/druppie-step), so the shipped YAML runs unmodified.
MIRRORED_REGISTRIES = (MIRRORED_REGISTRY, "ghcr.io")
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins


class KubeletNode:
    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.dir = cluster.state_dir / "node"
        self.image = None

    @property
    def socket(self) -> Path:
        return self.dir / "containerd.sock"

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.socket), "-n", "k8s.io", *args], capture_output=True, text=True, check=check
        )

    def start(self) -> None:
        d = self.dir
        for sub in (
            "containerd",
            "cni/net.d",
            "cni/ipam",
            "kubelet",
            "manifests",
            *[f"certs.d/{host}" for host in MIRRORED_REGISTRIES],
        ):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.image = build_image(build_pause_binary(d / "pause"))
        (d / "containerd.toml").write_text(f"""version = 2
root = "{d / "containerd" / "root"}"
state = "{d / "containerd" / "state"}"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{d / "cni" / "net.d"}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d / "certs.d"}"
""")
        registry = self.cluster.registry
        # Also its own address (plain HTTP), which builds in pods push to and the loop's manifests name.
        for host in (*MIRRORED_REGISTRIES, registry):
            (d / "certs.d" / host).mkdir(parents=True, exist_ok=True)
            (d / "certs.d" / host / "hosts.toml").write_text(
                f'server = "http://{registry}"\n[host."http://{registry}"]\n  capabilities = ["pull", "resolve"]\n'
            )
        subnet = network.subnet(self.cluster)
        (d / "cni" / "net.d" / "10-druppie.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "druppie",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": network.bridge_name(self.cluster),
                            "isGateway": True,
                            "isDefaultGateway": True,
                            "ipMasq": False,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": subnet}]],
                                "dataDir": str(d / "cni" / "ipam"),
                            },
                        },
                        {"type": "loopback"},
                    ],
                }
            )
        )
        self.cluster.spawn("containerd", ["containerd", "--config", d / "containerd.toml"])
        self.cluster.wait_until(
            "containerd", lambda: self.socket.exists() and self.ctr("version", check=False).returncode == 0
        )
        self.ctr("images", "import", str(write_oci_archive(self.image, PAUSE_IMAGE, d / "pause.tar")))

        p = self.cluster.ports
        self._make_cgroup_root()
        (d / "kubelet.yaml").write_text(
            json.dumps(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    "failCgroupV1": False,
                    "cgroupDriver": "cgroupfs",
                    "cgroupRoot": f"/{self.cgroup_root}",
                    "containerRuntimeEndpoint": f"unix://{self.socket}",
                    "staticPodPath": str(d / "manifests"),
                    # The node's address is the bridge gateway, so the API server reaches the kubelet
                    # there (logs, exec) and the Node has an InternalIP (loopback is not accepted).
                    "address": self.cluster.host_ip,
                    "port": p["kubelet"],
                    "healthzPort": p["kubelet-healthz"],
                    "healthzBindAddress": "127.0.0.1",
                    "readOnlyPort": 0,
                    "failSwapOn": False,
                    "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
                    "authorization": {"mode": "AlwaysAllow"},
                    "serializeImagePulls": False,
                    "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    **(
                        {"clusterDNS": [CLUSTER_DNS_IP], "clusterDomain": CLUSTER_DOMAIN}
                        if self.cluster.with_loop
                        else {}
                    ),
                    "resolvConf": "/etc/resolv.conf",
                    "podLogsDir": str(d / "pod-logs"),
                    "syncFrequency": "5s",
                    "fileCheckFrequency": "5s",
                }
            )
        )
        # Seccomp profiles the catalog's Tasks name (type Localhost), as a platform team installs
        # them on every node: the build Task's lets buildah make a user namespace.
        seccomp = d / "kubelet" / "seccomp"
        seccomp.mkdir(parents=True, exist_ok=True)
        for profile in (ROOT / "tasks").glob("*/*/seccomp/*.json"):
            shutil.copy(profile, seccomp / profile.name)
        self.cluster.spawn(
            "kubelet",
            [
                binaries()["kubelet"],
                "--config",
                d / "kubelet.yaml",
                "--kubeconfig",
                self.cluster.kubeconfig,
                "--root-dir",
                d / "kubelet",
                "--cert-dir",
                d / "kubelet-pki",
                "--hostname-override",
                self.cluster.node_name,
                "--node-ip",
                self.cluster.host_ip,
                "--v",
                "1",
            ],
        )
        self.cluster.wait_until("kubelet", lambda: node_ready(self.cluster, self.cluster.node_name), timeout=90)
        log("kubelet node ready (containerd + runc, bridge CNI)")

    @property
    def cgroup_root(self) -> str:
        return f"druppie-{self.cluster.ports['kubelet']}"

    def _make_cgroup_root(self) -> None:
        """The kubelet wants its cgroupRoot to exist in every v1 hierarchy (our own, so clusters never clash)."""
        for controller in Path("/sys/fs/cgroup").iterdir():
            if not (controller / "cgroup.procs").exists():
                continue  # not a hierarchy (e.g. the unified mount's symlinks)
            root = controller / self.cgroup_root
            root.mkdir(exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset is empty until it inherits these
                if (root / knob).exists() and not (root / knob).read_text().strip():
                    (root / knob).write_text((controller / knob).read_text())

    def publish(self, reference: str) -> str:
        """Push the node's real image to the cluster registry as ``registry.example/<repo>:<tag>``."""
        host, _, rest = reference.partition("/")
        repository, _, tag = rest.rpartition(":")
        if host != MIRRORED_REGISTRY or not repository:
            raise ValueError(f"can only publish {MIRRORED_REGISTRY}/<repo>:<tag>, not {reference!r}")
        return push(self.image, self.cluster.registry, repository, tag)

    def drain(self) -> None:
        """Let the kubelet remove every pod (CNI teardown, unmounts) before processes are stopped."""
        self.cluster.kubectl(
            "delete", "pods", "--all", "--all-namespaces", "--force", "--grace-period=0", "--wait=false", check=False
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.ctr("tasks", "ls", "-q", check=False).stdout.strip():
            time.sleep(0.3)

    def cleanup(self) -> None:
        """After containerd stopped: kill what it left (shims, containers), unmount, drop the bridge."""
        subprocess.run(["pkill", "-KILL", "-f", f"containerd-shim-runc-v2 .*-address {self.socket}"], check=False)
        mounts = [
            line.split()[1]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(self.dir))
        ]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        # Pod logs live in our podLogsDir, but the kubelet links them from the machine-wide
        # /var/log/containers: drop the links into our folder.
        for link in Path("/var/log/containers").glob("*.log"):
            if link.is_symlink() and str(link.readlink()).startswith(f"{self.dir}/"):
                link.unlink(missing_ok=True)
        for controller in Path("/sys/fs/cgroup").iterdir():
            root = controller / self.cgroup_root
            if root.is_dir():  # cgroups go deepest first; their control files vanish with them
                for cgroup in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [root]:
                    try:
                        cgroup.rmdir()
                    except OSError:
                        pass


def start_kwok(cluster: LocalCluster) -> None:
    """kwok's fake node: pods become Ready without containers (DRUPPIE_NODE_SIDE=kwok)."""
    b, p = binaries(), cluster.ports
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": KWOK_NODE,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": KWOK_NODE, "type": "kwok"},
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(node))
    cluster.spawn(
        "kwok",
        [
            b["kwok"],
            "--kubeconfig",
            cluster.kubeconfig,
            "--config",
            b["kwok"].parent / "stages.yaml",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.244.0.0/16",
            "--node-ip=127.0.0.1",
            "--node-port",
            p["kwok"],
        ],
    )
    cluster.wait_until("kwok", lambda: node_ready(cluster, KWOK_NODE), timeout=60)
    log("kwok node ready")


def node_ready(cluster: LocalCluster, name: str) -> bool:
    """Has the node registered and reported Ready (kubelet or kwok)?"""
    proc = cluster.kubectl("get", "node", name, "-o", "json", check=False)
    node = json.loads(proc.stdout) if proc.returncode == 0 else {}
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))
