"""druppie-step test, the pure parts: JUnit counting, what a project installs, the verdicts, the options."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from druppie_steps.apptest import junit, pyenv
from druppie_steps.apptest.project import ProjectError, detect, lock_constraints, missing_message
from druppie_steps.cli import main
from druppie_steps.core.errors import InvalidInputError
from druppie_steps.run_tests import judge_command, judge_pytest, relative_path

# What pytest 9 writes (xunit2): a pass, a failure, an error in setup, a skip, an xfail, and a
# collection error, which has a class name but no test name.
PYTEST_REPORT = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<testsuites name="pytest tests"><testsuite name="pytest" errors="2" failures="1"'
    ' skipped="2" tests="6">\n'
    '<testcase classname="tests.test_app" name="test_ok" time="0.001" />\n'
    '<testcase classname="tests.test_app" name="test_bad" time="0.001"><failure'
    ' message="AssertionError: assert 3 == 4&#10;  + where 3 = len(...)">def test_bad():\n'
    "&gt;   assert len(FLEET) == 4</failure></testcase>\n"
    '<testcase classname="tests.test_app" name="test_fixture" time="0.001"><error'
    ' message="failed on setup with &quot;OSError: port in use&quot;">...</error></testcase>\n'
    '<testcase classname="tests.test_app.TestSlow" name="test_skip" time="0.0"><skipped'
    ' type="pytest.skip" message="slow">skipped</skipped></testcase>\n'
    '<testcase classname="tests.test_app" name="test_xfail" time="0.0"><skipped'
    ' type="pytest.xfail" message="known bug" /></testcase>\n'
    '<testcase classname="tests.test_broken" name="" time="0.0"><error message="collection'
    ' failure">ImportError: no module named x</error></testcase>\n'
    "</testsuite></testsuites>"
)


def _counts(xml: str) -> junit.Counts:
    return junit.count(ET.fromstring(xml))  # noqa: S314 - the test's own literal


def test_junit_counts_errors_as_failures_and_xfail_as_skipped():
    counts = _counts(PYTEST_REPORT.split("\n", 1)[1])
    assert (counts.passed, counts.failed, counts.skipped, counts.total) == (1, 3, 2, 6)
    assert [str(f) for f in counts.failures] == [
        "tests.test_app::test_bad: AssertionError: assert 3 == 4",
        'tests.test_app::test_fixture: failed on setup with "OSError: port in use"',
        "tests.test_broken: collection failure",
    ]


def test_junit_without_a_message_uses_the_first_line_of_the_text_and_cuts_long_ones():
    counts = _counts(
        '<testsuite><testcase name="t"><failure>\n\n  Expected 1\n got 2</failure></testcase>'
        f'<testcase name="u"><error message="{"x" * 500}"/></testcase></testsuite>'
    )
    assert counts.failures[0].message == "Expected 1"
    assert len(counts.failures[1].message) == junit.MESSAGE_CHARS and counts.failures[1].message.endswith("...")


def test_junit_nested_suites_count_each_case_once():
    xml = (
        '<testsuites><testsuite name="a"><testsuite name="a.b"><testcase name="1"/><testcase name="2">'
        '<skipped/></testcase></testsuite></testsuite><testsuite name="c"><testcase name="3"/></testsuite>'
        "</testsuites>"
    )
    counts = _counts(xml)
    assert (counts.passed, counts.failed, counts.skipped) == (2, 0, 1)


def test_junit_with_totals_only_counts_the_innermost_suites():
    xml = (
        '<testsuites tests="99"><testsuite tests="5" failures="1" errors="1" skipped="1"/>'
        '<testsuite tests="2"/></testsuites>'
    )
    counts = _counts(xml)
    assert (counts.passed, counts.failed, counts.skipped) == (4, 2, 1)
    assert _counts("<testsuites/>").total == 0


@pytest.mark.parametrize(
    "content,reason",
    [
        ("not xml at all", "not XML"),
        ("<testsuite><testcase></testsuite>", "not XML"),
        ("<html><body/></html>", "root element <html>"),
    ],
)
def test_junit_parse_rejects_what_is_no_report(tmp_path, content, reason):
    path = tmp_path / "junit.xml"
    path.write_text(content)
    with pytest.raises(junit.ReportError, match=reason):
        junit.parse(path)


def test_command_report_is_one_case_that_reads_back(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_bytes(junit.command_report("command", "npm test", 3, 1.5, "FAIL src/a.test.js\x1b[0m\x00 done"))
    counts = junit.parse(path)
    assert (counts.passed, counts.failed) == (0, 1)
    assert str(counts.failures[0]) == "command::npm test: exit code 3"
    assert "FAIL src/a.test.js" in path.read_text()
    path.write_bytes(junit.command_report("command", "npm test", 0, 0.2, ""))
    assert junit.parse(path).passed == 1


# --- what a project installs ---------------------------------------------------------------------


def _app(tmp_path: Path, files: dict[str, str]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


PEP621 = '[project]\nname = "app"\nversion = "1"\n'


def test_no_definition_is_none_and_the_message_says_what_to_do(tmp_path):
    assert detect(_app(tmp_path, {"tests/test_x.py": ""}), "apps/x") is None
    assert missing_message(tmp_path, "apps/x") == (
        "apps/x: no Python project here (no pyproject.toml, setup.py or "
        "requirements.txt); for an app of another kind pass --command"
    )
    (tmp_path / "Pipfile").write_text("")
    assert "Pipfile is not supported: export a requirements.txt" in missing_message(tmp_path, "apps/x")


def test_requirements_files_only(tmp_path):
    project = detect(_app(tmp_path, {"requirements.txt": "flask==3.0.0\n", "requirements-test.txt": "pytest\n"}), ".")
    assert project.pip_arguments() == ["-r", "requirements.txt", "-r", "requirements-test.txt"]
    assert not project.install_self and project.describe() == "requirements.txt; requirements-test.txt"


def test_the_example_app_installs_itself_with_its_test_extra():
    app = Path(__file__).resolve().parents[2] / "examples" / "drone-service"
    project = detect(app, "examples/drone-service")
    assert project.pip_arguments() == [".[test]"] and project.constraints == [] and project.notes == []


@pytest.mark.parametrize(
    "pyproject,args",
    [
        (PEP621 + '[project.optional-dependencies]\ntests = ["pytest"]\ndocs = ["x"]\n', [".[tests]"]),
        (PEP621 + '[project.optional-dependencies]\ndocs = ["x"]\n', ["."]),
        ('[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n', ["."]),
        ('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n', []),  # tool settings only: nothing to install
    ],
)
def test_pyproject_forms(tmp_path, pyproject, args):
    assert detect(_app(tmp_path, {"pyproject.toml": pyproject}), ".").pip_arguments() == args


def test_requirements_and_project_together_in_one_resolve(tmp_path):
    project = detect(_app(tmp_path, {"pyproject.toml": PEP621, "requirements.txt": "x==1\n", "setup.py": ""}), ".")
    assert project.pip_arguments() == ["-r", "requirements.txt", "."]


def test_dependency_groups_resolve_includes(tmp_path):
    pyproject = PEP621 + (
        '[dependency-groups]\nlint = ["ruff"]\ncore-test = ["pytest>=8", "hypothesis"]\n'
        'test = [{include-group = "core_test"}, "pytest-mock"]\ndev = [{include-group = "test"}, '
        '{include-group = "lint"}]\n'
    )
    project = detect(_app(tmp_path, {"pyproject.toml": pyproject}), ".")
    assert project.groups == ["test", "dev"]
    assert project.pip_arguments() == [
        ".",
        "pytest>=8",
        "hypothesis",
        "pytest-mock",
        "pytest>=8",
        "hypothesis",
        "pytest-mock",
        "ruff",
    ]


@pytest.mark.parametrize(
    "pyproject,message",
    [
        (
            '[project]\nname = "app"\nversion = 1.0.0\n',
            "app/pyproject.toml: invalid TOML: Expected newline or end of document after a statement "
            "(at line 3, column 14): version = 1.0.0",
        ),
        ('project = "app"\n', "app/pyproject.toml: [project] must be a table, not str"),
        (
            PEP621 + '[project.optional-dependencies]\ntest = "pytest"\n',
            "app/pyproject.toml: [project.optional-dependencies] must be a table of lists of requirements",
        ),
        (
            PEP621 + '[project.optional-dependencies]\ntest = ["--index-url=http://evil/simple"]\n',
            "app/pyproject.toml: [project.optional-dependencies] test: '--index-url=http://evil/simple' is not a "
            "requirement (it reads as a pip option)",
        ),
        (
            PEP621 + '[dependency-groups]\ntest = [{include-group = "dev"}]\ndev = [{include-group = "test"}]\n',
            "app/pyproject.toml: [dependency-groups] 'test' includes itself (test -> dev -> test)",
        ),
        (
            PEP621 + '[dependency-groups]\ntest = [{include-group = "nope"}]\n',
            "app/pyproject.toml: [dependency-groups] includes group 'nope', which is not defined",
        ),
        (
            PEP621 + "[dependency-groups]\ntest = [3]\n",
            "app/pyproject.toml: [dependency-groups] test: 3 is not a requirement string",
        ),
    ],
)
def test_a_broken_pyproject_is_one_line_naming_file_and_place(tmp_path, pyproject, message):
    _app(tmp_path, {"pyproject.toml": pyproject})
    with pytest.raises(ProjectError) as err:
        detect(tmp_path, "app")
    assert str(err.value) == message and err.value.exit_code == 1


def test_pyproject_that_is_not_utf8(tmp_path):
    (tmp_path / "pyproject.toml").write_bytes(b'[project]\nname = "caf\xe9"\n')
    with pytest.raises(ProjectError, match=r"^pyproject.toml: not UTF-8 text \(invalid continuation byte at byte 21\)"):
        detect(tmp_path, ".")


UV_LOCK = """version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "1.0.0"
source = { editable = "." }

[[package]]
name = "Flask"
version = "3.0.3"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "numpy"
version = "1.26.4"
source = { registry = "https://pypi.org/simple" }
resolution-markers = ["python_full_version < '3.12'"]

[[package]]
name = "numpy"
version = "2.1.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "lib"
version = "0.1.0"
source = { git = "https://example.org/lib.git?rev=abc#abc" }
"""


def test_uv_lock_pins_index_packages_only_and_says_which_are_forked(tmp_path):
    project = detect(_app(tmp_path, {"pyproject.toml": PEP621, "uv.lock": UV_LOCK}), "app")
    assert project.constraints == ["flask==3.0.3"] and project.lock == "uv.lock"
    assert project.notes == [
        "app/uv.lock: numpy locked at several versions (per platform or Python); pip resolves those itself"
    ]
    assert project.describe() == "the project; versions locked by uv.lock"


def test_poetry_lock_pins_all_but_paths_git_and_urls():
    lock = {
        "package": [
            {"name": "requests", "version": "2.32.3"},
            {"name": "internal", "version": "1.0", "source": {"type": "legacy", "url": "https://pypi.example/simple"}},
            {"name": "mylib", "version": "0.1", "source": {"type": "directory", "url": "../mylib"}},
            {"name": "other", "version": "0.2", "source": {"type": "git", "url": "https://x/y.git"}},
        ]
    }
    assert lock_constraints(lock, "poetry.lock", "poetry.lock") == (["internal==1.0", "requests==2.32.3"], [])


def test_poetry_project_without_a_test_extra_gets_a_note(tmp_path):
    pyproject = (
        '[tool.poetry]\nname = "app"\n[tool.poetry.group.test.dependencies]\npytest-mock = "^3"\n'
        '[build-system]\nrequires = ["poetry-core"]\nbuild-backend = "poetry.core.masonry.api"\n'
    )
    project = detect(
        _app(tmp_path, {"pyproject.toml": pyproject, "poetry.lock": '[[package]]\nname = "x"\nversion = "1"\n'}), "."
    )
    assert project.pip_arguments() == ["."] and project.constraints == ["x==1"]
    assert "Poetry dependency groups are not read" in project.notes[0]


def test_broken_lock_and_lock_without_pyproject(tmp_path):
    _app(tmp_path, {"pyproject.toml": PEP621, "uv.lock": "[[package]\n"})
    with pytest.raises(ProjectError, match=r"^app/uv.lock: invalid TOML: "):
        detect(tmp_path, "app")
    (tmp_path / "pyproject.toml").unlink()
    (tmp_path / "requirements.txt").write_text("x\n")
    assert detect(tmp_path, "app").notes == ["app/uv.lock is not used: there is no pyproject.toml it belongs to"]


# --- verdicts ------------------------------------------------------------------------------------


def _c(passed=0, failed=0, skipped=0, names=()):
    return junit.Counts(passed, failed, skipped, [junit.Failure(n, "boom") for n in names])


def test_verdicts_on_a_pytest_run():
    assert judge_pytest(0, _c(4), "", "app") == []
    assert judge_pytest(5, _c(), "", "app") == [
        "no test ran: pytest collected no tests in app (exit code 5); add tests, or check --context and --pytest-args"
    ]
    assert judge_pytest(1, _c(1, 5, names="abcde"), "", "app") == ["5 of 6 tests failed: a, b, c and 2 more"]
    assert judge_pytest(4, _c(), "ERROR: usage: unrecognized arguments: --nope", "app") == [
        "pytest stopped with exit code 4 (usage error): ERROR: usage: unrecognized arguments: --nope"
    ]
    assert judge_pytest(2, _c(3, 1, names=["tests.test_x"]), "Interrupted: 1 error during collection", "app") == [
        "1 of 4 tests failed: tests.test_x",
        "pytest stopped with exit code 2 (interrupted): Interrupted: 1 error during collection",
    ]
    assert judge_pytest(1, _c(4), "FAIL Required test coverage of 90% not reached", "app") == [
        "pytest stopped with exit code 1: FAIL Required test coverage of 90% not reached"
    ]


def test_verdicts_on_a_command_run():
    assert judge_command(0, _c(2), "", "r.xml") == []
    assert judge_command(0, _c(), "", "r.xml") == ["no test ran: the report r.xml has no test cases"]
    assert judge_command(1, _c(1, 1, names=["t"]), "", "r.xml") == ["1 of 2 tests failed: t"]
    assert judge_command(2, _c(3), "segfault", "r.xml") == [
        "the test command exited with code 2 though its report has no failure: segfault"
    ]


# --- the app's environment and the options -------------------------------------------------------


def test_the_app_gets_none_of_the_steps_python_settings_or_params():
    env = pyenv.app_environment(
        {
            "PATH": "/bin",
            "PYTHONPATH": "/opt/druppie/site-packages",
            "VIRTUAL_ENV": "/v",
            "DRUPPIE_INDEX_URL": "https://u:tok@x/simple",
            "HOME": "/tekton/home",
        }
    )
    assert env == {"PATH": "/bin", "HOME": "/tekton/home"}
    venv = pyenv.Venv(Path("/opt/venv"), [])
    assert venv.environment({"PATH": "/bin", "PYTHONPATH": "/x"}) == {
        "PATH": "/opt/venv/bin:/bin",
        "VIRTUAL_ENV": "/opt/venv",
    }


def test_the_tests_get_no_pip_settings_either():
    """An index URL with a token in PIP_INDEX_URL is the install's business, not the tests'."""
    env = pyenv.tests_environment(
        {
            "PATH": "/bin",
            "PIP_INDEX_URL": "https://u:tok@x/simple",
            "PIP_EXTRA_INDEX_URL": "https://u:tok@y/simple",
            "PIP_CACHE_DIR": "/cache",
            "DRUPPIE_INDEX_URL": "https://u:tok@x/simple",
            "HOME": "/tekton/home",
        }
    )
    assert env == {"PATH": "/bin", "HOME": "/tekton/home"}


def test_the_newest_bundled_pip_wheel_is_used(tmp_path, monkeypatch):
    import ensurepip
    import sysconfig

    for name in (
        "pip-23.0.1-py3-none-any.whl",
        "pip-23.10-py3-none-any.whl",
        "pip-9.0-py3-none-any.whl",
        "setuptools-99-py3-none-any.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr(ensurepip, "__file__", str(tmp_path / "nowhere" / "__init__.py"))
    monkeypatch.setattr(pyenv, "DEBIAN_WHEELS", str(tmp_path / "nowhere"))
    monkeypatch.setattr(sysconfig, "get_config_var", lambda key: str(tmp_path) if key == "WHEEL_PKG_DIR" else None)
    assert pyenv.bundled_pip_wheel() == tmp_path / "pip-23.10-py3-none-any.whl"
    monkeypatch.setattr(sysconfig, "get_config_var", lambda key: None)
    assert pyenv.bundled_pip_wheel() is None


@pytest.mark.parametrize("value,expected", [(".", ""), ("", ""), ("apps/x/", "apps/x"), ("a/./b/../c", "a/c")])
def test_relative_paths(value, expected):
    assert relative_path(value, "--context", "apps/x") == expected


@pytest.mark.parametrize("value", ["/etc", "..", "../x", "a/../../x", "~/x"])
def test_paths_that_leave_the_workspace(value):
    with pytest.raises(InvalidInputError, match=r"must be a relative path inside the workspace"):
        relative_path(value, "--context", "apps/x")


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--context", "../elsewhere"],
            "error: invalid --context '../elsewhere': must be a relative path inside "
            "the workspace, e.g. apps/drone-service",
        ),
        (["--context", "nope"], "error: invalid --context 'nope': no such folder in the source {src}"),
        (["--source", "/no/such/dir"], "error: invalid --source '/no/such/dir': no such folder"),
        (["--report", "."], "error: invalid --report '.': must name a file, e.g. .druppie/junit.xml"),
        (
            ["--report", "/srv/x.xml"],
            "error: invalid --report '/srv/x.xml': must be a relative path inside the "
            "workspace, e.g. .druppie/junit.xml",
        ),
        (["--pytest-args", "-k 'unclosed"], 'error: invalid --pytest-args "-k \'unclosed": No closing quotation'),
        (
            ["--command", "make test", "--cov-fail-under", "80"],
            "error: --pytest-args and --cov-fail-under apply to pytest; with --command pass them in it",
        ),
        (
            ["--index-url", "ftp://mirror/simple"],
            "error: invalid --index-url 'ftp://mirror/simple': must be an "
            "https://, http:// or file:// URL of a PEP 503 simple index, e.g. "
            "https://pypi.example/simple",
        ),
        (["--wheelhouse", "/no/wheels"], "error: invalid --wheelhouse '/no/wheels': no such folder"),
        (["--pip-cache", "/no/cache"], "error: invalid --pip-cache '/no/cache': no such folder"),
        (["--timeout", "soon"], 'error: --timeout: "soon" is not a duration (use 90s, 30m, 1.5h or 7d)'),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    results = tmp_path / "results"
    assert main(["test", "--source", str(tmp_path), *args, "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert err == message.format(src=tmp_path) + "\n"
    assert not results.exists()


def test_a_folder_without_a_project_is_a_clear_error_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    (tmp_path / "src" / "web").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # --output's default, the current folder
    for phase in ("all", "install"):
        assert main(["test", "--source", "src", "--context", "web", "--phase", phase, "--venv", "v"]) == 2
        assert capsys.readouterr().err == (
            "error: web: no Python project here (no pyproject.toml, setup.py or "
            "requirements.txt); for an app of another kind pass --command\n"
        )
        assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--phase", "test"], "error: invalid --phase 'test': use all, install or run"),
        (["--phase", "install"], "error: --phase install needs --venv, the folder the install and run phases share"),
        (["--phase", "run"], "error: --phase run needs --venv, the folder the install and run phases share"),
        (
            ["--phase", "run", "--venv", "{tmp}/nothing"],
            "error: invalid --venv '{tmp}/nothing': no environment made by --phase install there; "
            "run the install phase first (the Task's install step)",
        ),
        (
            ["--phase", "install", "--venv", "{tmp}/app"],
            "error: invalid --venv '{tmp}/app': not an empty folder; the install phase makes a fresh environment",
        ),
        (
            ["--phase", "all", "--venv", "{tmp}/app"],
            "error: invalid --venv '{tmp}/app': not an empty folder; the install phase makes a fresh environment",
        ),
    ],
)
def test_bad_phases_and_venvs_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    app = _app(tmp_path / "app", {"requirements.txt": ""})
    results = tmp_path / "results"
    argv = [a.format(tmp=tmp_path) for a in args]
    assert (
        main(["test", "--source", str(app), *argv, "--output", str(tmp_path / "out"), "--results-dir", str(results)])
        == 2
    )
    assert capsys.readouterr().err == message.format(tmp=tmp_path) + "\n"
    assert not results.exists() and not (tmp_path / "out").exists()


def test_the_run_phase_needs_the_tools_the_install_phase_installed(tmp_path, capsys):
    app = _app(tmp_path / "app", {"requirements.txt": ""})
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    pyenv.Venv(venv, []).write_marker(["pytest"], "requirements.txt")
    argv = ["test", "--source", str(app), "--phase", "run", "--venv", str(venv), "--output", str(tmp_path / "out")]
    assert main([*argv, "--cov-fail-under", "80"]) == 2
    assert capsys.readouterr().err == (
        f"error: invalid --venv '{venv}': --phase install did not install pytest-cov; "
        "give both phases the same --cov-fail-under\n"
    )


def test_the_install_phase_of_a_command_has_nothing_to_do(tmp_path, capsys):
    app = _app(tmp_path / "app", {})
    argv = ["test", "--source", str(app), "--command", "make test", "--phase", "install", "--venv", str(tmp_path / "v")]
    assert main(argv) == 0
    assert "nothing to install" in capsys.readouterr().err and not (tmp_path / "v").exists()


def test_coverage_threshold_range_is_checked_by_click(tmp_path, capsys):
    assert main(["test", "--source", str(tmp_path), "--cov-fail-under", "120"]) == 2
    assert "120.0 is not in the range 0<=x<=100" in capsys.readouterr().err


def test_an_index_token_is_masked_in_every_phase(tmp_path, capsys):
    from druppie_steps.core.redact import redact

    app = _app(tmp_path / "app", {"requirements.txt": ""})
    token = "run-phase-token-93a1c"
    argv = ["test", "--source", str(app), "--phase", "run", "--venv", str(tmp_path / "v")]
    assert main([*argv, "--index-url", f"https://ci:{token}@pypi.example/simple"]) == 2
    capsys.readouterr()
    assert redact(f"said {token}") == "said ***"
