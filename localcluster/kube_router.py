"""NetworkPolicy enforcement: kube-router's policy controller alone (no routing, no service proxy),
as a process on the node, with iptables and ipset. kind's kube-network-policies needs the nftables
``queue`` expression, which these machines' kernel lacks (CONFIG_NFT_QUEUE); kube-router filters
with iptables, which it has. It enforces ingress and egress rules of every NetworkPolicy for the
pods on the node's bridge; `stop` removes its chains and sets (``--cleanup-config``).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

from .component import Component
from .context import Context
from .process import http_ok, running_anywhere
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
        remove_rules()


# Its chains and sets, by kube-router's names. Its own --cleanup-config leaves them in place here
# (and then panics in the service controller, which needs IPVS), so `stop` removes them itself.
CHAIN_PREFIXES = ("KUBE-ROUTER-", "KUBE-POD-FW-", "KUBE-NWPLCY-")
SET_PREFIXES = ("KUBE-DST-", "KUBE-SRC-")


def remove_rules() -> None:
    """Remove kube-router's iptables chains (and the jumps to them) and its ipsets, once no
    kube-router is left to need them."""
    if running_anywhere("kube-router"):
        return  # another local cluster's kube-router still runs
    for table in ("filter", "nat", "mangle"):
        rules = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout.splitlines()
        for rule in rules:  # the jumps from the built-in chains first
            if rule.startswith("-A ") and any(f"-j {p}" in rule for p in CHAIN_PREFIXES):
                subprocess.run(["iptables", "-t", table, "-D", *shlex.split(rule[3:])], capture_output=True)
        chains = [r[1:].split()[0] for r in rules if r.startswith(":") and r[1:].startswith(CHAIN_PREFIXES)]
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)
    sets = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True).stdout.split()
    for name in sets:
        if name.startswith(SET_PREFIXES):
            subprocess.run(["ipset", "destroy", name], capture_output=True)
