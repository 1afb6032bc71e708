"""druppie-step test on the real example app and its failing variants, offline against a wheelhouse
of exactly the pins the step image carries (steps/requirements-test-tools.txt), downloaded once.
Every run leaves the source as it found it (tests/support/trees.py); reports go to --output.

The pip cache is shown at work with a local PEP 503 index that serves the same wheels with the
cache headers PyPI sends, and counts the wheel downloads.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from testbed.apps import APP, drone_app
from tests.support.paths import REPO_ROOT, STEP, TEST_TOKEN, TEST_USER
from tests.support.readonly import can_mount_read_only, read_only
from tests.support.tekton_env import tekton_env
from tests.support.trees import changes, snapshot

TASK = REPO_ROOT / "tasks/druppie-test/0.1/druppie-test.yaml"
PINS = REPO_ROOT / "steps/requirements-test-tools.txt"
DECLARED = {r["name"] for r in yaml.safe_load(TASK.read_text())["spec"]["results"]}
APP_TESTS = len(re.findall(r"^def test_", (APP / "tests" / "test_app.py").read_text(), re.M))


@pytest.fixture(scope="session")
def wheelhouse(request, tmp_path_factory) -> Path:
    """The step image's wheelhouse: steps/requirements-test-tools.txt, downloaded once (kept in
    pytest's cache, keyed by the pins)."""
    key = hashlib.sha256(PINS.read_bytes()).hexdigest()[:12]
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir(f"druppie-wheelhouse-{key}") if cache else tmp_path_factory.mktemp("wheelhouse")
    if not (folder / ".complete").exists():
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--only-binary=:all:",
                "-d",
                str(folder),
                "-r",
                str(PINS),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, f"cannot download the wheelhouse of {PINS.name}:\n{proc.stderr[-3000:]}"
        (folder / ".complete").touch()
    return folder


class Run(NamedTuple):
    rc: int
    out: str
    err: str
    results: dict[str, str]
    source: Path
    reports: Path  # --output
    changed: list[str]  # what the run changed in the source: nothing


def _step(*args: str, source: Path, results: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Run:
    reports = results.parent / f"{results.name}-reports"
    before = snapshot(source)
    proc = subprocess.run(
        [str(STEP), "test", "--source", str(source), *args, "--output", str(reports), "--results-dir", str(results)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    found = {p.name: p.read_text() for p in results.iterdir()} if results.exists() else {}
    return Run(proc.returncode, proc.stdout, proc.stderr, found, source, reports, changes(before, snapshot(source)))


def _offline(root: Path, wheelhouse: Path, variant: str | None, *args: str, env: dict[str, str] | None = None) -> Run:
    """``druppie-step test`` offline on a fresh copy of the app (or a variant) at <root>/src/app."""
    if not (root / "src" / "app").exists():
        drone_app(root / "src" / "app", variant)
    return _step(
        "--context",
        "app",
        "--wheelhouse",
        str(wheelhouse),
        "--offline",
        *args,
        source=root / "src",
        results=root / "results",
        env=env,
    )


# Each scenario makes a venv and installs into it (seconds of pip), so the module starts those its
# selected tests need all at once, in threads (the work is in subprocesses), and each test waits
# for its own: the fixture named like the scenario.


def _app_run(root: Path, wheelhouse: Path):
    # The step image puts its own packages on PYTHONPATH: a pytest there must never be the app's.
    poison = root / "step-site-packages"
    poison.mkdir()
    (poison / "pytest.py").write_text("raise SystemExit('the step PYTHONPATH reached the app')\n")
    return _offline(root, wheelhouse, None, "--cov-fail-under", "50", env={"PYTHONPATH": str(poison)})


def _unsatisfiable_run(root: Path, wheelhouse: Path):
    app = drone_app(root / "src" / "app")
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("dependencies = []", 'dependencies = ["drone-telemetry>=9"]'))
    return _offline(root, wheelhouse, None)


SCENARIOS = {
    "task_and_cache_runs": lambda root, wheelhouse: _task_and_cache(root, wheelhouse),  # the longest: first
    "app_run": _app_run,
    "failing_test_run": lambda root, wheelhouse: _offline(root, wheelhouse, "failing-test"),
    "no_tests_run": lambda root, wheelhouse: _offline(root, wheelhouse, "no-tests"),
    "coverage_under_run": lambda root, wheelhouse: _offline(
        root, wheelhouse, None, "--cov-fail-under", "95", "--pytest-args", "-k 'root_names or healthz'"
    ),
    "usage_error_run": lambda root, wheelhouse: _offline(root, wheelhouse, None, "--pytest-args", "--no-such-flag"),
    "unsatisfiable_run": _unsatisfiable_run,
}


@pytest.fixture(scope="module")
def started(request, wheelhouse, tmp_path_factory):
    """Start every scenario a selected test of this module uses; give a function that waits for one."""
    used = {
        name
        for item in request.session.items
        if getattr(item, "module", None) is request.module
        for name in item.fixturenames
    }
    names = [n for n in SCENARIOS if n in used]
    with ThreadPoolExecutor(max_workers=min(4, (os.cpu_count() or 1) + 1)) as pool:
        futures = {n: pool.submit(SCENARIOS[n], tmp_path_factory.mktemp(n), wheelhouse) for n in names}
        yield lambda name: futures[name].result()


@pytest.fixture
def app_run(started):
    return started("app_run")


@pytest.fixture
def failing_test_run(started):
    return started("failing_test_run")


@pytest.fixture
def no_tests_run(started):
    return started("no_tests_run")


@pytest.fixture
def coverage_under_run(started):
    return started("coverage_under_run")


@pytest.fixture
def usage_error_run(started):
    return started("usage_error_run")


@pytest.fixture
def unsatisfiable_run(started):
    return started("unsatisfiable_run")


@pytest.fixture
def task_and_cache_runs(started):
    return started("task_and_cache_runs")


def test_the_example_app_passes_with_coverage_and_leaves_its_source_alone(app_run):
    rc, out, err, results, _, reports, changed = app_run
    assert rc == 0, err
    assert set(results) == DECLARED
    assert results == {
        "passed": str(APP_TESTS),
        "failed": "0",
        "skipped": "0",
        "report": "app/.druppie/junit.xml",
        "coverage": results["coverage"],
    }
    assert 50 <= float(results["coverage"]) <= 100 and re.fullmatch(r"\d+\.\d\d", results["coverage"])
    assert out == (
        f"test: passed={APP_TESTS} failed=0 skipped=0 report=app/.druppie/junit.xml coverage={results['coverage']}\n"
    )
    report = ET.parse(reports / results["report"]).getroot()  # noqa: S314 - the report of our own fixture app
    assert len(list(report.iter("testcase"))) == APP_TESTS
    assert "app: Python project: the project with extra test; test tools: pytest, pytest-cov" in err
    assert f"  passed    {APP_TESTS}\n" in err and "  coverage  " in err
    # Built from a copy and run in another: no build/, *.egg-info, __pycache__, .pytest_cache,
    # .coverage or report in the workspace, not a byte changed.
    assert changed == []


def test_a_failing_test_fails_the_step_and_names_it(failing_test_run):
    rc, _out, err, results, *_ = failing_test_run
    assert rc == 1
    assert err.splitlines()[-1] == "error: 1 of 6 tests failed: tests.test_fleet::test_the_whole_fleet_is_flying"
    assert results == {"passed": "5", "failed": "1", "skipped": "0", "report": "app/.druppie/junit.xml", "coverage": ""}
    assert (
        "failed tests:\n  tests.test_fleet::test_the_whole_fleet_is_flying: AssertionError: assert "
        "['flying', 'docked', 'flying'] == ['flying', 'flying', 'flying']"
    ) in err
    assert "Traceback" not in err.split("failed tests:")[1]


def test_no_tests_is_a_failure_not_a_pass(no_tests_run):
    rc, _, err, results, *_ = no_tests_run
    assert rc == 1
    assert err.splitlines()[-1] == (
        "error: no test ran: pytest collected no tests in app (exit code 5); "
        "add tests, or check --context and --pytest-args"
    )
    assert results["passed"] == results["failed"] == "0" and set(results) == DECLARED


def test_a_broken_pyproject_is_one_line_before_anything_runs(tmp_path, wheelhouse):
    rc, out, err, results, *_ = _offline(tmp_path, wheelhouse, "broken-project")
    assert rc == 1 and out == "" and results == {}
    assert err == (
        "error: app/pyproject.toml: invalid TOML: Expected newline or end of document after a "
        "statement (at line 8, column 14): version = 1.0.0\n"
    )


def test_an_unsatisfiable_dependency_names_it(unsatisfiable_run, wheelhouse):
    rc, _out, err, results, *_ = unsatisfiable_run
    assert rc == 1 and results == {}
    assert err.splitlines()[-1] == (
        "error: pip could not install the project: No matching distribution found for "
        f"drone-telemetry>=9 (offline: only the wheelhouse {wheelhouse} is used)"
    )
    assert "Traceback" not in err


def test_coverage_under_the_threshold_fails_after_the_tests_pass(coverage_under_run):
    rc, _, err, results, *_ = coverage_under_run
    assert rc == 1
    assert results["passed"] == "1" and results["failed"] == "0"
    assert float(results["coverage"]) < 95
    assert err.splitlines()[-1] == f"error: coverage {results['coverage']}% is under the required 95%"


def test_a_pytest_usage_error_is_reported_with_pytests_words(usage_error_run):
    rc, _, err, results, *_ = usage_error_run
    assert rc == 1 and results == {}
    last = err.splitlines()[-1]
    assert last.startswith("error: pytest stopped with exit code 4 (usage error) before writing a report: ")
    assert last.endswith(" error: unrecognized arguments: --no-such-flag")


# --- --command ------------------------------------------------------------------------------------

JUNIT_WRITER = """import sys
open(sys.argv[1], "w").write('<testsuite><testcase classname="c" name="a"/><testcase classname="c" name="b"/>'
                             '<testcase classname="c" name="s"><skipped/></testcase></testsuite>')
"""


def test_command_that_writes_junit_where_told(tmp_path):
    app = drone_app(tmp_path / "src" / "app")
    (app / "ci").mkdir()
    (app / "ci" / "run.py").write_text(JUNIT_WRITER)
    rc, _out, err, results, _, reports, changed = _step(
        "--context",
        "app",
        "--command",
        f"{sys.executable} ci/run.py {{report}}",
        "--report",
        "reports/unit.xml",
        source=tmp_path / "src",
        results=tmp_path / "r",
    )
    assert rc == 0, err
    assert results == {"passed": "2", "failed": "0", "skipped": "1", "report": "app/reports/unit.xml", "coverage": ""}
    assert (reports / "app" / "reports" / "unit.xml").is_file() and changed == []


@pytest.mark.parametrize("check,rc,counts", [("== 200", 0, ("1", "0")), ("== 500", 1, ("0", "1"))])
def test_command_without_junit_is_one_test_case_by_exit_code(tmp_path, check, rc, counts):
    app = drone_app(tmp_path / "src" / "app")
    command = f"{sys.executable} -c \"from drone_service.app import route; assert route('/healthz')[0] {check}\""
    code, _out, err, results, _, reports, changed = _step(
        "--context", "app", "--command", command, source=tmp_path / "src", results=tmp_path / "r"
    )
    assert code == rc, err
    assert (results["passed"], results["failed"]) == counts and set(results) == DECLARED
    assert changed == [] and not (app / ".druppie").exists()
    report = ET.parse(reports / "app" / ".druppie" / "junit.xml").getroot()  # noqa: S314 - our own fixture app
    (case,) = report.iter("testcase")
    assert case.get("name") == shlex.join(shlex.split(command))
    if rc:
        assert err.splitlines()[-1].startswith("error: 1 of 1 tests failed: command::")
        assert "AssertionError" in case.find("failure").text


def test_command_not_found_and_timeout(tmp_path):
    drone_app(tmp_path / "src" / "app")
    rc, _, err, *_ = _step(
        "--context", "app", "--command", "no-such-runner --all", source=tmp_path / "src", results=tmp_path / "r"
    )
    assert rc == 1 and err.splitlines()[-2].endswith("s] running: no-such-runner --all")
    assert err.splitlines()[-1] == "error: the test command: command not found: no-such-runner"
    started = time.monotonic()
    rc, _, err, *_ = _step(
        "--context",
        "app",
        "--timeout",
        "1s",
        "--command",
        f'{sys.executable} -c \'import subprocess, time; subprocess.Popen(["sleep", "60"]); time.sleep(60)\'',
        source=tmp_path / "src",
        results=tmp_path / "r",
    )
    assert rc == 1 and err.splitlines()[-1] == "error: the test command did not finish within the --timeout of 1s"
    assert time.monotonic() - started < 10


# --- the Task's contract and the pip cache ---------------------------------------------------------


class SimpleIndex(http.server.ThreadingHTTPServer):
    """A PEP 503 index of a wheel folder on loopback; wheels go out with PyPI's cache headers."""

    def __init__(self, wheels: Path) -> None:
        self.wheels = {p.name: p for p in wheels.glob("*.whl")}
        self.downloads: list[str] = []
        super().__init__(("127.0.0.1", 0), _IndexHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/simple"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class _IndexHandler(http.server.BaseHTTPRequestHandler):
    server: SimpleIndex

    def do_GET(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:1] == ["files"] and len(parts) == 2 and parts[1] in self.server.wheels:
            self.server.downloads.append(parts[1])
            self._send(
                self.server.wheels[parts[1]].read_bytes(),
                "application/octet-stream",
                "max-age=365000000, immutable, public",
            )
        elif parts[:1] == ["simple"] and len(parts) == 2:
            links = [
                f'<a href="/files/{n}">{n}</a><br>'
                for n in sorted(self.server.wheels)
                if _normal(n.split("-")[0]) == _normal(parts[1])
            ]
            if not links:
                self.send_error(404)
                return
            self._send(f"<!DOCTYPE html><html><body>{''.join(links)}</body></html>".encode(), "text/html", "max-age=0")
        else:
            self.send_error(404)

    def _send(self, body: bytes, kind: str, cache: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


# Tests the app gets in the Task's run: one writes where it runs (the copy), one tries the source.
WRITING_TESTS = """import os
import pathlib


def test_a_test_may_write_where_it_runs():
    pathlib.Path("written-by-a-test.txt").write_text("x")
    pathlib.Path("drone_service", "__init__.py").write_text("# changed by a test\\n")


def test_a_test_cannot_write_into_the_source():
    target = pathlib.Path(os.environ["APP_SOURCE"], "apps", "drone-service", "drone_service", "__init__.py")
    try:
        target.write_text("# changed by a test\\n")
    except OSError:
        return
    raise AssertionError(f"the source was writable: {target}")
"""


def _in_pod(argv: list[str], source: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A step's process as in its container: the source workspace read-only (Tekton's readOnly)."""
    return subprocess.run(read_only(source, argv), capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def _task_and_cache(root: Path, wheelhouse: Path):
    """The Task's two steps as Tekton makes them (an index-url with a token in it, pip-cache bound,
    the source read-only), then a run of both phases at once with the same cache; the wheel
    downloads the index served after each."""
    index = SimpleIndex(wheelhouse)
    try:
        source, cache, venv, reports = root / "source", root / "pip-cache", root / "venv", root / "reports"
        app = drone_app(source / "apps" / "drone-service")
        (app / "tests" / "test_writes.py").write_text(WRITING_TESTS)
        cache.mkdir()
        home = root / "home"
        home.mkdir()
        before = snapshot(source)
        task = yaml.safe_load(TASK.read_text())
        with_token = index.url.replace("http://", f"http://{TEST_USER}:{TEST_TOKEN}@")
        params = {"context": "apps/drone-service", "index-url": with_token}
        workspaces = {"source": str(source), "pip-cache": str(cache), "reports": str(reports)}
        procs, envs = {}, {}
        for step in ("install", "run"):
            env = tekton_env(task, params, workspaces, str(root / "results"), step=step)
            assert env["DRUPPIE_VENV"] == "/druppie/venv"  # the emptyDir both steps mount
            env |= {"DRUPPIE_VENV": str(venv), "HOME": str(home), "APP_SOURCE": str(source)}
            envs[step] = env
            procs[step] = _in_pod(
                [str(STEP), *next(s for s in task["spec"]["steps"] if s["name"] == step)["command"][1:]],
                source,
                {"PATH": os.environ["PATH"], **env},
                root,
            )
            if procs[step].returncode:
                break
        results = {p.name: p.read_text() for p in (root / "results").iterdir()} if (root / "results").exists() else {}
        first = list(index.downloads)
        left = {
            str(p.relative_to(root))
            for folder in (venv, reports, home, cache)
            for p in folder.rglob("*")
            if p.is_file() and (TEST_TOKEN.encode() in p.read_bytes() or TEST_USER.encode() in p.read_bytes())
        }
        changed = changes(before, snapshot(source))
        second = _step(
            "--context",
            "apps/drone-service",
            "--index-url",
            index.url,
            "--wheelhouse",
            "",
            "--pip-cache",
            str(cache),
            "--pytest-args",
            "--deselect tests/test_writes.py::test_a_test_cannot_write_into_the_source",
            source=source,
            results=root / "results-2",
        )
        return procs, envs, results, first, left, changed, second, list(index.downloads)
    finally:
        index.shutdown()
        index.server_close()


needs_mounts = pytest.mark.skipif(not can_mount_read_only(), reason="needs unshare -m (root) for a read-only source")


@needs_mounts
def test_task_steps_install_with_the_token_and_run_without_it(task_and_cache_runs):
    procs, envs, results, first, left, _, _, _ = task_and_cache_runs
    assert procs["install"].returncode == 0, procs["install"].stderr
    assert procs["run"].returncode == 0, procs["run"].stderr
    assert set(results) == DECLARED
    assert results == {
        "passed": str(APP_TESTS + 2),
        "failed": "0",
        "skipped": "0",
        "coverage": "",
        "report": "apps/drone-service/.druppie/junit.xml",
    }
    install, run = procs["install"], procs["run"]
    assert "--index-url is plain http: pip trusts 127.0.0.1:" in install.stderr
    assert "http://***@127.0.0.1:" in install.stderr  # pip's "Looking in indexes"
    assert {"pytest-9.2.0-py3-none-any.whl", "setuptools-84.2.1-py3-none-any.whl"} <= set(first)
    for proc in procs.values():
        assert TEST_TOKEN not in proc.stdout + proc.stderr and TEST_USER not in proc.stdout + proc.stderr
    # The token is in the install step's environment and nowhere the run step (the tests) can look:
    # not its environment, not the venv, the reports, HOME or the pip cache.
    assert TEST_TOKEN in envs["install"]["DRUPPIE_INDEX_URL"]
    assert not [k for k, v in envs["run"].items() if TEST_TOKEN in v or "INDEX" in k]
    assert left == set()
    assert "installing into a fresh virtual environment" in install.stderr and "running: pytest" not in install.stderr
    assert "running: pytest" in run.stderr and "pip:" not in run.stderr


@needs_mounts
def test_task_steps_leave_the_read_only_source_as_it_was(task_and_cache_runs):
    """The source workspace is read-only (a bind mount here, as Tekton's readOnly): the tests ran in
    a copy, so the one that wrote where it runs passed, the one that tried the source failed to
    write it (and so passed), and not a byte of the source changed."""
    procs, _, results, _, _, changed, _, _ = task_and_cache_runs
    assert procs["run"].returncode == 0, procs["run"].stderr
    assert results["passed"] == str(APP_TESTS + 2) and changed == []


@needs_mounts
def test_the_pip_cache_serves_the_next_run(task_and_cache_runs):
    _, _, results, first, _, _, (rc, _, err, again, _, _, changed), downloads = task_and_cache_runs
    assert rc == 0, err
    assert again == results | {"passed": str(APP_TESTS + 1)}  # the test that tries the source deselected
    assert downloads == first, "the second run downloaded wheels the cache had"
    assert re.search(r"installed in [\d.]+s; \d+ downloads served by the pip cache", err)
    assert changed == []
