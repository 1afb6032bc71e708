"""deps: osv-scanner (a Go binary) against a local OSV advisory database, offline.

osv-scanner v2 reads the database from ``<local-db-path>/osv-scalibr/<Ecosystem>/all.zip`` with
``--offline`` (no network feature at all: no transitive resolution via deps.dev, no osv.dev API)
and ``--offline-vulnerabilities``. The database folder given to the step (``--osv-db``, the Task's
``osv-db`` workspace) may hold, per ecosystem:

- ``<Ecosystem>/all.zip``, as OSV publishes it at
  https://osv-vulnerabilities.storage.googleapis.com/<Ecosystem>/all.zip;
- ``osv-scalibr/<Ecosystem>/all.zip``, osv-scanner's own cache layout
  (``osv-scanner scan --download-offline-databases --local-db-path <folder>``);
- ``<Ecosystem>/*.json``, advisories in OSV's format, unpacked (a curated database; the tests).

Its age is the time in ``<folder>/last-updated`` (ISO 8601, written by whatever refreshes the
folder), else the newest ``modified`` of its advisories. A time more than an hour ahead of the
clock is refused: a database dated in the future would never grow old.

Severity of a finding: the advisory's own label (GitHub's LOW/MODERATE/HIGH/CRITICAL in
``database_specific.severity``) where it has one, else the highest CVSS base score osv-scanner
computed (9.0+ critical, 7.0+ high, 4.0+ medium, above 0 low), else medium.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import InvalidInputError, StepError
from . import SEVERITIES, SKIP_DIRS, Finding, ScanOutcome, find_tool, last_line, relative, run_tool, version_of

SCANNER, TOOL = "deps", "osv-scanner"
STAMP = "last-updated"
LABELS = {
    "critical": "critical",
    "high": "high",
    "moderate": "medium",
    "medium": "medium",
    "low": "low",
    "negligible": "info",
    "unimportant": "info",
}
FUTURE_SKEW = dt.timedelta(hours=1)  # clocks differ a little; a stamp further ahead is wrong
_MODIFIED = re.compile(rb'"modified"\s*:\s*"([^"]+)"')


@dataclass
class AdvisoryDB:
    """A local OSV database folder, laid out for osv-scanner under ``scratch``."""

    source: Path
    ecosystems: dict[str, Path]  # ecosystem -> all.zip, or a folder of *.json
    age_from: str  # how the age was found, for the log
    label: str = ""  # what the messages call it: "--osv-db '<folder>'" unless told
    updated: dt.datetime | None = None  # its time, once db_updated found it

    @property
    def names(self) -> str:
        return ", ".join(sorted(self.ecosystems))


def find_db(folder: Path, label: str = "") -> AdvisoryDB:
    """The ecosystems of a database folder, or InvalidInputError naming it (``label``, default its
    --osv-db) and the layout wanted."""
    label = label or f"--osv-db {str(folder)!r}"
    if not folder.is_dir():
        raise InvalidInputError(f"invalid {label}: not a folder")
    ecosystems: dict[str, Path] = {}
    for base in (folder / "osv-scalibr", folder):
        if not base.is_dir():
            continue
        for eco in sorted(p for p in base.iterdir() if p.is_dir() and p.name != "osv-scalibr"):
            if (eco / "all.zip").is_file():
                ecosystems.setdefault(eco.name, eco / "all.zip")
            elif any(eco.glob("*.json")):
                ecosystems.setdefault(eco.name, eco)
    if not ecosystems:
        raise InvalidInputError(
            f"invalid {label}: no advisory database in it; expected "
            f"<Ecosystem>/all.zip as OSV publishes it (e.g. PyPI/all.zip), or <Ecosystem>/*.json"
        )
    return AdvisoryDB(folder, ecosystems, "", label)


def db_updated(db: AdvisoryDB, now: dt.datetime | None = None) -> dt.datetime:
    """When the database was last refreshed: its stamp file, else its newest advisory; refused when
    that is in the future (more than FUTURE_SKEW ahead of ``now``)."""
    updated = _updated(db)
    now = now or dt.datetime.now(dt.UTC)
    if updated > now + FUTURE_SKEW:
        raise InvalidInputError(
            f"invalid {db.label}: dated {updated.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%MZ')} (from "
            f"{db.age_from}), in the future; a wrong stamp or clock would make a stale database look fresh"
        )
    db.updated = updated
    return updated


def _updated(db: AdvisoryDB) -> dt.datetime:
    stamp = db.source / STAMP
    if stamp.is_file():
        text = stamp.read_text(encoding="utf-8", errors="replace").strip()
        when = parse_time(text)
        if when is None:
            raise InvalidInputError(
                f"invalid {db.label}: {STAMP} holds {text[:40]!r}, not an ISO 8601 time such as 2026-11-26T06:00:00Z"
            )
        db.age_from = STAMP
        return when
    newest: dt.datetime | None = None
    for source in db.ecosystems.values():
        for raw in _advisory_texts(source, db.label):
            for match in _MODIFIED.finditer(raw):
                when = parse_time(match[1].decode("ascii", "replace"))
                if when and (newest is None or when > newest):
                    newest = when
    if newest is None:
        raise InvalidInputError(
            f"invalid {db.label}: no advisory in it has a 'modified' time (and there is no {STAMP} file)"
        )
    db.age_from = "the newest advisory"
    return newest


def _advisory_texts(source: Path, label: str) -> Iterator[bytes]:
    if source.is_dir():
        for path in sorted(source.glob("*.json")):
            yield path.read_bytes()
        return
    try:
        with zipfile.ZipFile(source) as archive:
            for name in archive.namelist():
                if name.endswith(".json"):
                    yield archive.read(name)
    except (OSError, zipfile.BadZipFile) as err:
        raise InvalidInputError(f"invalid {label}: {source} is not a readable zip archive: {err}") from err


def parse_time(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def lay_out(db: AdvisoryDB, scratch: Path) -> Path:
    """``scratch/osv-db`` in osv-scanner's layout: links to the zips, zips made of unpacked advisories."""
    root = scratch / "osv-db"
    for eco, source in db.ecosystems.items():
        target = root / "osv-scalibr" / eco / "all.zip"
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(source.glob("*.json")):
                    archive.write(path, path.name)
        else:
            target.symlink_to(source.resolve())
    return root


def scan(root: Path, scratch: Path, db: AdvisoryDB, deadline: float = math.inf) -> ScanOutcome:
    outcome = ScanOutcome(SCANNER, TOOL)
    osv = find_tool("osv-scanner")
    outcome.version = version_of([osv, "--version"], root)
    local = lay_out(db, scratch)
    config = scratch / "osv-scanner.toml"
    config.write_text("# druppie-scan: the app's own osv-scanner.toml does not count\n")
    report = scratch / "osv.json"
    argv = [
        osv,
        "scan",
        "source",
        "--recursive",
        "--offline",
        "--offline-vulnerabilities",
        "--local-db-path",
        str(local),
        "--config",
        str(config),
        "--format",
        "json",
        "--output-file",
        str(report),
    ]  # the default verbosity names a missing ecosystem
    argv += [f"--experimental-exclude={d}" for d in SKIP_DIRS]
    proc = run_tool(TOOL, [*argv, "."], cwd=root, ok_codes=(0, 1, 127, 128), deadline=deadline)
    if proc.returncode == 128:  # "No package sources found"
        outcome.skipped = "no lockfile or dependency manifest osv-scanner reads"
        return outcome
    if proc.returncode == 127:
        missing = re.search(r"could not load db for (\S+) ecosystem", proc.stderr)
        if missing:
            raise StepError(
                f"the advisory database has no {missing[1]} ecosystem ({missing[1]}/all.zip), which "
                f"this app's dependencies need; it has {db.names}"
            )
        raise StepError(f"osv-scanner failed (exit 127): {last_line(proc.stderr)}")
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise StepError(f"osv-scanner wrote no readable report ({report.name}): {err}") from err
    outcome.findings = parse(data, root)
    return outcome


def severity_of(vulns: list[dict[str, Any]], max_score: str) -> str:
    labels = []
    for v in vulns:
        for where in ("database_specific", "ecosystem_specific"):
            label = (v.get(where) or {}).get("severity") if isinstance(v.get(where), dict) else None
            if isinstance(label, str) and label.lower() in LABELS:
                labels.append(LABELS[label.lower()])
    if labels:
        return max(labels, key=SEVERITIES.index)
    try:
        score = float(max_score)
    except (TypeError, ValueError):
        return "medium"
    return (
        "critical"
        if score >= 9
        else "high"
        if score >= 7
        else "medium"
        if score >= 4
        else "low"
        if score > 0
        else "medium"
    )


def fixed_versions(vulns: list[dict[str, Any]], name: str) -> list[str]:
    fixed: set[str] = set()
    for v in vulns:
        for affected in v.get("affected") or []:
            if (affected.get("package") or {}).get("name", "").lower() != name.lower():
                continue
            for r in affected.get("ranges") or []:
                fixed.update(e["fixed"] for e in r.get("events") or [] if "fixed" in e)
    return sorted(fixed)


def line_of(path: Path, name: str, version: str) -> int | None:
    """Best effort: the first line of the lockfile naming the package (with its version, if one does)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    norm = re.sub(r"[-_.]+", "-", name).lower()
    named = [
        i
        for i, text in enumerate(lines, 1)
        if norm in re.sub(r"[-_.]+", "-", text).lower() and not text.lstrip().startswith("#")
    ]
    with_version = [i for i in named if version and version in lines[i - 1]]
    return next(iter(with_version or named), None)


def parse(data: dict[str, Any], root: Path) -> list[Finding]:
    findings = []
    for result in data.get("results") or []:
        source = (result.get("source") or {}).get("path", "")
        path = relative(source, root)
        for pkg in result.get("packages") or []:
            info = pkg.get("package") or {}
            name, version = info.get("name", ""), info.get("version", "")
            by_id = {v.get("id"): v for v in pkg.get("vulnerabilities") or []}
            groups = pkg.get("groups") or [{"ids": [i], "aliases": [i], "max_severity": ""} for i in by_id]
            for group in groups:
                ids = [i for i in group.get("ids") or [] if i]
                if not ids:
                    continue
                vulns = [by_id[i] for i in ids if i in by_id]
                rule = next((i for i in ids if i.startswith("GHSA-")), ids[0])
                aliases = tuple(sorted({*group.get("aliases", []), *ids} - {rule}))
                summary = next((v.get("summary") for v in vulns if v.get("summary")), "") or "known vulnerability"
                fixes = fixed_versions(vulns, name)
                cves = [a for a in aliases if a.startswith("CVE-")]
                message = f"{name} {version}: {rule}{' (' + ', '.join(cves) + ')' if cves else ''}: {summary}; " + (
                    f"fixed in {', '.join(fixes)}" if fixes else "no fixed version yet"
                )
                findings.append(
                    Finding(
                        scanner=SCANNER,
                        tool=TOOL,
                        rule=rule,
                        severity=severity_of(vulns, group.get("max_severity", "")),
                        path=path,
                        line=line_of(root / path, name, version),
                        message=message,
                        rule_name=summary[:120],
                        help_uri=f"https://osv.dev/vulnerability/{rule}",
                        aliases=aliases,
                    )
                )
    return findings
