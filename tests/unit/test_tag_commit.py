"""tag-commit's input checks, made before any network call: each names the flag that is wrong."""

import pytest

from druppie_steps.cli import main

ARGS = ["tag-commit", "--repo-url", "https://git.example.org/apps.git", "--path", "envs/prod/app"]
ARGS += ["--image", "registry.example/druppie/app", "--tag", "1.0.5"]


@pytest.mark.parametrize(
    "flag,value,line",
    [
        ("--author-name", "", "error: invalid --author-name '': must not be empty"),
        ("--author-name", "   ", "error: invalid --author-name '   ': must not be empty"),
        ("--author-email", "nobody", "error: invalid --author-email 'nobody': must be an e-mail address"),
    ],
)
def test_a_bad_author_names_its_own_flag(capsys, flag, value, line):
    assert main([*ARGS, flag, value]) == 2
    assert capsys.readouterr().err.splitlines() == [line]
