"""Install a Go project's release config the way its release does, with our locally built images.

A Tekton (or Triggers, ...) release is ``ko resolve -R -f config/``: ko builds each
``ko://<module>/cmd/X`` into an image and writes its reference into the YAML. We do the same
with the binaries `make cluster-build` compiled from the Go module: each becomes a FROM-scratch
image holding only the static binary (at ko's path ``/ko-app/X`` for ko projects), pushed to the
cluster registry and named by digest under the mirrored ``registry.example`` host, which
containerd pulls from the cluster registry. Components whose manifests are not ko's (CoreDNS,
local-path-provisioner) name their image by the same kind of placeholder, so one resolver serves all.

    images = {"ko://github.com/tektoncd/pipeline/cmd/controller": Binary(bin / "controller", "/ko-app/controller")}
    docs = resolve(load_config(config_dir), publish(ctx, "tektoncd/pipeline", images, version))
    save(ctx, "tekton", docs)  # in prepare(), while the API server starts
    apply(ctx, "tekton")      # in start()
    ctx.rollout("tekton-pipelines", "tekton-pipelines-controller")
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from .context import Context
from .ociimage import File, build_layered, push

# libyaml's loader where PyYAML has it: Tekton's CRDs take seconds to parse in pure Python.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MIRROR = "registry.example"  # containerd pulls this host from the cluster registry (see node.py)
KO_REFERENCE = re.compile(r"ko://[A-Za-z0-9._/-]+")


@dataclass(frozen=True)
class Binary:
    """A FROM-scratch image of one static binary at ``path`` (its entrypoint), run as ``user``."""

    source: Path
    path: str
    user: str = "65532"  # ko's default base runs as nonroot
    env: tuple[str, ...] = ()
    extra: tuple[File, ...] = ()  # what ko's base image would have given it (e.g. git)


def load_config(config_dir: Path, skip: tuple[str, ...] = ()) -> list[dict]:
    """Every object of the YAML files under ``config_dir``, in file order; ``skip`` holds relative
    paths, or folder prefixes ending in ``/``, of release parts this cluster leaves out."""
    docs = []
    for path in sorted(config_dir.rglob("*.yaml")):
        rel = path.relative_to(config_dir).as_posix()
        if any(rel == s or (s.endswith("/") and rel.startswith(s)) for s in skip):
            continue
        docs += [d for d in yaml.load_all(path.read_text(), Loader=SafeLoader) if d]
    return docs


def publish(ctx: Context, repository: str, images: dict[str, Binary], tag: str) -> dict[str, str]:
    """Build and push each image, side by side; placeholder -> ``registry.example/<repository>/<name>@<digest>``."""

    def one(image: Binary) -> str:
        name = image.source.name
        files = [File(image.path, image.source), *image.extra]
        built = build_layered(files, [image.path], user=image.user, env=list(image.env))
        return f"{MIRROR}/{repository}/{name}@{push(built, ctx.registry, f'{repository}/{name}', tag)}"

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(images, pool.map(one, images.values()), strict=True))


def quick_probes(docs: list[dict]) -> None:
    """Probe the release's Deployments every second from the first (the releases wait 5 s, then
    every 10 s): the same checks, answered sooner, so a local cluster is up in seconds, not tens."""
    for doc in docs:
        if doc.get("kind") != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "startupProbe"):
                if probe in container:
                    container[probe].update(initialDelaySeconds=0, periodSeconds=1)


def resolve(docs: list[dict], refs: dict[str, str]) -> list[dict]:
    """``docs`` with every placeholder replaced by its reference: a ko:// reference anywhere in a
    string (Tekton passes images as container args too), any other placeholder as a whole value.
    A ko:// reference without an image is an error: the release would not run."""
    unknown: set[str] = set()

    def ko(match: re.Match[str]) -> str:
        if match.group(0) not in refs:
            unknown.add(match.group(0))
            return match.group(0)
        return refs[match.group(0)]

    def walk(value: object) -> object:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return refs[value] if value in refs else KO_REFERENCE.sub(ko, value)
        return value

    resolved = [walk(doc) for doc in docs]
    if unknown:
        raise RuntimeError(f"unresolved image references: {', '.join(sorted(unknown))}")
    return resolved  # type: ignore[return-value]


def save(ctx: Context, name: str, docs: list[dict]) -> None:
    """Keep a component's resolved release in its folder (prepare writes it, apply reads it; and
    it shows what the cluster runs)."""
    (ctx.component_dir(name) / "release.json").write_text(json.dumps(docs, indent=1))


def apply(ctx: Context, name: str) -> None:
    """Apply the release ``save`` kept: its CRDs first (and wait until they are established),
    then namespaces, then the rest, server-side."""
    docs = json.loads((ctx.component_dir(name) / "release.json").read_text())
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    rest = [d for d in docs if d.get("kind") != "CustomResourceDefinition"]
    if crds:
        ctx.apply(crds, server_side=True)
        names = [f"crd/{d['metadata']['name']}" for d in crds]
        ctx.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    # Namespaces before what lives in them, so one pass admits everything.
    namespaces = [d for d in rest if d.get("kind") == "Namespace"]
    if namespaces:
        ctx.apply(namespaces, server_side=True)
    ctx.apply([d for d in rest if d.get("kind") != "Namespace"], server_side=True)
