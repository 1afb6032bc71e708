"""Tekton Triggers in the local cluster, installed the way its release is (after Pipelines).

As for Pipelines (see tekton.py): each ``ko://github.com/tektoncd/triggers/cmd/X`` of the release
manifests in the module's config/ becomes a FROM-scratch image of the binary `make cluster-build`
compiled, at ``/ko-app/X``, pushed to the cluster registry and named by digest. The controller
starts EventListener sinks from the ``-el-image`` it is given (also such an image); the core
interceptors (github, cel, ...) serve HTTPS with their own certificates. Nothing else is changed.
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

COMMANDS = ("controller", "webhook", "eventlistenersink", "interceptors")
KO_PREFIX = "ko://github.com/tektoncd/triggers/cmd/"
MIRROR = "registry.example"
DEPLOYMENTS = ("tekton-triggers-controller", "tekton-triggers-webhook", "tekton-triggers-core-interceptors")


def release_dir() -> Path:
    return cache_dir() / f"tekton-triggers-{toolchain()['TEKTON_TRIGGERS_VERSION']}"


def missing() -> list[str]:
    return [str(release_dir() / "bin" / c) for c in COMMANDS if not (release_dir() / "bin" / c).is_file()]


def publish_images(registry: str) -> dict[str, str]:
    version = toolchain()["TEKTON_TRIGGERS_VERSION"]
    refs = {}
    for cmd in COMMANDS:
        image = build_layered([File(f"/ko-app/{cmd}", release_dir() / "bin" / cmd)], [f"/ko-app/{cmd}"], user="65532")
        refs[KO_PREFIX + cmd] = (
            f"{MIRROR}/tektoncd/triggers/{cmd}@{push(image, registry, f'tektoncd/triggers/{cmd}', version)}"
        )
    return refs


def release_manifests(refs: dict[str, str]) -> list[dict]:
    docs = []
    for path in sorted((release_dir() / "config").rglob("*.yaml")):
        text = path.read_text()
        for ko, ref in refs.items():
            text = text.replace(ko, ref)
        docs += [d for d in yaml.safe_load_all(text) if d]
    unresolved = [d["metadata"]["name"] for d in docs if KO_PREFIX in json.dumps(d)]
    if unresolved:
        raise RuntimeError(f"unresolved ko:// images in {', '.join(unresolved)}")
    return docs


def install(cluster: LocalCluster) -> None:
    docs = release_manifests(publish_images(cluster.registry))
    # The CRDs first: the release also holds objects of its own kinds (the core ClusterInterceptors).
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    first, rest = cluster.state_dir / "tekton-triggers-crds.yaml", cluster.state_dir / "tekton-triggers-release.yaml"
    first.write_text(yaml.safe_dump_all(crds, sort_keys=False))
    rest.write_text(yaml.safe_dump_all([d for d in docs if d not in crds], sort_keys=False))
    cluster.kubectl("apply", "--server-side", "-f", str(first))
    cluster.kubectl(
        "wait", "--for", "condition=Established", "--timeout=60s", *[f"crd/{d['metadata']['name']}" for d in crds]
    )
    cluster.kubectl("apply", "--server-side", "-f", str(rest))
    for deployment in DEPLOYMENTS:
        cluster.kubectl("rollout", "status", "-n", "tekton-pipelines", f"deployment/{deployment}", "--timeout=180s")
