"""The node: a real kubelet on the cluster's containerd, registered as ``druppie-node``.

``failCgroupV1: false`` because the host has v1/v2 hybrid cgroups; its cgroupRoot is a folder of
its own in every hierarchy, so two clusters never clash and `down` removes exactly ours. The
node's address is the bridge gateway, so the API server reaches the kubelet there (logs, exec).
With cluster DNS in the plan, pods get CoreDNS's Service address as their resolver.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

from . import containerd
from .component import Component
from .context import CLUSTER_DNS_IP, CLUSTER_DOMAIN, Context
from .process import running_anywhere
from .toolchain import binaries

# Chains the kubelet itself adds (a canary, and a firewall that drops non-loopback traffic to
# 127.0.0.0/8); it re-creates them while it runs, so they go only after it stopped.
KUBELET_CHAINS = {"filter": ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY"), "nat": ("KUBE-KUBELET-CANARY",),
                  "mangle": ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY")}  # fmt: skip


class Kubelet(Component):
    name = "kubelet"
    needs = ("kube-apiserver", "containerd")
    features = frozenset({"kubelet"})

    def missing(self) -> list[str]:
        return [] if binaries()["kubelet"].is_file() else [str(binaries()["kubelet"])]

    @staticmethod
    def root_dir(ctx: Context) -> Path:
        """The kubelet's --root-dir (a real node's /var/lib/kubelet); Localhost seccomp profiles go in seccomp/."""
        return ctx.state_dir / "kubelet" / "root"

    def cgroup_root(self, ctx: Context) -> str:
        return f"druppie-{ctx.state.subnet_index}"

    def start(self, ctx: Context) -> None:
        d = ctx.component_dir("kubelet")
        self._make_cgroup_root(ctx)
        (d / "kubelet.yaml").write_text(json.dumps({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "failCgroupV1": False, "cgroupDriver": "cgroupfs", "cgroupRoot": f"/{self.cgroup_root(ctx)}",
            "containerRuntimeEndpoint": f"unix://{containerd.socket(ctx)}", "staticPodPath": str(d / "manifests"),
            "address": ctx.host_ip, "port": ctx.port("kubelet"), "healthzPort": ctx.port("kubelet-healthz"),
            "healthzBindAddress": "127.0.0.1", "readOnlyPort": 0, "failSwapOn": False,
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"}, "serializeImagePulls": False,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            **({"clusterDNS": [CLUSTER_DNS_IP], "clusterDomain": CLUSTER_DOMAIN} if "loop" in ctx.features else {}),
            "resolvConf": "/etc/resolv.conf", "podLogsDir": str(d / "pod-logs"), "syncFrequency": "5s",
            "fileCheckFrequency": "5s",
        }))  # fmt: skip
        (d / "manifests").mkdir(exist_ok=True)
        # No seccomp profile is put on this node: like any node nobody prepared, it gets the build
        # Task's from the catalog's installer (install/seccomp), which the e2e tier and the demo apply.
        ctx.spawn(self.name, [
            binaries()["kubelet"], "--config", d / "kubelet.yaml", "--kubeconfig", ctx.kubeconfig,
            "--root-dir", self.root_dir(ctx), "--cert-dir", d / "pki", "--hostname-override", ctx.node_name,
            "--node-ip", ctx.host_ip, "--v", "1",
        ])  # fmt: skip

    def ready(self, ctx: Context) -> None:
        ctx.wait_until(self.name, lambda: ctx.has_condition("node", ctx.node_name), timeout=90, interval=0.2)

    def _make_cgroup_root(self, ctx: Context) -> None:
        """The kubelet wants its cgroupRoot to exist in every v1 hierarchy."""
        for controller in Path("/sys/fs/cgroup").iterdir():
            if not (controller / "cgroup.procs").exists():
                continue  # not a hierarchy (e.g. the unified mount's symlinks)
            root = controller / self.cgroup_root(ctx)
            root.mkdir(exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset is empty until it inherits these
                if (root / knob).exists() and not (root / knob).read_text().strip():
                    (root / knob).write_text((controller / knob).read_text())

    def stop(self, ctx: Context) -> None:
        """Let the kubelet remove every pod (CNI teardown, unmounts), then stop it and undo its traces.

        `down` has stopped the controllers that would recreate pods (``stops_early``) before this."""
        if ctx.running(self.name) and ctx.running("kube-apiserver"):
            ctx.kubectl("delete", "pods", "--all", "--all-namespaces", "--force", "--grace-period=0", "--wait=false",
                        check=False)  # fmt: skip
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and containerd.ctr(ctx, "tasks", "ls", "-q", check=False).stdout.strip():
                time.sleep(0.3)
        ctx.stop(self.name)
        folder = str(ctx.component_dir("kubelet"))
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(folder)), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        # Pod logs live in our podLogsDir, but the kubelet links them from the machine-wide
        # /var/log/containers: drop the links into our folder.
        for link in Path("/var/log/containers").glob("*.log"):
            if link.is_symlink() and str(link.readlink()).startswith(f"{folder}/"):
                link.unlink(missing_ok=True)
        for controller in Path("/sys/fs/cgroup").iterdir():
            root = controller / self.cgroup_root(ctx)
            if root.is_dir():  # cgroups go deepest first; their control files vanish with them
                for cgroup in [*sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)), root]:
                    with contextlib.suppress(OSError):
                        cgroup.rmdir()
        remove_kubelet_chains()


def remove_kubelet_chains() -> None:
    """Remove the iptables chains the kubelet added, once no kubelet is left to re-create them."""
    if running_anywhere("kubelet"):
        return  # another local cluster's kubelet still runs and owns them too
    for tool in ("iptables", "ip6tables"):
        for table, chains in KUBELET_CHAINS.items():
            for chain in chains:
                for builtin in ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"):
                    while subprocess.run([tool, "-t", table, "-D", builtin, "-j", chain],
                                         capture_output=True).returncode == 0:  # fmt: skip
                        pass
                subprocess.run([tool, "-t", table, "-F", chain], capture_output=True)
                subprocess.run([tool, "-t", table, "-X", chain], capture_output=True)
