"""config: trivy's misconfiguration checks (a Go binary) on Containerfiles, Kubernetes manifests and Helm charts.

Offline: ``--skip-check-update`` keeps trivy from fetching the checks bundle from its OCI registry,
so it uses the checks compiled into the binary (trivy-checks, pinned by trivy's go.mod);
``--skip-version-check`` and ``--disable-telemetry`` stop its calls home. Only the dockerfile,
kubernetes and helm misconfig scanners run: trivy's Terraform scanner may download remote
modules, which has no place in an offline step (nor in these apps). Severity is trivy's own
(LOW/MEDIUM/HIGH/CRITICAL, UNKNOWN counts as medium). The app's trivy.yaml and .trivyignore are
not read; trivy's inline ``#trivy:ignore:<id>`` comments cannot be switched off and do apply.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..core.errors import StepError
from . import SKIP_DIRS, Finding, ScanOutcome, find_tool, relative, run_tool, version_of

SCANNER, TOOL = "config", "trivy"
MISCONFIG_SCANNERS = "dockerfile,kubernetes,helm"
SEVERITY = {"CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low", "UNKNOWN": "medium"}


def scan(root: Path, scratch: Path, deadline: float = math.inf) -> ScanOutcome:
    outcome = ScanOutcome(SCANNER, TOOL)
    trivy = find_tool("trivy")
    outcome.version = version_of([trivy, "--version"], root)
    config = scratch / "trivy.yaml"
    config.write_text("# druppie-scan: the app's own trivy.yaml does not count\n")
    no_ignores = scratch / "trivyignore"
    no_ignores.write_text("")
    report = scratch / "trivy.json"
    argv = [
        trivy,
        "config",
        "--quiet",
        "--config",
        str(config),
        "--cache-dir",
        str(scratch / "cache"),
        "--skip-check-update",
        "--skip-version-check",
        "--disable-telemetry",
        "--misconfig-scanners",
        MISCONFIG_SCANNERS,
        "--ignorefile",
        str(no_ignores),
        "--format",
        "json",
        "--output",
        str(report),
        "--exit-code",
        "0",
    ]
    for d in SKIP_DIRS:
        argv += ["--skip-dirs", f"**/{d}"]
    run_tool(TOOL, [*argv, "."], cwd=root, deadline=deadline, env={"TRIVY_NO_PROGRESS": "true"})
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise StepError(f"trivy wrote no readable report ({report.name}): {err}") from err
    if not any(r.get("Class") == "config" for r in data.get("Results") or []):
        outcome.skipped = "no Containerfile, Dockerfile, Kubernetes manifest or Helm chart"
        return outcome
    outcome.findings = parse(data, root)
    return outcome


def parse(data: dict[str, Any], root: Path) -> list[Finding]:
    findings = []
    for result in data.get("Results") or []:
        if result.get("Class") != "config":
            continue
        target = relative(result.get("Target", ""), root)
        for m in result.get("Misconfigurations") or []:
            if m.get("Status", "FAIL") != "FAIL":
                continue
            rule = str(m.get("ID") or m.get("AVDID") or "")
            aliases = tuple(a for a in dict.fromkeys([str(m.get("AVDID", ""))]) if a and a != rule)
            title = str(m.get("Title", "")).strip()
            detail = str(m.get("Message", "")).strip()
            cause = m.get("CauseMetadata") or {}
            findings.append(
                Finding(
                    scanner=SCANNER,
                    tool=TOOL,
                    rule=rule,
                    severity=SEVERITY.get(str(m.get("Severity")).upper(), "medium"),
                    path=target,
                    line=cause.get("StartLine") or None,
                    message=f"{title}: {detail}" if detail and detail != title else title or rule,
                    rule_name=title,
                    help_uri=str(m.get("PrimaryURL", "")),
                    aliases=aliases,
                )
            )
    return findings
