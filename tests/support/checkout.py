"""A folder made into a git checkout of one commit, as druppie-git-clone leaves the source workspace."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# A fixed committer date (2026-01-01T00:00:00Z): one commit of the same tree is always one sha.
COMMITTER_DATE = 1767225600


def commit_all(folder: Path, message: str = "the app", date: int = COMMITTER_DATE) -> str:
    """``git init`` (if needed), add everything, commit; the commit's sha."""
    stamp = f"{date} +0000"
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "dev",
        "GIT_AUTHOR_EMAIL": "dev@example.org",
        "GIT_COMMITTER_NAME": "dev",
        "GIT_COMMITTER_EMAIL": "dev@example.org",
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    if not (folder / ".git").exists():
        git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "--allow-empty", "-m", message)
    return git("rev-parse", "HEAD")
