"""Flux's source-controller and kustomize-controller as processes, with the CRDs from their modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .process import http_ok, log
from .toolchain import binaries

if TYPE_CHECKING:
    from .cluster import LocalCluster


def start(cluster: LocalCluster) -> None:
    b, p, d = binaries(), cluster.ports, cluster.state_dir
    env = {"KUBECONFIG": str(cluster.kubeconfig), "RUNTIME_NAMESPACE": "flux-system"}
    (d / "flux-artifacts").mkdir(exist_ok=True)
    # Each controller gets its own ports: both default to metrics :8080 and health :9440.
    cluster.spawn(
        "source-controller",
        [
            b["source-controller"],
            "--storage-path",
            d / "flux-artifacts",
            "--storage-addr",
            f"127.0.0.1:{p['sc-storage']}",
            "--storage-adv-addr",
            f"127.0.0.1:{p['sc-storage']}",
            "--metrics-addr",
            f"127.0.0.1:{p['sc-metrics']}",
            "--health-addr",
            f"127.0.0.1:{p['sc-health']}",
            "--enable-leader-election=false",
            "--watch-all-namespaces",
            "--log-level",
            "info",
        ],
        env,
    )
    cluster.spawn(
        "kustomize-controller",
        [
            b["kustomize-controller"],
            "--metrics-addr",
            f"127.0.0.1:{p['kc-metrics']}",
            "--health-addr",
            f"127.0.0.1:{p['kc-health']}",
            "--enable-leader-election=false",
            "--watch-all-namespaces",
            "--log-level",
            "info",
        ],
        env,
    )
    cluster.wait_until("source-controller", lambda: http_ok(f"http://127.0.0.1:{p['sc-health']}/readyz"))
    cluster.wait_until("kustomize-controller", lambda: http_ok(f"http://127.0.0.1:{p['kc-health']}/readyz"))
    log("Flux source-controller and kustomize-controller ready")
