"""Flux: its CRDs (source, kustomize, notification), the flux-system namespace, and
source-controller and kustomize-controller as processes, watching every namespace."""

from __future__ import annotations

from .component import Component
from .context import Context
from .process import http_ok
from .toolchain import binaries, crd_dirs

CONTROLLERS = ("source-controller", "kustomize-controller")


class Flux(Component):
    name = "flux"
    needs = ("kube-apiserver",)
    stops_early = True  # its Kustomizations would re-create what the node drains

    def missing(self) -> list[str]:
        paths = [binaries()[c] for c in CONTROLLERS] + crd_dirs()
        return [str(p) for p in paths if not p.exists()]

    def start(self, ctx: Context) -> None:
        ctx.kubectl("create", "namespace", "flux-system", check=False)
        folders = [arg for folder in crd_dirs() for arg in ("-f", str(folder))]
        ctx.kubectl("apply", "--server-side", *folders)
        ctx.kubectl("wait", "--for=condition=Established", "--timeout=60s", *folders)
        artifacts = ctx.component_dir("flux") / "artifacts"
        artifacts.mkdir(exist_ok=True)
        env = {"KUBECONFIG": str(ctx.kubeconfig), "RUNTIME_NAMESPACE": "flux-system"}
        storage = f"127.0.0.1:{ctx.port('sc-storage')}"
        # Each controller gets its own ports: both default to metrics :8080 and health :9440.
        ctx.spawn("source-controller", [
            binaries()["source-controller"], "--storage-path", artifacts, "--storage-addr", storage,
            "--storage-adv-addr", storage, "--metrics-addr", f"127.0.0.1:{ctx.port('sc-metrics')}",
            "--health-addr", f"127.0.0.1:{ctx.port('sc-health')}", "--enable-leader-election=false",
            "--watch-all-namespaces", "--log-level", "info",
        ], env)  # fmt: skip
        ctx.spawn("kustomize-controller", [
            binaries()["kustomize-controller"], "--metrics-addr", f"127.0.0.1:{ctx.port('kc-metrics')}",
            "--health-addr", f"127.0.0.1:{ctx.port('kc-health')}", "--enable-leader-election=false",
            "--watch-all-namespaces", "--log-level", "info",
            # Flux's multi-tenancy lockdown, as flux/README.md asks of a real cluster: a Kustomization
            # without serviceAccountName applies as its namespace's `default` (no rights), never as the
            # controller; no Kustomization reads a source in another namespace.
            "--default-service-account=default", "--no-cross-namespace-refs=true",
        ], env)  # fmt: skip

    def ready(self, ctx: Context) -> None:
        for controller, port in (("source-controller", "sc-health"), ("kustomize-controller", "kc-health")):
            ctx.wait_until(controller, lambda p=port: http_ok(f"http://127.0.0.1:{ctx.port(p)}/readyz"))

    def stop(self, ctx: Context) -> None:
        for controller in CONTROLLERS:
            ctx.stop(controller)
