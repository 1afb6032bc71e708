"""kube-controller-manager: Deployments, ReplicaSets, Jobs, service-account tokens, PV binding, GC."""

from __future__ import annotations

from .apiserver import root_ca, signing_key
from .component import Component
from .context import Context
from .process import http_ok
from .toolchain import binaries


class ControllerManager(Component):
    name = "kube-controller-manager"
    needs = ("kube-apiserver",)
    stops_early = True  # it would recreate the pods the kubelet drains at `down`

    def missing(self) -> list[str]:
        return [] if binaries()[self.name].is_file() else [str(binaries()[self.name])]

    def start(self, ctx: Context) -> None:
        ctx.spawn(self.name, [
            binaries()[self.name], "--kubeconfig", ctx.kubeconfig, "--leader-elect=false",
            "--bind-address", "127.0.0.1", "--secure-port", ctx.port("kcm"), "--use-service-account-credentials",
            "--service-account-private-key-file", signing_key(ctx), "--root-ca-file", root_ca(ctx),
            "--controllers", "*,-nodeipam,-cloud-node-lifecycle,-route,-service",
            "--concurrent-deployment-syncs", "10", "--v", "1",
        ])  # fmt: skip

    def ready(self, ctx: Context) -> None:
        ctx.wait_until(self.name, lambda: http_ok(f"https://127.0.0.1:{ctx.port('kcm')}/healthz"))
