"""Tekton Triggers in the local cluster, installed the way its release is (after Pipelines).

As for Pipelines (see tekton.py): each ``ko://github.com/tektoncd/triggers/cmd/X`` of the release
manifests in the module's config/ becomes a FROM-scratch image of the binary `make cluster-build`
compiled, at ``/ko-app/X``, pushed to the cluster registry and named by digest. The controller
starts EventListener sinks from the ``-el-image`` it is given (also such an image); the core
interceptors (github, cel, ...) serve HTTPS with their own certificates. Nothing else is changed.
"""

from __future__ import annotations

from pathlib import Path

from . import release
from .component import Component
from .context import Context
from .toolchain import cache_dir, toolchain

COMMANDS = ("controller", "webhook", "eventlistenersink", "interceptors")
KO_PREFIX = "ko://github.com/tektoncd/triggers/cmd/"
DEPLOYMENTS = ("tekton-triggers-controller", "tekton-triggers-webhook", "tekton-triggers-core-interceptors")


def release_dir() -> Path:
    return cache_dir() / f"tekton-triggers-{toolchain()['TEKTON_TRIGGERS_VERSION']}"


class Triggers(Component):
    name = "triggers"
    prepare_needs = ("registry",)
    needs = ("kube-apiserver",)
    features = frozenset({"kubelet", "tekton", "loop"})

    def missing(self) -> list[str]:
        return [str(release_dir() / "bin" / c) for c in COMMANDS if not (release_dir() / "bin" / c).is_file()]

    def prepare(self, ctx: Context) -> None:
        images = {KO_PREFIX + c: release.Binary(release_dir() / "bin" / c, f"/ko-app/{c}") for c in COMMANDS}
        refs = release.publish(ctx, "tektoncd/triggers", images, toolchain()["TEKTON_TRIGGERS_VERSION"])
        docs = release.resolve(release.load_config(release_dir() / "config"), refs)
        release.quick_probes(docs)
        release.save(ctx, self.name, docs)

    def start(self, ctx: Context) -> None:
        # Its release has no Namespace: it lives in Tekton's, which Tekton's release may not have
        # made yet (the two start side by side); Tekton's apply adds its labels to it later.
        ctx.kubectl("create", "namespace", "tekton-pipelines", check=False)
        release.apply(ctx, self.name)

    def ready(self, ctx: Context) -> None:
        ctx.rollout("tekton-pipelines", *DEPLOYMENTS)

    def stop(self, ctx: Context) -> None:
        """Its pods go with the node."""
