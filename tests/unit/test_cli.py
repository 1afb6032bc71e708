"""The CLI shell: lazy step imports (fast --help), one-line errors, redaction."""

import subprocess
import sys

import pytest

from druppie_steps.cli import main
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
