"""test: run the app's own tests in an isolated environment and report them as JUnit XML.

A Python app (pyproject.toml, setup.py or requirements*.txt in --context) gets a fresh venv
outside the workspace, filled by one pip resolve of its own project definition plus pytest (and
pytest-cov for a coverage threshold), from the wheelhouse the image carries, an index, and an
optional pip cache; then pytest runs. Any other app runs its tests with --command (no shell).
Either way a JUnit report lands at --report under --output, and the step fails on a failed test,
on no test at all, and on coverage under the threshold.

Two phases, which the Task runs as two steps (``--phase install``, then ``--phase run``; ``all``
does both in one process):

- **install** makes the venv at ``--venv`` and installs the project into it, with the index and
  its credentials (--index-url) and the pip cache. The project is built from a copy of the
  source, so the workspace gets no build/ or *.egg-info.
- **run** runs the tests with that venv and nothing of the install's settings: no index URL, no
  pip variables; in the Task a step of its own, so the credentials are not in its environment or
  in any process it can see in /proc.

The source is only read (the Task mounts it read-only): the tests run in a fresh copy of it, with
pytest's cache provider off, no bytecode written and coverage data in the scratch folder; what
the tests write lands in the copy, and the copy is thrown away.
"""

from __future__ import annotations

import json
import os
import posixpath
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from .apptest import junit, process, pyenv
from .apptest.project import PythonProject, detect, missing_message
from .core import log
from .core.errors import InvalidInputError, StepError
from .core.options import (
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
from .core.redact import register_url_secrets
from .core.results import summary_line, write_results
from .core.workspace import shared_dir

DEFAULT_WHEELHOUSE = "/opt/druppie/wheels"
DEFAULT_REPORT = ".druppie/junit.xml"
REPORT_PLACEHOLDER = "{report}"
PYTEST_EXIT = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}
NAMED_FAILURES = 3  # in the error line; the log lists up to LOGGED_FAILURES
LOGGED_FAILURES = 20
# Left out of the copy the project is built from: version control, caches, other environments,
# and (next to a pyproject.toml or setup.py) stale build output that setuptools would pick up.
SKIPPED_DIRS = {
    ".git",
    ".hg",
    ".svn",
    ".druppie",
    "__pycache__",
    ".venv",
    "venv",
    "node_modules",
    ".tox",
    ".nox",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
}
BUILD_OUTPUT = {"build", "dist"}


def relative_path(value: str, flag: str, example: str) -> str:
    """``value`` as a clean relative POSIX path that stays inside its folder ("" for the folder itself)."""
    cleaned = posixpath.normpath(value.strip().replace("\\", "/")) if value.strip() else "."
    if value.strip().startswith(("/", "~")) or cleaned == ".." or cleaned.startswith("../") or "\0" in value:
        raise InvalidInputError(
            f"invalid {flag} {value!r}: must be a relative path inside the workspace, e.g. {example}"
        )
    return "" if cleaned == "." else cleaned


def split_words(value: str, flag: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError as err:
        raise InvalidInputError(f"invalid {flag} {value!r}: {err}") from err


def validate_index_url(value: str) -> str:
    value = value.strip()
    if value and not value.lower().startswith(("https://", "http://", "file://")):
        raise InvalidInputError(
            f"invalid --index-url {value!r}: must be an https://, http:// or file:// URL "
            "of a PEP 503 simple index, e.g. https://pypi.example/simple"
        )
    register_url_secrets(value)
    host = pyenv.plain_http_host(value)
    if host:
        log.warn(
            f"--index-url is plain http: pip trusts {host} for this run, and packages from it are not "
            "protected in transit (fine for a mirror inside the cluster)"
        )
    return value


def resolve_wheelhouse(value: str | None) -> str:
    """The --wheelhouse folder: the image's default when it exists and none was given; "" for none."""
    if value is None:
        return DEFAULT_WHEELHOUSE if Path(DEFAULT_WHEELHOUSE).is_dir() else ""
    if value and not Path(value).is_dir():
        raise InvalidInputError(f"invalid --wheelhouse {value!r}: no such folder")
    return str(Path(value).absolute()) if value else ""


@dataclass
class Outcome:
    counts: junit.Counts
    coverage: float | None = None
    problems: list[str] = field(default_factory=list)

    def results(self, report: str) -> dict[str, str]:
        return {
            "passed": str(self.counts.passed),
            "failed": str(self.counts.failed),
            "skipped": str(self.counts.skipped),
            "report": report,
            "coverage": "" if self.coverage is None else f"{self.coverage:.2f}",
        }


def failure_problem(counts: junit.Counts) -> str:
    names = [f.name for f in counts.failures[:NAMED_FAILURES]]
    more = len(counts.failures) - len(names)
    listed = ", ".join(names) + (f" and {more} more" if more > 0 else "")
    return f"{counts.failed} of {counts.total} tests failed" + (f": {listed}" if listed else "")


def judge_pytest(returncode: int, counts: junit.Counts, last_line: str, label: str) -> list[str]:
    """What is wrong with a pytest run, given its exit code and report (empty: nothing)."""
    if returncode == 5 or (returncode == 0 and counts.total == 0):
        return [
            f"no test ran: pytest collected no tests in {label} (exit code 5); "
            "add tests, or check --context and --pytest-args"
        ]
    problems = [failure_problem(counts)] if counts.failed else []
    if returncode not in (0, 1) or (returncode == 1 and not counts.failed):
        problems.append(
            f"pytest stopped with exit code {returncode}"
            f"{' (' + PYTEST_EXIT[returncode] + ')' if returncode in PYTEST_EXIT else ''}: {last_line}"
        )
    return problems


def judge_command(returncode: int, counts: junit.Counts, last_line: str, report: str) -> list[str]:
    if counts.total == 0:
        return [f"no test ran: the report {report} has no test cases"]
    problems = [failure_problem(counts)] if counts.failed else []
    if returncode != 0 and not counts.failed:
        problems.append(f"the test command exited with code {returncode} though its report has no failure: {last_line}")
    return problems


def _read_report(path: Path, shown: str) -> junit.Counts:
    try:
        return junit.parse(path)
    except junit.ReportError as err:
        raise StepError(f"the report {shown} is not JUnit XML: {err}") from err
    except OSError as err:
        raise StepError(f"cannot read the report {shown}: {err.strerror}") from err


PHASES = ("all", "install", "run")


def _copy_source(source: Path, dest: Path, why: str = "build the project") -> None:
    """Copy the source workspace to build the project from (pip and the build backend write their
    build/, *.egg-info and bytecode there) or to run the tests in (whatever they write lands
    there): never into the workspace."""

    def skip(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in SKIPPED_DIRS}
        if "pyproject.toml" in names or "setup.py" in names:
            skipped |= {n for n in names if n in BUILD_OUTPUT or n.endswith(".egg-info")}
        return skipped

    try:
        shutil.copytree(source, dest, symlinks=True, ignore=skip)
    except (shutil.Error, OSError) as err:
        detail = err.args[0][0][2] if isinstance(err, shutil.Error) and err.args and err.args[0] else err
        raise StepError(f"cannot copy the source to {why}: {detail}") from err


def _prepare_report(path: Path, shown: str) -> None:
    if path.is_dir():
        raise InvalidInputError(f"invalid --report {shown!r}: is a folder")
    try:
        shared_dir(path.parent)
        path.unlink(missing_ok=True)  # a stale report must not count
    except OSError as err:
        raise StepError(f"cannot write the report {shown}: {err.strerror}") from err


def _project(app: Path, label: str) -> PythonProject:
    project = detect(app, label)
    if project is None:
        raise InvalidInputError(missing_message(app, label))
    return project


def _install(
    source: Path,
    context: str,
    app: Path,
    label: str,
    venv_path: Path,
    scratch: Path,
    tools: list[str],
    settings: pyenv.PipSettings,
    deadline: float,
    timeout_text: str,
) -> None:
    """The install phase: a fresh venv at ``venv_path`` with the project and the test tools."""
    project = _project(app, label)
    for note in project.notes:
        log.warn(note)
    log.progress(f"{label}: Python project: {project.describe()}; test tools: {', '.join(tools)}")
    if settings.cache_dir and not os.access(settings.cache_dir, os.W_OK):
        log.warn(f"the pip cache {settings.cache_dir} is not writable by uid {os.getuid()}; pip will not use it")
    venv = pyenv.create(venv_path, scratch, deadline - time.monotonic())
    _copy_source(source, scratch / "src")
    where = (
        f"offline from {settings.wheelhouse or 'no wheelhouse'}"
        if settings.offline
        else f"from {settings.index_url or 'the default index'}"
        + (f" and {settings.wheelhouse}" if settings.wheelhouse else "")
    )
    log.progress(f"installing into a fresh virtual environment, {where}")
    installed, cached = pyenv.install(
        venv,
        project.pip_arguments() + tools,
        project.constraints,
        scratch / "src" / context,
        scratch,
        settings,
        deadline,
        timeout_text,
    )
    venv.write_marker(tools, project.describe())
    log.progress(
        f"installed in {installed.seconds:.1f}s" + (f"; {cached} downloads served by the pip cache" if cached else "")
    )


def _run_pytest(
    venv: pyenv.Venv,
    copy: Path,
    label: str,
    scratch: Path,
    report: Path,
    shown: str,
    pytest_args: list[str],
    cov_fail_under: float,
    deadline: float,
    timeout_text: str,
) -> Outcome:
    """The run phase of a Python app: pytest with ``venv``, in ``copy`` (the app folder of a fresh copy)."""
    coverage_json = scratch / "coverage.json"
    argv = [str(venv.python), "-m", "pytest", f"--junitxml={report}", "-p", "no:cacheprovider"]
    if cov_fail_under:
        argv += ["--cov", "--cov-report=term", f"--cov-report=json:{coverage_json}"]
    env = pyenv.tests_environment(dict(os.environ))
    env["VIRTUAL_ENV"] = str(venv.path)
    env["PATH"] = f"{venv.path / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__, not even in the copy
    env["COVERAGE_FILE"] = str(scratch / ".coverage")
    log.progress(f"running: pytest {shlex.join(argv[4:] + pytest_args)}")
    run = process.run(
        argv + pytest_args, cwd=copy, env=env, deadline=deadline, what="pytest", timeout_text=timeout_text
    )
    if not report.is_file():
        meaning = PYTEST_EXIT.get(run.returncode, "no report")
        said = run.last_line(r"(?i)\berror: ")
        raise StepError(f"pytest stopped with exit code {run.returncode} ({meaning}) before writing a report: {said}")
    outcome = Outcome(_read_report(report, shown))
    outcome.problems = judge_pytest(run.returncode, outcome.counts, run.last_line(), label)
    if cov_fail_under:
        try:
            outcome.coverage = float(json.loads(coverage_json.read_text())["totals"]["percent_covered"])
        except (OSError, ValueError, KeyError, TypeError):
            if outcome.counts.total:
                outcome.problems.append("coverage was not measured (pytest-cov wrote no report)")
        if outcome.coverage is not None and outcome.coverage < cov_fail_under:
            outcome.problems.append(f"coverage {outcome.coverage:.2f}% is under the required {cov_fail_under:g}%")
    return outcome


def _run_command(words: list[str], copy: Path, report: Path, shown: str, deadline: float, timeout_text: str) -> Outcome:
    argv = [w.replace(REPORT_PLACEHOLDER, str(report)) for w in words]
    log.progress(f"running: {shlex.join(argv)}")
    env = pyenv.tests_environment(dict(os.environ))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    run = process.run(argv, cwd=copy, env=env, deadline=deadline, what="the test command", timeout_text=timeout_text)
    if not report.is_file():
        log.info(
            f"the command wrote no report at {shown}: one test case for the whole command, "
            f"by its exit code {run.returncode}"
        )
        try:
            report.write_bytes(
                junit.command_report("command", shlex.join(words), run.returncode, run.seconds, "\n".join(run.tail))
            )
        except OSError as err:
            raise StepError(f"cannot write the report {shown}: {err.strerror}") from err
    outcome = Outcome(_read_report(report, shown))
    outcome.problems = judge_command(run.returncode, outcome.counts, run.last_line(), shown)
    return outcome


def _log_summary(outcome: Outcome, cov_fail_under: float, shown: str) -> None:
    rows = [
        ("passed", str(outcome.counts.passed)),
        ("failed", str(outcome.counts.failed)),
        ("skipped", str(outcome.counts.skipped)),
    ]
    if outcome.coverage is not None:
        rows.append(("coverage", f"{outcome.coverage:.2f}% (required {cov_fail_under:g}%)"))
    rows.append(("report", shown))
    log.info("")
    for name, value in rows:
        log.info(f"  {name:<9} {value}")
    if outcome.counts.failures:
        log.info("failed tests:")
        for failure in outcome.counts.failures[:LOGGED_FAILURES]:
            log.info(f"  {failure}")
        if len(outcome.counts.failures) > LOGGED_FAILURES:
            log.info(f"  ... and {len(outcome.counts.failures) - LOGGED_FAILURES} more (see the report)")


@click.command("test")
@source_option
@option("--context", default=".", help="The app's folder inside --source, e.g. examples/drone-service.")
@option(
    "--command",
    default="",
    help="Run this instead of pytest (for an app that is not Python): split like a shell would, "
    "run without one, in the app folder (of a copy of the source); {report} becomes the JUnit path. "
    "Without a report from it, the command counts as one test, passed or failed by its exit code.",
)
@option(
    "--phase",
    default="all",
    help="install: make the venv at --venv and install the app into it (with the index and its "
    "credentials); run: run the tests with that venv (without them); all: both, one after the other.",
)
@option(
    "--venv",
    default="",
    help="Where the app's virtual environment is made (--phase install) and used (--phase run), "
    "the same path for both; for --phase all a temporary folder unless given.",
)
@output_option
@option(
    "--report",
    default=DEFAULT_REPORT,
    help="Where the JUnit XML goes, relative to the app's folder (--context) under --output.",
)
@option("--pytest-args", default="", help="Extra pytest arguments, split like a shell would, e.g. '-m \"not slow\"'.")
@option(
    "--cov-fail-under",
    type=click.FloatRange(0, 100),
    default=0.0,
    help="Measure coverage (pytest-cov) and fail under this percentage; 0: no coverage.",
)
@workspace_option("--pip-cache", "pip_cache", "Folder for pip's cache, kept between runs")
@option("--index-url", default="", help="Python package index (PEP 503 simple URL) instead of PyPI, e.g. a mirror.")
@flag_option("--offline", default=False, help="Use no index: install only from the wheelhouse.")
@option(
    "--wheelhouse",
    default=None,
    help=f"Folder of wheels pip may use (--find-links) [default: {DEFAULT_WHEELHOUSE} if it exists].",
)
@timeout_option("30m")
@results_dir_option
def run_tests(
    source: str,
    context: str,
    command: str,
    phase: str,
    venv: str,
    output: str,
    report: str,
    pytest_args: str,
    cov_fail_under: float,
    pip_cache: str,
    index_url: str,
    offline: bool,
    wheelhouse: str | None,
    timeout: Duration,
    results_dir: str | None,
) -> None:
    """Run the app's tests in its own environment; write a JUnit report and the counts as results."""
    deadline = time.monotonic() + timeout.seconds
    register_url_secrets(index_url)  # masked in every phase, also in the one that does not use it
    phase = phase.strip().lower()
    if phase not in PHASES:
        raise InvalidInputError(f"invalid --phase {phase!r}: use all, install or run")
    source_dir = source_folder(source)  # absolute: the programs run elsewhere
    context = relative_path(context, "--context", "apps/drone-service")
    app = source_dir / context
    label = context or "."
    if not app.is_dir():
        raise InvalidInputError(f"invalid --context {label!r}: no such folder in the source {source}")
    words = split_words(command, "--command")
    extra = split_words(pytest_args, "--pytest-args")
    if words and (extra or cov_fail_under):
        raise InvalidInputError("--pytest-args and --cov-fail-under apply to pytest; with --command pass them in it")
    if phase != "all" and not venv.strip():
        raise InvalidInputError(f"--phase {phase} needs --venv, the folder the install and run phases share")
    venv_path = Path(venv).absolute() if venv.strip() else None
    tools = ["pytest"] + (["pytest-cov"] if cov_fail_under else [])

    if phase == "install":
        settings = _pip_settings(index_url, offline, wheelhouse, pip_cache)
        if words:
            log.info("--command runs the tests as the source has them: nothing to install")
            return
        if venv_path is None:  # checked above; for the type checker
            raise InvalidInputError("--phase install needs --venv")
        _check_fresh(venv_path, venv)
        with tempfile.TemporaryDirectory(prefix="druppie-test-") as build_dir:
            _install(
                source_dir, context, app, label, venv_path, Path(build_dir), tools, settings, deadline, timeout.text
            )
        click.echo(summary_line("test", {"phase": "install", "venv": str(venv_path)}))
        return

    report_rel = relative_path(report, "--report", DEFAULT_REPORT)
    if not report_rel:
        raise InvalidInputError(f"invalid --report {report!r}: must name a file, e.g. {DEFAULT_REPORT}")
    out = output_folder(output)
    report_path = out / context / report_rel
    shown = posixpath.join(context, report_rel) if context else report_rel
    settings = _pip_settings(index_url, offline, wheelhouse, pip_cache) if phase == "all" else pyenv.PipSettings()
    existing: pyenv.Venv | None = None
    if phase == "run" and not words and venv_path is not None:
        existing, installed = pyenv.existing(venv_path, venv)
        missing = [t for t in tools if t not in installed]
        if missing:
            raise InvalidInputError(
                f"invalid --venv {venv!r}: --phase install did not install {', '.join(missing)}; "
                "give both phases the same --cov-fail-under"
            )
    elif phase == "all" and not words:
        _project(app, label)  # a clear error before anything is made
        if venv_path is not None:
            _check_fresh(venv_path, venv)

    with tempfile.TemporaryDirectory(prefix="druppie-test-") as tmp:
        scratch = Path(tmp)
        if phase == "all" and not words:
            made = venv_path or scratch / "venv"
            _install(source_dir, context, app, label, made, scratch, tools, settings, deadline, timeout.text)
            existing, _ = pyenv.existing(made, str(made))
        _copy_source(source_dir, scratch / "run", "run the tests in")
        copy = scratch / "run" / context
        _prepare_report(report_path, shown)
        if words:
            outcome = _run_command(words, copy, report_path, shown, deadline, timeout.text)
        else:
            if existing is None:  # made or checked above
                raise StepError("no virtual environment to run the tests with")
            outcome = _run_pytest(
                existing, copy, label, scratch, report_path, shown, extra, cov_fail_under, deadline, timeout.text
            )
    results = outcome.results(shown)
    write_results(results_dir, results)
    _log_summary(outcome, cov_fail_under, shown)
    click.echo(summary_line("test", results))
    if outcome.problems:
        raise StepError("; ".join(outcome.problems))


def _pip_settings(index_url: str, offline: bool, wheelhouse: str | None, pip_cache: str) -> pyenv.PipSettings:
    settings = pyenv.PipSettings(
        wheelhouse=resolve_wheelhouse(wheelhouse),
        index_url=validate_index_url(index_url),
        offline=offline,
        cache_dir=str(Path(pip_cache).absolute()) if pip_cache else "",
    )
    if pip_cache and not Path(pip_cache).is_dir():
        raise InvalidInputError(f"invalid --pip-cache {pip_cache!r}: no such folder")
    return settings


def _check_fresh(path: Path, shown: str) -> None:
    """The install phase makes a fresh environment: --venv must be missing or an empty folder."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInputError(
            f"invalid --venv {shown!r}: not an empty folder; the install phase makes a fresh environment"
        )
