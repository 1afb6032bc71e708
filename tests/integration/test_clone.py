"""clone against real git servers (smart HTTP, with and without basic auth, and sshd): the CLI as the Task runs it."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from hack import catalog
from localcluster.gitserver import COMMIT_ENV, run
from tests.support.paths import STEP, TEST_TOKEN, TEST_USER
from tests.support.repos import Repo
from tests.support.tekton_env import tekton_env

TASK = catalog.ROOT / "tasks/druppie-git-clone/0.1/druppie-git-clone.yaml"
DATES = [1_700_000_000 + 3600 * i for i in range(5)]  # committer dates of the commits, oldest first


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


def grow(repo: Repo, commits: list[dict[str, str]], *refs: tuple[str, int], branch: str = "main") -> list[str]:
    """Add commits (each a dict of files) on ``branch`` and refs (``refs/tags/x`` annotated when it
    starts with ``annotated:``) at commit index; returns every sha of the branch, oldest first."""
    with tempfile.TemporaryDirectory(prefix="druppie-grow-") as tmp:
        work = Path(tmp)
        run("git", "clone", "--quiet", "--branch", branch, str(repo.server.repo_path(repo.name)), str(work))
        for i, files in enumerate(commits, start=1):
            for rel, content in files.items():
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                (work / rel).write_text(content)
            date = f"@{DATES[i]} +0000"
            run("git", "add", "-A", cwd=work)
            run(
                "git",
                "commit",
                "--quiet",
                "-m",
                f"commit {i}",
                cwd=work,
                env={**COMMIT_ENV, "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date},
            )
        shas = run("git", "rev-list", "--reverse", "HEAD", cwd=work).stdout.split()
        pushes = [f"HEAD:refs/heads/{branch}"]
        for ref, index in refs:
            name = ref.removeprefix("annotated:")
            if ref.startswith("annotated:"):
                run(
                    "git",
                    "tag",
                    "-a",
                    "-m",
                    name,
                    name.removeprefix("refs/tags/"),
                    shas[index],
                    cwd=work,
                    env=COMMIT_ENV,
                )
                pushes.append(f"{name}:{name}")
            else:
                pushes.append(f"{shas[index]}:{name}")
        run("git", "push", "--quiet", "origin", *pushes, cwd=work)
    return shas


@pytest.fixture(scope="module")
def history(git_server):
    """main: five commits (a.txt says which); release/1.0 at the second, v1.0.0 (annotated) at the
    third, v0.9 (lightweight) at the first."""
    name = f"history-{os.getpid()}"
    repo = Repo(git_server, name, git_server.create_repo(name, {"a.txt": "0\n", "keep/.gitkeep": ""}))
    shas = grow(
        repo,
        [{"a.txt": f"{i}\n"} for i in range(1, 5)],
        ("refs/heads/release/1.0", 1),
        ("annotated:refs/tags/v1.0.0", 2),
        ("refs/tags/v0.9", 0),
    )
    return repo, shas


@pytest.fixture
def out(tmp_path):
    return tmp_path / "output"


@pytest.fixture
def faults(git_server):
    yield git_server
    git_server.clear_faults()


def clone(run_step, url: str, out: Path, *extra: str, **kw):
    return run_step("clone", "--repo-url", url, "--output", str(out), *extra, **kw)


def checked_out(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*")) if p.is_file() and ".git" not in p.parts
    }


def last_line(run) -> str:
    return run.stderr.strip().splitlines()[-1]


# What gets checked out.


def test_branch_is_checked_out_shallow_and_detached(history, run_step, out):
    repo, shas = history
    run = clone(run_step, repo.url, out)
    assert run.returncode == 0, run.output
    assert checked_out(out) == {"a.txt": "4\n", "keep/.gitkeep": ""}
    assert run.results == {
        "commit": shas[-1],
        "url": repo.url,
        "committer-date": str(DATES[4]),
        "commit-depth": "5",  # the seed and four commits
    }
    assert run.stdout.strip() == (f"clone: commit={shas[-1]} url={repo.url} committer-date={DATES[4]} commit-depth=5")
    assert git(out, "rev-list", "--count", "HEAD") == "1"  # depth 1: one commit, nothing more
    assert git(out, "rev-parse", "HEAD") == shas[-1]
    assert subprocess.run(["git", "-C", str(out), "symbolic-ref", "-q", "HEAD"]).returncode == 1  # detached
    assert git(out, "status", "--porcelain") == ""
    assert git(out, "remote", "get-url", "origin") == repo.url
    assert git(out, "for-each-ref") == ""  # no tags or branches followed along


@pytest.mark.parametrize(
    "revision,index",
    [
        ("release/1.0", 1),
        ("refs/heads/release/1.0", 1),
        ("v1.0.0", 2),
        ("refs/tags/v1.0.0", 2),
        ("v0.9", 0),
        ("", 4),
        ("HEAD", 4),
    ],
)
def test_branches_tags_and_the_default_branch(history, run_step, out, revision, index):
    repo, shas = history
    run = clone(run_step, repo.url, out, "--revision", revision)
    assert run.returncode == 0, run.output
    assert run.results["commit"] == shas[index] and git(out, "rev-parse", "HEAD") == shas[index]
    assert checked_out(out)["a.txt"] == f"{index}\n"
    assert git(out, "rev-list", "--count", "HEAD") == "1"
    assert run.results["commit-depth"] == str(index + 1)


def test_full_sha_of_an_older_commit_is_fetched_by_id(history, run_step, out):
    repo, shas = history
    run = clone(run_step, repo.url, out, "--revision", shas[1])
    assert run.returncode == 0, run.output
    assert run.results["commit"] == shas[1] and checked_out(out)["a.txt"] == "1\n"
    assert run.results["committer-date"] == str(DATES[1]) and run.results["commit-depth"] == "2"
    assert git(out, "rev-list", "--count", "HEAD") == "1"
    assert "looking up" not in run.stderr  # no fallback needed: the server gives it by id


def test_short_sha_is_looked_up_then_fetched_shallow(history, run_step, out):
    repo, shas = history
    run = clone(run_step, repo.url, out, "--revision", shas[2][:7])
    assert run.returncode == 0, run.output
    assert run.results["commit"] == shas[2] and checked_out(out)["a.txt"] == "2\n"
    assert f"looking up {shas[2][:7]} in the commit graph" in run.stderr
    assert run.results["commit-depth"] == "3"
    assert git(out, "rev-list", "--count", "HEAD") == "1"


@pytest.mark.parametrize("depth,count", [("2", 2), ("3", 3), ("0", 5)])
def test_depth(history, run_step, out, depth, count):
    repo, shas = history
    run = clone(run_step, repo.url, out, "--depth", depth)
    assert run.returncode == 0, run.output
    assert git(out, "rev-list", "HEAD").split() == shas[::-1][:count]
    assert (out / ".git" / "shallow").exists() == (depth != "0")
    assert run.results["commit-depth"] == "5"  # whatever the checkout's depth


def test_files_are_group_writable_for_later_steps(history, run_step, out):
    repo, _ = history
    assert clone(run_step, repo.url, out).returncode == 0
    for path in (out / "a.txt", out / "keep", out / ".git" / "objects"):
        mode = path.stat().st_mode
        assert path.stat().st_uid == os.getuid() and mode & stat.S_IWUSR and mode & stat.S_IWGRP, path


# The output folder: replaced whole, emptied on failure, never anything outside it.


def test_existing_content_is_replaced_and_nothing_outside_is_touched(history, run_step, out, tmp_path):
    repo, _ = history
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (out / "old" / "ro").mkdir(parents=True)
    (out / "old" / "ro" / "file").write_text("x")
    (out / "old" / "ro").chmod(0o555)  # as a Go module cache leaves it
    (out / ".hidden").write_text("x")
    (out / "link-to-outside").symlink_to(outside)
    (out / "a.txt").write_text("stale")
    run = clone(run_step, repo.url, out)
    assert run.returncode == 0, run.output
    assert sorted(p.name for p in out.iterdir()) == [".git", "a.txt", "keep"]
    assert checked_out(out) == {"a.txt": "4\n", "keep/.gitkeep": ""}
    assert (outside / "precious.txt").read_text() == "keep me"  # the link went, not what it points at
    assert "emptied" in run.stderr


def test_a_reused_folder_with_an_earlier_checkout(history, run_step, out):
    repo, shas = history
    assert clone(run_step, repo.url, out, "--revision", "v0.9", "--depth", "0").returncode == 0
    run = clone(run_step, repo.url, out, "--revision", shas[3])
    assert run.returncode == 0, run.output
    assert git(out, "rev-list", "HEAD").split() == [shas[3]] and checked_out(out)["a.txt"] == "3\n"


def test_delete_existing_false_refuses_a_non_empty_folder(history, run_step, out):
    repo, _ = history
    (out / "mine").mkdir(parents=True)
    (out / "mine" / "notes.txt").write_text("not yours")
    requests = repo.server.requests
    run = clone(run_step, repo.url, out, env={"DRUPPIE_DELETE_EXISTING": "false"})
    assert run.returncode == 1
    assert last_line(run) == f"error: the output folder {out} is not empty and --delete-existing is false"
    assert (out / "mine" / "notes.txt").read_text() == "not yours" and repo.server.requests == requests

    empty = out / "empty"
    empty.mkdir()
    ok = clone(run_step, repo.url, empty, "--no-delete-existing")
    assert ok.returncode == 0, ok.output
    assert checked_out(empty)["a.txt"] == "4\n"


def test_subdirectory_is_created_and_its_siblings_kept(history, run_step, out):
    repo, _ = history
    (out / "other").mkdir(parents=True)
    (out / "other" / "x").write_text("sibling")
    run = clone(run_step, repo.url, out, "--subdirectory", "src/app")
    assert run.returncode == 0, run.output
    assert checked_out(out / "src" / "app") == {"a.txt": "4\n", "keep/.gitkeep": ""}
    assert (out / "other" / "x").read_text() == "sibling"


@pytest.mark.parametrize("subdirectory", ["..", "../elsewhere", "/etc", "a/../../b", "escape", "escape/deeper"])
def test_subdirectory_outside_the_workspace_is_refused(history, run_step, out, tmp_path, subdirectory):
    repo, _ = history
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    out.mkdir()
    (out / "escape").symlink_to(outside)
    run = clone(run_step, repo.url, out, "--subdirectory", subdirectory)
    assert run.returncode == 2
    assert last_line(run).startswith(f"error: invalid --subdirectory {subdirectory!r}")
    assert (outside / "precious.txt").read_text() == "keep me" and (out / "escape").is_symlink()


@pytest.mark.parametrize("revision", ["nope", "abcdef1", "1" * 40])
def test_unknown_revision_is_one_line_and_leaves_the_folder_empty(history, run_step, out, revision):
    repo, _ = history
    (out / "earlier").mkdir(parents=True)
    (out / "earlier" / "file").write_text("from an earlier run")
    run = clone(run_step, repo.url, out, "--revision", revision)
    assert run.returncode == 1
    assert last_line(run) == f"error: revision {revision!r} not found in {repo.url}"
    assert "retry" not in run.stderr
    assert list(out.iterdir()) == [] and run.results == {}


def test_ambiguous_short_sha_asks_for_more(git_server, run_step, out):
    """Enough commits that some share their first 4 hex digits: with 600 the chance of none was
    about 6% (the seed commit's time makes the hashes differ per run: this test failed once under
    load); with 2000 it is about 6e-14."""
    name = f"many-{os.getpid()}"
    git_server.create_repo(name, {"n": "0"})
    bare = git_server.repo_path(name)
    stream = "".join(
        f"commit refs/heads/main\ncommitter s <s@x> {DATES[0] + i} +0000\ndata 2\nc\n"
        f"{'from refs/heads/main^0' + chr(10) if i == 1 else ''}M 644 inline n\ndata {len(str(i))}\n{i}\n\n"
        for i in range(1, 2000)
    )
    subprocess.run(["git", "--git-dir", str(bare), "fast-import", "--quiet"], input=stream, text=True, check=True)
    by_prefix = defaultdict(list)
    for sha in run("git", "--git-dir", str(bare), "rev-list", "main").stdout.split():
        by_prefix[sha[:4]].append(sha)
    prefix = next(p for p, shas in by_prefix.items() if len(shas) > 1)
    run_ = clone(run_step, git_server.url(name), out, "--revision", prefix)
    assert run_.returncode == 1
    assert last_line(run_) == (
        f"error: revision {prefix!r} is ambiguous in {git_server.url(name)}: more than one "
        "commit starts with it; give more of the sha"
    )
    assert list(out.iterdir()) == []


# Credentials: basic-auth and ssh-directory workspaces, never printed, never left in the checkout.


def _basic_auth(tmp_path: Path, server, token: str = TEST_TOKEN) -> Path:
    workspace = tmp_path / "basic-auth"
    workspace.mkdir(exist_ok=True)
    host = server.base_url.removeprefix("http://")
    (workspace / ".git-credentials").write_text(f"http://{TEST_USER}:{token}@{host}\n")
    (workspace / ".gitconfig").write_text("[user]\n\tname = From Workspace\n")
    return workspace


def _secret_anywhere(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and TEST_TOKEN.encode() in p.read_bytes()]


def test_basic_auth_workspace(auth_git_server, new_repo, run_step, out, tmp_path):
    repo = new_repo({"a.txt": "private\n"}, server=auth_git_server)
    ok = clone(run_step, repo.url, out, "--basic-auth", str(_basic_auth(tmp_path, auth_git_server)))
    assert ok.returncode == 0, ok.output
    assert checked_out(out) == {"a.txt": "private\n"} and ok.results["commit"] == repo.head()
    assert _secret_anywhere(out) == []

    in_url = clone(run_step, repo.url.replace("http://", f"http://{TEST_USER}:{TEST_TOKEN}@"), out)
    assert in_url.returncode == 0, in_url.output
    assert in_url.results["url"] == repo.url  # the URL without its credentials
    assert git(out, "remote", "get-url", "origin") == repo.url
    assert _secret_anywhere(out) == []
    assert "http://***@" in in_url.stderr

    no_creds = clone(run_step, repo.url, out)
    wrong = clone(
        run_step, repo.url, out, "--basic-auth", str(_basic_auth(tmp_path, auth_git_server, TEST_TOKEN + "x"))
    )
    for failed in (no_creds, wrong):
        assert failed.returncode == 1
        assert last_line(failed) == (
            f"error: authentication to {repo.url} failed: check the basic-auth or ssh-directory workspace"
        )
        assert "retry" not in failed.stderr and list(out.iterdir()) == [] and failed.results == {}

    for r in (ok, in_url, no_creds, wrong):
        everything = r.output + "".join(r.results.values())
        assert TEST_TOKEN not in everything and TEST_TOKEN[:12] not in everything


def test_credentials_over_plain_http_to_another_host_are_refused(run_step, out):
    url = f"http://{TEST_USER}:{TEST_TOKEN}@git.example.org/druppie-apps.git"
    run = clone(run_step, url, out)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: refusing to send credentials over plain http:// to 'git.example.org': use https://, "
        "or pass --allow-plain-http for a git server inside the cluster"
    ]
    assert not out.exists()


def test_ssh_directory_workspace(history, ssh_git_server, run_step, out, tmp_path):
    repo, shas = history
    workspace = ssh_git_server.workspace(tmp_path / "ssh")
    url = ssh_git_server.url(repo.name)
    for revision, index in (("main", 4), (shas[1], 1)):
        run = clone(run_step, url, out, "--revision", revision, "--ssh-directory", str(workspace))
        assert run.returncode == 0, run.output
        assert run.results == {
            "commit": shas[index],
            "url": url,
            "committer-date": str(DATES[index]),
            "commit-depth": str(index + 1),
        }
        assert git(out, "rev-list", "--count", "HEAD") == "1"
    key = (workspace / "id_ed25519").read_text().splitlines()[2]
    assert key not in run.output

    (workspace / "known_hosts").write_text(
        f"[127.0.0.1]:{ssh_git_server.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    spoofed = clone(run_step, url, out, "--ssh-directory", str(workspace))
    assert spoofed.returncode == 1 and "Host key verification failed" in last_line(spoofed)
    assert list(out.iterdir()) == []


# Protocol v0 over ssh gives only what refs point at: a sha is reached through the nearest ref.
V0 = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.version", "GIT_CONFIG_VALUE_0": "0"}


@pytest.mark.parametrize(
    "index,short,ref,depth", [(3, False, "main", 2), (3, True, "main", 1), (2, False, "v1.0.0", 1)]
)
def test_server_refusing_a_sha_by_id(history, ssh_git_server, run_step, out, tmp_path, index, short, ref, depth):
    repo, shas = history
    workspace = ssh_git_server.workspace(tmp_path / "ssh")
    revision = shas[index][:10] if short else shas[index]
    run = clone(
        run_step,
        ssh_git_server.url(repo.name),
        out,
        "--revision",
        revision,
        "--depth",
        str(depth),
        "--ssh-directory",
        str(workspace),
        env=V0,
    )
    assert run.returncode == 0, run.output
    assert run.results["commit"] == shas[index] and git(out, "rev-parse", "HEAD") == shas[index]
    assert checked_out(out)["a.txt"] == f"{index}\n"
    tip = {"main": 4, "release/1.0": 1, "v1.0.0": 2}[ref]
    assert f"does not give {shas[index][:12]} by id" in run.stderr
    assert git(out, "rev-list", "--count", "HEAD") == str(depth)
    assert run.results["commit-depth"] == str(index + 1)
    # Fetched: the commits from the nearest ref down to the sha, and depth - 1 below it.
    objects = git(out, "cat-file", "--batch-all-objects", "--batch-check=%(objecttype)").split()
    assert objects.count("commit") == tip - index + depth


# Server trouble: retried when it may pass, one clear line when it does not.


def test_fetch_succeeds_after_two_503s(history, run_step, out, faults):
    repo, shas = history
    fault = faults.fail_next(2, 503, f"/{repo.name}.git/info/refs?service=git-upload-pack")
    run = clone(run_step, repo.url, out)
    assert run.returncode == 0, run.output
    assert fault.count == 0 and run.stderr.count("HTTP 503; retry") == 2 and "retry 2/4 of the fetch" in run.stderr
    assert run.results["commit"] == shas[-1]


def test_connection_reset_is_retried(history, run_step, out, faults):
    repo, shas = history
    fault = faults.reset_next(1, f"/{repo.name}.git/git-upload-pack")
    run = clone(run_step, repo.url, out, "--revision", shas[2])
    assert run.returncode == 0, run.output
    assert fault.count == 0 and "retry 1/4" in run.stderr and run.results["commit"] == shas[2]


def test_persistent_server_error_gives_up_and_leaves_the_folder_empty(history, run_step, out, faults):
    repo, _ = history
    (out / "earlier").mkdir(parents=True)
    before = faults.requests_to(f"/{repo.name}.git/")
    faults.fail_next(100, 503, f"/{repo.name}.git/")
    run = clone(run_step, repo.url, out, "--transient-retries", "2")
    assert run.returncode == 1
    assert last_line(run) == f"error: git server error at {repo.url}: HTTP 503 (gave up after 2 retries)"
    assert faults.requests_to(f"/{repo.name}.git/") - before == 3
    assert list(out.iterdir()) == [] and run.results == {}


@pytest.mark.parametrize(
    "status,message", [(403, "authentication to {url} failed"), (404, "repository {url} not found")]
)
def test_client_errors_are_not_retried(history, run_step, out, faults, status, message):
    repo, _ = history
    before = faults.requests_to(f"/{repo.name}.git/")
    faults.fail_next(10, status, f"/{repo.name}.git/")
    run = clone(run_step, repo.url, out)
    assert run.returncode == 1 and message.format(url=repo.url) in last_line(run)
    assert "retry" not in run.stderr and faults.requests_to(f"/{repo.name}.git/") - before == 1


def test_server_down_is_clear(run_step, out):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/app.git"
    run = clone(run_step, url, out)
    assert run.returncode == 1 and last_line(run).startswith(f"error: cannot reach git server {url}:")
    assert list(out.iterdir()) == []


# Bad input: exit 2, the value named, before any network call or change.


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--repo-url", "ftp://example.org/app.git", "invalid --repo-url 'ftp://example.org/app.git'"),
        ("--repo-url", "--upload-pack=touch:x", "invalid --repo-url '--upload-pack=touch:x'"),
        ("--repo-url", "-oProxyCommand:x", "invalid --repo-url '-oProxyCommand:x'"),
        ("--url", "ftp://example.org/app.git", "invalid --repo-url 'ftp://example.org/app.git'"),  # the old name
        ("--revision", "main:refs/heads/x", "invalid --revision 'main:refs/heads/x'"),
        ("--revision", "+main", "invalid --revision '+main'"),
        ("--revision", "-main", "invalid --revision '-main'"),
        ("--revision", "main~1", "invalid --revision 'main~1'"),
        ("--revision", "a b", "invalid --revision 'a b'"),
        ("--depth", "-1", "Invalid value for '--depth'"),
        ("--delete-existing", "maybe", "Option '--delete-existing' does not take a value"),  # a flag now
        ("--timeout", "soon", 'error: --timeout: "soon" is not a duration (use 90s, 30m, 1.5h or 7d)'),
        ("--output", "", "missing --output"),
    ],
)
def test_bad_input_is_one_clear_line(history, run_step, out, flag, value, message):
    repo, _ = history
    (out / "earlier").mkdir(parents=True)
    requests = repo.server.requests
    run = clone(run_step, repo.url, out, f"{flag}={value}")
    assert run.returncode == 2, run.output
    assert message in run.stderr
    assert len([line for line in run.stderr.splitlines() if line.startswith(("error:", "Error:"))]) == 1
    assert repo.server.requests == requests and (out / "earlier").is_dir() and run.results == {}


# The Task's contract: its env runs the step, its results are exactly the declared ones.


def test_task_env_runs_the_step_and_writes_the_declared_results(history, tmp_path):
    repo, shas = history
    task = yaml.safe_load(TASK.read_text())
    workspace = tmp_path / "output-workspace"
    workspace.mkdir()
    env = tekton_env(
        task,
        {"url": repo.url, "revision": "v1.0.0", "subdirectory": "src"},
        {"output": str(workspace)},
        str(tmp_path / "results"),
    )
    env["HOME"] = str(tmp_path)
    step = task["spec"]["steps"][0]
    proc = subprocess.run(
        [str(STEP), *step["command"][1:]], capture_output=True, text=True, env={"PATH": os.environ["PATH"], **env}
    )
    assert proc.returncode == 0, proc.stderr
    results = {p.name: p.read_text() for p in (tmp_path / "results").iterdir()}
    assert set(results) == {r["name"] for r in task["spec"]["results"]}
    assert results == {"commit": shas[2], "url": repo.url, "committer-date": str(DATES[2]), "commit-depth": "3"}
    assert checked_out(workspace / "src")["a.txt"] == "2\n"


# commit-depth: the image version's patch number, from the history, not from any clock.


def commit_at(work: Path, message: str, date: str, files: dict[str, str] | None = None) -> str:
    for rel, content in (files or {message.replace(" ", "-") + ".txt": message}).items():
        (work / rel).write_text(content)
    run("git", "add", "-A", cwd=work)
    stamp = {"GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date}
    run("git", "commit", "--quiet", "-m", message, cwd=work, env={**COMMIT_ENV, **stamp})
    return git(work, "rev-parse", "HEAD")


@pytest.fixture
def working_copy(new_repo, tmp_path):
    """A clone of a fresh one-commit repository to make history in; push(*refspecs) sends it."""
    repo = new_repo({"seed.txt": "seed\n"})
    work = tmp_path / "work"
    run("git", "clone", "--quiet", str(repo.server.repo_path(repo.name)), str(work))

    def push(*refspecs: str) -> None:
        run("git", "push", "--quiet", "--force", "origin", *(refspecs or ("HEAD:main",)), cwd=work)

    return repo, work, push


def test_commit_depth_rises_by_one_per_commit_whatever_the_clocks_say(working_copy, run_step, out):
    """A commit dated 2099 used to make every later version lower (never deployed); two in one second collided."""
    repo, work, push = working_copy
    shas = [
        commit_at(work, "bad clock", "@4070908800 +0000"),  # 2099-01-01
        commit_at(work, "fixed clock", "@1767225600 +0000"),
        commit_at(work, "same second", "@1767225600 +0000"),
        commit_at(work, "rebased on an old laptop", "@978307200 +0000"),  # 2001-01-01
    ]
    push()
    depths, dates = [], []
    for sha in shas:
        result = clone(run_step, repo.url, out, "--revision", sha).results
        depths.append(int(result["commit-depth"]))
        dates.append(int(result["committer-date"]))
    assert depths == [2, 3, 4, 5]  # strictly rising: no collision, no going back
    assert dates != sorted(dates) and dates[1] == dates[2]  # what the old version scheme was made of


def test_commit_depth_counts_a_merge_once_along_the_first_parent(working_copy, run_step, out):
    repo, work, push = working_copy
    commit_at(work, "main 2", "@1767225600 +0000")
    run("git", "checkout", "--quiet", "-b", "feature", cwd=work)
    feature = [commit_at(work, f"feature {i}", "@1767225700 +0000") for i in range(3)]
    run("git", "checkout", "--quiet", "main", cwd=work)
    commit_at(work, "main 3", "@1767225800 +0000")
    run("git", "merge", "--quiet", "--no-ff", "-m", "merge feature", "feature", cwd=work, env=COMMIT_ENV)
    push("HEAD:main", "feature:feature")
    merged = clone(run_step, repo.url, out)
    assert merged.returncode == 0, merged.output
    assert merged.results["commit-depth"] == "4"  # seed, main 2, main 3, the merge
    on_feature = clone(run_step, repo.url, out, "--revision", feature[-1])
    assert on_feature.results["commit-depth"] == "5"  # versions order along one branch only
    assert git(out, "rev-list", "--count", "HEAD") == "1"  # the checkout stays shallow


def test_commit_depth_costs_the_commits_not_the_files_of_the_history(working_copy, run_step, out, git_server):
    """Thirty versions of a 200 kB file: the count fetches commits only (--filter=tree:0), the checkout
    one version of the file."""
    repo, work, push = working_copy
    for i in range(30):
        commit_at(work, f"version {i}", "@1767225600 +0000", {"big.txt": os.urandom(100_000).hex()})
    push()
    history = sum(p.stat().st_size for p in (repo.server.repo_path(repo.name) / "objects").rglob("*") if p.is_file())
    assert history > 3_000_000
    sent = git_server.bytes_sent
    run = clone(run_step, repo.url, out)
    assert run.returncode == 0, run.output
    assert run.results["commit-depth"] == "31"
    assert git_server.bytes_sent - sent < 400_000  # one version of big.txt (about 100 kB packed) and 31 commits
