"""scan: run the security scanners on the app's source, write one SARIF report, fail on what matters.

Four scanners, each a real tool (steps/druppie_steps/scanners/, one module per tool): code (bandit),
secrets (gitleaks), deps (osv-scanner on a local OSV database, offline) and config (trivy's
misconfiguration checks on Containerfiles and Kubernetes manifests, with its built-in checks,
offline). Their findings are normalised (rule, severity, path, line, message), filtered through the
app's ``.druppie-scan.yaml`` (each exception with a reason and an expiry date no further ahead
than ``--max-suppression-age``; one that matches everything is refused), written as one SARIF
2.1.0 file into ``--output`` and summed up in a short table. The step fails when a finding that
counts is at or above ``--fail-on``. It only reads ``--source``: the Task mounts it read-only.

The deps scanner fails closed: it needs an advisory database, a folder (``--osv-db``, a volume) or
an OCI artifact in a registry (``--osv-db-ref``, pulled and checked against its digest; see
scanners/osv_artifact.py), not older than ``--max-db-age``. Without one, or when the artifact
cannot be pulled, the step fails before scanning, unless ``--deps-advisories skip`` says to go
without: then the log says so loudly, and so do the ``advisories`` result and the SARIF report.
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
    flag_option,
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
from .core.registry import auth_file_from
from .core.results import summary_line, write_results
from .core.workspace import shared_dir
from .scanners import SEVERITIES, Finding, ScanOutcome, rank

if TYPE_CHECKING:
    from .core.oci import Reference
    from .scanners.ignore import Applied
    from .scanners.osv import AdvisoryDB

SCANNERS = ("code", "secrets", "deps", "config")
TOOLS = {"code": "bandit", "secrets": "gitleaks", "deps": "osv-scanner", "config": "trivy"}
FAIL_ON = (*reversed(SEVERITIES), "never")
DEFAULT_REPORT = ".druppie/scan.sarif"
WARN_DB_AGE_SECONDS = 24 * 3600  # older than a day: a warning with its age
MAX_LISTED = 40
ADVISORIES = ("check", "skip")
OPTED_OUT = "opted out (--deps-advisories skip): no advisory database, dependencies not checked"
LOUD = (
    "deps: advisory checks SKIPPED on purpose (--deps-advisories skip): the dependencies are NOT checked "
    "against any advisory database; the advisories result and the SARIF report say so"
)
NO_DB = (
    "the deps scanner needs an advisory database and has none: set --osv-db-ref (the Task's osv-db-ref "
    "param, an artifact pushed by osv-db-push) or --osv-db (the osv-db workspace); to scan without one, "
    "say so with --deps-advisories skip (param deps-advisories: skip)"
)


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


def parse_advisories(value: str) -> str:
    choice = value.strip().lower()
    if choice not in ADVISORIES:
        raise InvalidInputError(
            f"invalid --deps-advisories {value!r}: use check (the deps scanner needs an advisory database) "
            f"or skip (go without, said in the results and the report)"
        )
    return choice


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
    "--osv-db-ref",
    default="",
    help="The OSV advisory database for deps as an OCI artifact (pushed by osv-db-push), e.g. "
    "registry.example/druppie/osv-db:latest or ...@sha256:<digest>; pulled and checked against its digest.",
)
@option(
    "--deps-advisories",
    default="check",
    help="check: the deps scanner fails without an advisory database (--osv-db-ref or --osv-db); skip: it "
    "is skipped on purpose, which the log, the advisories result and the SARIF report say.",
)
@flag_option(
    "--tls-verify",
    default=True,
    help="Verify the TLS certificate of --osv-db-ref's registry (off: test registries, plain HTTP).",
)
@workspace_option("--dockerconfig", "dockerconfig_dir", "Folder with config.json or .dockerconfigjson for --osv-db-ref")
@workspace_option("--ca-certs", "ca_dir", "Folder with extra CA certificates (*.crt) for --osv-db-ref's registry")
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
    osv_db_ref: str,
    deps_advisories: str,
    tls_verify: bool,
    dockerconfig_dir: str,
    ca_dir: str,
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

    advisories = parse_advisories(deps_advisories)
    ref = _reference(osv_db_ref)
    auth_file = auth_file_from(dockerconfig_dir)
    if ca_dir and not any(Path(ca_dir).glob("*.crt")):
        raise InvalidInputError(f"invalid --ca-certs {ca_dir!r}: holds no *.crt file")
    skipped: dict[str, str] = {}
    checked = {"status": "not checked", "reason": "deps is not among --scanners"}
    if "deps" in selected:
        if advisories == "skip":
            if osv_db or ref:
                raise InvalidInputError(
                    "--deps-advisories skip contradicts the advisory database given "
                    f"({'--osv-db-ref' if ref else '--osv-db'}): drop one of them"
                )
            skipped["deps"] = OPTED_OUT
            checked = {"status": "skipped", "reason": "opted out with --deps-advisories skip"}
            log.warn(LOUD)
        elif osv_db and ref:
            raise InvalidInputError("--osv-db and --osv-db-ref both given: use one advisory database")
        elif not osv_db and not ref:
            raise InvalidInputError(NO_DB)

    with tempfile.TemporaryDirectory(prefix="druppie-scan-") as tmp:
        scratch = Path(tmp)
        db: AdvisoryDB | None = None
        if "deps" in selected and "deps" not in skipped:
            if ref is not None:
                db, checked = _pull_db(ref, scratch / "osv-db-ref", max_db_age, auth_file, tls_verify, ca_dir, deadline)
            else:
                db = _check_db(Path(osv_db), max_db_age)
                checked = {"status": "checked", "source": osv_db}
            checked |= _dated(db)
        outcomes = _run_all(selected, root, scratch, db, skipped, deadline)
    if "deps" in skipped:
        next(o for o in outcomes if o.scanner == "deps").notes.append(LOUD)

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

    _write_report(report_path, sarif.build(outcomes, applied.kept, applied.suppressed, applied.active, checked))
    _print_table(outcomes, applied, fail_on, _shown(report_path, out))

    results = {s: str(n) for s, n in counts(applied.kept).items()}
    results["report"] = _shown(report_path, out)
    results["suppressed"] = str(len(applied.suppressed))
    results["suppressions"] = ignore.summary(applied)
    results["advisories"] = advisories_result(checked)
    write_results(results_dir, results)
    click.echo(summary_line("scan", {k: v for k, v in results.items() if k not in ("suppressions", "advisories")}))
    if checked["status"] == "skipped":
        log.warn(LOUD)
    failing = fails(applied.kept, fail_on)
    if failing:
        rules = sorted({f.rule for f in failing}, key=lambda r: min(-rank(f.severity) for f in failing if f.rule == r))
        raise StepError(
            f"{len(failing)} finding(s) at or above --fail-on {fail_on} "
            f"({', '.join(f'{n} {s}' for s, n in counts(failing).items() if n)}): {', '.join(rules[:5])}"
            f"{' ...' if len(rules) > 5 else ''}; see the table above and {results['report']}"
        )


def advisories_result(checked: dict[str, str]) -> str:
    """The ``advisories`` result: which database the dependencies were checked against, or why not."""
    if checked["status"] == "checked":
        return f"checked: {checked['source']} (updated {checked['updated']})"
    return f"{checked['status']}: {checked['reason']}"


def _reference(value: str) -> Reference | None:
    if not value.strip():
        return None
    from .core import oci

    return oci.parse_reference(value, "--osv-db-ref")


def _dated(db: AdvisoryDB) -> dict[str, str]:
    """When the database was updated (``_check_db`` dated it), for the result and the report."""
    updated = db.updated.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ") if db.updated else "unknown"
    return {"updated": updated, "updatedFrom": db.age_from}


def _pull_db(
    ref: Reference,
    dest: Path,
    max_age: Duration,
    auth_file: str | None,
    tls_verify: bool,
    ca_dir: str,
    deadline: float,
) -> tuple[AdvisoryDB, dict[str, str]]:
    """The database of ``--osv-db-ref``, pulled into ``dest`` and aged as a folder is; StepError with one
    line naming the reference when it cannot be pulled."""
    from .core import oci
    from .scanners import osv_artifact

    log.progress(f"deps: pulling the advisory database {ref}")
    dest.mkdir()
    session = oci.Session(ref, auth_file, tls_verify, ca_dir or None, deadline=deadline)
    try:
        pulled = osv_artifact.pull(session, dest)
    except StepError as err:
        raise StepError(f"cannot pull the advisory database --osv-db-ref {ref}: {err}") from err
    log.info(f"deps: pulled {ref} as {pulled.digest}")
    db = _check_db(pulled.folder, max_age, f"--osv-db-ref {ref}", pulled.pinned, pulled.claimed)
    return db, {"status": "checked", "source": pulled.pinned, "ref": str(ref), "digest": pulled.digest}


def _check_db(
    folder: Path,
    max_age: Duration,
    label: str = "",
    shown: str = "",
    claimed: dict[str, dt.datetime] | None = None,
) -> AdvisoryDB:
    """The database in ``folder``, dated and aged: StepError past ``max_age``, a warning past a day.

    Its time is its own (osv.db_updated); a ``claimed`` time (an artifact's annotation or config)
    counts only where it is older: a claim can age a database, never make it fresher."""
    from .scanners import osv

    db = osv.find_db(folder, label)
    updated = osv.db_updated(db)
    for where, when in (claimed or {}).items():
        if when < updated:
            updated, db.age_from, db.updated = when, where, when
    age = (dt.datetime.now(dt.UTC) - updated).total_seconds()
    stamp = updated.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
    where = (
        f"advisory database {shown or folder} ({db.names}): updated {stamp}, {human_age(age)} ago (from {db.age_from})"
    )
    if max_age.seconds and age > max_age.seconds:
        raise StepError(
            f"{where}: older than --max-db-age {max_age}; refresh it (the druppie-scan README, "
            f"samples/osv-db-refresh.yaml)"
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
