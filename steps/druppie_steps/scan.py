"""scan: run the security scanners on the app's source, write one SARIF report, fail on what matters.

Four scanners, each a real tool (steps/druppie_steps/scanners/, one module per tool): code (bandit),
secrets (gitleaks), deps (osv-scanner on a local OSV database, offline) and config (trivy's
misconfiguration checks on Containerfiles and Kubernetes manifests, with its built-in checks,
offline). Their findings are normalised (rule, severity, path, line, message), filtered through the
app's ``.druppie-scan.yaml`` (each exception with a reason and an expiry date no further ahead
than ``--max-suppression-age``; one that matches everything is refused), written as one SARIF
2.1.0 file into ``--output`` and summed up in a short table. The step fails when a finding that
counts is at or above ``--fail-on``. It only reads ``--source``: the Task mounts it read-only.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .core import log
from .core.errors import InvalidInputError, StepError
from .core.options import (
    DURATION,
    DURATION_OR_NO_LIMIT,
    Duration,
    option,
    output_folder,
    output_option,
    results_dir_option,
    source_folder,
    source_option,
    timeout_option,
    workspace_option,
)
from .core.redact import redact
from .core.results import summary_line, write_results
from .core.workspace import shared_dir
from .scanners import SEVERITIES, Finding, ScanOutcome, rank

if TYPE_CHECKING:
    from .scanners.ignore import Applied
    from .scanners.osv import AdvisoryDB

SCANNERS = ("code", "secrets", "deps", "config")
TOOLS = {"code": "bandit", "secrets": "gitleaks", "deps": "osv-scanner", "config": "trivy"}
FAIL_ON = (*reversed(SEVERITIES), "never")
DEFAULT_REPORT = ".druppie/scan.sarif"
WARN_DB_AGE_SECONDS = 24 * 3600  # older than a day: a warning with its age
MAX_LISTED = 40


def parse_scanners(value: str) -> list[str]:
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    if names == ["all"]:
        return list(SCANNERS)
    unknown = [n for n in names if n not in SCANNERS]
    if unknown or not names:
        raise InvalidInputError(
            f"invalid --scanners {value!r}: {'unknown scanner ' + repr(unknown[0]) if unknown else 'empty'}"
            f"; use a comma-separated list of {', '.join(SCANNERS)} (or all)"
        )
    return [n for n in SCANNERS if n in names]


def parse_fail_on(value: str) -> str:
    level = value.strip().lower()
    if level not in FAIL_ON:
        raise InvalidInputError(f"invalid --fail-on {value!r}: use one of {', '.join(FAIL_ON)}")
    return level


def human_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    return f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m"


def fails(findings: list[Finding], fail_on: str) -> list[Finding]:
    if fail_on == "never":
        return []
    return [f for f in findings if rank(f.severity) >= rank(fail_on)]


def counts(findings: list[Finding]) -> dict[str, int]:
    return {s: sum(1 for f in findings if f.severity == s) for s in reversed(SEVERITIES)}


@click.command("scan")
@source_option
@option(
    "--scanners",
    default="all",
    help="Comma-separated scanners to run: code (bandit), secrets (gitleaks), deps (osv-scanner), "
    "config (trivy); or all.",
)
@option(
    "--fail-on",
    default="high",
    help="Fail when a finding has this severity or a higher one: critical, high, medium, low, info, or never.",
)
@workspace_option("--osv-db", "osv_db", "Folder with the OSV advisory database (<Ecosystem>/all.zip) for deps")
@option(
    "--max-db-age",
    type=DURATION_OR_NO_LIMIT,
    default="7d",
    help="Fail when the advisory database is older than this (e.g. 7d, 36h; 0: no limit); older than a day warns.",
)
@option(
    "--max-suppression-age",
    type=DURATION,
    default="90d",
    help=".druppie-scan.yaml may not suppress a finding for longer than this from today: an entry that "
    "expires later fails the scan (e.g. 90d, 30d).",
)
@output_option
@option("--report", default=DEFAULT_REPORT, help="The SARIF file to write, relative to --output.")
@timeout_option("15m")
@results_dir_option
def scan(
    source: str,
    scanners: str,
    fail_on: str,
    osv_db: str,
    max_db_age: Duration,
    max_suppression_age: Duration,
    output: str,
    report: str,
    timeout: Duration,
    results_dir: str | None,
) -> None:
    """Scan the app's source for insecure code, secrets, vulnerable dependencies and misconfiguration."""
    from .scanners import ignore

    deadline = time.monotonic() + timeout.seconds
    root = source_folder(source).resolve()
    out = output_folder(output)
    selected = parse_scanners(scanners)
    explicit = selected != list(SCANNERS)
    fail_on = parse_fail_on(fail_on)
    report_path = Path(report) if Path(report).is_absolute() else out / report
    if not report.strip() or report_path.is_dir():
        raise InvalidInputError(f"invalid --report {report!r}: must name a file")
    today = dt.date.today()
    limit = ignore.Limit(
        (dt.datetime.combine(today, dt.time()) + dt.timedelta(seconds=max_suppression_age.seconds)).date(),
        f"--max-suppression-age {max_suppression_age}",
    )
    entries = ignore.load(root, limit)
    if entries:
        log.info(f"{ignore.FILENAME}: {len(entries)} exception(s), none expiring after {limit.latest.isoformat()}")

    db: AdvisoryDB | None = None
    skipped: dict[str, str] = {}
    if "deps" in selected:
        if osv_db:
            db = _check_db(Path(osv_db), max_db_age)
        elif explicit:
            raise InvalidInputError(
                "--scanners deps needs an advisory database: set --osv-db (the Task's osv-db workspace)"
            )
        else:
            skipped["deps"] = "no advisory database (--osv-db, the Task's osv-db workspace)"
            log.warn("deps: skipped, no advisory database given (--osv-db); dependencies are not checked")

    with tempfile.TemporaryDirectory(prefix="druppie-scan-") as scratch:
        outcomes = _run_all(selected, root, Path(scratch), db, skipped, deadline)

    findings = [f for o in outcomes for f in o.findings]
    applied = ignore.apply(findings, entries, today)
    for entry in applied.expired:
        log.warn(
            f"{ignore.FILENAME} {entry.describe()} expired on {entry.expires.isoformat()}: it no longer "
            f"suppresses anything (reason was: {entry.reason})"
        )
    for entry in applied.unused:
        log.info(f"{ignore.FILENAME} {entry.describe()} matched no finding; remove it when it is no longer needed")
    for outcome in outcomes:
        for note in outcome.notes:
            log.warn(note)

    from .scanners import sarif

    _write_report(report_path, sarif.build(outcomes, applied.kept, applied.suppressed, applied.active))
    _print_table(outcomes, applied, fail_on, _shown(report_path, out))

    results = {s: str(n) for s, n in counts(applied.kept).items()}
    results["report"] = _shown(report_path, out)
    results["suppressed"] = str(len(applied.suppressed))
    results["suppressions"] = ignore.summary(applied)
    write_results(results_dir, results)
    click.echo(summary_line("scan", {k: v for k, v in results.items() if k != "suppressions"}))
    failing = fails(applied.kept, fail_on)
    if failing:
        rules = sorted({f.rule for f in failing}, key=lambda r: min(-rank(f.severity) for f in failing if f.rule == r))
        raise StepError(
            f"{len(failing)} finding(s) at or above --fail-on {fail_on} "
            f"({', '.join(f'{n} {s}' for s, n in counts(failing).items() if n)}): {', '.join(rules[:5])}"
            f"{' ...' if len(rules) > 5 else ''}; see the table above and {results['report']}"
        )


def _check_db(folder: Path, max_age: Duration) -> AdvisoryDB:
    from .scanners import osv

    db = osv.find_db(folder)
    updated = osv.db_updated(db)
    age = (dt.datetime.now(dt.UTC) - updated).total_seconds()
    stamp = updated.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
    where = f"advisory database {folder} ({db.names}): updated {stamp}, {human_age(age)} ago (from {db.age_from})"
    if max_age.seconds and age > max_age.seconds:
        raise StepError(
            f"{where}: older than --max-db-age {max_age}; refresh it (see the druppie-scan README: "
            f"a CronJob fills the osv-db volume)"
        )
    if age > WARN_DB_AGE_SECONDS:
        log.warn(f"{where}: stale, advisories published since are not checked")
    else:
        log.info(where)
    return db


def _run_one(name: str, root: Path, scratch: Path, db: AdvisoryDB | None, deadline: float) -> ScanOutcome:
    work = scratch / name
    work.mkdir()
    if name == "code":
        from .scanners import bandit

        return bandit.scan(root, work, deadline)
    if name == "secrets":
        from .scanners import gitleaks

        return gitleaks.scan(root, work, deadline)
    if name == "deps":
        from .scanners import osv

        if db is None:  # scan() skips deps without a database
            raise StepError("deps: no advisory database (--osv-db)")
        return osv.scan(root, work, db, deadline)
    from .scanners import trivy

    return trivy.scan(root, work, deadline)


def _run_all(
    selected: list[str], root: Path, scratch: Path, db: AdvisoryDB | None, skipped: dict[str, str], deadline: float
) -> list[ScanOutcome]:
    """The scanners side by side (each is its own process); the first failure, in scanner order, is raised.

    Only this thread prints, so progress lines never interleave.
    """
    to_run = [n for n in selected if n not in skipped]
    log.progress(f"running {', '.join(f'{n} ({TOOLS[n]})' for n in to_run) or 'no scanner'}")
    done: dict[str, ScanOutcome] = {}
    errors: dict[str, StepError] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(to_run))) as pool:
        futures = {pool.submit(_run_one, n, root, scratch, db, deadline): n for n in to_run}
        for future in as_completed(futures):
            name = futures[future]
            try:
                outcome = done[name] = future.result()
            except StepError as err:
                errors[name] = err
                log.progress(f"{name}: {TOOLS[name]} failed")
                continue
            what = f"skipped: {outcome.skipped}" if outcome.skipped else f"{len(outcome.findings)} finding(s)"
            log.progress(f"{name}: {f'{outcome.tool} {outcome.version}'.strip()} done, {what}")
    if errors:
        raise next(errors[n] for n in to_run if n in errors)
    return [done[n] if n in done else ScanOutcome(n, TOOLS[n], skipped=skipped[n]) for n in selected]


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _write_report(path: Path, log_doc: dict[str, Any]) -> None:
    try:
        shared_dir(path.parent)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(redact(json.dumps(log_doc, indent=2)) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as err:
        raise StepError(f"cannot write the report {path}: {err.strerror}") from err


def _print_table(outcomes: list[ScanOutcome], applied: Applied, fail_on: str, report: str) -> None:
    suppressed = {o.scanner: sum(1 for f, _ in applied.suppressed if f.scanner == o.scanner) for o in outcomes}
    header = ["scanner", "tool", *reversed(SEVERITIES), "suppressed"]
    rows = []
    for o in outcomes:
        tool = f"{o.tool} {o.version}".strip()
        if o.skipped:
            rows.append([o.scanner, tool, f"skipped: {o.skipped}"])
            continue
        c = counts([f for f in applied.kept if f.scanner == o.scanner])
        rows.append([o.scanner, tool, *(str(c[s]) for s in reversed(SEVERITIES)), str(suppressed[o.scanner])])
    widths = [
        max(len(r[i]) for r in [header] + [r for r in rows if len(r) > i and len(r) == len(header)])
        for i in range(len(header))
    ]
    log.info(f"scan summary (fails at {fail_on}{'' if fail_on in ('never', 'critical') else ' and above'}):")
    for row in [header, *rows]:
        if len(row) == len(header):
            cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])] + [
                c.rjust(w) for c, w in zip(row[2:], widths[2:], strict=True)
            ]
        else:
            cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2]]
        log.info("  " + "  ".join(cells).rstrip())
    floor = min(rank("medium"), rank(fail_on)) if fail_on != "never" else rank("medium")
    listed = sorted(
        (f for f in applied.kept if rank(f.severity) >= floor),
        key=lambda f: (-rank(f.severity), f.scanner, f.path, f.line or 0),
    )
    rest = len(applied.kept) - len(listed[:MAX_LISTED])
    if listed:
        log.info(f"findings ({SEVERITIES[floor]} and above; every finding is in {report}):")
        for f in listed[:MAX_LISTED]:
            message = f.message if len(f.message) <= 160 else f.message[:157] + "..."
            log.info(f"  {f.severity.upper():8} {f.scanner:7} {f.rule}  {f.where}  {message}")
    if rest:
        log.info(
            f"  ... and {rest} more finding(s) below {SEVERITIES[floor]} or past the first {MAX_LISTED}: see {report}"
        )
    if applied.suppressed:
        log.info("suppressed by .druppie-scan.yaml (not counted):")
        for f, entry in applied.suppressed[:MAX_LISTED]:
            log.info(
                f"  {f.severity.upper():8} {f.scanner:7} {f.rule}  {f.where}  entry {entry.index}, "
                f"until {entry.expires.isoformat()}: {entry.reason}"
            )
