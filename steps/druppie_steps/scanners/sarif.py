"""Every scanner's findings as one SARIF 2.1.0 log: one run per scanner, locations from the source root.

Suppressed findings stay in the log with a ``suppressions`` entry (kind external, the reason from
.druppie-scan.yaml, the entry's number, patterns and expiry in its properties), as SARIF consumers
such as GitHub code scanning expect; the log's own ``properties.suppressions`` lists every active
entry of .druppie-scan.yaml with the number of findings it suppressed, so an exception that hides
nothing (yet) is visible too. A skipped scanner
has a run without results and a notification saying why. The log's ``properties.advisories`` says
which advisory database the dependencies were checked against (its reference and digest, or
folder, and its date), or that they were not, and why: an opted-out deps scanner is a warning of
its run as well. No code snippets are copied in: a
finding is its rule, place and message, so a secret in the scanned code cannot reach the report.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from . import Finding, ScanOutcome, rank
from .ignore import Entry

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
VERSION = "2.1.0"
SRCROOT = "%SRCROOT%"
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub code scanning reads a rule's "security-severity" (a CVSS-like number) to rank alerts.
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0", "info": "0.0"}
TOOL_URI = {
    "bandit": "https://bandit.readthedocs.io/",
    "gitleaks": "https://github.com/gitleaks/gitleaks",
    "osv-scanner": "https://google.github.io/osv-scanner/",
    "trivy": "https://trivy.dev/",
}


def _location(finding: Finding) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": urllib.parse.quote(finding.path), "uriBaseId": SRCROOT}}
    if finding.line and finding.line >= 1:
        physical["region"] = {"startLine": int(finding.line)}
    return {"physicalLocation": physical}


def _entry_properties(entry: Entry) -> dict[str, Any]:
    return {"entry": entry.index, "rule": entry.rule, "path": entry.path, "expires": entry.expires.isoformat()}


def _run(outcome: ScanOutcome, findings: list[tuple[Finding, Entry | None]]) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    worst: dict[str, str] = {}
    results = []
    for finding, entry in findings:
        if finding.rule not in rules:
            rule: dict[str, Any] = {
                "id": finding.rule,
                "name": finding.rule_name or finding.rule,
                "shortDescription": {"text": finding.rule_name or finding.rule},
            }
            if finding.help_uri:
                rule["helpUri"] = finding.help_uri
            rules[finding.rule] = rule
        if finding.rule not in worst or rank(finding.severity) > rank(worst[finding.rule]):
            worst[finding.rule] = finding.severity
        result: dict[str, Any] = {
            "ruleId": finding.rule,
            "ruleIndex": list(rules).index(finding.rule),
            "level": LEVEL[finding.severity],
            "message": {"text": finding.message},
            "locations": [_location(finding)],
            "properties": {"severity": finding.severity, "scanner": finding.scanner},
        }
        if finding.aliases:
            result["properties"]["aliases"] = list(finding.aliases)
        if entry is not None:
            result["suppressions"] = [
                {
                    "kind": "external",
                    "status": "accepted",
                    "justification": f"{entry.reason} (.druppie-scan.yaml entry {entry.index}, "
                    f"expires {entry.expires.isoformat()})",
                    "properties": _entry_properties(entry),
                }
            ]
        results.append(result)
    for rule_id, rule in rules.items():
        rule["defaultConfiguration"] = {"level": LEVEL[worst[rule_id]]}
        rule["properties"] = {"tags": ["security"], "security-severity": SECURITY_SEVERITY[worst[rule_id]]}
    driver: dict[str, Any] = {
        "name": outcome.tool,
        "informationUri": TOOL_URI.get(outcome.tool, ""),
        "rules": list(rules.values()),
    }
    if outcome.version:
        driver["version"] = outcome.version
    invocation: dict[str, Any] = {"executionSuccessful": True}
    notes = [("note", f"skipped: {outcome.skipped}")] if outcome.skipped else []
    notes += [("warning", n) for n in outcome.notes]
    if notes:
        invocation["toolExecutionNotifications"] = [
            {"level": level, "message": {"text": text}} for level, text in notes
        ]
    return {
        "tool": {"driver": driver},
        "automationDetails": {"id": f"druppie-scan/{outcome.scanner}/"},
        "invocations": [invocation],
        "columnKind": "unicodeCodePoints",
        "results": results,
    }


def build(
    outcomes: list[ScanOutcome],
    kept: list[Finding],
    suppressed: list[tuple[Finding, Entry]],
    active: list[Entry] | None = None,
    advisories: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The SARIF log; ``kept`` and ``suppressed`` are the findings after the ignore file, ``active``
    the ignore file's live entries (listed in the log's properties), ``advisories`` what the deps
    scanner was checked against (``status`` checked, skipped or not checked, and the details)."""
    runs = []
    for outcome in outcomes:
        mine: list[tuple[Finding, Entry | None]] = [(f, None) for f in kept if f.scanner == outcome.scanner]
        mine += [(f, e) for f, e in suppressed if f.scanner == outcome.scanner]
        mine.sort(key=lambda fe: (-rank(fe[0].severity), fe[0].path, fe[0].line or 0, fe[0].rule))
        runs.append(_run(outcome, mine))
    entries = [
        _entry_properties(e) | {"reason": e.reason, "suppressed": sum(1 for _, s in suppressed if s.index == e.index)}
        for e in active or []
    ]
    properties: dict[str, Any] = {"suppressions": entries}
    if advisories is not None:
        properties["advisories"] = dict(advisories)
    return {"$schema": SCHEMA, "version": VERSION, "runs": runs, "properties": properties}
