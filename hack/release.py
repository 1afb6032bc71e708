"""Release the catalog's image: build and push the step image, record its digest in catalog.yaml,
and write the released Task files, with the image pinned by that digest, to dist/ (`make release`).

The version has one source: steps/pyproject.toml. The Task files in tasks/ name the image by that
version's tag (so a checkout runs what `make images` built); the released copies in dist/ pin
the digest too, as tektoncd/catalog and Konflux do, and are what a bundle or Artifact Hub ships.

    hack/release.py [--registry HOST:PORT] [--catalog catalog.yaml] [--dist dist]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEP_IMAGE = "ghcr.io/waterschap/druppie-step"
BEGIN, END = "# BEGIN images: written by `make release`", "# END images"


def version() -> str:
    return re.search(r'^version = "([^"]+)"', (ROOT / "steps" / "pyproject.toml").read_text(), re.M)[1]


def build_and_push(registry: str | None) -> str:
    with tempfile.NamedTemporaryFile() as digest_file:
        env = {**os.environ, "DIGEST_FILE": digest_file.name, **({"REGISTRY": registry} if registry else {})}
        subprocess.run([str(ROOT / "hack" / "images.sh")], env=env, check=True)
        digest = Path(digest_file.name).read_text().strip()
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise SystemExit("release: nothing was pushed (no REGISTRY and no local cluster running)")
    return digest


def record_in_catalog(catalog: Path, digest: str) -> None:
    block = (f"{BEGIN}\nimages:\n  - name: {STEP_IMAGE}\n    version: {version()}\n"
             f"    digest: {digest}\n{END}\n")
    text = catalog.read_text()
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END) + 1:]
    else:
        text += block
    catalog.write_text(text)


def write_released_tasks(dist: Path, digest: str) -> list[Path]:
    tagged = f"{STEP_IMAGE}:{version()}"
    written = []
    for source in sorted(ROOT.glob("tasks/*/*/*.yaml")):
        if source.stem != source.parent.parent.name:
            continue  # rbac.yaml and the like are copied unchanged below
        text = source.read_text()
        if f"image: {tagged}\n" not in text:
            raise SystemExit(f"release: {source.relative_to(ROOT)} does not use {tagged}")
        target = dist / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text.replace(f"image: {tagged}\n", f"image: {tagged}@{digest}\n"))
        for extra in source.parent.glob("*.yaml"):
            if extra != source:
                (target.parent / extra.name).write_text(extra.read_text())
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="push here (default: REGISTRY, else the local cluster's registry)")
    parser.add_argument("--catalog", type=Path, default=ROOT / "catalog.yaml")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    digest = build_and_push(args.registry)
    record_in_catalog(args.catalog, digest)
    for path in write_released_tasks(args.dist, digest):
        print(f"release: {path} pins {STEP_IMAGE}:{version()}@{digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
