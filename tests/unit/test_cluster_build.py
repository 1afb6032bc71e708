"""hack/cluster-build.sh's cache entries: an entry counts only when complete, and two runs at once
(a test fixture building `userns` beside `make cluster-build`) do not clear each other's work."""

from __future__ import annotations

import subprocess
from pathlib import Path

from localcluster.toolchain import ROOT

SCRIPT = ROOT / "hack/cluster-build.sh"


def run_build(cache: Path, marker: str) -> subprocess.Popen[str]:
    """run_build of a slow fake component (writes a file, sleeps, writes another) into CACHE."""
    body = f"""
set -euo pipefail
source {SCRIPT}
build_fake() {{ echo {marker} > "$out/first"; sleep 1; echo {marker} > "$out/second"; }}
run_build fake v1 build_fake
"""
    env = {"PATH": "/usr/bin:/bin", "DRUPPIE_CACHE": str(cache), "HOME": str(cache)}
    return subprocess.Popen(["bash", "-c", body], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def test_two_runs_at_once_build_an_entry_once_and_both_find_it_complete(tmp_path):
    first = run_build(tmp_path, "one")
    second = run_build(tmp_path, "two")
    outputs = [p.communicate(timeout=60)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    entry = tmp_path / "fake-v1"
    assert (entry / ".complete").is_file() and not (tmp_path / "fake-v1.tmp").exists()
    # One run built it whole; the other waited and found it complete instead of starting over.
    assert (entry / "first").read_text() == (entry / "second").read_text(), outputs
    assert sum("built in" in out for out in outputs) == 1, outputs
    assert any("another build of it is running; waiting for it" in out for out in outputs), outputs


def test_a_complete_entry_is_not_built_again(tmp_path):
    (tmp_path / "fake-v1").mkdir()
    (tmp_path / "fake-v1" / ".complete").touch()
    out = run_build(tmp_path, "one").communicate(timeout=60)[0]
    assert "fake v1: cached in" in out and not (tmp_path / "fake-v1" / "first").exists(), out
