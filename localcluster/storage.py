"""PersistentVolumes on demand: Rancher's local-path-provisioner, as kind and k3s ship it.

Tekton workspaces from a ``volumeClaimTemplate`` (what a PipelineRun started by a trigger uses)
need a StorageClass that provisions. The provisioner runs from its release manifest
(``deploy/local-path-storage.yaml`` in its Go module) with this cluster's settings: its binary as
an image from the cluster registry, a root busybox for its helper pods (they create and remove
volume folders owned by root), volumes under the cluster's state folder (so `cluster-down` leaves
nothing behind), and the class marked default.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from . import release
from .component import Component
from .context import Context
from .ociimage import busybox_image, push
from .toolchain import cache_dir, toolchain

PLACEHOLDER = "ko://local-path-provisioner"


def release_dir() -> Path:
    return cache_dir() / f"local-path-provisioner-{toolchain()['LOCAL_PATH_VERSION']}"


def manifests(volumes: Path, helper_image: str) -> list[dict]:
    """The release manifest with this cluster's settings; the provisioner's image as a placeholder."""
    docs = [d for d in yaml.safe_load_all((release_dir() / "local-path-storage.yaml").read_text()) if d]
    changed = 0
    for doc in docs:
        if doc["kind"] == "Deployment":
            doc["spec"]["template"]["spec"]["containers"][0]["image"] = PLACEHOLDER
            changed += 1
        elif doc["kind"] == "ConfigMap":
            config = json.loads(doc["data"]["config.json"])
            config["nodePathMap"][0]["paths"] = [str(volumes)]
            doc["data"]["config.json"] = json.dumps(config)
            helper = yaml.safe_load(doc["data"]["helperPod.yaml"])
            helper["spec"]["containers"][0]["image"] = helper_image
            doc["data"]["helperPod.yaml"] = yaml.safe_dump(helper)
            changed += 1
        elif doc["kind"] == "StorageClass":
            # The default class: a volumeClaimTemplate without storageClassName gets a volume.
            doc["metadata"].setdefault("annotations", {})["storageclass.kubernetes.io/is-default-class"] = "true"
            changed += 1
    if changed != 3:
        raise RuntimeError("local-path-storage.yaml changed shape: Deployment, ConfigMap or StorageClass missing")
    return docs


class LocalPath(Component):
    name = "local-path"
    prepare_needs = ("registry",)
    needs = ("kube-apiserver",)
    features = frozenset({"kubelet", "tekton"})

    def missing(self) -> list[str]:
        binary = release_dir() / "local-path-provisioner"
        return [] if binary.is_file() else [str(binary)]

    def prepare(self, ctx: Context) -> None:
        volumes = ctx.component_dir("local-path") / "volumes"
        volumes.mkdir(exist_ok=True)
        helper = f"{release.MIRROR}/druppie/busybox@{push(busybox_image(), ctx.registry, 'druppie/busybox', 'root')}"
        binary = release.Binary(
            release_dir() / "local-path-provisioner", "/usr/bin/local-path-provisioner", user="", env=("PATH=/usr/bin",)
        )
        refs = release.publish(ctx, "rancher", {PLACEHOLDER: binary}, toolchain()["LOCAL_PATH_VERSION"])
        release.save(ctx, self.name, release.resolve(manifests(volumes, helper), refs))

    def start(self, ctx: Context) -> None:
        release.apply(ctx, self.name)

    def ready(self, ctx: Context) -> None:
        ctx.rollout("local-path-storage", "local-path-provisioner")

    def stop(self, ctx: Context) -> None:
        """Its pod goes with the node; the volumes with the state folder."""
