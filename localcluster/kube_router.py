"""NetworkPolicy enforcement: kube-router's policy controller alone (no routing, no service proxy),
as a process on the node, with iptables and ipset. kind's kube-network-policies needs the nftables
``queue`` expression, which these machines' kernel lacks (CONFIG_NFT_QUEUE); kube-router filters
with iptables, which it has. It enforces ingress and egress rules of every NetworkPolicy for the
pods on the node's bridge; `stop` removes its chains and sets (``--cleanup-config``).
"""

from __future__ import annotations

import shutil
import subprocess

from .component import Component
from .context import Context
from .process import http_ok
from .toolchain import cache_dir, toolchain


def binary() -> str:
    return str(cache_dir() / f"kube-router-{toolchain()['KUBE_ROUTER_VERSION']}" / "kube-router")


class KubeRouter(Component):
    name = "kube-router"
    needs = ("kube-apiserver", "kubelet")
    features = frozenset({"kubelet", "tekton"})

    def missing(self) -> list[str]:
        lacking = [] if shutil.which("ipset") else ["ipset (Debian package)"]
        return lacking + ([] if shutil.which(binary()) else [f"{binary()} (hack/cluster-build.sh kube-router)"])

    def start(self, ctx: Context) -> None:
        ctx.spawn(self.name, [
            binary(), "--kubeconfig", ctx.kubeconfig, "--hostname-override", ctx.node_name,
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--run-loadbalancer=false",
            "--enable-ipv6=false", "--health-port", ctx.port("kube-router-health"),
            "--metrics-port", "0", "--v", "1",
        ])  # fmt: skip

    def ready(self, ctx: Context) -> None:
        ctx.wait_until(self.name, lambda: http_ok(f"http://127.0.0.1:{ctx.port('kube-router-health')}/healthz"))

    def stop(self, ctx: Context) -> None:
        ctx.stop(self.name)
        subprocess.run([binary(), "--cleanup-config"], check=False, capture_output=True)
