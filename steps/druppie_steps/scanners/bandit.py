"""code: bandit, the Python SAST scanner (a Python package: steps/requirements-scan.txt).

Severity is bandit's own (LOW/MEDIUM/HIGH become low/medium/high); its confidence goes into the
message. ``# nosec`` comments and a ``.bandit`` file in the app are ignored: exceptions belong in
``.druppie-scan.yaml``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

from ..core.errors import StepError
from . import SKIP_DIRS, Finding, ScanOutcome, relative, run_tool, version_of

SCANNER, TOOL = "code", "bandit"
SEVERITY = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
# Tests whose message quotes the string they found, which may be a real password or token.
QUOTES_A_SECRET = {"B105", "B106", "B107"}


def python_files(root: Path) -> bool:
    for _, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        if any(f.endswith(".py") for f in files):
            return True
    return False


def scan(root: Path, scratch: Path, deadline: float = math.inf) -> ScanOutcome:
    outcome = ScanOutcome(SCANNER, TOOL)
    if not python_files(root):
        outcome.skipped = "no Python files"
        return outcome
    # bandit runs as ``python -P -m bandit`` with this Python: it is installed beside druppie-step (the
    # venv, or the image's PYTHONPATH), where its console script may not be on PATH. -P keeps the
    # current folder, the app, off sys.path: a bandit.py or bandit/ in the app would otherwise run
    # instead of bandit (and decide what it reports).
    if importlib.util.find_spec("bandit") is None:
        raise StepError(
            "bandit is not installed beside druppie-step: the druppie-scan image has it; "
            "locally, make setup installs it (steps/requirements-scan.txt)"
        )
    bandit = [sys.executable, "-P", "-m", "bandit"]
    outcome.version = version_of([*bandit, "--version"], root)
    report = scratch / "bandit.json"
    no_ini = scratch / "bandit.ini"
    no_ini.write_text("[bandit]\n")  # an empty [bandit] section: the app's own .bandit file is not read
    excluded = ",".join(f"./{d}/" for d in SKIP_DIRS)
    # Exit 1 means findings; 2 and more is bandit failing.
    run_tool(
        TOOL,
        [
            *bandit,
            "-r",
            ".",
            "-f",
            "json",
            "-o",
            str(report),
            "-q",
            "--ignore-nosec",
            "--ini",
            str(no_ini),
            "-x",
            excluded,
        ],
        cwd=root,
        ok_codes=(0, 1),
        deadline=deadline,
        env={"PYTHONDONTWRITEBYTECODE": "1"},  # the source is only read
    )
    outcome.findings, outcome.notes = parse(_load(report), root)
    return outcome


def _load(report: Path) -> dict[str, Any]:
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise StepError(f"bandit wrote no readable report ({report.name}): {err}") from err
    if not isinstance(data, dict):
        raise StepError(f"bandit wrote no readable report ({report.name}): not a JSON object")
    return data


def parse(data: dict[str, Any], root: Path) -> tuple[list[Finding], list[str]]:
    findings = []
    for r in data.get("results", []):
        rule = str(r.get("test_id", ""))
        message = str(r.get("issue_text", "")).strip()
        if rule in QUOTES_A_SECRET:
            message = re.sub(r"""(['"]).*\1""", "(value not shown)", message, flags=re.S)
            message = re.sub(r":\s*(?=\(value not shown\))", " ", message)
        confidence = str(r.get("issue_confidence", "")).lower()
        findings.append(
            Finding(
                scanner=SCANNER,
                tool=TOOL,
                rule=rule,
                severity=SEVERITY.get(str(r.get("issue_severity")), "medium"),
                path=relative(r.get("filename", ""), root),
                line=r.get("line_number") or None,
                message=f"{message} (confidence {confidence})" if confidence else message,
                rule_name=str(r.get("test_name", "")),
                help_uri=str(r.get("more_info", "")),
            )
        )
    notes = [
        f"bandit could not read {relative(e.get('filename', ''), root)}: {e.get('reason', '')}"
        for e in data.get("errors", [])
    ]
    return findings, notes
