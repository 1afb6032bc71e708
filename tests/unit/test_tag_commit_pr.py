"""tag-commit --mode pull-request without a forge: its options, the forge it derives, the body it writes."""

from __future__ import annotations

import json

import click
import pytest

from druppie_steps.cli import cli, main
from druppie_steps.core.errors import InvalidInputError
from druppie_steps.gitops.forge import Forge, _is_ours, _message, resolve_forge
from druppie_steps.gitops.promotion import Proposal, parse_tested_by, promotion_branch, validate_source_commit

ARGS = ["tag-commit", "--repo-url", "https://git.example.org/platform/druppie-apps.git"]
ARGS += ["--path", "envs/prod/drone-service", "--image", "registry.example/druppie/drone-service", "--tag", "1.0.5"]
DIGEST = "sha256:" + "0123456789abcdef" * 4


def parsed(*args: str) -> dict:
    command = cli.get_command(click.Context(cli), "tag-commit")
    assert command is not None
    return command.make_context("tag-commit", [*ARGS[1:], *args]).params


def test_the_new_options_default_to_todays_push_and_read_their_variables(monkeypatch):
    defaults = parsed()
    assert (defaults["mode"], defaults["forge"], defaults["forge_api_url"]) == ("push", "auto", "")
    assert (defaults["source_commit"], defaults["tested_by"]) == ("", "")
    monkeypatch.setenv("DRUPPIE_MODE", "pull-request")
    monkeypatch.setenv("DRUPPIE_FORGE", "gitea")
    monkeypatch.setenv("DRUPPIE_FORGE_API_URL", "https://git.example.org/api/v1")
    monkeypatch.setenv("DRUPPIE_SOURCE_COMMIT", "0123abc")
    monkeypatch.setenv("DRUPPIE_TESTED_BY", "run-a,run-b")
    values = parsed()
    assert (values["mode"], values["forge"], values["forge_api_url"]) == (
        "pull-request",
        "gitea",
        "https://git.example.org/api/v1",
    )
    assert (values["source_commit"], values["tested_by"]) == ("0123abc", "run-a,run-b")


@pytest.mark.parametrize(
    "extra,line",
    [
        (
            ["--mode", "pull-request"],
            "error: invalid --forge 'auto': the kind of forge at 'git.example.org' cannot be told from --repo-url; "
            "pass --forge gitea, --forge github or --forge gitlab",
        ),
        (
            ["--mode", "pull-request", "--forge", "gitea", "--path", "envs/prod"],
            "error: invalid --path 'envs/prod': --mode pull-request needs envs/<environment>/<app>, "
            "which names the branch promote/<app>/<environment>",
        ),
        (
            ["--mode", "pull-request", "--forge", "gitea", "--forge-api-url", "https://bot:s3cr3t-token@h.example/api"],
            "error: invalid --forge-api-url 'https://***@h.example/api': use http(s)://host[:port]/path, without "
            "credentials (the token comes from the basic-auth workspace)",
        ),
        (
            ["--mode", "pull-request", "--forge", "gitea", "--forge-api-url", "http://git.example.org/api/v1"],
            "error: refusing to send credentials over plain http:// to 'git.example.org': use https://, "
            "or pass --allow-plain-http for a git server inside the cluster",
        ),
        (
            ["--source-commit", "main"],
            "error: invalid --source-commit 'main': must be the app's commit sha, 7 to 64 lowercase hex digits",
        ),
        (
            ["--tested-by", "run-1,`rm -rf`"],
            "error: invalid --tested-by '`rm': a run's name or URL (letters, digits and ._:/@%?=&+#~-, "
            "no credentials), several separated by commas",
        ),
    ],
)
def test_bad_pull_request_input_is_one_line_before_any_network_call(capsys, extra, line):
    assert main([*ARGS, *extra]) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def test_an_unknown_mode_is_refused(capsys):
    assert main([*ARGS, "--mode", "merge-request"]) == 2
    assert "'merge-request' is not one of 'push', 'pull-request'" in capsys.readouterr().err


# ---- the forge from the repository URL ------------------------------------------------------


@pytest.mark.parametrize(
    "url,kind,api,expected",
    [
        ("https://github.com/waterschap/druppie-apps.git", "auto", "", ("github", "https://api.github.com")),
        ("git@github.com:waterschap/druppie-apps.git", "auto", "", ("github", "https://api.github.com")),
        ("ssh://git@github.com/waterschap/druppie-apps", "github", "", ("github", "https://api.github.com")),
        (
            "https://git.example.org/waterschap/druppie-apps.git",
            "gitea",
            "",
            ("gitea", "https://git.example.org/api/v1"),
        ),
        ("http://10.0.0.5:3000/waterschap/apps.git", "gitea", "", ("gitea", "http://10.0.0.5:3000/api/v1")),
        ("https://example.org/gitea/waterschap/apps.git", "gitea", "", ("gitea", "https://example.org/gitea/api/v1")),
        ("https://ghe.example.org/waterschap/apps.git", "github", "", ("github", "https://ghe.example.org/api/v3")),
        (
            "git@git.example.org:waterschap/apps.git",
            "gitea",
            "https://git.example.org/api/v1/",
            ("gitea", "https://git.example.org/api/v1"),
        ),
        (
            "https://gitlab.example.org/waterschap/apps.git",
            "gitlab",
            "",
            ("gitlab", "https://gitlab.example.org/api/v4"),
        ),
    ],
)
def test_the_forge_is_derived_where_the_url_says_it(url, kind, api, expected):
    forge = resolve_forge(url, kind, api)
    assert (forge.kind, forge.api_url) == expected
    assert (forge.owner, forge.repo) == (url.split("/")[-2].split(":")[-1], url.split("/")[-1].removesuffix(".git"))


def test_a_gitlab_project_is_its_whole_path_subgroups_included():
    forge = resolve_forge("https://gitlab.example.org/waterschap/platform/druppie-apps.git", "gitlab", "")
    assert (forge.owner, forge.repo, forge.api_url) == (
        "waterschap/platform",
        "druppie-apps",
        "https://gitlab.example.org/api/v4",
    )
    assert forge.pulls_path == "/projects/waterschap%2Fplatform%2Fdruppie-apps/merge_requests"
    gitea = resolve_forge("https://example.org/gitea/waterschap/druppie-apps.git", "gitea", "")
    assert (gitea.owner, gitea.pulls_path) == ("waterschap", "/repos/waterschap/druppie-apps/pulls")


def test_an_ssh_url_of_another_forge_needs_the_api_url():
    with pytest.raises(InvalidInputError) as err:
        resolve_forge("git@git.example.org:waterschap/apps.git", "gitea", "")
    assert str(err.value) == (
        "invalid --forge-api-url '': the API of 'git.example.org' cannot be derived from an ssh --repo-url; "
        "pass --forge-api-url, e.g. https://git.example.org/api/v1"
    )
    with pytest.raises(InvalidInputError, match="no <owner>/<repository>"):
        resolve_forge("https://git.example.org/apps.git", "gitea", "")


def test_only_an_open_pull_request_of_this_repository_from_that_branch_counts():
    pr = {
        "state": "open",
        "head": {"ref": "promote/app/prod", "repo": {"full_name": "Org/Apps"}},
        "base": {"ref": "main"},
    }
    assert _is_ours(pr, "promote/app/prod", "main", "org/apps")
    assert not _is_ours({**pr, "state": "closed"}, "promote/app/prod", "main", "org/apps")
    assert not _is_ours(pr, "promote/app/test", "main", "org/apps")
    assert not _is_ours(pr, "promote/app/prod", "release", "org/apps")
    fork = {**pr, "head": {"ref": "promote/app/prod", "repo": {"full_name": "someone/apps"}}}
    assert not _is_ours(fork, "promote/app/prod", "main", "org/apps")
    mr = {"state": "opened", "source_branch": "promote/app/prod", "target_branch": "main"}
    mr |= {"source_project_id": 7, "target_project_id": 7}
    assert _is_ours(mr, "promote/app/prod", "main", "org/apps")
    assert not _is_ours({**mr, "source_project_id": 8}, "promote/app/prod", "main", "org/apps")
    assert not _is_ours({**mr, "state": "merged"}, "promote/app/prod", "main", "org/apps")


def test_the_forges_own_words_are_one_line():
    github = {
        "message": "Validation Failed",
        "errors": [{"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for o:b."}],
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
    }
    assert _message(json.dumps(github).encode()) == "Validation Failed; A pull request already exists for o:b."
    assert _message(b'{"message":"pull request already exists\\nfor these targets","url":"x"}') == (
        "pull request already exists for these targets"
    )
    gitlab = {"message": ["Another open merge request already exists for this source branch: !3"]}
    assert _message(json.dumps(gitlab).encode()) == gitlab["message"][0]
    assert _message(b'{"error":"title is missing"}') == "title is missing"
    assert _message(b"<html>\n<h1>502 Bad Gateway</h1>\n</html>") == "<html> <h1>502 Bad Gateway</h1> </html>"
    assert Forge("gitea", "https://g.example/api/v1", "o w", "r").pulls_path == "/repos/o%20w/r/pulls"


# ---- branch and body ------------------------------------------------------------------------


def test_the_branch_names_app_and_environment():
    assert promotion_branch("envs/prod/drone-service") == ("drone-service", "prod", "promote/drone-service/prod")
    assert promotion_branch("envs/acceptatie/team/api") == ("team/api", "acceptatie", "promote/team/api/acceptatie")
    for bad in ("envs/prod", "apps/web/x"):
        with pytest.raises(InvalidInputError):
            promotion_branch(bad)


def test_source_commit_and_runs():
    assert validate_source_commit(" 0123abcd ") == "0123abcd" and validate_source_commit("") == ""
    assert parse_tested_by("") == []
    assert parse_tested_by(" run-a, run-b\nhttps://tekton.example/#/namespaces/ci/pipelineruns/run-c ") == [
        "run-a",
        "run-b",
        "https://tekton.example/#/namespaces/ci/pipelineruns/run-c",
    ]
    for bad in ("https://user:tok@tekton.example/run", "a|b", "run`x`"):
        with pytest.raises(InvalidInputError, match="invalid --tested-by"):
            parse_tested_by(bad)


def test_the_body_lists_image_digest_source_commit_and_runs():
    proposal = Proposal(
        "drone-service",
        "prod",
        "envs/prod/drone-service",
        "registry.example/druppie/drone-service",
        "1.0.6",
        DIGEST,
        "1.0.5",
        "main",
        "0123456789abcdef0123456789abcdef01234567",
        ("drone-service-run-1", "acceptatie-e2e-7"),
        "promote-run|`x`",
    )
    assert proposal.body() == (
        "Promotes **drone-service** to **prod**: `registry.example/druppie/drone-service:1.0.6@" + DIGEST + "`.\n"
        "\n"
        "| | |\n"
        "|---|---|\n"
        "| Image | `registry.example/druppie/drone-service:1.0.6` |\n"
        f"| Digest | `{DIGEST}` |\n"
        "| Source commit | `0123456789abcdef0123456789abcdef01234567` |\n"
        "| Tested by | `drone-service-run-1`, `acceptatie-e2e-7` |\n"
        "| Replaces | `1.0.5` on `main` |\n"
        "| Path | `envs/prod/drone-service` |\n"
        "| Pipeline run | `promote-run\\|'x'` |\n"
        "\n"
        "Opened by druppie-tag-commit. A newer promotion of drone-service to prod rebuilds this branch on the "
        "current `main` and updates this pull request; an older one is refused. Merging it is what deploys "
        "(Flux follows `main`).\n"
    )


def test_the_body_says_what_was_not_given():
    body = Proposal("app", "test", "envs/test/app", "r.example/app", "1.0.0", None, "", "main").body()
    assert "| Digest | not given (the tag alone is written) |" in body
    assert "| Source commit | not given |" in body and "| Tested by | not given |" in body
    assert "| Replaces | nothing on `main` |" in body and "Pipeline run" not in body


def test_the_branch_commit_records_the_proposal_so_its_body_can_be_written_again():
    proposal = Proposal(
        "drone-service",
        "prod",
        "envs/prod/drone-service",
        "registry.example:5000/druppie/drone-service",
        "1.0.6",
        DIGEST,
        "1.0.5",
        "main",
        "0123abc",
        ("run-1", "run-2"),
        "promote-run-9",
    )
    assert proposal.trailers() == ["Previous-Tag: 1.0.5", "Source-Commit: 0123abc", "Tested-By: run-1, run-2"]
    message = (
        "drone-service: deploy registry.example:5000/druppie/drone-service:1.0.6 (was 1.0.5)\n\n"
        f"Image: registry.example:5000/druppie/drone-service:1.0.6@{DIGEST}\nPath: envs/prod/drone-service\n"
        "Tekton-Pipeline-Run: promote-run-9\n" + "".join(f"{t}\n" for t in proposal.trailers())
    )
    assert Proposal.from_message(message, "drone-service", "prod", "envs/prod/drone-service", "main") == proposal
    bare = Proposal("app", "test", "envs/test/app", "r.example/app", "1.0.0", None, "", "main")
    assert bare.trailers() == []
    assert Proposal.from_message("s\n\nImage: r.example/app:1.0.0\n", "app", "test", "envs/test/app", "main") == bare
    assert Proposal.from_message("fixed by hand\n\nno image line\n", "app", "test", "envs/test/app", "main") is None


def test_a_rollbacks_body_says_so_first_with_its_reason_and_survives_the_branch_commit():
    reason = "1.0.6 answers 500 on `/health` | twice"
    proposal = Proposal("drone-service", "prod", "envs/prod/drone-service", "registry.example/druppie/drone-service",
                        "1.0.5", DIGEST, "1.0.6", "main", rollback=reason)  # fmt: skip
    body = proposal.body()
    assert body.startswith(
        f"Rolls **drone-service** in **prod** back to `registry.example/druppie/drone-service:1.0.5@{DIGEST}`, "
        "which ran there before.\n"
    )
    rows = [line for line in body.splitlines() if line.startswith("| ") and line != "| | |"]
    assert rows[0] == "| Rollback | `1.0.6 answers 500 on '/health' \\| twice` |"  # a code span: no markup
    message = "drone-service: prod 1.0.5\n\n" + "\n".join(
        [f"Image: registry.example/druppie/drone-service:1.0.5@{DIGEST}", *proposal.trailers(),
         f"Rollback: {reason}", "Rollback-To: " + "a" * 40]
    )  # fmt: skip
    again = Proposal.from_message(message, "drone-service", "prod", "envs/prod/drone-service", "main")
    assert again is not None and again.body() == body
