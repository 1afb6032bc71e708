"""commit-status: its inputs (one line naming the option, exit 2), where a repository's statuses go, and
the GitHub shape against a fake of GitHub's endpoint (tests/support/github_statuses.py says what it
is). The Gitea side runs against the real Gitea: tests/integration/test_commit_status.py."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from druppie_steps.cli import main
from druppie_steps.commit_status import (
    Forge,
    Status,
    forge_of,
    parse_status,
    parse_statuses,
    run_link,
    validate_commit,
)
from druppie_steps.core.errors import InvalidInputError
from tests.support.github_statuses import FakeGitHub

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "github_pat_11AAAAAAA0statuswriteonly_for_the_fake"


@pytest.mark.parametrize(
    "text,status",
    [
        ("druppie/test=pending", Status("druppie/test", "pending", "")),
        ("druppie/test=pending:started by run-1", Status("druppie/test", "pending", "started by run-1")),
        ("druppie/build=failure:a: b", Status("druppie/build", "failure", "a: b")),  # colons after the first stay
        (
            " druppie/scan = success :  3 findings\tsuppressed ",
            Status("druppie/scan", "success", "3 findings suppressed"),
        ),
        ("druppie/test=Succeeded:Succeeded", Status("druppie/test", "success", "succeeded")),
        ("druppie/test=Succeeded:Completed", Status("druppie/test", "success", "succeeded")),
        ("druppie/scan=Failed:Failed", Status("druppie/scan", "failure", "failed")),
        ("druppie/scan=Failed:TaskRunTimeout", Status("druppie/scan", "failure", "failed (TaskRunTimeout)")),
        (
            "druppie/build=None:None",
            Status("druppie/build", "failure", "not run: an earlier task failed or the run was stopped"),
        ),
        (
            "druppie/build=None:",
            Status("druppie/build", "failure", "not run: an earlier task failed or the run was stopped"),
        ),
    ],
)
def test_a_status_is_context_state_and_description(text, status):
    assert parse_status(text) == status


@pytest.mark.parametrize(
    "text,why",
    [
        ("druppie/test", "use CONTEXT=STATE[:DESCRIPTION], e.g. 'druppie/test=pending:started'"),
        ("=pending", "use CONTEXT=STATE[:DESCRIPTION], e.g. 'druppie/test=pending:started'"),
        (
            "druppie test=pending",
            "the context 'druppie test' is not letters, digits and ._/- (at most 255, e.g. druppie/test)",
        ),
        (
            "druppie/test=passed",
            "the state 'passed' is none of pending, success, failure, error or Tekton's Succeeded, Failed, None",
        ),
        (
            "druppie/test=",
            "the state '' is none of pending, success, failure, error or Tekton's Succeeded, Failed, None",
        ),
        (
            "druppie/test=warning",
            "the state 'warning' is none of pending, success, failure, error or Tekton's Succeeded, Failed, None",
        ),  # Gitea's, not GitHub's
    ],
)
def test_a_bad_status_is_one_line_naming_it(text, why):
    with pytest.raises(InvalidInputError) as err:
        parse_status(text)
    assert str(err.value) == f"invalid --status {text!r}: {why}"


def test_statuses_come_one_per_line_and_a_context_once():
    lines = ("druppie/test=pending\n\ndruppie/scan=pending:x\n", "druppie/build=pending")
    assert [s.context for s in parse_statuses(lines)] == ["druppie/test", "druppie/scan", "druppie/build"]
    with pytest.raises(InvalidInputError, match=r"^invalid --status 'a=success': the context 'a' is given twice$"):
        parse_statuses(("a=pending", "a=success"))
    with pytest.raises(InvalidInputError, match=r"^invalid --status: none given"):
        parse_statuses(("\n",))


def test_the_link_is_the_target_url_or_the_runs_dashboard_page():
    assert run_link("", "", "", "") == ""
    assert run_link("", "https://tekton.example/", "drone-service-4f0c2a9e1b7d", "ci") == (
        "https://tekton.example/#/namespaces/ci/pipelineruns/drone-service-4f0c2a9e1b7d"
    )
    assert run_link("https://ci.example/runs/1", "https://tekton.example", "r", "ci") == "https://ci.example/runs/1"
    with pytest.raises(InvalidInputError, match=r"^invalid --pipeline-run '': not a Kubernetes name"):
        run_link("", "https://tekton.example", "", "ci")
    with pytest.raises(InvalidInputError, match=r"^invalid --dashboard-url 'tekton': use an http"):
        run_link("", "tekton", "r", "ci")


def test_a_commit_is_a_full_sha():
    assert validate_commit(SHA.upper()) == SHA
    assert validate_commit("a" * 64) == "a" * 64
    for bad in ("main", SHA[:12], SHA + "0", "g" * 40, ""):
        with pytest.raises(InvalidInputError, match=rf"^invalid --commit {bad!r}: not a full commit sha"):
            validate_commit(bad)


@pytest.mark.parametrize(
    "url,forge,api_url,expected",
    [
        (
            "https://github.com/waterschap/drone-service.git",
            "auto",
            "",
            Forge("github", "https://api.github.com", "waterschap", "drone-service"),
        ),
        (
            "git@github.com:waterschap/drone-service.git",
            "auto",
            "",
            Forge("github", "https://api.github.com", "waterschap", "drone-service"),
        ),
        (
            "https://ghe.example/waterschap/app",
            "github",
            "",
            Forge("github", "https://ghe.example/api/v3", "waterschap", "app"),
        ),
        (
            "https://git.example/waterschap/app.git",
            "auto",
            "",
            Forge("gitea", "https://git.example/api/v1", "waterschap", "app"),
        ),
        (
            "http://gitea.ci.svc:3000/waterschap/app.git",
            "auto",
            "",
            Forge("gitea", "http://gitea.ci.svc:3000/api/v1", "waterschap", "app"),
        ),
        (
            "https://host.example/forge/waterschap/app.git",
            "gitea",
            "",  # a Gitea under a sub-path
            Forge("gitea", "https://host.example/forge/api/v1", "waterschap", "app"),
        ),
        (
            "ssh://git@git.example:2222/waterschap/app.git",
            "auto",
            "",
            Forge("gitea", "https://git.example/api/v1", "waterschap", "app"),
        ),
        (
            "ssh://git@git.example:2222/waterschap/app.git",
            "auto",
            "https://git.example:8443/api/v1/",
            Forge("gitea", "https://git.example:8443/api/v1", "waterschap", "app"),
        ),
    ],
)
def test_where_a_repositorys_statuses_go(url, forge, api_url, expected):
    assert forge_of(url, forge, api_url) == expected


STEP = ["commit-status", "--repo-url", "https://git.example/waterschap/app.git", "--commit", SHA]


@pytest.mark.parametrize(
    "args,line",
    [
        (["--forge", "gitlab", "--status", "a=pending"], "error: invalid --forge 'gitlab': use auto, gitea, github"),
        (
            ["--status", "a=done"],
            "error: invalid --status 'a=done': the state 'done' is none of pending, success, "
            "failure, error or Tekton's Succeeded, Failed, None",
        ),
        (
            [],
            "error: invalid --status: none given (use CONTEXT=STATE[:DESCRIPTION], e.g. "
            "'druppie/test=pending:started')",
        ),
        (
            ["--status", "a=pending", "--target-url", "ftp://x/y"],
            "error: invalid --target-url 'ftp://x/y': use an http(s):// URL without credentials",
        ),
        (
            ["--status", "a=pending", "--api-url", "https://u:p4ssw0rd@x/api/v1"],
            "error: invalid --api-url 'https://***@x/api/v1': use an http(s):// URL without credentials",
        ),
        (
            ["--status", "a=pending", "--timeout", "soon"],
            'error: --timeout: "soon" is not a duration (use 90s, 30m, 1.5h or 7d)',
        ),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(args, line, capsys, tmp_path):
    assert main([*STEP, *args, "--results-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [line]
    assert list(tmp_path.iterdir()) == []


def test_a_bad_repository_is_named_with_its_credentials_masked(capsys):
    assert (
        main(["commit-status", "--repo-url", "ftp://bot:s3cr3t-t0ken@x/o/r", "--commit", SHA, "--status", "a=pending"])
        == 2
    )
    assert capsys.readouterr().err.splitlines() == [
        "error: invalid --repo-url 'ftp://***@x/o/r': use https://host/owner/repo.git (or ssh://, git@host:owner/repo)"
    ]
    assert main(["commit-status", "--repo-url", "https://git.example/app", "--commit", SHA, "--status", "a=x"]) == 2
    assert "no owner/repo in its path" in capsys.readouterr().err


def test_the_token_goes_over_plain_http_only_to_this_machine_or_with_the_opt_in(capsys, tmp_path):
    (tmp_path / "token").write_text("t0ken-for-plain-http\n")
    args = [
        "commit-status",
        "--repo-url",
        "http://gitea.ci.svc:3000/o/r.git",
        "--commit",
        SHA,
        "--status",
        "a=pending",
        "--credentials",
        str(tmp_path),
    ]
    assert main(args) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: refusing to send the status token over plain http:// to 'gitea.ci.svc': use https://, "
        "or pass --allow-plain-http for a forge inside the cluster"
    ]
    # With the opt-in it is sent (here to a name that does not resolve: a warning, exit 0).
    assert main([*args, "--allow-plain-http", "--timeout", "5s", "--results-dir", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "sending the status token over plain http:// to 'gitea.ci.svc' (--allow-plain-http)" in err
    assert (tmp_path / "r/reported").read_text() == "false"
    assert "t0ken-for-plain-http" not in err
    # Without a token nothing is sent: no refusal, the usual warning (a public app cloned over http://).
    (tmp_path / "token").unlink()
    assert main([*args, "--results-dir", str(tmp_path / "r2")]) == 0
    assert "no status token at" in capsys.readouterr().err
    assert (tmp_path / "r2/reported").read_text() == "false"


# --- GitHub's shape, against the fake -----------------------------------------------------------


@pytest.fixture
def github():
    fake = FakeGitHub(repos={"waterschap/drone-service"}, write_token=TOKEN).start()
    yield fake
    fake.stop()


def github_args(fake: FakeGitHub, tmp_path, token: str = TOKEN) -> list[str]:
    (tmp_path / "token").write_text(token)
    return [
        "commit-status",
        "--repo-url",
        "https://github.com/waterschap/drone-service.git",
        "--commit",
        SHA,
        "--forge",
        "github",
        "--api-url",
        fake.url,
        "--credentials",
        str(tmp_path),
        "--results-dir",
        str(tmp_path / "results"),
    ]


def test_github_gets_each_status_with_a_bearer_token_and_its_api_version(github, tmp_path, capsys):
    long = "x" * 200  # GitHub refuses a description over 140 characters: cut, not refused
    args = github_args(github, tmp_path)
    assert (
        main(
            [
                *args,
                "--status",
                "druppie/test=pending:started",
                "--status",
                f"druppie/scan=success:{long}",
                "--target-url",
                "https://dashboard.example/#/runs/1",
            ]
        )
        == 0
    )
    assert github.latest("waterschap/drone-service", SHA) == {
        "druppie/test": ("pending", "started"),
        "druppie/scan": ("success", "x" * 137 + "..."),
    }
    first = github.requests[0]
    assert first["path"] == f"/repos/waterschap/drone-service/statuses/{SHA}"
    assert first["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert first["headers"]["accept"] == "application/vnd.github+json"
    assert first["headers"]["x-github-api-version"] == "2022-11-28"
    assert (tmp_path / "results/reported").read_text() == "true"
    assert TOKEN not in capsys.readouterr().err

    assert main([*args, "--status", "druppie/test=Failed:Failed"]) == 0
    assert github.latest("waterschap/drone-service", SHA)["druppie/test"] == ("failure", "failed")


def test_a_github_token_without_the_permission_is_a_warning_naming_github_and_403(github, tmp_path, capsys):
    assert main([*github_args(github, tmp_path, github.read_token), "--status", "druppie/test=pending"]) == 0
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warning == (
        f"warning: commit statuses NOT reported on waterschap/drone-service@{SHA[:12]} (druppie/test): "
        f"github at {github.url} answered HTTP 403: Resource not accessible by personal access token; "
        "the token needs the permission Commit statuses: write on waterschap/drone-service"
    )
    assert (tmp_path / "results/reported").read_text() == "false"
    assert github.statuses == {}


def test_a_redirect_is_not_followed_with_the_token(tmp_path, capsys):
    """A 3xx would resend the token (and turn the POST into a GET): it is an answer, not a way."""
    seen: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            seen.append(self.path)
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        (tmp_path / "token").write_text("redirect-me-not-token")
        url = f"http://127.0.0.1:{httpd.server_address[1]}/o/r.git"
        assert (
            main(
                [
                    "commit-status",
                    "--repo-url",
                    url,
                    "--commit",
                    SHA,
                    "--status",
                    "a=pending",
                    "--credentials",
                    str(tmp_path),
                ]
            )
            == 0
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert seen == [f"/api/v1/repos/o/r/statuses/{SHA}"]
    assert "answered HTTP 302" in capsys.readouterr().err
