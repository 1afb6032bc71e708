"""A repository on one of the tests' git servers, as the ``new_repo`` fixture makes it."""

from __future__ import annotations

from dataclasses import dataclass

from localcluster.gitserver import GitServer


@dataclass
class Repo:
    server: GitServer
    name: str
    url: str

    def read(self, path: str) -> str:
        return self.server.read_file(self.name, path)

    def log(self) -> list[str]:
        return self.server.log(self.name)

    def head(self) -> str:
        return self.server.log(self.name, fmt="%H")[0]


def push_commit(
    repo: Repo, files: dict[str, str] | None = None, symlinks: dict[str, str] | None = None, message: str = "change"
) -> str:
    """One more commit on ``repo``'s main: ``files`` written, ``symlinks`` (path -> target) made (replacing
    a file there); returns its sha."""
    import os
    import tempfile
    from pathlib import Path

    from localcluster.gitserver import COMMIT_ENV, run

    with tempfile.TemporaryDirectory(prefix="druppie-commit-") as tmp:
        work = Path(tmp)
        run("git", "clone", "--quiet", str(repo.server.repo_path(repo.name)), str(work))
        for rel, content in (files or {}).items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_text(content)
        for rel, target in (symlinks or {}).items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).unlink(missing_ok=True)  # a file replaced by a link
            os.symlink(target, work / rel)
        run("git", "add", "-A", cwd=work)
        run("git", "commit", "--quiet", "-m", message, cwd=work, env=COMMIT_ENV)
        run("git", "push", "--quiet", "origin", "HEAD:main", cwd=work)
        return run("git", "rev-parse", "HEAD", cwd=work).stdout.strip()
