"""Pod networking on the host: the node's bridge, and kube-proxy for Services.

The bridge exists before anything starts, with the gateway address that the bridge CNI plugin
would give it, so the API server and the git server can listen on that address: pods reach
them through it (the `kubernetes` Service is DNATed there by kube-proxy), and nothing listens
on an address outside this machine. kube-proxy runs in iptables mode with masquerade-all, so a
pod can also reach another pod through a Service; `down` removes its rules with `--cleanup`.
kube-proxy's rules are machine-wide: run one cluster with Tekton at a time.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from .process import http_ok, log
from .toolchain import cache_dir, optional_binaries

if TYPE_CHECKING:
    from .cluster import LocalCluster

POD_CIDR = "10.244.0.0/16"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def subnet(cluster: LocalCluster) -> str:
    """This cluster's pod /24 (keyed by a port, so two clusters on one machine do not collide)."""
    return f"10.244.{cluster.ports['kubelet'] % 250}.0/24"


def gateway(cluster: LocalCluster) -> str:
    return subnet(cluster).replace(".0/24", ".1")


BRIDGE_PREFIX = "druppie"


def bridge_name(cluster: LocalCluster) -> str:
    return f"{BRIDGE_PREFIX}{cluster.ports['kubelet'] % 10000}"


def create_bridge(cluster: LocalCluster) -> None:
    name = bridge_name(cluster)
    subprocess.run(["ip", "link", "add", "name", name, "type", "bridge"], check=True, capture_output=True)
    subprocess.run(["ip", "addr", "add", f"{gateway(cluster)}/24", "dev", name], check=True, capture_output=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True, capture_output=True)


def delete_bridge(cluster: LocalCluster) -> None:
    subprocess.run(["ip", "link", "delete", bridge_name(cluster)], check=False, capture_output=True)


def start_kube_proxy(cluster: LocalCluster) -> None:
    # Forwarding lets a pod reach another pod through a Service. The machine's own value is kept
    # once, outside any cluster, and put back when the last local cluster goes down.
    saved = cache_dir() / "ip_forward.orig"
    if not saved.exists():
        saved.write_text(IP_FORWARD.read_text().strip())
    IP_FORWARD.write_text("1")
    cluster.extra["kube-proxy"] = "started"
    p = cluster.ports
    cluster.spawn(
        "kube-proxy",
        [
            optional_binaries()["kube-proxy"],
            "--kubeconfig",
            cluster.kubeconfig,
            "--hostname-override",
            cluster.node_name,
            "--proxy-mode",
            "iptables",
            "--cluster-cidr",
            POD_CIDR,
            "--masquerade-all",
            # Leave the machine's conntrack and localnet sysctls alone.
            "--conntrack-max-per-core",
            "0",
            "--conntrack-tcp-timeout-established",
            "0",
            "--conntrack-tcp-timeout-close-wait",
            "0",
            "--iptables-localhost-nodeports=false",
            "--metrics-bind-address",
            f"127.0.0.1:{p['proxy-metrics']}",
            "--healthz-bind-address",
            f"127.0.0.1:{p['proxy-health']}",
            "--v",
            "1",
        ],
    )
    cluster.wait_until("kube-proxy", lambda: http_ok(f"http://127.0.0.1:{p['proxy-health']}/healthz"))
    log("kube-proxy ready (iptables)")


def stop_kube_proxy(cluster: LocalCluster) -> None:
    """After the process is gone: remove its iptables chains."""
    if cluster.extra.pop("kube-proxy", ""):
        proxy = optional_binaries()["kube-proxy"]
        subprocess.run([str(proxy), "--cleanup", "--proxy-mode", "iptables"], check=False, capture_output=True)


def restore_forwarding() -> None:
    """Put the machine's ip_forward back once no local cluster's bridge is left."""
    saved = cache_dir() / "ip_forward.orig"
    links = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True).stdout
    if saved.exists() and not any(f": {BRIDGE_PREFIX}" in line for line in links.splitlines()):
        IP_FORWARD.write_text(saved.read_text())
        saved.unlink()


# Chains the kubelet itself adds (a canary, and a firewall that drops non-loopback traffic to
# 127.0.0.0/8); it re-creates them while it runs, so they go only after it stopped.
KUBELET_CHAINS = {
    "filter": ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY"),
    "nat": ("KUBE-KUBELET-CANARY",),
    "mangle": ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"),
}


def remove_kubelet_chains() -> None:
    for tool in ("iptables", "ip6tables"):
        for table, chains in KUBELET_CHAINS.items():
            for chain in chains:
                for builtin in ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"):
                    while (
                        subprocess.run([tool, "-t", table, "-D", builtin, "-j", chain], capture_output=True).returncode
                        == 0
                    ):
                        pass
                subprocess.run([tool, "-t", table, "-F", chain], capture_output=True)
                subprocess.run([tool, "-t", table, "-X", chain], capture_output=True)
