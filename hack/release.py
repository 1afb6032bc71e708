"""Release the catalog's images: build and push druppie-step, -scan and -build, record their digests
in catalog.yaml, and write the released Task files, each image pinned by its digest, to dist/
(`make release`).

The version has one source: steps/pyproject.toml. The Task files in tasks/ name the image by that
version's tag (so a checkout runs what `make images` built); the released copies in dist/ pin
the digest too, as tektoncd/catalog and Konflux do, and are what a bundle ships. dist/tasks/ is a
whole catalog folder (each version folder, artifacthub-repo.yml): Artifact Hub lists the images a
Task's steps name, so a registration tracking these files lists them by digest.

    hack/release.py [--registry HOST:PORT] [--catalog catalog.yaml] [--dist dist]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = tuple(f"ghcr.io/waterschap/druppie-{kind}" for kind in ("step", "scan", "build"))
BEGIN, END = "# BEGIN images: written by `make release`", "# END images"


def version() -> str:
    return re.search(r'^version = "([^"]+)"', (ROOT / "steps" / "pyproject.toml").read_text(), re.M)[1]


def build_and_push(registry: str | None) -> dict[str, str]:
    """Build and push every image; {image name: the digest the registry serves}."""
    with tempfile.NamedTemporaryFile() as digest_file:
        env = {**os.environ, "DIGEST_FILE": digest_file.name, **({"REGISTRY": registry} if registry else {})}
        subprocess.run([str(ROOT / "hack" / "images.sh")], env=env, check=True)
        lines = Path(digest_file.name).read_text().split("\n")
    digests = dict(line.split() for line in lines if line.strip())
    if set(digests) != set(IMAGES) or not all(re.fullmatch(r"sha256:[0-9a-f]{64}", d) for d in digests.values()):
        raise SystemExit("release: not every image was pushed (no REGISTRY and no local cluster running?)")
    return digests


def record_in_catalog(catalog: Path, digests: dict[str, str]) -> None:
    entries = "".join(f"  - name: {name}\n    version: {version()}\n    digest: {digests[name]}\n" for name in IMAGES)
    block = f"{BEGIN}\nimages:\n{entries}{END}\n"
    text = catalog.read_text()
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) + 1 :]
    else:
        text += block
    catalog.write_text(text)


def write_released_tasks(dist: Path, digests: dict[str, str]) -> list[tuple[Path, str]]:
    written = []
    for source in sorted(ROOT.glob("tasks/*/*/*.yaml")):
        if source.stem != source.parent.parent.name:
            continue  # rbac.yaml and the like are copied unchanged below
        text = source.read_text()
        used = [name for name in IMAGES if f"image: {name}:{version()}\n" in text]
        if not used:
            raise SystemExit(f"release: {source.relative_to(ROOT)} uses none of {', '.join(IMAGES)}:{version()}")
        for name in used:
            text = text.replace(f"image: {name}:{version()}\n", f"image: {name}:{version()}@{digests[name]}\n")
        target = dist / source.relative_to(ROOT)
        # The whole version folder (README.md, samples/, rbac.yaml, ...), as Artifact Hub's tracker
        # reads it, then the Task with its images pinned.
        shutil.copytree(source.parent, target.parent, dirs_exist_ok=True)
        target.write_text(text)
        written.extend((target, f"{name}:{version()}@{digests[name]}") for name in used)
    # The repository metadata sits at the registered path (hack/artifacthub.py), so dist/tasks/ is a
    # catalog Artifact Hub can track as it is.
    shutil.copy(ROOT / "tasks" / "artifacthub-repo.yml", dist / "tasks" / "artifacthub-repo.yml")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="push here (default: REGISTRY, else the local cluster's registry)")
    parser.add_argument("--catalog", type=Path, default=ROOT / "catalog.yaml")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    digests = build_and_push(args.registry)
    record_in_catalog(args.catalog, digests)
    for path, ref in write_released_tasks(args.dist, digests):
        print(f"release: {path} pins {ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
