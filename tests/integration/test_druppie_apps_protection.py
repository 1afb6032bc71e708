"""druppie-apps' `main` protected as examples/druppie-apps/README.md says, on a real Gitea (1.27): the
README's curl command applies examples/druppie-apps-forge/gitea-branch-protection.json; then the CI
bot's tag-commit may push test and acceptatie but not prod, its prod pull request cannot be merged
without an approval, the bot cannot approve its own, and a second user's approval lets it merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.gitea import GiteaServer, missing
from localcluster.gitea_api import GiteaClient, GiteaError
from testbed.protection import protect_druppie_apps
from tests.support.paths import EXAMPLE_APPS

pytestmark = pytest.mark.skipif(bool(missing()), reason=f"not built yet: {', '.join(missing())}")

IMAGE = "registry.example/druppie/drone-service"
BOT, REVIEWER = "ci-bot", "reviewer"
PASSWORD = "a-long-Passw0rd-for-tests"
DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def forge(tmp_path_factory) -> GiteaClient:
    with GiteaServer(tmp_path_factory.mktemp("gitea")) as server:
        client = server.client()
        for user in (BOT, REVIEWER):
            client.create_user(user, PASSWORD)
        client.create_repo("druppie-apps", source_dir=EXAMPLE_APPS)
        for user in (BOT, REVIEWER):
            client.add_collaborator("druppie-apps", user)
        yield client


@pytest.fixture(scope="module")
def protected(forge) -> GiteaClient:
    """The README's command, as written, with this Gitea's address, owner and an admin token."""
    protect_druppie_apps(forge)
    return forge


@pytest.fixture(scope="module")
def basic_auth(forge, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("basic-auth")
    host = forge.base_url.split("://", 1)[1].rstrip("/")
    (folder / ".git-credentials").write_text(f"http://{BOT}:{forge.token_for(BOT, PASSWORD)}@{host}\n")
    return folder


def tag_commit(run_step, forge, basic_auth, env: str, tag: str, *extra: str):
    return run_step(
        *("tag-commit", "--repo-url", forge.clone_url("druppie-apps"), "--path", f"envs/{env}/drone-service"),
        *("--image", IMAGE, "--tag", tag, "--digest", DIGEST, "--basic-auth", str(basic_auth), "--allow-plain-http"),
        *extra,
    )


def test_the_bot_pushes_test_and_acceptatie_but_not_prod(protected, run_step, basic_auth):
    for env in ("test", "acceptatie"):
        done = tag_commit(run_step, protected, basic_auth, env, "1.0.5")
        assert done.returncode == 0, done.stderr[-2000:]
        assert "newTag: 1.0.5" in protected.read_file("druppie-apps", f"envs/{env}/drone-service/kustomization.yaml")
    head = protected.head("druppie-apps")
    refused = tag_commit(run_step, protected, basic_auth, "prod", "1.0.5")
    assert refused.returncode != 0 and refused.results.get("commit", "") == ""
    assert "protected branch" in refused.stderr, refused.stderr[-2000:]
    assert protected.head("druppie-apps") == head, "nothing reached main"
    assert "newTag: 1.0.5" not in protected.read_file("druppie-apps", "envs/prod/drone-service/kustomization.yaml")


def test_prod_is_merged_only_after_another_users_approval(protected, run_step, basic_auth):
    proposed = tag_commit(
        run_step, protected, basic_auth, "prod", "1.0.6", "--mode", "pull-request", "--forge", "gitea"
    )
    assert proposed.returncode == 0, proposed.stderr[-2000:]
    number = int(proposed.results["pull-request-url"].rstrip("/").rsplit("/", 1)[1])
    pulls = f"/repos/{protected.admin}/druppie-apps/pulls/{number}"
    bot, reviewer = protected.token_for(BOT, PASSWORD), protected.token_for(REVIEWER, PASSWORD)

    with pytest.raises(GiteaError) as unapproved:
        protected.api("POST", f"{pulls}/merge", {"Do": "merge"}, token=bot)
    assert unapproved.value.status in (405, 422), unapproved.value
    with pytest.raises(GiteaError) as own:  # the author's own approval does not count: Gitea refuses it
        protected.api("POST", f"{pulls}/reviews", {"event": "APPROVED", "body": "lgtm"}, token=bot)
    assert own.value.status == 422, own.value
    assert not protected.api("GET", pulls)["merged"]

    protected.api("POST", f"{pulls}/reviews", {"event": "APPROVED", "body": "tested in acceptatie"}, token=reviewer)
    protected.api("POST", f"{pulls}/merge", {"Do": "merge"}, token=reviewer)
    assert protected.api("GET", pulls)["merged"]
    assert "newTag: 1.0.6" in protected.read_file("druppie-apps", "envs/prod/drone-service/kustomization.yaml")
