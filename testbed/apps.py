"""The example app and its failing variants, as fresh copies for a test.

A variant is a folder under tests/fixtures/drone-variants/<name>/ holding only what differs from
examples/drone-service: its files are laid over a copy of the app, and each path listed in its
optional ``DELETE`` file (one per line) is removed. So every variant stays the real app with one
planted problem, and a change to the app reaches every variant.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "drone-service"
VARIANTS = ROOT / "tests" / "fixtures" / "drone-variants"
IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache", "build")


def variant_names() -> list[str]:
    return sorted(p.name for p in VARIANTS.iterdir() if p.is_dir())


def drone_app(dest: Path, variant: str | None = None) -> Path:
    """Copy the app (with ``variant`` laid over it) to ``dest`` and return ``dest``."""
    shutil.copytree(APP, dest, ignore=IGNORED)
    if variant is None:
        return dest
    overlay = VARIANTS / variant
    if not overlay.is_dir():
        raise ValueError(f"no app variant {variant!r}; have {variant_names()}")
    for source in overlay.rglob("*"):
        relative = source.relative_to(overlay)
        if source.is_dir() or relative == Path("DELETE") or "__pycache__" in relative.parts:
            continue
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    deletions = overlay / "DELETE"
    if deletions.exists():
        for line in deletions.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                path = dest / line.strip()
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    return dest
