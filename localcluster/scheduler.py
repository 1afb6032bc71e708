"""kube-scheduler: places pods on the node (the kubelet's, or kwok's fake one)."""

from __future__ import annotations

from .component import Component
from .context import Context
from .process import http_ok
from .toolchain import binaries


class Scheduler(Component):
    name = "kube-scheduler"
    needs = ("kube-apiserver",)
    stops_early = True

    def missing(self) -> list[str]:
        return [] if binaries()[self.name].is_file() else [str(binaries()[self.name])]

    def start(self, ctx: Context) -> None:
        ctx.spawn(self.name, [binaries()[self.name], "--kubeconfig", ctx.kubeconfig, "--leader-elect=false",
                              "--bind-address", "127.0.0.1", "--secure-port", ctx.port("scheduler")])  # fmt: skip

    def ready(self, ctx: Context) -> None:
        ctx.wait_until(self.name, lambda: http_ok(f"https://127.0.0.1:{ctx.port('scheduler')}/healthz"))
