"""secrets: gitleaks (a Go binary) over the files of the source folder, with --redact.

gitleaks has no severities: every finding is **high** (a committed credential must be revoked and
rotated, whatever it guards). The secret never leaves gitleaks: it runs with ``--redact``, and the
finding carries the rule, file and line only, never gitleaks' ``Match`` or ``Secret`` fields. Its
default rules are used whatever the app carries: a ``.gitleaks.toml``, ``.gitleaksignore`` or
``gitleaks:allow`` comment in the app does not count (exceptions belong in .druppie-scan.yaml).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..core.errors import StepError
from . import SKIP_DIRS, Finding, ScanOutcome, find_tool, relative, run_tool, version_of

SCANNER, TOOL = "secrets", "gitleaks"
SEVERITY = "high"
HELP = "https://github.com/gitleaks/gitleaks"


def config_text() -> str:
    """gitleaks' default rules, plus an allowlist for folders that are not the app's own files."""
    folders = "|".join(d.replace(".", r"\.") for d in SKIP_DIRS)
    return (
        'title = "druppie-scan: gitleaks default rules"\n[extend]\nuseDefault = true\n'
        '[[allowlists]]\ndescription = "tool and dependency folders"\n'
        f"paths = ['''(^|/)({folders})/''']\n"
    )


def scan(root: Path, scratch: Path, deadline: float = math.inf) -> ScanOutcome:
    outcome = ScanOutcome(SCANNER, TOOL)
    gitleaks = find_tool("gitleaks")
    outcome.version = version_of([gitleaks, "version"], root)
    config = scratch / "gitleaks.toml"
    config.write_text(config_text())
    no_ignores = scratch / "gitleaks-no-ignore"
    no_ignores.mkdir(exist_ok=True)
    report = scratch / "gitleaks.json"
    run_tool(
        TOOL,
        [
            gitleaks,
            "dir",
            ".",
            "--redact",
            "--no-banner",
            "--no-color",
            "--log-level",
            "error",
            "--report-format",
            "json",
            "--report-path",
            str(report),
            "--exit-code",
            "0",
            "--config",
            str(config),
            "--ignore-gitleaks-allow",
            "--gitleaks-ignore-path",
            str(no_ignores),
        ],
        cwd=root,
        deadline=deadline,
        env={"GITLEAKS_CONFIG": "", "GITLEAKS_CONFIG_TOML": ""},
    )
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise StepError(f"gitleaks wrote no readable report ({report.name}): {err}") from err
    outcome.findings = parse(data, root)
    return outcome


def parse(data: list[dict[str, Any]], root: Path) -> list[Finding]:
    """Only rule, description, file and line are read: Match, Secret and Line hold the secret itself."""
    findings = []
    for leak in data or []:
        rule = str(leak.get("RuleID", ""))
        description = str(leak.get("Description", "")).strip().rstrip(".")
        findings.append(
            Finding(
                scanner=SCANNER,
                tool=TOOL,
                rule=rule,
                severity=SEVERITY,
                path=relative(leak.get("File", ""), root),
                line=leak.get("StartLine") or None,
                message=f"{description or rule} (value not shown; revoke and rotate it)",
                rule_name=rule,
                help_uri=HELP,
            )
        )
    return findings
