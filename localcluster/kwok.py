"""kwok's fake node (DRUPPIE_NODE_SIDE=kwok): pods become Ready without containers, so Deployments
still go through the real controller-manager, scheduler and Flux on machines without a kubelet."""

from __future__ import annotations

from .component import Component
from .context import Context
from .toolchain import binaries


class Kwok(Component):
    name = "kwok"
    needs = ("kube-apiserver",)
    features = frozenset({"kwok"})

    def missing(self) -> list[str]:
        stages = binaries()["kwok"].parent / "stages.yaml"
        return [str(p) for p in (binaries()["kwok"], stages) if not p.is_file()]

    def start(self, ctx: Context) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": ctx.node_name, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": ctx.node_name, "type": "kwok"}},
            "spec": {}, "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                                   "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"}}}  # fmt: skip
        ctx.apply([node])
        kwok = binaries()["kwok"]
        ctx.spawn(self.name, [
            kwok, "--kubeconfig", ctx.kubeconfig, "--config", kwok.parent / "stages.yaml", "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake", "--cidr=10.244.0.0/16",
            "--node-ip=127.0.0.1", "--node-port", ctx.port("kwok"),
        ])  # fmt: skip

    def ready(self, ctx: Context) -> None:
        ctx.wait_until(self.name, lambda: ctx.has_condition("node", ctx.node_name), timeout=60)
