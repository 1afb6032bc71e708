"""The code habits are wired as the README says: pre-commit runs the checks of `make lint`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from testbed.readme import block_with

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def test_the_pre_commit_config_is_valid_and_runs_the_lint_tools_of_the_makefile():
    check = subprocess.run([str(VENV_BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml"], cwd=ROOT,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    hooks = {h["id"]: h["entry"] for r in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
             for h in r["hooks"]}  # fmt: skip
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile[makefile.index("\nlint:") : makefile.index("\nmutation:")]
    for tool in ("ruff check", "ruff format --check", "mypy", "yamllint -c .yamllint.yaml", "hack/catalog.py check"):
        assert tool in lint, tool
        assert any(tool in entry for entry in hooks.values()), tool


def test_the_readmes_pre_commit_install_installs_the_hook(tmp_path):
    """Run as the README says, in a fresh repository holding this config."""
    commands = block_with(ROOT / "README.md", "make lint")
    assert commands == ["make lint", ".venv/bin/pre-commit install"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".pre-commit-config.yaml").write_text((ROOT / ".pre-commit-config.yaml").read_text())
    (tmp_path / ".venv").symlink_to(VENV_BIN.parent)
    out = subprocess.run(commands[1].split(), cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    hook = tmp_path / ".git" / "hooks" / "pre-commit"
    assert hook.is_file() and "pre-commit" in hook.read_text()
