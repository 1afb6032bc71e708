"""The Go-built tools in the shared cache (hack/cluster-build.sh), at the versions in hack/toolchain.env.

    tool_path("gitleaks")  # $DRUPPIE_CACHE/gitleaks-v8.30.1/gitleaks (DRUPPIE_CACHE: /var/cache/druppie)

The steps find their tools on PATH (the images put them in /usr/local/bin); tests put these
folders on PATH with ``path_with``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def versions() -> dict[str, str]:
    found = {}
    for line in (ROOT / "hack" / "toolchain.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            found[key.strip()] = value.strip()
    return found


def cache() -> Path:
    return Path(os.environ.get("DRUPPIE_CACHE") or "/var/cache/druppie")


def tool_path(name: str) -> Path:
    """Where cluster-build.sh puts ``name`` (it may not be built yet: check ``.exists()``)."""
    key = name.upper().replace("-", "_") + "_VERSION"
    version = versions().get(key)
    if not version:
        raise KeyError(f"hack/toolchain.env has no {key}")
    return cache() / f"{name}-{version}" / name


def path_with(*names: str, base: str | None = None) -> str:
    """A PATH with the cached tools first, then this Python's bin (bandit), then ``base`` (default: PATH)."""
    dirs = [str(tool_path(n).parent) for n in names] + [str(Path(sys.executable).parent)]
    return os.pathsep.join([*dirs, base if base is not None else os.environ.get("PATH", "")])


def tekton_validate() -> Path:
    """hack/tekton-validate as hack/cluster-build.sh caches it: tekton-validate-<pipeline version>-<source
    hash>, so a binary built from other sources is never used (check ``.is_file()``)."""
    source = ROOT / "hack" / "tekton-validate"
    digest = hashlib.sha256()
    for path in [source / "go.mod", source / "go.sum", *sorted(source.glob("*.go"))]:
        digest.update(path.read_bytes())
    name = f"tekton-validate-{versions()['TEKTON_PIPELINE_VERSION']}-{digest.hexdigest()[:12]}"
    return cache() / name / "tekton-validate"
