"""The CLI shell: lazy step imports (fast --help), one-line errors, redaction."""

import subprocess
import sys

import click
import pytest

from druppie_steps.cli import DEBUG_ENV, STEPS, main
from druppie_steps.core.redact import redact, register_secret, register_url_secrets


def test_help_imports_no_step_and_no_heavy_library():
    code = (
        "import sys; from druppie_steps.cli import main; main(['--help']); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('yaml', 'semver', 'git', 'kubernetes', 'ruamel') or m.startswith('druppie_steps.tag_commit')); "
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "tag-commit" in out


def test_unknown_step_is_a_usage_error(capsys):
    assert main(["no-such-step"]) == 2
    assert "No such command 'no-such-step'" in capsys.readouterr().err


def test_redaction_masks_url_passwords_and_registered_secrets():
    register_secret("tok-123456")
    assert redact("https://bot:tok-123456@host/x and tok-123456") == "https://***@host/x and ***"
    assert redact("ssh://git@host/x") == "ssh://git@host/x"  # an ssh login, not a credential


@pytest.mark.parametrize(
    "url",
    [
        "https://ghp_0123456789abcdef@github.com/org/repo.git",  # a token as the user name
        "https://x-access-token:ghp_0123456789abcdef@github.com/org/repo.git",
        "https://ghp%5F0123456789abcdef@github.com/org/repo.git",
        "https://bot:p@ss@word@github.com/org/repo.git",  # an unencoded @ in the password
        "ssh://git:hunter22@github.com/org/repo.git",
    ],
)
def test_redaction_masks_the_whole_userinfo(url):
    assert (
        redact(f"fatal: unable to access '{url}/': error")
        == f"fatal: unable to access '{url.split('://')[0]}://***@github.com/org/repo.git/': error"
    )


def test_url_secrets_are_masked_outside_urls_too():
    register_url_secrets("https://ghp_tokenAsUser42%2B@host/x.git")
    assert redact("user ghp_tokenAsUser42+ and ghp_tokenAsUser42%2B") == "user *** and ***"


# --- an unexpected error: one line, and with DRUPPIE_DEBUG the traceback too, secrets masked ---

TOKEN = "ghp_DebugTokenThatMustNeverLeak99"


def _reach_the_server() -> None:
    raise RuntimeError("cannot reach https://bot:ghp_DebugTokenThatMustNeverLeak99@git.example/apps.git: reset")


@click.command("boom")
def boom() -> None:
    """A step with a bug."""
    register_secret(TOKEN)
    _reach_the_server()


ONE_LINE = "unexpected error: RuntimeError: cannot reach https://***@git.example/apps.git: reset"


@pytest.fixture
def buggy_step(monkeypatch):
    monkeypatch.setitem(STEPS, "boom", ("tests.unit.test_cli", "boom", "A step with a bug."))


@pytest.mark.parametrize("debug", [None, "", "0", "false"])
def test_an_unexpected_error_is_one_redacted_line(buggy_step, monkeypatch, capsys, debug):
    if debug is None:
        monkeypatch.delenv(DEBUG_ENV, raising=False)
    else:
        monkeypatch.setenv(DEBUG_ENV, debug)
    assert main(["boom"]) == 3
    assert capsys.readouterr().err.splitlines() == [ONE_LINE]


@pytest.mark.parametrize("debug", ["1", "true", "TRUE", "yes"])
def test_debug_adds_the_traceback_redacted_like_the_line(buggy_step, monkeypatch, capsys, debug):
    monkeypatch.setenv(DEBUG_ENV, debug)
    assert main(["boom"]) == 3
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == ONE_LINE  # the line stays last, where the log's reader looks
    assert "in _reach_the_server" in err and 'raise RuntimeError("cannot reach https://***@git.example' in err
    assert TOKEN not in err and "ghp_" not in err
