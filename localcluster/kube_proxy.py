"""kube-proxy in iptables mode: Services route to pods (the `kubernetes` Service, Tekton's webhook,
the EventListener). masquerade-all, so a pod reaches another pod through a Service too; `stop`
removes its rules with ``--cleanup``. Its rules are machine-wide: one cluster with it at a time.
"""

from __future__ import annotations

import subprocess

from .component import Component
from .context import Context
from .process import http_ok
from .toolchain import optional_binaries

POD_CIDR = "10.244.0.0/16"


class KubeProxy(Component):
    name = "kube-proxy"
    needs = ("kube-apiserver", "bridge")
    features = frozenset({"kubelet", "tekton"})

    def missing(self) -> list[str]:
        binary = optional_binaries()["kube-proxy"]
        return [] if binary.is_file() else [str(binary)]

    def start(self, ctx: Context) -> None:
        ctx.spawn(self.name, [
            optional_binaries()["kube-proxy"], "--kubeconfig", ctx.kubeconfig, "--hostname-override", ctx.node_name,
            "--proxy-mode", "iptables", "--cluster-cidr", POD_CIDR, "--masquerade-all",
            # Leave the machine's conntrack and localnet sysctls alone.
            "--conntrack-max-per-core", "0", "--conntrack-tcp-timeout-established", "0",
            "--conntrack-tcp-timeout-close-wait", "0", "--iptables-localhost-nodeports=false",
            "--metrics-bind-address", f"127.0.0.1:{ctx.port('proxy-metrics')}",
            "--healthz-bind-address", f"127.0.0.1:{ctx.port('proxy-health')}", "--v", "1",
        ])  # fmt: skip

    def ready(self, ctx: Context) -> None:
        ctx.wait_until(self.name, lambda: http_ok(f"http://127.0.0.1:{ctx.port('proxy-health')}/healthz"))

    def stop(self, ctx: Context) -> None:
        ctx.stop(self.name)
        binary = optional_binaries()["kube-proxy"]
        subprocess.run([str(binary), "--cleanup", "--proxy-mode", "iptables"], check=False, capture_output=True)
