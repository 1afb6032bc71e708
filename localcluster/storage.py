"""PersistentVolumes on demand: Rancher's local-path-provisioner, as kind and k3s ship it.

Tekton workspaces from a ``volumeClaimTemplate`` (what a PipelineRun started by a trigger uses)
need a StorageClass that provisions. The provisioner runs from its release manifest
(``deploy/local-path-storage.yaml`` in its Go module), with three settings of this cluster: its
binary as a FROM-scratch image from the cluster registry, the busybox image for its helper pods,
and volumes under the cluster's state folder, so ``cluster-down`` leaves nothing behind.
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

MIRROR = "registry.example"


def release_dir() -> Path:
    return cache_dir() / f"local-path-provisioner-{toolchain()['LOCAL_PATH_VERSION']}"


def missing() -> list[str]:
    binary = release_dir() / "local-path-provisioner"
    return [] if binary.is_file() else [str(binary)]


def volumes_dir(cluster: LocalCluster) -> Path:
    return cluster.state_dir / "local-path"


def manifests(cluster: LocalCluster, shell_image: str) -> list[dict]:
    binary = release_dir() / "local-path-provisioner"
    image = build_layered(
        [File("/usr/bin/local-path-provisioner", binary)], ["/usr/bin/local-path-provisioner"], env=["PATH=/usr/bin"]
    )
    version = toolchain()["LOCAL_PATH_VERSION"]
    ref = f"{MIRROR}/rancher/local-path-provisioner@{push(image, cluster.registry, 'rancher/local-path-provisioner', version)}"
    docs = [d for d in yaml.safe_load_all((release_dir() / "local-path-storage.yaml").read_text()) if d]
    changed = 0
    for doc in docs:
        if doc["kind"] == "Deployment":
            doc["spec"]["template"]["spec"]["containers"][0]["image"] = ref
            changed += 1
        elif doc["kind"] == "ConfigMap":
            config = json.loads(doc["data"]["config.json"])
            config["nodePathMap"][0]["paths"] = [str(volumes_dir(cluster))]
            doc["data"]["config.json"] = json.dumps(config)
            helper = yaml.safe_load(doc["data"]["helperPod.yaml"])
            helper["spec"]["containers"][0]["image"] = shell_image
            doc["data"]["helperPod.yaml"] = yaml.safe_dump(helper)
            changed += 1
        elif doc["kind"] == "StorageClass":
            # The default class: a volumeClaimTemplate without storageClassName gets a volume.
            doc["metadata"].setdefault("annotations", {})["storageclass.kubernetes.io/is-default-class"] = "true"
            changed += 1
    if changed != 3:
        raise RuntimeError("local-path-storage.yaml changed shape: Deployment, ConfigMap or StorageClass missing")
    return docs


def install(cluster: LocalCluster, shell_image: str) -> None:
    volumes_dir(cluster).mkdir(parents=True, exist_ok=True)
    out = cluster.state_dir / "local-path-storage.yaml"
    out.write_text(yaml.safe_dump_all(manifests(cluster, shell_image), sort_keys=False))
    cluster.kubectl("apply", "-f", str(out))
    cluster.kubectl(
        "rollout", "status", "-n", "local-path-storage", "deployment/local-path-provisioner", "--timeout=120s"
    )
