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
