"""druppie-step scan with the real scanners (bandit, gitleaks, osv-scanner, trivy) on the example app and
its planted-problem variants; the Go tools come from the shared cache (tests/support/tools.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from hack import catalog
from testbed.apps import drone_app
from testbed.registry import push_busybox_base, start_registry
from tests.support.paths import STEP
from tests.support.sarif import assert_sarif_shape
from tests.support.tekton_env import tekton_env
from tests.support.tools import path_with, tool_path
from tests.support.trees import changes, snapshot

OSV_DB = catalog.ROOT / "tests" / "fixtures" / "osv-db"
TASK = catalog.ROOT / "tasks/druppie-scan/0.1/druppie-scan.yaml"
GO_TOOLS = ("gitleaks", "osv-scanner", "trivy")
MISSING = [t for t in GO_TOOLS if not tool_path(t).exists()]
HAVE_TRIVY = "trivy" not in MISSING
# The planted secrets of the planted-secret variant (fake): none may ever be printed or written.
SECRETS = (
    "ghp_UtQ2ss1Il14GzuySgVhsQODuFH0ML9qKipFU",
    "AKIAODPU5YKLQ2VFXOUA",
    "sSS62lUzYJJSArdl0d0OrcsqBltfv+DuzICa/gEP",
)

pytestmark = pytest.mark.skipif(
    bool({"gitleaks", "osv-scanner"} & set(MISSING)),
    reason=f"not built yet: {', '.join(MISSING)} (hack/cluster-build.sh scanners)",
)
needs_trivy = pytest.mark.skipif(not HAVE_TRIVY, reason=f"trivy not built: no {tool_path('trivy')}")
# Without trivy the rest still runs: every scanner but config.
ALL = "all" if HAVE_TRIVY else "code,secrets,deps"


@pytest.fixture
def out(tmp_path):
    """Where the report goes (--output): never the app's source, and never the current folder of the tests."""
    return tmp_path / "out"


@pytest.fixture
def tools_env(out):
    return {"PATH": path_with(*GO_TOOLS), "DRUPPIE_OUTPUT": str(out)}


@pytest.fixture
def fresh_db(tmp_path):
    """The fixture database, stamped as refreshed an hour ago."""
    return stamped_db(tmp_path / "osv-db", dt.timedelta(hours=1))


def stamped_db(dest: Path, age: dt.timedelta) -> Path:
    shutil.copytree(OSV_DB, dest)
    (dest / "last-updated").write_text((dt.datetime.now(dt.UTC) - age).strftime("%Y-%m-%dT%H:%M:%SZ\n"))
    return dest


def sarif_of(out: Path) -> dict:
    return json.loads((out / ".druppie" / "scan.sarif").read_text())


def results_in(doc: dict) -> dict[str, list[dict]]:
    return {run["tool"]["driver"]["name"]: run["results"] for run in doc["runs"]}


def test_example_app_scans_clean(run_step, tools_env, fresh_db, tmp_path, out):
    app = drone_app(tmp_path / "app")
    run = run_step("scan", "--source", str(app), "--scanners", ALL, "--osv-db", str(fresh_db), env=tools_env)
    assert run.returncode == 0, run.output
    assert run.results == {
        "critical": "0",
        "high": "0",
        "medium": "3",
        "low": run.results["low"],
        "info": "0",
        "report": ".druppie/scan.sarif",
        "suppressed": "0",
        "suppressions": "",
        "advisories": f"checked: {fresh_db} (updated {(fresh_db / 'last-updated').read_text()[:16]}Z)",
    }
    assert int(run.results["low"]) >= 8  # bandit's asserts in tests (B101), and trivy's HEALTHCHECK note
    assert "deps     osv-scanner 2.6.0  skipped: no lockfile or dependency manifest osv-scanner reads" in run.stderr
    assert "B104  drone_service/app.py:56" in run.stderr  # medium: listed, does not fail at high
    doc = sarif_of(out)
    assert_sarif_shape(doc)
    assert [r["tool"]["driver"]["name"] for r in doc["runs"]] == ["bandit", "gitleaks", "osv-scanner"] + (
        ["trivy"] if HAVE_TRIVY else []
    )
    if HAVE_TRIVY:
        assert "config   trivy 0.74.0" in run.stderr and "skipped" not in run.stderr.split("config   trivy")[1][:40]


VARIANTS = [
    # variant, scanners, rules that must be found (rule, severity, path), the failing summary
    (
        "planted-secret",
        "code,secrets",
        [
            ("github-pat", "high", "drone_service/settings.py"),
            ("aws-access-token", "high", "config/aws-credentials.ini"),
        ],
        "3 high",
    ),
    ("insecure-code", "code,secrets", [("B602", "high", "drone_service/diagnostics.py")], "1 high"),
    (
        "vulnerable-dependency",
        "deps",
        [
            ("GHSA-8q59-q68h-6hv4", "critical", "requirements.txt"),
            ("GHSA-9wx4-h78v-vm56", "medium", "requirements.txt"),
        ],
        "1 critical",
    ),
    pytest.param(
        "misconfigured",
        "config",
        [("DS-0002", "high", "Containerfile"), ("KSV-0017", "high", "deploy/deployment.yaml")],
        "high",
        marks=needs_trivy,
    ),
]


@pytest.mark.parametrize("variant,scanners,expected,summary", VARIANTS, ids=lambda v: v if isinstance(v, str) else "")
def test_variant_fails_for_its_planted_problem(
    run_step, tools_env, fresh_db, tmp_path, out, variant, scanners, expected, summary
):
    app = drone_app(tmp_path / "app", variant)
    run = run_step("scan", "--source", str(app), "--scanners", scanners, "--osv-db", str(fresh_db), env=tools_env)
    assert run.returncode == 1, run.output
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and "at or above --fail-on high" in error and summary in error, error
    sarif_text = (out / ".druppie" / "scan.sarif").read_text()
    found = [
        (r["ruleId"], r["properties"]["severity"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
        for run_ in json.loads(sarif_text)["runs"]
        for r in run_["results"]
    ]
    for rule, severity, path in expected:
        assert (rule, severity, path) in found, found
        assert f"{severity.upper():8} " in run.stderr and f" {rule}  {path}" in run.stderr
    assert_sarif_shape(json.loads(sarif_text))
    assert "Traceback" not in run.output
    for secret in SECRETS:  # never printed, never written
        assert secret not in run.output and secret not in sarif_text and secret not in "".join(run.results.values())


def test_secret_is_masked_in_bandits_message_too(run_step, tools_env, tmp_path, out):
    app = drone_app(tmp_path / "app", "planted-secret")
    run = run_step("scan", "--source", str(app), "--scanners", "code", "--fail-on", "low", env=tools_env)
    assert run.returncode == 1
    b105 = [r for r in results_in(sarif_of(out))["bandit"] if r["ruleId"] == "B105"]
    assert [r["message"]["text"] for r in b105] == ["Possible hardcoded password (value not shown) (confidence medium)"]


def ignore_file(app: Path, expires: dt.date, rule: str = "B602", path: str = "drone_service/diagnostics.py") -> None:
    (app / ".druppie-scan.yaml").write_text(
        yaml.safe_dump(
            {
                "ignore": [
                    {"rule": rule, "path": path, "reason": "only our own fixed hosts reach it", "expires": expires}
                ]
            }
        )
    )


def test_ignore_file_suppresses_until_its_entry_expires(run_step, tools_env, tmp_path, out):
    app = drone_app(tmp_path / "app", "insecure-code")
    until = dt.date.today() + dt.timedelta(days=30)
    ignore_file(app, until)
    run = run_step("scan", "--source", str(app), "--scanners", "code", env=tools_env)
    assert run.returncode == 0, run.output
    assert run.results["high"] == "0"
    assert run.results["suppressed"] == "1"
    assert run.results["suppressions"] == f"B602 drone_service/diagnostics.py until {until.isoformat()} (1 finding)"
    [b602] = [r for r in results_in(sarif_of(out))["bandit"] if r["ruleId"] == "B602"]
    assert b602["suppressions"][0]["justification"].startswith("only our own fixed hosts reach it")
    assert b602["suppressions"][0]["properties"]["expires"] == until.isoformat()
    assert [e["rule"] for e in sarif_of(out)["properties"]["suppressions"]] == ["B602"]
    assert re.search(r"\n  code +bandit 1\.9\.4 +0 +0 +3 +\d+ +0 +1\n", run.stderr), run.stderr  # suppressed: 1
    assert "HIGH     code    B602  drone_service/diagnostics.py:11  entry 1, until " in run.stderr

    ignore_file(app, dt.date.today() - dt.timedelta(days=1))
    run = run_step("scan", "--source", str(app), "--scanners", "code", env=tools_env)
    assert run.returncode == 1 and run.results["high"] == "1"
    assert (
        f"entry 1 (rule B602, path drone_service/diagnostics.py) expired on "
        f"{(dt.date.today() - dt.timedelta(days=1)).isoformat()}: it no longer suppresses anything" in run.stderr
    )


@pytest.mark.parametrize(
    "rule,path,expires,why",
    [
        ("*", "drone_service/diagnostics.py", 30, "rule '*' matches every rule; name the rule"),
        ("B602", "**", 30, "path '**' matches every file; name the file or folder"),
        ("B*", "drone_service/diagnostics.py", 30, "rule 'B*' matches a whole family of rules"),
        ("B602", "drone_service/diagnostics.py", 91, "is later than"),
    ],
)
def test_an_exception_that_would_switch_the_scan_off_fails_it(
    run_step, tools_env, tmp_path, out, rule, path, expires, why
):
    """The review's case: rule "*" until 2099 made a failing HIGH exit 0. Each half is refused alone."""
    app = drone_app(tmp_path / "app", "insecure-code")
    ignore_file(app, dt.date.today() + dt.timedelta(days=expires), rule, path)
    run = run_step("scan", "--source", str(app), "--scanners", "code", env=tools_env)
    assert run.returncode == 2, run.output
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"error: .druppie-scan.yaml: entry 1 (rule {rule}): ") and why in line, line
    assert run.results == {} and not out.exists()


def test_scanning_writes_nothing_into_the_source(run_step, tools_env, fresh_db, tmp_path, out):
    """The source is only read (the Task mounts it read-only): no report, cache or bytecode lands in it."""
    app = drone_app(tmp_path / "app", "vulnerable-dependency")
    shutil.copytree(catalog.ROOT / "tests/fixtures/drone-variants/misconfigured", app, dirs_exist_ok=True)
    before = snapshot(app)
    run = run_step("scan", "--source", str(app), "--scanners", ALL, "--osv-db", str(fresh_db), env=tools_env)
    assert run.returncode == 1, run.output
    assert changes(before, snapshot(app)) == []
    assert (out / ".druppie" / "scan.sarif").is_file()


def test_an_apps_own_bandit_module_does_not_replace_bandit(run_step, tools_env, tmp_path, out):
    """bandit runs as python -m bandit in the app's folder; the app's bandit.py must not be the one that runs."""
    app = drone_app(tmp_path / "app", "insecure-code")
    (app / "bandit.py").write_text(
        "import json, sys\n"
        "out = sys.argv[sys.argv.index('-o') + 1] if '-o' in sys.argv else None\n"
        "if out:\n    open(out, 'w').write(json.dumps({'results': [], 'errors': []}))\n"
        "print('bandit 9.9.9')\n"
    )
    run = run_step("scan", "--source", str(app), "--scanners", "code", env=tools_env)
    assert run.returncode == 1, run.output
    assert "B602" in run.stderr and "bandit 9.9.9" not in run.stderr and "code: bandit 1.9.4 done" in run.stderr


def test_malformed_ignore_file_is_one_line_naming_file_and_entry(run_step, tools_env, tmp_path):
    app = drone_app(tmp_path / "app")
    (app / ".druppie-scan.yaml").write_text(
        "ignore:\n  - rule: B101\n    path: tests/*\n    reason: tests\n    expires: 2027-02-30\n"
    )
    run = run_step("scan", "--source", str(app), env=tools_env)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "error: .druppie-scan.yaml: entry 1 (rule B101): expires '2027-02-30' is not a date YYYY-MM-DD"
    )


def test_stale_database_warns_with_its_age_and_fails_past_max_db_age(run_step, tools_env, tmp_path):
    app = drone_app(tmp_path / "app", "vulnerable-dependency")
    db = stamped_db(tmp_path / "db", dt.timedelta(days=3, hours=2))
    run = run_step(
        "scan", "--source", str(app), "--scanners", "deps", "--osv-db", str(db), "--fail-on", "never", env=tools_env
    )
    assert run.returncode == 0, run.output
    assert "warning: advisory database" in run.stderr and "3d 2h ago (from last-updated): stale" in run.stderr
    assert run.results["critical"] == "1"

    run = run_step(
        "scan", "--source", str(app), "--scanners", "deps", "--osv-db", str(db), "--max-db-age", "2d", env=tools_env
    )
    assert run.returncode == 1 and run.results == {}
    assert "3d 2h ago (from last-updated): older than --max-db-age 2d; refresh it" in run.stderr
    # Without a stamp the newest advisory (2024-05-20) dates it: far too old for the default 7d.
    run = run_step("scan", "--source", str(app), "--scanners", "deps", "--osv-db", str(OSV_DB), env=tools_env)
    assert (
        run.returncode == 1 and "updated 2024-05-20T22:07Z" in run.stderr and "(from the newest advisory)" in run.stderr
    )


NO_DB = (
    "error: the deps scanner needs an advisory database and has none: set --osv-db-ref (the Task's "
    "osv-db-ref param, an artifact pushed by osv-db-push) or --osv-db (the osv-db workspace); to scan "
    "without one, say so with --deps-advisories skip (param deps-advisories: skip)"
)


@pytest.mark.parametrize("scanners", [[], ["--scanners", "deps"], ["--scanners", "code,deps"]])
def test_deps_without_a_database_fails_closed_before_scanning(run_step, tools_env, tmp_path, out, scanners):
    """Issue 15: a webhook run had no database and the deps gate silently did not run. Now the
    scan fails, with one line saying why and what to do, and writes nothing."""
    app = drone_app(tmp_path / "app", "vulnerable-dependency")
    run = run_step("scan", "--source", str(app), *scanners, env=tools_env)
    assert (run.returncode, run.stderr.strip().splitlines()) == (2, [NO_DB]), run.output
    assert run.results == {} and not out.exists()


@needs_trivy
def test_the_opt_out_runs_without_advisories_and_says_so_everywhere(run_step, tools_env, tmp_path, out):
    app = drone_app(tmp_path / "app", "vulnerable-dependency")
    run = run_step("scan", "--source", str(app), "--deps-advisories", "skip", env=tools_env)
    assert run.returncode == 0, run.output  # the planted critical advisory is not looked for
    loud = "warning: deps: advisory checks SKIPPED on purpose (--deps-advisories skip)"
    assert run.stderr.count(loud) == 3, run.stderr  # before, beside the table, after the summary line
    assert run.stderr.strip().splitlines()[-1].startswith(loud)
    assert re.search(r"\n  deps +osv-scanner +skipped: opted out \(--deps-advisories skip\)", run.stderr), run.stderr
    assert run.results["advisories"] == "skipped: opted out with --deps-advisories skip"
    doc = sarif_of(out)
    assert doc["properties"]["advisories"] == {"status": "skipped", "reason": "opted out with --deps-advisories skip"}
    [deps] = [r for r in doc["runs"] if r["tool"]["driver"]["name"] == "osv-scanner"]
    notes = deps["invocations"][0]["toolExecutionNotifications"]
    assert [n["level"] for n in notes] == ["note", "warning"] and "SKIPPED on purpose" in notes[1]["message"]["text"]
    assert_sarif_shape(doc)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--deps-advisories", "skip", "--osv-db", "{db}"], "--deps-advisories skip contradicts the advisory "
         "database given (--osv-db): drop one of them"),
        (["--deps-advisories", "skip", "--osv-db-ref", "r.example/druppie/osv-db:latest"],
         "--deps-advisories skip contradicts the advisory database given (--osv-db-ref): drop one of them"),
        (["--osv-db", "{db}", "--osv-db-ref", "r.example/druppie/osv-db:latest"],
         "--osv-db and --osv-db-ref both given: use one advisory database"),
        (["--deps-advisories", "no"], "invalid --deps-advisories 'no': use check"),
        (["--osv-db-ref", "r.example/druppie/OSV"], "invalid --osv-db-ref 'r.example/druppie/OSV': not a registry"),
    ],
)  # fmt: skip
def test_contradicting_or_bad_advisory_options_are_one_line(run_step, tools_env, fresh_db, tmp_path, args, message):
    app = drone_app(tmp_path / "app", "vulnerable-dependency")
    args = [a.replace("{db}", str(fresh_db)) for a in args]
    run = run_step("scan", "--source", str(app), "--scanners", "deps", *args, env=tools_env)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.output
    assert run.stderr.startswith(f"error: {message}"), run.stderr


def test_without_deps_among_the_scanners_no_database_is_needed_and_the_result_says_so(run_step, tools_env, tmp_path):
    app = drone_app(tmp_path / "app")
    run = run_step("scan", "--source", str(app), "--scanners", "code,secrets", env=tools_env)
    assert run.returncode == 0, run.output
    assert run.results["advisories"] == "not checked: deps is not among --scanners"


# ---- the database as an OCI artifact in a registry (--osv-db-ref) --------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


def push_db(run_step, db: Path, ref: str, *args: str) -> dict[str, str]:
    """osv-db-push of ``db`` to ``ref`` (plain HTTP); its results."""
    run = run_step("osv-db-push", "--db", str(db), "--ref", ref, "--no-tls-verify", *args)
    assert run.returncode == 0, run.output
    return run.results


def test_deps_checks_against_the_database_pulled_from_a_registry(
    run_step, tools_env, fresh_db, registry, tmp_path, out
):
    """The fixture database pushed as an artifact, pulled by --osv-db-ref, finds the planted advisory."""
    ref = f"{registry.host}/druppie/osv-db:latest"
    pushed = push_db(run_step, fresh_db, ref)
    updated = (fresh_db / "last-updated").read_text().strip()
    assert pushed["digest"].startswith("sha256:") and pushed["updated"] == updated
    assert (
        pushed["dated-ref"]
        == f"{registry.host}/druppie/osv-db:{updated[:4]}{updated[5:7]}{updated[8:13]}{updated[14:16]}Z"
    )
    app = drone_app(tmp_path / "app", "vulnerable-dependency")
    run = run_step(
        "scan", "--source", str(app), "--scanners", "deps", "--osv-db-ref", ref, "--no-tls-verify", env=tools_env
    )
    assert run.returncode == 1, run.output
    assert "CRITICAL deps    GHSA-8q59-q68h-6hv4  requirements.txt" in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: 1 finding(s) at or above --fail-on high (1 critical)")
    pinned = f"{registry.host}/druppie/osv-db@{pushed['digest']}"
    assert f"deps: pulled {ref} as {pushed['digest']}" in run.stderr
    assert f"advisory database {pinned} (PyPI): updated {updated[:16]}Z, 1h 0m ago (from last-updated)" in run.stderr
    assert run.results["advisories"] == f"checked: {pinned} (updated {updated[:16]}Z)"
    assert sarif_of(out)["properties"]["advisories"] == {
        "status": "checked",
        "source": pinned,
        "ref": ref,
        "digest": pushed["digest"],
        "updated": f"{updated[:16]}Z",
        "updatedFrom": "last-updated",
    }
    # Pinned by digest, and under the dated tag: the same database.
    for other in (pinned, pushed["dated-ref"]):
        again = run_step("scan", "--source", str(app), "--scanners", "deps", "--osv-db-ref", other, "--no-tls-verify",
                         "--fail-on", "never", env=tools_env)  # fmt: skip
        assert again.returncode == 0 and again.results["critical"] == "1", again.output
        assert again.results["advisories"] == f"checked: {pinned} (updated {updated[:16]}Z)"


def test_a_ref_that_cannot_be_pulled_fails_with_one_line(run_step, tools_env, registry, tmp_path, out):
    app = drone_app(tmp_path / "app", "vulnerable-dependency")
    missing = f"{registry.host}/druppie/no-such-db:latest"
    other = f"{registry.host}/druppie/osv-db@sha256:{'0' * 64}"
    for ref, why in (
        ("127.0.0.1:9/druppie/osv-db:latest", "registry 127.0.0.1:9 unreachable: [Errno 111] Connection refused"),
        (missing, f"registry {registry.host} has no {missing}"),
        (other, f"registry {registry.host} has no {other}"),
    ):
        run = run_step("scan", "--source", str(app), "--osv-db-ref", ref, "--no-tls-verify", env=tools_env)
        assert run.returncode == 1, run.output
        assert (
            run.stderr.strip().splitlines()[-1] == f"error: cannot pull the advisory database --osv-db-ref {ref}: {why}"
        )
        assert run.results == {} and not out.exists() and "Traceback" not in run.output


def test_an_artifact_older_than_max_db_age_fails_however_recently_it_was_pushed(
    run_step, tools_env, registry, tmp_path
):
    """The age is the database's own: pushing a three-day-old database again does not make it young."""
    ref = f"{registry.host}/druppie/stale-db:latest"
    old = stamped_db(tmp_path / "old", dt.timedelta(days=3, hours=2))
    app = drone_app(tmp_path / "app", "vulnerable-dependency")
    push_db(run_step, old, ref)
    second = push_db(run_step, old, ref)  # pushed again just now: its created annotation is new
    for max_age, code in (("2d", 1), ("7d", 1)):
        run = run_step("scan", "--source", str(app), "--scanners", "deps", "--osv-db-ref", ref, "--no-tls-verify",
                       "--max-db-age", max_age, env=tools_env)  # fmt: skip
        assert run.returncode == code, run.output
        if max_age == "2d":
            assert run.results == {}
            assert run.stderr.strip().splitlines()[-1] == (
                f"error: advisory database {registry.host}/druppie/stale-db@{second['digest']} (PyPI): updated "
                f"{(old / 'last-updated').read_text()[:16]}Z, 3d 2h ago (from last-updated): older than "
                "--max-db-age 2d; refresh it (the druppie-scan README, samples/osv-db-refresh.yaml)"
            )
        else:  # within 7d: it scans, with a warning of its age, and fails on the critical finding
            assert "3d 2h ago (from last-updated): stale" in run.stderr and run.results["critical"] == "1"


def test_a_database_without_a_stamp_is_as_old_as_its_newest_advisory(run_step, tools_env, registry, tmp_path):
    ref = f"{registry.host}/druppie/unstamped-db:latest"
    push_db(run_step, OSV_DB, ref)
    app = drone_app(tmp_path / "app", "vulnerable-dependency")
    run = run_step("scan", "--source", str(app), "--osv-db-ref", ref, "--no-tls-verify", env=tools_env)
    assert run.returncode == 1 and "updated 2024-05-20T22:07Z" in run.stderr, run.output
    assert "(from the newest advisory): older than --max-db-age 7d" in run.stderr


def test_an_image_is_not_taken_for_a_database(run_step, tools_env, registry, tmp_path):
    image = push_busybox_base(registry, "druppie/not-a-db", "latest")
    app = drone_app(tmp_path / "app", "vulnerable-dependency")
    run = run_step("scan", "--source", str(app), "--osv-db-ref", image, "--no-tls-verify", env=tools_env)
    assert run.returncode == 1, run.output
    [line] = run.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"error: cannot pull the advisory database --osv-db-ref {image}: {image} is not an OSV "
                           "advisory database (its manifest is"), line  # fmt: skip
    assert "push one with druppie-step osv-db-push" in line


def test_database_without_the_apps_ecosystem_is_named(run_step, tools_env, fresh_db, tmp_path):
    app = drone_app(tmp_path / "app")
    (app / "package-lock.json").write_text(
        json.dumps(
            {
                "name": "ui",
                "lockfileVersion": 3,
                "packages": {"": {"name": "ui"}, "node_modules/lodash": {"version": "4.17.20"}},
            }
        )
    )
    run = run_step("scan", "--source", str(app), "--scanners", "deps", "--osv-db", str(fresh_db), env=tools_env)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "error: the advisory database has no npm ecosystem (npm/all.zip), "
        "which this app's dependencies need; it has PyPI"
    )


def venv_without_tools(dest: Path) -> Path:
    """A venv with this one's packages but nothing else in its bin (make setup links the tools into .venv/bin)."""
    site = Path(sysconfig.get_paths()["purelib"])
    (dest / site.relative_to(sys.prefix)).parent.mkdir(parents=True)
    (dest / site.relative_to(sys.prefix)).symlink_to(site)
    (dest / "bin").mkdir()
    (dest / "bin" / "python").symlink_to(os.path.realpath(sys.executable))
    shutil.copy(Path(sys.prefix) / "pyvenv.cfg", dest / "pyvenv.cfg")
    return dest / "bin" / "python"


def step_with(python: Path, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    """druppie-step run by ``python``, as .venv/bin/druppie-step runs without an activated venv (the
    report into a folder of its own)."""
    out = python.parent.parent.parent / "out"
    return subprocess.run(
        [str(python), "-c", "import sys; from druppie_steps.cli import main; sys.exit(main(sys.argv[1:]))", *args],
        env={**os.environ, "PATH": path, "DRUPPIE_OUTPUT": str(out)},
        capture_output=True,
        text=True,
    )


def test_a_tool_beside_the_interpreter_is_found_without_path(tmp_path):
    app = drone_app(tmp_path / "app")
    python = venv_without_tools(tmp_path / "venv")
    (python.parent / "gitleaks").symlink_to(tool_path("gitleaks"))
    proc = step_with(python, "scan", "--source", str(app), "--scanners", "secrets", path="/usr/bin:/bin")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"secrets: gitleaks [\d.]+ done, 0 finding\(s\)", proc.stderr), proc.stderr


def test_missing_or_crashing_scanner_is_a_clear_error(run_step, tools_env, tmp_path):
    app = drone_app(tmp_path / "app")
    python = venv_without_tools(tmp_path / "venv")
    proc = step_with(
        python,
        "scan",
        "--source",
        str(app),
        "--scanners",
        "secrets",
        # Not path_with: it adds this venv's bin, where make setup links gitleaks too.
        path=f"{tool_path('osv-scanner').parent}:/usr/bin:/bin",
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"error: gitleaks not found on PATH or in {tmp_path / 'venv' / 'bin'}: the druppie-scan image has it"
        )
    )

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gitleaks").write_text("#!/bin/sh\necho 'FTL unable to load config: boom' >&2\nexit 2\n")
    (fake / "gitleaks").chmod(0o755)
    run = run_step(
        "scan", "--source", str(app), "--scanners", "secrets", env={**tools_env, "PATH": f"{fake}:{tools_env['PATH']}"}
    )
    assert run.returncode == 1 and "Traceback" not in run.output
    assert run.stderr.strip().splitlines()[-1] == "error: gitleaks failed (exit 2): FTL unable to load config: boom"


def can_unshare() -> bool:
    return (
        shutil.which("unshare") is not None
        and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    )


@pytest.mark.skipif(not can_unshare(), reason="needs unshare -n (root) to cut the network")
def test_every_scanner_works_without_network(tools_env, fresh_db, tmp_path):
    """In a network namespace with only a down loopback: nothing to reach, same findings."""
    app = drone_app(tmp_path / "app", "vulnerable-dependency")
    shutil.copytree(catalog.ROOT / "tests/fixtures/drone-variants/misconfigured", app, dirs_exist_ok=True)
    proc = subprocess.run(
        [
            "unshare",
            "-n",
            str(STEP),
            "scan",
            "--source",
            str(app),
            "--scanners",
            ALL,
            "--osv-db",
            str(fresh_db),
            "--output",
            str(tmp_path / "out"),
            "--results-dir",
            str(tmp_path / "results"),
        ],
        env={**os.environ, **tools_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "GHSA-8q59-q68h-6hv4" in proc.stderr and "github-pat" not in proc.stderr
    if HAVE_TRIVY:
        assert "DS-0002" in proc.stderr and "KSV-0017" in proc.stderr


def test_task_env_runs_the_step_and_writes_the_declared_results(tools_env, fresh_db, tmp_path):
    task = yaml.safe_load(TASK.read_text())
    [step] = task["spec"]["steps"]
    assert [w.get("readOnly") for w in task["spec"]["workspaces"] if w["name"] == "source"] == [True]
    app = drone_app(tmp_path / "source")
    reports = tmp_path / "reports"
    before = snapshot(app)
    env = tekton_env(
        task,
        {} if HAVE_TRIVY else {"scanners": ALL},
        {"source": str(app), "osv-db": str(fresh_db), "reports": str(reports)},
        str(tmp_path / "results"),
    )
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [str(STEP), *step["command"][1:]], capture_output=True, text=True, env={"PATH": tools_env["PATH"], **env}
    )
    assert proc.returncode == 0, proc.stderr
    results = {p.name: p.read_text() for p in (tmp_path / "results").iterdir()}
    assert set(results) == {r["name"] for r in task["spec"]["results"]}
    assert results["report"] == ".druppie/scan.sarif" and (reports / results["report"]).is_file()
    assert proc.stdout.startswith("scan: critical=0 high=0 medium=3")
    assert changes(before, snapshot(app)) == []

    # Unbound osv-db and reports workspaces, no osv-db-ref: deps (selected by default) fails closed
    # before scanning, not run on an empty path; deps-advisories "skip" is the way to go without.
    # The report goes to the step's working folder (the Task's emptyDir), not the source.
    pod_dir = tmp_path / "in-pod"
    pod_dir.mkdir()
    assert step["workingDir"] == next(m["mountPath"] for m in step["volumeMounts"] if m["name"] == "reports-in-pod")
    for params, code in (({}, 2), ({"deps-advisories": "skip"}, 0)):
        env = tekton_env(
            task, params | ({} if HAVE_TRIVY else {"scanners": "code,secrets,deps"}), {"source": str(app)},
            str(tmp_path / f"r{code}"),
        )  # fmt: skip
        proc = subprocess.run(
            [str(STEP), "scan"], capture_output=True, text=True, env={"PATH": tools_env["PATH"], **env}, cwd=pod_dir
        )
        assert proc.returncode == code, proc.stderr
    assert proc.stderr.count("advisory checks SKIPPED on purpose") == 3
    assert (tmp_path / "r0" / "advisories").read_text() == "skipped: opted out with --deps-advisories skip"
    assert (pod_dir / ".druppie" / "scan.sarif").is_file() and changes(before, snapshot(app)) == []


def test_task_env_pulls_osv_db_ref_with_the_dockerconfig_workspace(tools_env, fresh_db, run_step, tmp_path):
    """The Task's params and workspaces reach the step: osv-db-ref and tls-verify, from a registry
    that wants a login, which the dockerconfig workspace (a Secret's .dockerconfigjson) gives."""
    task = yaml.safe_load(TASK.read_text())
    (tmp_path / "registry").mkdir()
    reg = start_registry(tmp_path / "registry", user="scan", password="Pull-Only-Pw-31")
    try:
        secret = tmp_path / "secret"
        secret.mkdir()
        reg.auth_file(secret).rename(secret / ".dockerconfigjson")
        ref = f"{reg.host}/druppie/osv-db:latest"
        pushed = push_db(run_step, fresh_db, ref, "--dockerconfig", str(secret))
        app = drone_app(tmp_path / "source", "vulnerable-dependency")
        params = {"osv-db-ref": ref, "tls-verify": "false", "fail-on": "never", "scanners": "deps"}
        for workspaces, code in (({}, 1), ({"dockerconfig": str(secret)}, 0)):
            env = tekton_env(task, params, {"source": str(app), **workspaces}, str(tmp_path / f"results-{code}"))
            env["HOME"] = str(tmp_path)
            proc = subprocess.run([str(STEP), "scan"], capture_output=True, text=True,
                                  env={"PATH": tools_env["PATH"], **env}, cwd=tmp_path)  # fmt: skip
            assert proc.returncode == code, proc.stderr
            if code == 1:
                assert proc.stderr.strip().splitlines()[-1] == (
                    f"error: cannot pull the advisory database --osv-db-ref {ref}: registry {reg.host} requires "
                    "credentials for "
                    f"{reg.host}/druppie/osv-db: bind the dockerconfig workspace (a Secret of type "
                    f"kubernetes.io/dockerconfigjson) with an entry for {reg.host}"
                )
        assert (tmp_path / "results-0" / "critical").read_text() == "1"
        assert (
            (tmp_path / "results-0" / "advisories")
            .read_text()
            .startswith(f"checked: {reg.host}/druppie/osv-db@{pushed['digest']} (updated ")
        )
        assert "Pull-Only-Pw-31" not in proc.stderr + proc.stdout
    finally:
        reg.stop()
