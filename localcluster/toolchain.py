"""Versions, the build cache, and what the cache still lacks (built by hack/cluster-build.sh)."""

from __future__ import annotations

import os
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


def spo_crd_dir() -> Path:
    """The Security Profiles Operator's SeccompProfile CRD (hack/cluster-build.sh spo-crds), for the e2e
    check of install/seccomp-operator; no cluster installs it by default."""
    return cache_dir() / f"spo-crds-{toolchain()['SPO_VERSION']}" / "crds"


def node_side() -> str:
    side = os.environ.get("DRUPPIE_NODE_SIDE", "kubelet")
    if side not in NODE_SIDES:
        raise RuntimeError(f"DRUPPIE_NODE_SIDE={side!r}: use one of {', '.join(NODE_SIDES)}")
    return side


def containerd2_dir() -> Path:
    """containerd v2 (containerd, its runc shim, ctr) from its Go module: hack/cluster-build.sh userns."""
    return cache_dir() / f"containerd-{toolchain()['CONTAINERD2_VERSION']}"


def runc2_binary() -> Path:
    """runc >= 1.2 (idmapped mounts, for user-namespaced pods): hack/cluster-build.sh userns."""
    return cache_dir() / f"runc-{toolchain()['RUNC2_VERSION']}" / "runc"


def node_runtime() -> str:
    """The node's container runtime: Debian's containerd 1.6, or with DRUPPIE_CONTAINERD=2 containerd
    v2 and runc v1.5.3, which run pods with ``hostUsers: false`` in a user namespace."""
    version = os.environ.get("DRUPPIE_CONTAINERD", "1")
    if version not in ("1", "2"):
        raise RuntimeError(f"DRUPPIE_CONTAINERD={version!r}: use 1 (Debian's containerd 1.6) or 2 (containerd v2)")
    return "containerd2" if version == "2" else "containerd"
