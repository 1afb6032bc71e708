"""webhook-gate's second question (druppie-prod-deploy's trigger): a merged prod pull request of
druppie-apps, every field checked against the configured GitOps repository and app list."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from druppie_steps.core.errors import InvalidInputError
from druppie_steps.webhook_gate import Gate, decide_prod_merge, load_config

FORGE = "http://gitea.example:3000"
APPS = "waterschap/druppie-apps"
SECRETS = {"drone-service": b"s3cret-of-drone", "druppie-apps": b"s3cret-of-apps"}
MERGE = "89abcdef0123456789abcdef0123456789abcdef"
CONFIG = (
    "bot: druppie-ci\n"
    "repositories:\n"
    f"  - {{repository: waterschap/drone-service, forge: {FORGE}}}\n"
    f"gitops: {{repository: {APPS}, forge: {FORGE}}}\n"
)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "repositories.yaml"
    path.write_text(CONFIG)
    return load_config(path)


def merged(**changes) -> str:
    """A Gitea (and GitHub) pull_request delivery: #7 from promote/drone-service/prod, merged into main."""
    repo = {"full_name": APPS, "name": "druppie-apps", "clone_url": f"{FORGE}/{APPS}.git"}
    payload = {
        "action": "closed",
        "number": 7,
        "pull_request": {
            "number": 7, "merged": True, "merge_commit_sha": MERGE,
            "base": {"ref": "main", "repo": dict(repo)},
            "head": {"ref": "promote/drone-service/prod", "sha": "1" * 40, "repo": dict(repo)},
            "user": {"login": "druppie-ci"}, "body": "Source commit: `" + "2" * 40 + "`",
        },
        "repository": repo,
        "sender": {"login": "anne", "email": "anne@waterschap.example"},
    }  # fmt: skip
    for key, value in changes.items():
        target = payload
        *path, last = key.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    return json.dumps(payload)


def signed(body: str, secret: bytes = SECRETS["druppie-apps"], event: str = "pull_request") -> dict[str, list[str]]:
    digest = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    return {"X-Github-Event": [event], "X-Hub-Signature-256": [f"sha256={digest}"]}


def test_a_merged_prod_pull_request_runs_with_the_configured_values(config):
    body = merged()
    verdict = decide_prod_merge(config, SECRETS, body, signed(body))
    assert verdict.allowed, verdict.reason
    assert verdict.extensions == {
        "app_name": "drone-service", "repo_url": f"{FORGE}/waterschap/drone-service.git", "revision": MERGE,
        "pull_request": "7", "run_name": f"drone-service-prod-{MERGE[:12]}",
    }  # fmt: skip


PR = f"repository {APPS}: pull request #7"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"action": "opened", "pull_request__merged": False}, f"{PR} was not merged (action 'opened')"),
        ({"pull_request__merged": False}, f"{PR} was not merged (action 'closed')"),  # closed unmerged
        ({"pull_request__merged": "true"}, f"{PR} was not merged (action 'closed')"),
        ({"pull_request__base__ref": "release"}, f"{PR} was merged into 'release', not main"),
        ({"pull_request__head__repo__full_name": "mallory/druppie-apps"},
         f"{PR} comes from another repository (a fork)"),
        ({"pull_request__head__ref": "promote/drone-service/acceptatie"},
         f"{PR} comes from 'promote/drone-service/acceptatie', not promote/<app>/prod of a listed app"),
        ({"pull_request__head__ref": "promote/gemaal-monitor/prod"},
         f"{PR} comes from 'promote/gemaal-monitor/prod', not promote/<app>/prod of a listed app"),
        ({"pull_request__head__ref": "feature"}, f"{PR} comes from 'feature', not promote/<app>/prod of a listed app"),
        ({"pull_request__merge_commit_sha": None}, f"{PR}: merge_commit_sha is not a commit id"),
        ({"pull_request__merge_commit_sha": MERGE.upper()}, f"{PR}: merge_commit_sha is not a commit id"),
        ({"repository__clone_url": "https://evil.example/waterschap/druppie-apps.git"},
         f"repository {APPS}: clone_url is not {FORGE}/{APPS}.git"),
        ({"repository__full_name": "waterschap/drone-service"},
         "repository waterschap/drone-service is not the gitops repository"),
        ({"number": None, "pull_request__number": True}, f"repository {APPS}: the pull request has no number"),
    ],
)  # fmt: skip
def test_deliveries_that_must_not_start_a_prod_run(config, changes, reason):
    body = merged(**changes)
    verdict = decide_prod_merge(config, SECRETS, body, signed(body))
    assert (verdict.allowed, verdict.reason) == (False, reason)


def test_the_apps_secret_or_another_event_does_not_open_the_prod_trigger(config):
    body = merged()
    app_signed = decide_prod_merge(config, SECRETS, body, signed(body, SECRETS["drone-service"]))
    assert app_signed.reason == f"repository {APPS}: the signature does not match its secret"
    unsigned = decide_prod_merge(config, SECRETS, body, {"X-Github-Event": ["pull_request"]})
    assert unsigned.reason == f"repository {APPS}: the signature is missing"
    pushed = decide_prod_merge(config, SECRETS, body, signed(body, event="push"))
    assert pushed.reason == "not a pull_request event (push)"


def test_without_a_gitops_entry_nothing_starts_a_prod_run(tmp_path):
    path = tmp_path / "repositories.yaml"
    path.write_text(CONFIG.split("gitops:")[0])
    body = merged()
    verdict = decide_prod_merge(load_config(path), SECRETS, body, signed(body))
    assert (verdict.allowed, verdict.reason) == (False, "no gitops repository in the gate's configuration")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("gitops: druppie-apps", "gitops needs repository: owner/name"),
        ("gitops: {repository: a/b, forge: ftp://x}", "gitops: forge must be an http(s) URL, not 'ftp://x'"),
        ("gitops: {repository: a/b, forge: http://x, secret: 'a b'}",
         "gitops: secret key 'a b' is not a valid Secret key"),
    ],
)  # fmt: skip
def test_a_bad_gitops_entry_names_the_file_and_the_field(tmp_path, entry, message):
    path = tmp_path / "repositories.yaml"
    path.write_text(CONFIG.split("gitops:")[0] + entry + "\n")
    with pytest.raises(InvalidInputError) as err:
        load_config(path)
    assert str(err.value) == f"--config {path}: {message}"


def test_the_eventlisteners_trigger_param_chooses_the_question(tmp_path):
    (tmp_path / "repositories.yaml").write_text(CONFIG)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for key, value in SECRETS.items():
        (secrets / key).write_bytes(value)
    gate = Gate(tmp_path / "repositories.yaml", secrets)
    body = merged()
    request = {"body": body, "header": signed(body), "context": {"event_id": "e1"}}
    as_push = gate.handle(request)  # no param: the push trigger's question
    assert as_push["continue"] is False and as_push["status"]["message"] == "not a push event (pull_request)"
    as_merge = gate.handle({**request, "interceptor_params": {"trigger": "prod-merge"}})
    assert as_merge["continue"] is True and as_merge["extensions"]["revision"] == MERGE
    unknown = gate.handle({**request, "interceptor_params": {"trigger": "deploy-all"}})
    assert unknown["continue"] is False
    known = "push, pull-request, ok-to-test, prod-merge"
    assert unknown["status"]["message"] == f"the EventListener asks about trigger 'deploy-all'; the gate knows {known}"
