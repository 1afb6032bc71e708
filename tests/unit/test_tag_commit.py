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


# --path: only a plain relative folder under envs/ (issue 15: envs/prod/../../flux-system was edited and pushed).

OUTSIDE = (
    "outside envs/: tag-commit writes only under envs/<environment>/...; "
    "pass --allow-path-outside-envs for another folder"
)


@pytest.mark.parametrize(
    "value,why",
    [
        ("envs/prod/../../flux-system", "'..' is not allowed"),
        ("envs/prod/drone-service/..", "'..' is not allowed"),
        ("../envs/prod/app", "'..' is not allowed"),
        ("/envs/prod/app", "must be relative to the repository's root, e.g. envs/prod/app"),
        ("envs//prod/app", "an empty folder name (// or a trailing /)"),
        ("envs/prod/app/", "an empty folder name (// or a trailing /)"),
        ("envs/prod/", "an empty folder name (// or a trailing /)"),
        ("envs\\prod\\app", "a backslash; separate folders with /"),
        ("envs/prod/./app", "'.' is not allowed"),
        ("envs/prod/a\x01pp", "a control character"),
        ("", "must not be empty; give the app's folder, e.g. envs/prod/app"),
        ("flux-system", OUTSIDE),
        ("envs", OUTSIDE),
        ("Envs/prod/app", OUTSIDE),
        ("apps/envs/prod", OUTSIDE),
    ],
)
def test_a_path_that_is_not_a_plain_folder_under_envs_is_refused_before_any_network_call(capsys, value, why):
    assert main([*ARGS, "--path", value]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: invalid --path {value!r}: {why}"]


@pytest.mark.parametrize("value", ["envs/prod/../../flux-system", "/flux-system", "flux//system", "a\\b", "."])
def test_the_opt_in_for_other_folders_still_refuses_what_is_not_a_plain_folder(capsys, value):
    assert main([*ARGS, "--path", value, "--allow-path-outside-envs"]) == 2
    assert capsys.readouterr().err.splitlines()[0].startswith(f"error: invalid --path {value!r}: ")


def test_plain_folders_are_taken_as_written():
    from druppie_steps.gitops.image_edit import validate_path

    assert validate_path("envs/prod/drone-service") == "envs/prod/drone-service"
    assert validate_path(" envs/test/app ") == "envs/test/app"  # a param's stray whitespace
    assert validate_path("envs/prod") == "envs/prod"
    assert validate_path("apps/web", allow_outside_envs=True) == "apps/web"
    assert validate_path("flux-system", allow_outside_envs=True) == "flux-system"
