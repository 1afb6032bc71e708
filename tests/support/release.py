"""The catalog copied into a git repository of its own, for `hack/release.py --tag` to release."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.checkout import commit_all
from tests.support.paths import REPO_ROOT

# What a release reads and checks: the index, the Task and Pipeline folders, the version, the README table.
CATALOG_FILES = ("tasks", "pipelines", "catalog.yaml", "steps/pyproject.toml", "README.md")
IDENTITY = {
    "GIT_AUTHOR_NAME": "releaser",
    "GIT_AUTHOR_EMAIL": "releaser@example.org",
    "GIT_COMMITTER_NAME": "releaser",
    "GIT_COMMITTER_EMAIL": "releaser@example.org",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def catalog_repo(dest: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository (branch main, one commit) holding the catalog's files; git runs as IDENTITY."""
    for name, value in IDENTITY.items():
        monkeypatch.setenv(name, value)
    for item in CATALOG_FILES:
        source, target = REPO_ROOT / item, dest / item
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    commit_all(dest, "the catalog")
    return dest


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def refs(repo: Path) -> str:
    """Every ref with what it points at, and HEAD: what a refused or failed release must leave as it was."""
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)") + "\nHEAD " + git(repo, "rev-parse", "HEAD")
