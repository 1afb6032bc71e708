"""The scanners of ``druppie-step scan``: one module per tool, each turning its report into Findings.

Every adapter runs its tool on the source folder with the tool's own suppression mechanisms
switched off (exceptions belong in ``.druppie-scan.yaml``, with a reason and an expiry date),
reads the tool's JSON report and returns normalised findings. A missing binary, a crash or an
unreadable report is a StepError with one line naming the tool, never a traceback.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..core import tools
from ..core.errors import StepError

SEVERITIES = ("info", "low", "medium", "high", "critical")  # lowest first: the index is the rank
# Folders that hold tools or other people's code, not the app's own files: no scanner reads them.
SKIP_DIRS = (".git", ".venv", "venv", "node_modules", ".tox", ".nox", "__pycache__", ".druppie")


def rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Finding:
    """One problem, in the same shape whichever tool found it."""

    scanner: str  # code, secrets, deps, config
    tool: str  # bandit, gitleaks, osv-scanner, trivy
    rule: str  # the tool's own rule id: B602, github-pat, GHSA-..., DS002 / KSV017
    severity: str  # one of SEVERITIES
    path: str  # relative to the source root, with forward slashes
    line: int | None
    message: str
    rule_name: str = ""  # a short title of the rule, for SARIF's rule list
    help_uri: str = ""
    aliases: tuple[str, ...] = ()  # other ids of the same problem (CVE-..., AVD-...), matched by ignore entries

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {SEVERITIES}")

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass
class ScanOutcome:
    """What one scanner did: its findings, or the reason it had nothing to scan."""

    scanner: str
    tool: str
    version: str = ""
    findings: list[Finding] = field(default_factory=list)
    skipped: str = ""  # the reason, when the scanner did not run
    notes: list[str] = field(default_factory=list)  # warnings the tool gave (files it could not parse, ...)


def relative(path: str | os.PathLike[str], root: Path) -> str:
    """A tool's path (absolute, or relative to ``root`` with or without ``./``) as a clean relative path."""
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(root.resolve())
        except ValueError:
            return p.as_posix()
    text = PurePosixPath(p.as_posix()).as_posix()
    while text.startswith("./"):
        text = text[2:]
    return text or "."


def find_tool(name: str) -> str:
    """The tool on PATH, else beside the interpreter (.venv/bin); a clear error naming both otherwise."""
    return tools.require(
        name,
        "the druppie-scan image has it in /usr/local/bin; locally, make setup links it into .venv/bin "
        f"(hack/cluster-build.sh scanners builds it into $DRUPPIE_CACHE/{name}-<version>/)",
    )


def run_tool(
    tool: str,
    argv: list[str],
    cwd: Path,
    ok_codes: tuple[int, ...] = (0,),
    deadline: float = math.inf,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a scanner, stopped at the step's ``deadline`` (time.monotonic()); any exit code outside
    ``ok_codes`` is a StepError with the tool's last error line."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise StepError(f"timed out before {tool} ran (raise --timeout)")
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=None if remaining == math.inf else remaining,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as err:
        raise StepError(f"{tool} not found: {argv[0]}") from err
    except subprocess.TimeoutExpired as err:
        raise StepError(f"timed out during {tool} (raise --timeout)") from err
    except OSError as err:
        raise StepError(f"cannot run {tool} ({argv[0]}): {err.strerror}") from err
    if proc.returncode not in ok_codes:
        raise StepError(f"{tool} failed (exit {proc.returncode}): {last_line(proc.stderr or proc.stdout)}")
    return proc


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else "no output"


def version_of(argv: list[str], cwd: Path) -> str:
    """The first version-looking word of ``tool --version`` (best effort; empty when it says nothing usable)."""
    import re

    try:
        out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(r"v?(\d+\.\d+\.\d+)", out)
    return match[1] if match else ""
