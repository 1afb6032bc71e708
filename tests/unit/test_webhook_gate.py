"""webhook-gate's decisions: every field of a delivery checked against the configured list."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from pathlib import Path

import pytest

from druppie_steps.core.errors import InvalidInputError
from druppie_steps.webhook_gate import Gate, decide, load_config

FORGE = "http://gitea.example:3000"
SECRETS = {"drone-service": b"s3cret-of-drone", "gemaal-monitor": b"s3cret-of-gemaal"}
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "repositories.yaml"
    path.write_text(
        "bot: druppie-ci\n"
        "repositories:\n"
        f"  - {{repository: waterschap/drone-service, forge: {FORGE}}}\n"
        f"  - {{repository: waterschap/Gemaal_Monitor, forge: {FORGE}/, app: gemaal-monitor, branch: release}}\n"
        f"  - {{repository: waterschap/Bad_Name, forge: {FORGE}}}\n"
    )
    return load_config(path)


def push(full_name="waterschap/drone-service", **changes):
    payload = {
        "ref": "refs/heads/main",
        "before": "f" * 40,
        "after": SHA,
        "repository": {"full_name": full_name, "name": full_name.split("/")[1],
                       "clone_url": f"{FORGE}/{full_name}.git"},
        "pusher": {"login": "jan", "email": "jan@waterschap.example"},
        "sender": {"login": "jan"},
        "head_commit": {"id": SHA, "message": "Greeting\n", "author": {"email": "jan@waterschap.example"}},
    }  # fmt: skip
    for key, value in changes.items():
        target = payload
        *path, last = key.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    return json.dumps(payload)


def signed(body: str, secret: bytes = SECRETS["drone-service"], event: str = "push") -> dict[str, list[str]]:
    digest = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    # Triggers hands headers over as Go canonicalises them (X-Github-Event, not X-GitHub-Event).
    return {"X-Github-Event": [event], "X-Hub-Signature-256": [f"sha256={digest}"]}


def test_an_allowed_signed_push_runs_with_the_configured_values_not_the_payloads(config):
    body = push()
    verdict = decide(config, SECRETS, body, signed(body))
    assert verdict.allowed, verdict.reason
    assert verdict.extensions == {"app_name": "drone-service", "repo_url": f"{FORGE}/waterschap/drone-service.git",
                                  "revision": SHA, "run_name": f"drone-service-{SHA[:12]}"}  # fmt: skip


def test_a_repository_of_another_owner_with_the_same_name_is_refused(config):
    body = push("mallory/drone-service")
    verdict = decide(config, SECRETS, body, signed(body))
    assert not verdict.allowed and verdict.reason == "repository mallory/drone-service is not in the gate's list"


def test_a_foreign_clone_url_is_refused_even_when_signed(config):
    body = push(repository__clone_url="https://evil.example/waterschap/drone-service.git")
    verdict = decide(config, SECRETS, body, signed(body))
    assert not verdict.allowed
    assert (
        verdict.reason == f"repository waterschap/drone-service: clone_url is not {FORGE}/waterschap/drone-service.git"
    )


def test_a_delivery_signed_with_another_apps_secret_is_refused(config):
    body = push()
    verdict = decide(config, SECRETS, body, signed(body, SECRETS["gemaal-monitor"]))
    assert (
        not verdict.allowed
        and verdict.reason == "repository waterschap/drone-service: the signature does not match its secret"
    )
    unsigned = {"X-Github-Event": ["push"]}
    assert (
        decide(config, SECRETS, body, unsigned).reason
        == "repository waterschap/drone-service: the signature is missing"
    )


def test_the_name_is_matched_without_case_and_the_app_name_comes_from_the_list(config):
    body = push("waterschap/gemaal_monitor", ref="refs/heads/release",
                repository__clone_url=f"{FORGE}/waterschap/Gemaal_Monitor.git")  # fmt: skip
    verdict = decide(config, SECRETS, body, signed(body, SECRETS["gemaal-monitor"]))
    assert verdict.allowed, verdict.reason
    assert verdict.extensions and verdict.extensions["app_name"] == "gemaal-monitor"


def test_a_repository_whose_name_cannot_be_an_app_name_is_refused_with_the_reason(config):
    body = push("waterschap/Bad_Name")
    verdict = decide(config, SECRETS, body, signed(body))
    assert not verdict.allowed
    assert verdict.reason.startswith("repository waterschap/Bad_Name: 'bad_name' cannot be an app name")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"ref": "refs/heads/feature"}, "a push to 'refs/heads/feature', not to main"),
        ({"ref": "refs/tags/v1"}, "a push to 'refs/tags/v1', not to main"),
        ({"after": "0" * 40}, "the branch was deleted"),
        ({"after": "HEAD~1"}, "'after' is not a commit id"),
        ({"after": SHA.upper()}, "'after' is not a commit id"),
        ({"sender__login": "druppie-ci", "head_commit__message": "Deploy\n\nTekton-Pipeline-Run: x-1\n"},
         "the pipeline's own commit"),
        ({"head_commit__message": "Remove the token [skip ci]"}, "the head commit says [skip ci]"),
        ({"head_commit__message": "Typo\n\n[CI SKIP]\n"}, "the head commit says [skip ci]"),
    ],
)  # fmt: skip
def test_pushes_that_must_not_run(config, changes, reason):
    body = push(**changes)
    verdict = decide(config, SECRETS, body, signed(body))
    assert (verdict.allowed, verdict.reason) == (False, f"repository waterschap/drone-service: {reason}")


def test_the_bot_alone_or_the_trailer_alone_is_not_the_pipelines_own_push(config):
    for changes in ({"sender__login": "druppie-ci"}, {"head_commit__message": "x\n\nTekton-Pipeline-Run: y\n"}):
        body = push(**changes)
        assert decide(config, SECRETS, body, signed(body)).allowed


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        ("{}", {"X-Gitea-Event": ["pull_request"]}, "not a push event (pull_request)"),
        ("{}", {}, "not a push event (no event header)"),
        ("not json", {"X-Github-Event": ["push"]}, "the body is not JSON"),
        ('{"repository": "x"}', {"X-Github-Event": ["push"]}, "the body names no repository"),
    ],
)
def test_malformed_deliveries_are_refused_with_a_reason(config, body, headers, reason):
    assert decide(config, SECRETS, body, headers).reason == reason


def test_no_personal_data_in_a_reason(config):
    body = push("mallory/drone-service")
    for verdict in (decide(config, SECRETS, body, signed(body)), decide(config, SECRETS, push(), {})):
        assert "jan" not in verdict.reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("repositories: nope\n", "needs a 'repositories' list"),
        ("repositories:\n  - {repository: noslash, forge: https://x}\n",
         "repositories[0] needs repository: owner/name"),
        ("repositories:\n  - {repository: a/b, forge: ftp://x}\n", "a/b: forge must be an http(s) URL"),
        ("repositories:\n  - {repository: a/b, forge: https://x}\n  - {repository: A/B, forge: https://x}\n",
         "A/B is listed twice"),
        ("repositories:\n  - {repository: a/b, forge: https://x}\n  - {repository: c/b, forge: https://x}\n",
         "app b is given to more than one repository"),
    ],
)  # fmt: skip
def test_a_bad_configuration_names_the_file_and_the_entry(tmp_path, text, message):
    path = tmp_path / "repositories.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=re.escape(message)) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_the_gate_rereads_its_configuration_and_secrets_when_they_change(tmp_path: Path):
    config, secrets = tmp_path / "repositories.yaml", tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "drone-service").write_text("old-secret\n")
    config.write_text(f"repositories:\n  - {{repository: waterschap/drone-service, forge: {FORGE}}}\n")
    gate = Gate(config, secrets)
    body = push()
    request = {"body": body, "header": signed(body, b"new-secret"), "context": {"event_id": "e1"}}
    assert gate.handle(request)["continue"] is False
    (secrets / "drone-service").write_text("new-secret\n")
    os.utime(secrets / "drone-service", (1, 2_000_000_000))  # a newer mtime, as a Secret update gives
    answer = gate.handle(request)
    assert answer["continue"] is True and answer["extensions"]["run_name"] == f"drone-service-{SHA[:12]}"
