"""Fixtures: real servers on loopback for the whole session, and a way to run a step as users do."""

from __future__ import annotations

import itertools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from localcluster.gitserver import GitServer
from tests.support.gitfaults import FaultyGitServer
from tests.support.paths import EXAMPLE_APPS, STEP, TEST_TOKEN, TEST_USER
from tests.support.repos import Repo

_names = itertools.count()


@pytest.fixture(scope="session")
def git_server():
    with FaultyGitServer() as server:
        yield server


@pytest.fixture(scope="session")
def auth_git_server():
    """A git server that demands basic auth (user ci-bot, a GitHub-style token as password)."""
    with FaultyGitServer(credentials=(TEST_USER, TEST_TOKEN)) as server:
        yield server


@pytest.fixture
def new_repo(git_server):
    """Make a fresh repo on the session's git server: new_repo(files=..., source_dir=...)."""

    def make(files: dict[str, str] | None = None, source_dir: Path | None = None, server: GitServer | None = None):
        srv = server or git_server
        name = f"apps-{os.getpid()}-{next(_names)}"
        return Repo(srv, name, srv.create_repo(name, files=files, source_dir=source_dir))

    return make


@pytest.fixture
def druppie_apps(new_repo):
    """A fresh copy of the example druppie-apps repo (envs/prod/drone-service at 1.0.4)."""
    return new_repo(source_dir=EXAMPLE_APPS)


@dataclass
class StepRun:
    returncode: int
    stdout: str
    stderr: str
    results: dict[str, str]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def run_step(tmp_path):
    """Run ``druppie-step`` as a subprocess, the way the Task does, and read its Tekton results."""
    counter = itertools.count()

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> StepRun:
        results_dir = tmp_path / f"results-{next(counter)}"
        proc = subprocess.run(
            [str(STEP), *args, "--results-dir", str(results_dir)],
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        results = {p.name: p.read_text() for p in results_dir.iterdir()} if results_dir.exists() else {}
        return StepRun(proc.returncode, proc.stdout, proc.stderr, results)

    return run


@pytest.fixture(scope="session")
def ssh_git_server(git_server):
    """sshd on loopback serving the same bare repos as ``git_server``."""
    from tests.support.sshserver import SshGitServer

    server = SshGitServer(git_server.root).start()
    yield server
    server.stop()
