"""Tekton Pipelines in the local cluster, installed the way a release is.

A release is `ko resolve -R -f config/`: ko builds each `ko://github.com/tektoncd/pipeline/cmd/X`
into an image and puts its reference in the YAML. We do the same with the binaries that
`make cluster-build` compiled from the Go module: each becomes a FROM-scratch image holding only
the static binary at Tekton's fixed path `/ko-app/X` (the controller's prepare init container runs
`/ko-app/entrypoint init ...`), pushed to the cluster registry and named by digest under the
mirrored `registry.example` host. Nothing else in the release YAML is changed except two settings
a cluster without internet needs (below), so admission webhooks, conversion and RBAC are Tekton's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .ociimage import File, build_layered, push
from .toolchain import cache_dir, toolchain

if TYPE_CHECKING:
    from .cluster import LocalCluster

# The images of a release that this cluster runs (events and resolvers are optional parts).
COMMANDS = ("controller", "webhook", "entrypoint", "nop", "workingdirinit", "sidecarlogresults")
KO_PREFIX = "ko://github.com/tektoncd/pipeline/cmd/"
MIRROR = "registry.example"  # containerd pulls this host from the cluster registry
# Release parts we leave out: the events controller (its config stays: the others read it), the remote resolvers (only
# for `resolver:` refs), and the webhook autoscaler (no metrics server here).
SKIPPED = ("events.yaml", "webhook-hpa.yaml", "resolvers/")
# Busybox applets the shell image needs for `script:` steps and Tekton's place-scripts init container.
SHELL_APPLETS = ("sh", "cat", "chmod", "touch", "cp", "mkdir", "ls", "echo", "printf", "env", "rm", "mv", "test", "[")
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static


def release_dir() -> Path:
    return cache_dir() / f"tekton-pipeline-{toolchain()['TEKTON_PIPELINE_VERSION']}"


def missing() -> list[str]:
    found = [str(release_dir() / "bin" / c) for c in COMMANDS if not (release_dir() / "bin" / c).is_file()]
    return found + ([] if BUSYBOX.is_file() else ["busybox-static (Debian package)"])


def publish_images(registry: str) -> dict[str, str]:
    """Push every release image and the shell image; ko:// reference -> pullable reference by digest."""
    version = toolchain()["TEKTON_PIPELINE_VERSION"]
    refs = {}
    for cmd in COMMANDS:
        image = build_layered([File(f"/ko-app/{cmd}", release_dir() / "bin" / cmd)], [f"/ko-app/{cmd}"], user="65532")
        digest = push(image, registry, f"tektoncd/pipeline/{cmd}", version)
        refs[KO_PREFIX + cmd] = f"{MIRROR}/tektoncd/pipeline/{cmd}@{digest}"
    shell = build_layered(
        [File("/bin/busybox", BUSYBOX)] + [File(f"/bin/{a}", link="busybox") for a in SHELL_APPLETS],
        ["/bin/sh"],
        env=["PATH=/bin"],
    )
    refs["shell"] = f"{MIRROR}/druppie/busybox@{push(shell, registry, 'druppie/busybox', 'tekton')}"
    return refs


def release_manifests(refs: dict[str, str]) -> list[dict]:
    """The release's objects from the module's config/, with image references resolved."""
    root = release_dir() / "config"
    docs = []
    for path in sorted(root.rglob("*.yaml")):
        rel = str(path.relative_to(root))
        if any(rel == s or (s.endswith("/") and rel.startswith(s)) for s in SKIPPED):
            continue
        text = path.read_text()
        for ko, ref in refs.items():
            if ko.startswith(KO_PREFIX):
                text = text.replace(ko, ref)
        docs += [d for d in yaml.safe_load_all(text) if d]
    adjusted = sum(_adjust(doc, refs["shell"]) for doc in docs)
    if adjusted != 2:  # a renamed object in a new release must not silently lose our settings
        raise RuntimeError("the controller Deployment or the feature-flags ConfigMap is missing from the release")
    unresolved = [d["metadata"]["name"] for d in docs if KO_PREFIX in json.dumps(d)]
    if unresolved:
        raise RuntimeError(f"unresolved ko:// images in {', '.join(unresolved)}")
    return docs


def _adjust(doc: dict, shell_image: str) -> bool:
    """The settings this cluster needs, each a documented knob of the release."""
    if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == "tekton-pipelines-controller":
        args = doc["spec"]["template"]["spec"]["containers"][0]["args"]
        # The default shell image (cgr.dev/chainguard/busybox) cannot be pulled here.
        args[args.index("-shell-image") + 1] = shell_image
        return True
    if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "feature-flags":
        # No sidecar injector here: steps need not wait for injected sidecars (faster start).
        doc["data"]["running-in-environment-with-injected-sidecars"] = "false"
        # Tekton's own init containers get a restricted securityContext, so TaskRun pods are
        # admitted in namespaces that enforce Pod Security "restricted" (as ours do).
        doc["data"]["set-security-context"] = "true"
        return True
    return False


def install(cluster: LocalCluster) -> dict[str, str]:
    """Publish the images, apply the release, wait until controller and webhook are Available.

    Returns the published image references (the shell image serves other components too)."""
    refs = publish_images(cluster.registry)
    docs = release_manifests(refs)
    out = cluster.state_dir / "tekton-release.yaml"
    out.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    # CRDs and namespaces first, so the objects that use them are accepted in one pass.
    cluster.kubectl("apply", "--server-side", "-f", str(out))
    for deployment in ("tekton-pipelines-controller", "tekton-pipelines-webhook"):
        cluster.kubectl("rollout", "status", "-n", "tekton-pipelines", f"deployment/{deployment}", "--timeout=120s")
    return refs
