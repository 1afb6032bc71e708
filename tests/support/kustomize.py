"""The real kustomize CLI (built by hack/setup.sh into the cache), as an oracle for image edits.

build(folder)                                   # `kustomize build folder`, the rendered YAML
installed(path, folder)                         # a file's objects as `kubectl apply -k folder` installs them
edit_set_image(folder, image, tag, digest)      # what tag-commit should be equivalent to
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import yaml

from localcluster.toolchain import cache_dir, toolchain


class KustomizeError(RuntimeError):
    pass


def binary() -> Path:
    version = toolchain()["KUSTOMIZE_VERSION"]
    path = cache_dir() / f"kustomize-{version}" / "kustomize"
    if not path.is_file():
        raise KustomizeError(f"kustomize {version} is not built at {path}; run `make setup` (hack/setup.sh)")
    return path


def _run(folder: Path, *args: str) -> str:
    proc = subprocess.run([str(binary()), *args], cwd=folder, capture_output=True, text=True, timeout=60)
    if proc.returncode:
        raise KustomizeError(f"kustomize {' '.join(args)} in {folder}: {proc.stderr.strip()}")
    return proc.stdout


def build(folder: Path) -> str:
    return _run(folder, "build", ".")


@cache
def _rendered(folder: Path) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(build(folder)) if d}


def installed(path: Path, folder: Path) -> list[dict]:
    """The objects of one file, as the kustomization in ``folder`` renders them (namespace set)."""
    rendered = _rendered(folder)
    return [rendered[(d["kind"], d["metadata"]["name"])] for d in yaml.safe_load_all(path.read_text()) if d]


def edit_set_image(folder: Path, image: str, tag: str, digest: str | None = None) -> None:
    """``kustomize edit set image IMAGE=*:TAG[@DIGEST]`` in ``folder``.

    ``*`` keeps an entry's newName: ``IMAGE=IMAGE:TAG`` would rewrite a renaming entry (name: IMAGE,
    newName: other) to deploy IMAGE itself, while setting a tag must not change which image runs.
    Without an entry the two forms build the same.
    """
    _run(folder, "edit", "set", "image", f"{image}=*:{tag}" + (f"@{digest}" if digest else ""))
