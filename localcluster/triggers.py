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
    needs = ("tekton",)  # its Deployments live in Tekton's namespace
    features = frozenset({"kubelet", "tekton", "loop"})

    def missing(self) -> list[str]:
        return [str(release_dir() / "bin" / c) for c in COMMANDS if not (release_dir() / "bin" / c).is_file()]

    def start(self, ctx: Context) -> None:
        images = {KO_PREFIX + c: release.Binary(release_dir() / "bin" / c, f"/ko-app/{c}") for c in COMMANDS}
        refs = release.publish(ctx, "tektoncd/triggers", images, toolchain()["TEKTON_TRIGGERS_VERSION"])
        release.apply(ctx, self.name, release.resolve(release.load_config(release_dir() / "config"), refs))

    def ready(self, ctx: Context) -> None:
        ctx.rollout("tekton-pipelines", *DEPLOYMENTS)

    def stop(self, ctx: Context) -> None:
        """Its pods go with the node."""
