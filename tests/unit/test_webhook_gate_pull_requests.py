"""webhook-gate's questions for pull requests to an app (druppie-pr-check): which run at once, which
wait for a trusted login's /ok-to-test, and what such a comment starts."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from druppie_steps.core.errors import InvalidInputError
from druppie_steps.webhook_gate import decide_ok_to_test, decide_pull_request, load_config

FORGE = "http://gitea.example:3000"
REPO = "waterschap/drone-service"
SECRETS = {"drone-service": b"s3cret-of-drone"}
SHA = "0123456789abcdef0123456789abcdef01234567"
CONFIG = (
    "repositories:\n"
    f"  - {{repository: {REPO}, forge: {FORGE}, trusted: [Anne, bert]}}\n"
)  # fmt: skip


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "repositories.yaml"
    path.write_text(CONFIG)
    return load_config(path)


def _set(payload: dict, changes: dict) -> str:
    for key, value in changes.items():
        target = payload
        *path, last = key.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    return json.dumps(payload)


def _repo(full_name: str = REPO) -> dict:
    return {"full_name": full_name, "name": full_name.split("/")[1], "clone_url": f"{FORGE}/{full_name}.git"}


def pull(**changes) -> str:
    """Gitea's (and GitHub's) pull_request delivery: #3 opened by mallory from her fork."""
    return _set({
        "action": "opened", "number": 3,
        "pull_request": {"number": 3, "user": {"login": "mallory"}, "state": "open",
                         "base": {"ref": "main", "repo": _repo()},
                         "head": {"ref": "feature", "sha": SHA, "repo": _repo("mallory/drone-service")}},
        "repository": _repo(), "sender": {"login": "mallory"},
    }, changes)  # fmt: skip


def comment(**changes) -> str:
    """An issue_comment delivery: bert says /ok-to-test on pull request #3."""
    return _set({
        "action": "created",
        "issue": {"number": 3, "state": "open", "pull_request": {"merged": False}},
        "comment": {"id": 4711, "body": "Looked at it.\n/ok-to-test\n", "user": {"login": "bert"}},
        "repository": _repo(), "sender": {"login": "bert"}, "is_pull": True,
    }, changes)  # fmt: skip


def signed(body: str, event: str, secret: bytes = SECRETS["drone-service"]) -> dict[str, list[str]]:
    digest = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    return {"X-Gitea-Event": [event], "X-Hub-Signature-256": [f"sha256={digest}"]}


PR = f"repository {REPO}: pull request #3"


def test_a_branch_of_the_repository_itself_is_checked_at_once(config):
    body = pull(pull_request__head__repo=_repo(), pull_request__user={"login": "carla"})
    verdict = decide_pull_request(config, SECRETS, body, signed(body, "pull_request"))
    assert verdict.allowed, verdict.reason
    assert verdict.extensions == {
        "app_name": "drone-service", "repo_url": f"{FORGE}/{REPO}.git", "revision": SHA, "pull_request": "3",
        "run_name": f"drone-service-pr3-{SHA[:12]}",
    }  # fmt: skip


@pytest.mark.parametrize("action", ["opened", "reopened", "synchronize", "synchronized"])
def test_a_fork_of_a_trusted_login_is_checked_at_once_whatever_its_case(config, action):
    body = pull(action=action, pull_request__user={"login": "ANNE"})
    assert decide_pull_request(config, SECRETS, body, signed(body, "pull_request")).allowed


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, f"{PR} comes from a fork of a login not in the trusted list: it waits for /ok-to-test"),
        ({"action": "closed"}, f"{PR}: action 'closed' starts no check"),
        ({"action": "edited"}, f"{PR}: action 'edited' starts no check"),
        ({"pull_request__base__ref": "release"}, f"{PR} is for 'release', not main"),
        ({"pull_request__head__sha": "HEAD"}, f"{PR}: head.sha is not a commit id"),
        ({"repository__clone_url": "https://evil.example/x.git"}, f"repository {REPO}: clone_url is not "
                                                                 f"{FORGE}/{REPO}.git"),
        ({"repository": _repo("mallory/drone-service")}, "repository mallory/drone-service is not in the gate's list"),
    ],
)  # fmt: skip
def test_pull_requests_that_must_not_run(config, changes, reason):
    body = pull(**changes)
    verdict = decide_pull_request(config, SECRETS, body, signed(body, "pull_request"))
    assert (verdict.allowed, verdict.reason) == (False, reason)


def test_a_pull_request_signed_with_another_secret_or_as_a_push_runs_nothing(config):
    body = pull(pull_request__head__repo=_repo())
    wrong = decide_pull_request(config, SECRETS, body, signed(body, "pull_request", b"another"))
    assert wrong.reason == f"repository {REPO}: the signature does not match its secret"
    assert decide_pull_request(config, SECRETS, body, signed(body, "push")).reason == "not a pull_request event (push)"


def test_ok_to_test_by_a_trusted_login_checks_the_pull_requests_head_as_the_forge_has_it(config):
    body = comment()
    verdict = decide_ok_to_test(config, SECRETS, body, signed(body, "issue_comment"))
    assert verdict.allowed, verdict.reason
    assert verdict.extensions == {
        "app_name": "drone-service", "repo_url": f"{FORGE}/{REPO}.git", "revision": "refs/pull/3/head",
        "pull_request": "3", "run_name": "drone-service-pr3-ok4711",
    }  # fmt: skip


ON = f"repository {REPO}: a comment on #3"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"comment__user": {"login": "mallory"}}, f"{ON}: /ok-to-test by a login not in the trusted list"),
        ({"comment__body": "please /ok-to-test this"}, f"{ON} that does not say /ok-to-test"),
        ({"comment__body": "/ok-to-testing"}, f"{ON} that does not say /ok-to-test"),
        ({"action": "edited"}, f"{ON} that does not say /ok-to-test"),  # an old comment edited into one
        ({"issue__pull_request": None}, f"{ON}: not an open pull request"),  # an issue, not a pull request
        ({"issue__state": "closed"}, f"{ON}: not an open pull request"),
        ({"comment__id": "4711"}, f"{ON}: the comment has no id"),
        ({"issue__number": 0}, f"repository {REPO}: the comment names no issue number"),
    ],
)  # fmt: skip
def test_comments_that_must_not_run(config, changes, reason):
    body = comment(**changes)
    verdict = decide_ok_to_test(config, SECRETS, body, signed(body, "issue_comment"))
    assert (verdict.allowed, verdict.reason) == (False, reason)


def test_a_trusted_login_in_the_sender_field_alone_is_not_enough(config):
    """The comment's author decides, not the delivery's sender."""
    body = comment(comment__user={"login": "mallory"}, sender={"login": "bert"})
    assert not decide_ok_to_test(config, SECRETS, body, signed(body, "issue_comment")).allowed


@pytest.mark.parametrize("trusted", ["anne", "[anne, 'b c']", "[{login: anne}]"])
def test_a_bad_trusted_list_names_the_file_and_the_repository(tmp_path, trusted):
    path = tmp_path / "repositories.yaml"
    path.write_text(f"repositories:\n  - {{repository: {REPO}, forge: {FORGE}, trusted: {trusted}}}\n")
    with pytest.raises(InvalidInputError) as err:
        load_config(path)
    assert str(err.value).startswith(f"--config {path}: {REPO}: trusted must be a list of logins, not ")
