"""What the e2e modules share: waiting that fails the test, the catalog installed as README.md
says with runs started by its tkn commands, and the README's CI commands."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from localcluster.cluster import LocalCluster
from localcluster.toolchain import ROOT, binaries, optional_binaries
from testbed import wait
from testbed.readme import block_with

README = ROOT / "README.md"
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], timeout: float = 90, interval: float = 0.3) -> T:
    """``testbed.wait.wait_for``, failing the test (with what was waited for) on a timeout."""
    try:
        return wait.wait_for(what, check, timeout, interval)
    except TimeoutError as err:
        pytest.fail(str(err))


def started(output: str, kind: str) -> str:
    """The run name from tkn's "TaskRun started: NAME" / "PipelineRun started: NAME" line."""
    for line in output.splitlines():
        if line.startswith(f"{kind} started: "):
            return line.split(": ", 1)[1].strip()
    pytest.fail(f"no '{kind} started' line in tkn output:\n{output}")


class Tekton:
    """The catalog on the cluster: README commands (kubectl, tkn) run as a user runs them."""

    def __init__(self, cluster: LocalCluster, workdir: Path) -> None:
        self.cluster, self.workdir = cluster, workdir

    def run(self, command: str, extra: list[str] | None = None, substitute: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run one README command (kubectl or tkn) against the cluster, with the stated substitutions."""
        for old, new in (substitute or {}).items():
            command = command.replace(old, new)
        words = shlex.split(command) + (extra or [])
        tool = {"kubectl": binaries()["kubectl"], "tkn": optional_binaries()["tkn"]}[words[0]]
        proc = subprocess.run([str(tool), *words[1:]], cwd=self.workdir, capture_output=True, text=True,
                              env={**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)}, timeout=300)  # fmt: skip
        if check and proc.returncode != 0:
            pytest.fail(f"{command} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def tkn(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(shlex.join(["tkn", *args]), check=check)

    def finished(self, kind: str, name: str) -> dict:
        """The run once Tekton marked it done (`--showlog` can return a moment before that)."""

        def done() -> dict | None:
            run = json.loads(self.tkn(kind, "describe", name, "-n", "ci", "-o", "json").stdout)
            return run if run.get("status", {}).get("completionTime") else None

        return wait_for(f"{kind} {name} to finish", done, timeout=240, interval=1)

    def taskrun(self, name: str) -> dict:
        return self.finished("taskrun", name)

    def results(self, run: dict) -> dict[str, str]:
        return {r["name"]: r["value"] for r in run.get("status", {}).get("results", [])}


def ci_commands() -> dict[str, str]:
    """The README block's CI commands by what they start (the PVC, each task, the Secret)."""
    found = {}
    for command in block_with(README, "tkn task start druppie-git-clone"):
        words = command.split()
        key = words[3] if words[:3] == ["tkn", "task", "start"] else " ".join(words[:3])
        found[key] = command
    return found


def fresh_namespace(cluster: LocalCluster, namespace: str = "ci") -> None:
    """Delete ``namespace`` (other e2e modules use it too) and wait until it is gone. Its pods are
    removed from the API at once: a pod whose sandbox the node cannot tear down right away (seen:
    containerd's "remove netns: device or resource busy" under load) must not hold the next module."""
    cluster.kubectl("delete", "pods", "-n", namespace, "--all", "--force", "--grace-period=0", "--wait=false",
                    check=False)  # fmt: skip
    cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=180s")


def push_step_images(cluster: LocalCluster) -> None:
    """The step images the unmodified Tasks name (ghcr.io/waterschap/druppie-*), built and pushed to
    the cluster registry as `make images` does (ghcr.io is mirrored there). One pytest worker at a
    time: the first builds what changed, the next only finds it built."""
    with (cluster.state_dir / "images.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run([str(ROOT / "hack" / "images.sh")], check=True, capture_output=True,
                       env={**os.environ, "REGISTRY": cluster.registry})  # fmt: skip


def platform_commands() -> list[str]:
    """README's install commands the platform runs once per cluster (before the team namespace's)."""
    commands = block_with(README, "kubectl create namespace ci")
    return commands[: commands.index("kubectl create namespace ci")]
