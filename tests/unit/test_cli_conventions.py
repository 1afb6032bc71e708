"""The command-line conventions of the eight steps (core/options.py's docstring), checked on the click
commands themselves: every option of every step is walked, so a new option that breaks one fails here."""

from __future__ import annotations

import re

import click
import pytest

from druppie_steps.cli import STEPS, cli, main
from druppie_steps.core.errors import InvalidInputError
from druppie_steps.core.options import DURATION, DURATION_OR_NO_LIMIT, Duration, DurationType, env_name, parse_duration
from hack import catalog

LONG_STEPS = {"clone", "test", "scan", "build", "tag-commit", "flux-wait", "promotion-gate"}
SOURCE_STEPS = {"test", "scan", "build"}
REPO_STEPS = {"clone", "tag-commit", "flux-wait", "commit-status", "promotion-gate"}
# What each step needs besides the option under test to get as far as checking it, without a network.
REQUIRED = {
    "clone": ["--repo-url", "https://git.example.org/org/app.git"],
    "test": [],
    "scan": [],
    "build": ["--image", "registry.example/druppie/app", "--version", "1.0.0"],
    "tag-commit": [
        *("--repo-url", "https://git.example.org/org/apps.git", "--path", "app"),
        *("--image", "registry.example/druppie/app", "--tag", "1.0.0"),
    ],
    "flux-wait": ["--kustomization", "app", "--revision", "0123456789abcdef0123456789abcdef01234567"],
    "promotion-gate": [
        *("--kustomization", "app-test", "--image", "registry.example/druppie/app"),
        *("--repo-url", "https://git.example.org/org/apps.git"),
    ],
    "summary": ["--pipeline-run", "run-1", "--namespace", "ci", "--tasks", "clone Succeeded"],
    "commit-status": [
        *("--repo-url", "https://git.example.org/org/app.git", "--commit", "0123456789abcdef0123456789abcdef01234567"),
        *("--status", "druppie/test=pending"),
    ],
}
# Names and defaults that say "this is a duration": such an option must use the one parser.
DURATION_NAME = re.compile(r"(^|-)(timeout|age|expiry|expires|interval|ttl|window|deadline|wait|delay)$")
DURATION_DEFAULT = re.compile(r"^\d+(\.\d+)?(ms|s|m|h|d)$")
# URLs that are not a git repository, so not --repo-url.
OTHER_URLS = {"--index-url", "--api-url", "--target-url", "--dashboard-url", "--forge-api-url"}
OLD_REPO_NAMES = {"--url", "--repo", "--git-url", "--gitops-repo", "--gitops-repo-url", "--repository"}
HINT = "(use 90s, 30m, 1.5h or 7d)"


def command(step: str) -> click.Command:
    found = cli.get_command(click.Context(cli), step)
    assert found is not None
    return found


def options(step: str) -> list[click.Option]:
    return [p for p in command(step).params if isinstance(p, click.Option) and p.name != "help"]


def parsed(step: str, *args: str) -> dict:
    """The values the step would get, without running it."""
    return command(step).make_context(step, [*REQUIRED[step], *args]).params


def test_the_nine_steps():
    assert set(STEPS) == LONG_STEPS | {"summary", "commit-status"} == set(REQUIRED)


# ---- environment ---------------------------------------------------------------------------


@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_option_reads_its_own_druppie_variable_first(step):
    for opt in options(step):
        own = opt.envvar if isinstance(opt.envvar, str) else opt.envvar[0]
        assert own == env_name(opt.opts[0]), opt.opts[0]
        assert opt.show_envvar, opt.opts[0]


# ---- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_duration_option_uses_the_one_parser(step):
    durations = []
    for opt in options(step):
        name = opt.opts[0].removeprefix("--")
        if DURATION_NAME.search(name) or (isinstance(opt.default, str) and DURATION_DEFAULT.match(opt.default)):
            assert isinstance(opt.type, DurationType), opt.opts[0]
        if isinstance(opt.type, DurationType):
            durations.append(opt)
            assert isinstance(opt.type.convert(opt.default, opt, None), Duration), opt.opts[0]
    assert durations  # every step has one at least: --timeout


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("90s", 90),
        ("30m", 1800),
        ("1.5h", 5400),
        ("7d", 7 * 86400),
        ("1h30m", 5400),
        ("1d12h", 36 * 3600),
        ("500ms", 0.5),
        ("300", 300),  # a bare number is seconds, as the Tasks have always accepted
        ("2.5", 2.5),
        (" 10m ", 600),
    ],
)
def test_the_duration_grammar(text, seconds):
    assert parse_duration(text) == Duration(seconds, text.strip())


@pytest.mark.parametrize("text", ["5 minutes", "soon", "", "1.h", "m", "5m30", "-5m", "1e3s", "7days", "1h 30m"])
def test_what_is_not_a_duration_is_one_line_naming_option_and_value(text):
    with pytest.raises(InvalidInputError) as err:
        parse_duration(text, "--max-db-age")
    assert str(err.value) == f'--max-db-age: "{text}" is not a duration {HINT}'
    assert err.value.exit_code == 2


def test_zero_is_no_deadline_but_may_mean_no_limit():
    for text in ("0", "0s", "0m"):
        with pytest.raises(InvalidInputError, match=rf'^--timeout: "{text}" must be more than zero'):
            parse_duration(text)
        assert DURATION_OR_NO_LIMIT.convert(text, None, None).seconds == 0
    assert DURATION_OR_NO_LIMIT.convert("none", None, None) == Duration(0, "none")
    with pytest.raises(InvalidInputError):
        DURATION.convert("none", None, None)


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_bad_duration_in_any_option_or_variable_is_one_line_and_exit_2(step, monkeypatch, capsys):
    for opt in options(step):
        if not isinstance(opt.type, DurationType):
            continue
        flag = opt.opts[0]
        hint = HINT[:-1] + "; 0 for no limit)" if opt.type.zero_means_no_limit else HINT
        assert main([step, *REQUIRED[step], flag, "5 minutes"]) == 2
        assert capsys.readouterr().err.splitlines() == [f'error: {flag}: "5 minutes" is not a duration {hint}']
        monkeypatch.setenv(env_name(flag), "soon")
        assert main([step, *REQUIRED[step]]) == 2
        assert capsys.readouterr().err.splitlines() == [f'error: {flag}: "soon" is not a duration {hint}']
        monkeypatch.delenv(env_name(flag))


# ---- --timeout -----------------------------------------------------------------------------


def test_every_step_has_a_timeout_meaning_the_deadline_of_the_whole_step():
    helps = set()
    for step in STEPS:
        (timeout,) = [o for o in options(step) if o.opts == ["--timeout"]]
        assert timeout.type is DURATION and timeout.envvar == "DRUPPIE_TIMEOUT", step
        helps.add(timeout.help)
        assert parsed(step, "--timeout", "1.5h")["timeout"].seconds == 5400
    assert helps == {"Deadline for the whole step, retries and waits included, e.g. 90s, 30m, 1.5h."}


@pytest.mark.parametrize("name,path,doc", [r for r in catalog.resources() if r[0] == "tasks"], ids=lambda v: "")
def test_the_task_of_every_long_step_has_a_timeout_param(name, path, doc):
    for step in doc["spec"]["steps"]:
        if step["command"][1] in LONG_STEPS:
            assert "timeout" in {p["name"] for p in doc["spec"]["params"]}, path.name
            assert {"name": "DRUPPIE_TIMEOUT", "value": "$(params.timeout)"} in step["env"], path.name


# ---- --source ------------------------------------------------------------------------------


@pytest.mark.parametrize("step", sorted(STEPS))
def test_source_is_one_option_in_the_steps_that_read_the_app(step):
    sources = [o for o in options(step) if o.opts[0] == "--source"]
    assert bool(sources) == (step in SOURCE_STEPS)
    for source in sources:
        assert (source.default, source.required, source.type) == (".", False, click.STRING)
        assert source.help == "The app's source folder (the source workspace, a checkout)."


@pytest.mark.parametrize("step", sorted(SOURCE_STEPS))
def test_a_bad_source_is_the_same_line_in_every_step(step, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for value, why in ((str(tmp_path / "missing"), "no such folder"), (str(a_file), "not a folder")):
        assert main([step, *REQUIRED[step], "--source", value]) == 2
        assert capsys.readouterr().err.splitlines()[-1] == f"error: invalid --source {value!r}: {why}"


# ---- --output ------------------------------------------------------------------------------

OUTPUT_STEPS = {"test", "scan", "build"}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_output_is_one_option_in_the_steps_that_write_reports(step):
    """Where a step writes is --output: the reports of test, scan and build (one option), clone's checkout."""
    outputs = [o for o in options(step) if o.opts[0] == "--output"]
    assert bool(outputs) == (step in OUTPUT_STEPS | {"clone"})
    for output in outputs if step in OUTPUT_STEPS else []:
        assert (output.default, output.required, output.envvar) == (".", False, "DRUPPIE_OUTPUT")
        assert output.help.startswith("Folder for the reports (the Task's reports workspace)")


@pytest.mark.parametrize("step", sorted(OUTPUT_STEPS))
def test_a_bad_output_is_the_same_line_in_every_step(step, tmp_path, capsys):
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert main([step, *REQUIRED[step], "--source", str(tmp_path), "--output", str(a_file)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: invalid --output {str(a_file)!r}: not a folder"


@pytest.mark.parametrize("step", sorted(OUTPUT_STEPS))
def test_an_unbound_reports_workspace_is_the_current_folder(step, monkeypatch):
    monkeypatch.setenv("DRUPPIE_OUTPUT", "")
    monkeypatch.setenv("DRUPPIE_OUTPUT_BOUND", "false")
    assert parsed(step)["output"] == "."
    monkeypatch.setenv("DRUPPIE_OUTPUT", "/workspace/reports")
    monkeypatch.setenv("DRUPPIE_OUTPUT_BOUND", "true")
    assert parsed(step)["output"] == "/workspace/reports"


# ---- booleans ------------------------------------------------------------------------------


@pytest.mark.parametrize("step", sorted(STEPS))
def test_booleans_are_flags_with_their_negation(step):
    for opt in options(step):
        assert not (isinstance(opt.default, str) and opt.default.lower() in ("true", "false")), opt.opts[0]
        if isinstance(opt.type, click.types.BoolParamType):
            assert opt.is_flag and opt.secondary_opts == ["--no-" + opt.opts[0][2:]], opt.opts[0]


@pytest.mark.parametrize(
    "step,flag,default",
    [
        ("clone", "--delete-existing", True),
        ("clone", "--allow-plain-http", False),
        ("tag-commit", "--allow-plain-http", False),
        ("tag-commit", "--allow-downgrade", False),
        ("tag-commit", "--allow-path-outside-envs", False),
        ("tag-commit", "--allow-no-change", False),
        ("flux-wait", "--allow-plain-http", False),
        ("test", "--offline", False),
        ("build", "--tls-verify", True),
    ],
)
def test_a_boolean_from_a_task_is_true_or_false_in_its_variable(step, flag, default, monkeypatch):
    name = flag[2:].replace("-", "_")
    assert parsed(step)[name] is default
    assert parsed(step, flag)[name] is True and parsed(step, f"--no-{flag[2:]}")[name] is False
    for text, value in (("true", True), ("false", False), ("TRUE", True), ("0", False)):
        monkeypatch.setenv(env_name(flag), text)
        assert parsed(step)[name] is value, text


# ---- the repository ------------------------------------------------------------------------


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_repository_is_always_repo_url(step):
    names = [o.opts[0] for o in options(step)]
    assert ("--repo-url" in names) == (step in REPO_STEPS)
    for opt in options(step):
        shown = [d for d in opt.opts if d not in getattr(opt, "hidden_aliases", ())]
        assert not set(shown) & OLD_REPO_NAMES, shown
        if "url" in opt.opts[0] and opt.opts[0] != "--repo-url":
            assert opt.opts[0] in OTHER_URLS, opt.opts[0]


def test_clones_old_url_flag_and_variable_still_work_but_are_not_shown(monkeypatch):
    clone = command("clone")
    assert clone.make_context("clone", ["--url", "https://h.example/o/old.git"]).params["repo_url"] == (
        "https://h.example/o/old.git"
    )
    monkeypatch.setenv("DRUPPIE_URL", "https://h.example/o/from-env.git")
    assert clone.make_context("clone", []).params["repo_url"] == "https://h.example/o/from-env.git"
    monkeypatch.setenv("DRUPPIE_REPO_URL", "https://h.example/o/new.git")  # the new name wins
    assert clone.make_context("clone", []).params["repo_url"] == "https://h.example/o/new.git"
    shown = clone.get_help(click.Context(clone, info_name="clone"))
    assert "--repo-url" in shown and "DRUPPIE_REPO_URL" in shown
    assert " --url" not in shown and "DRUPPIE_URL" not in shown


def test_a_bad_repository_is_named_by_its_new_flag(capsys):
    assert main(["clone", "--url", "ftp://git.example.org/app.git"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: invalid --repo-url 'ftp://git.example.org/app.git': use https://host/org/repo.git, "
        "ssh://... or git@host:org/repo.git"
    ]
