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


def test_the_source_commit_is_the_trailer_of_the_commit_a_merge_brought_the_digest_in_with(druppie_apps, tmp_path):
    """After a prod pull request is merged, Flux applies the merge commit; the app's commit to report
    on is the Source-Commit trailer of the pull request's commit that brought the digest in, not of a
    later commit on main that left it alone."""
    from localcluster.gitserver import COMMIT_ENV, run

    source = "ab" * 20
    work = tmp_path / "work"
    run("git", "clone", "--quiet", str(druppie_apps.server.repo_path(druppie_apps.name)), str(work))
    run("git", "checkout", "--quiet", "-b", "promote/drone-service/test", cwd=work)
    (work / OVERLAY).write_text(pinned("1.1.5"))
    message = f"drone-service: test 1.1.5\n\nImage: {IMAGE}:1.1.5@{DIGEST}\nSource-Commit: {source}\n"
    run("git", "commit", "--quiet", "-am", message, cwd=work, env=COMMIT_ENV)
    run("git", "checkout", "--quiet", "main", cwd=work)
    (work / "README.md").write_text("main moved on meanwhile\n")
    run("git", "add", "README.md", cwd=work)
    run("git", "commit", "--quiet", "-m", "Unrelated: no trailer", cwd=work, env=COMMIT_ENV)
    run("git", "merge", "--quiet", "--no-ff", "-m", "Merge the promotion", "promote/drone-service/test",
        cwd=work, env=COMMIT_ENV)  # fmt: skip
    run("git", "push", "--quiet", "origin", "main", cwd=work)
    merge = run("git", "rev-parse", "HEAD", cwd=work).stdout.strip()
    later = push_commit(druppie_apps, {"README.md": "later, no trailer\n"})

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    ws, (ref, _) = read_at(druppie_apps.url, later, scratch)
    assert ws.source_commit("envs/test/drone-service", ref.digest, 50) == source
    assert ws.head() == later and merge != later

    # A digest brought in by a commit without the trailer (a person's edit) has no known source.
    plain = push_commit(druppie_apps, {OVERLAY: pinned("1.1.6").replace("cd" * 32, "ef" * 32)}, message="by hand")
    scratch = tmp_path / "plain"
    scratch.mkdir()
    ws, (ref, _) = read_at(druppie_apps.url, plain, scratch)
    assert ws.source_commit("envs/test/drone-service", ref.digest, 50) == ""
