"""promotion-gate's read of druppie-apps against a real git server: the commit Flux applied, fetched by
its sha when main has moved on since, with the overlay's folder only and its base on demand; with the
basic-auth workspace on a server that demands it (and refused without it, the token in no message)."""

from __future__ import annotations

import pytest

from druppie_steps.gitops.git import GitError, TransientRetry, Workspace, git_environment
from druppie_steps.gitops.image_edit import deployed_reference
from tests.support.paths import EXAMPLE_APPS, TEST_TOKEN, TEST_USER
from tests.support.repos import push_commit

IMAGE = "registry.example/druppie/drone-service"
OVERLAY = "envs/test/drone-service/kustomization.yaml"
DIGEST = "sha256:" + "cd" * 32


def pinned(tag: str) -> str:
    return (EXAMPLE_APPS / OVERLAY).read_text().replace("newTag: 1.0.4", f"newTag: {tag}\n    digest: {DIGEST}")


def read_at(url: str, sha: str, scratch, auth: str | None = None):
    env = git_environment(scratch, auth, None)
    ws = Workspace.at_commit(url, sha, "envs/test/drone-service", scratch / "apps", env, TransientRetry())
    return ws, deployed_reference(ws.path, "envs/test/drone-service", IMAGE, ws.include)


def test_the_applied_commit_is_read_not_mains_tip(druppie_apps, tmp_path):
    applied = push_commit(druppie_apps, {OVERLAY: pinned("1.1.5")})
    push_commit(druppie_apps, {OVERLAY: pinned("1.1.6").replace("cd" * 32, "ef" * 32)})  # Flux has not applied it
    ws, (ref, where) = read_at(druppie_apps.url, applied, tmp_path)
    assert ws.head() == applied
    assert str(ref) == f"{IMAGE}:1.1.5@{DIGEST}" and where == [f"{OVERLAY} images[name={IMAGE}]"]
    # Sparse: the other environments' folders are not checked out.
    assert not (ws.path / "envs" / "prod").exists()


def test_an_overlay_without_an_entry_reads_its_base_through_the_sparse_checkout(druppie_apps, tmp_path):
    text = (EXAMPLE_APPS / OVERLAY).read_text()
    applied = push_commit(druppie_apps, {OVERLAY: text[: text.index("images:")]})
    _, (ref, where) = read_at(druppie_apps.url, applied, tmp_path)
    assert (ref.tag, ref.digest) == ("1.0.4", None) and where == ["apps/drone-service/deployment.yaml"]


def test_a_server_that_demands_auth_is_read_with_the_workspaces_credentials(new_repo, auth_git_server, tmp_path):
    repo = new_repo(source_dir=EXAMPLE_APPS, server=auth_git_server)
    applied = push_commit(repo, {OVERLAY: pinned("1.1.5")})
    auth = tmp_path / "auth"
    auth.mkdir()
    host = repo.url.split("://", 1)[1].split("/", 1)[0]
    (auth / ".git-credentials").write_text(f"http://{TEST_USER}:{TEST_TOKEN}@{host}\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _, (ref, _) = read_at(repo.url, applied, scratch, str(auth))
    assert ref.digest == DIGEST
    anonymous = tmp_path / "anonymous"
    anonymous.mkdir()
    with pytest.raises(GitError) as refused:
        read_at(repo.url, applied, anonymous)
    assert TEST_TOKEN not in str(refused.value) and "\n" not in str(refused.value), refused.value
