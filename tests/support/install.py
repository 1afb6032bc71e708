"""README's team overlay ("Another team"), as the tests apply it: this checkout for the GitHub URLs."""

from __future__ import annotations

import os
from pathlib import Path

from testbed.readme import yaml_blocks
from tests.support.paths import REPO_ROOT

CATALOG_URL = "https://github.com/waterschap/druppie-catalog?ref=main"
TRIGGER_URL = "https://github.com/waterschap/druppie-catalog//triggers/druppie-ci-cd?ref=main"


def team_overlay(namespace: str, folder: Path, trigger: bool = True) -> str:
    """The overlay for ``namespace``, to be written into ``folder``: the catalog by a relative path
    (kustomize refuses absolute ones), the namespace the README's team-dijken replaced; without
    ``trigger``, the catalog alone (a team that starts its runs itself)."""
    (block,) = [b for b in yaml_blocks(REPO_ROOT / "README.md") if "kind: NamespaceTransformer" in b]
    if not trigger:
        block = "".join(line for line in block.splitlines(keepends=True) if TRIGGER_URL not in line)
    here = os.path.relpath(REPO_ROOT, folder)
    text = block.replace(TRIGGER_URL, f"{here}/triggers/druppie-ci-cd").replace(CATALOG_URL, here)
    if "github.com" in text:
        raise ValueError(f"README's overlay names a URL the tests do not map: {text}")
    return text.replace("namespace: team-dijken", f"namespace: {namespace}")
