"""Tekton Pipelines from its release config (the Go module's config/), as a release installs it.

Each ``ko://github.com/tektoncd/pipeline/cmd/X`` becomes an image of the binary `make
cluster-build` compiled (see release.py). Nothing in the release YAML changes except settings a
cluster without internet needs, each a documented knob of the release (``_adjust``):

- ``-shell-image``: Tekton's default (cgr.dev/chainguard/busybox) cannot be pulled here; ours is
  Debian's static busybox and runs as user 65532, as that image does, so a Task with a ``script:``
  step is admitted in a namespace that enforces Pod Security "restricted".
- feature-flags: no sidecar injector here (steps need not wait for injected sidecars), and
  ``set-security-context`` so Tekton's own init containers get a restricted securityContext.
- the remote resolvers run without ko's tini (the image has none; git's children are waited for).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import release
from .component import Component
from .context import Context
from .ociimage import BUSYBOX, File, busybox_image, push, with_libraries
from .toolchain import cache_dir, optional_binaries, toolchain

COMMANDS = ("controller", "webhook", "entrypoint", "nop", "workingdirinit", "sidecarlogresults", "resolvers")
KO_PREFIX = "ko://github.com/tektoncd/pipeline/cmd/"
# Release parts left out: the events controller (its config stays: the others read it) and the
# webhook autoscaler (no metrics server here).
SKIPPED = ("events.yaml", "webhook-hpa.yaml")
DEPLOYMENTS = ("tekton-pipelines-controller", "tekton-pipelines-webhook")
NAMESPACE = "tekton-pipelines"
# The remote resolvers (git, bundles, hub, cluster, http) for `resolver:` references.
RESOLVERS_NAMESPACE, RESOLVERS = "tekton-pipelines-resolvers", "tekton-pipelines-remote-resolvers"
# The git resolver runs `git` (since v1.0; ko builds it on a base with git): this machine's git,
# with its https helper, their libraries and the CA bundle, in the resolvers image.
GIT = (Path("/usr/bin/git"), Path("/usr/lib/git-core/git-remote-http"))
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def version() -> str:
    """The Tekton Pipelines release to run: TEKTON_PIPELINE_VERSION, or with DRUPPIE_TEKTON_VERSION=lts
    the oldest LTS the catalog claims to support (TEKTON_LTS_VERSION, `make test-e2e-lts`)."""
    choice = os.environ.get("DRUPPIE_TEKTON_VERSION", "current")
    if choice not in ("current", "lts"):
        raise ValueError(f"invalid DRUPPIE_TEKTON_VERSION {choice!r}: must be current or lts")
    return toolchain()["TEKTON_LTS_VERSION" if choice == "lts" else "TEKTON_PIPELINE_VERSION"]


def release_dir() -> Path:
    return cache_dir() / f"tekton-pipeline-{version()}"


def shell_image(ctx: Context) -> str:
    """The non-root busybox image for `script:` steps, pushed to the cluster registry."""
    digest = push(busybox_image(user="65532"), ctx.registry, "druppie/busybox", "nonroot")
    return f"{release.MIRROR}/druppie/busybox@{digest}"


def _adjust(docs: list[dict], shell: str) -> None:
    adjusted = 0
    for doc in docs:
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == "tekton-pipelines-controller":
            args = doc["spec"]["template"]["spec"]["containers"][0]["args"]
            args[args.index("-shell-image") + 1] = shell
            adjusted += 1
        elif doc.get("kind") == "Deployment" and doc["metadata"]["name"] == RESOLVERS:
            container = doc["spec"]["template"]["spec"]["containers"][0]
            if container.get("command", [])[:2] == ["/sbin/tini", "--"]:  # ko's tini-git base; ours has no tini
                container["command"] = container["command"][2:]
        elif doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "feature-flags":
            doc["data"]["running-in-environment-with-injected-sidecars"] = "false"
            doc["data"]["set-security-context"] = "true"
            adjusted += 1
    if adjusted != 2:  # a renamed object in a new release must not silently lose our settings
        raise RuntimeError("the controller Deployment or the feature-flags ConfigMap is missing from the release")


class Tekton(Component):
    name = "tekton"
    prepare_needs = ("registry",)
    # Applied once the API server answers; its pods start when the node is there (ready() waits).
    needs = ("kube-apiserver",)
    features = frozenset({"kubelet", "tekton"})

    def missing(self) -> list[str]:
        paths = [release_dir() / "bin" / c for c in COMMANDS] + [optional_binaries()["tkn"]]  # tkn: the tier's client
        found = [str(p) for p in paths if not p.is_file()]
        found += [] if BUSYBOX.is_file() else ["busybox-static (Debian package)"]
        return found + [f"{p} (Debian package git)" for p in GIT if not p.is_file()]

    def prepare(self, ctx: Context) -> None:
        images = {KO_PREFIX + c: release.Binary(release_dir() / "bin" / c, f"/ko-app/{c}") for c in COMMANDS}
        images[KO_PREFIX + "resolvers"] = release.Binary(
            release_dir() / "bin" / "resolvers",
            "/ko-app/resolvers",
            env=("PATH=/usr/bin", "HOME=/tmp"),
            extra=(
                *with_libraries(list(GIT)),
                File("/usr/lib/git-core/git-remote-https", link="git-remote-http"),
                File(str(CA_BUNDLE), CA_BUNDLE, mode=0o644),
            ),
        )
        refs = release.publish(ctx, "tektoncd/pipeline", images, version())
        docs = release.resolve(release.load_config(release_dir() / "config", SKIPPED), refs)
        _adjust(docs, shell_image(ctx))
        release.quick_probes(docs)
        release.save(ctx, self.name, docs)

    def start(self, ctx: Context) -> None:
        release.apply(ctx, self.name)

    def ready(self, ctx: Context) -> None:
        ctx.rollout(NAMESPACE, *DEPLOYMENTS)
        ctx.rollout(RESOLVERS_NAMESPACE, RESOLVERS)

    def stop(self, ctx: Context) -> None:
        """Its pods go with the node; nothing runs on the host."""
