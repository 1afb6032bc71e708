"""Versions, the build cache, and what the cache still lacks (built by hack/cluster-build.sh)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The node side: a real kubelet unless DRUPPIE_NODE_SIDE=kwok, which fakes nodes and pods
# (Deployments then still go through the real controller-manager, scheduler and Flux).
NODE_SIDES = ("kubelet", "kwok")


def toolchain() -> dict[str, str]:
    env = {}
    for line in (ROOT / "hack" / "toolchain.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def cache_dir() -> Path:
    return Path(os.environ.get("DRUPPIE_CACHE", "/var/cache/druppie"))


def binaries() -> dict[str, Path]:
    v = toolchain()
    c = cache_dir()
    k8s = c / f"kubernetes-{v['KUBERNETES_VERSION']}"
    return {
        "etcd": c / f"etcd-{v['ETCD_VERSION']}" / "etcd",
        "kube-apiserver": k8s / "kube-apiserver",
        "kube-controller-manager": k8s / "kube-controller-manager",
        "kube-scheduler": k8s / "kube-scheduler",
        "kubelet": k8s / "kubelet",
        "kubectl": c / f"kubectl-{v['KUBERNETES_VERSION']}" / "kubectl",
        "kwok": c / f"kwok-{v['KWOK_VERSION']}" / "kwok",
        "source-controller": c / f"source-controller-{v['SOURCE_CONTROLLER_VERSION']}" / "source-controller",
        "kustomize-controller": c
        / f"kustomize-controller-{v['KUSTOMIZE_CONTROLLER_VERSION']}"
        / "kustomize-controller",
    }


def optional_binaries() -> dict[str, Path]:
    """The Tekton tier's tools: a cluster without them runs without Tekton."""
    v = toolchain()
    c = cache_dir()
    return {
        "kube-proxy": c / f"kube-proxy-{v['KUBERNETES_VERSION']}" / "kube-proxy",
        "tkn": c / f"tkn-{v['TKN_VERSION']}" / "tkn",
    }


def crd_dirs() -> list[Path]:
    v = toolchain()
    c = cache_dir()
    return [
        c / f"source-controller-{v['SOURCE_CONTROLLER_VERSION']}" / "crds",
        c / f"kustomize-controller-{v['KUSTOMIZE_CONTROLLER_VERSION']}" / "crds",
        c / f"notification-crds-{v['NOTIFICATION_API_VERSION']}" / "crds",
    ]


def node_side() -> str:
    side = os.environ.get("DRUPPIE_NODE_SIDE", "kubelet")
    if side not in NODE_SIDES:
        raise RuntimeError(f"DRUPPIE_NODE_SIDE={side!r}: use one of {', '.join(NODE_SIDES)}")
    return side


def missing_binaries() -> list[str]:
    """What the cache (and, for the kubelet, the machine) lacks; empty when the e2e tier can run."""
    missing = [name for name, path in binaries().items() if not path.is_file()]
    if node_side() == "kubelet":
        missing += [tool for tool in ("containerd", "ctr", "runc", "gcc") if not shutil.which(tool)]
        missing += [] if Path("/usr/lib/cni/bridge").is_file() else ["containernetworking-plugins (Debian package)"]
    if not (binaries()["kwok"].parent / "stages.yaml").is_file():
        missing.append("kwok stages.yaml")
    missing += [str(d) for d in crd_dirs() if not d.is_dir()]
    if not shutil.which("docker-registry"):
        missing.append("docker-registry (Debian package)")
    return missing


def missing_for_tekton() -> list[str]:
    """What the Tekton tier lacks beyond the cluster itself (kubelet node side only)."""
    from . import storage, tekton

    if node_side() != "kubelet":
        return ["a kubelet node (DRUPPIE_NODE_SIDE=kubelet)"]
    return (
        [name for name, path in optional_binaries().items() if not path.is_file()]
        + tekton.missing()
        + storage.missing()
    )
