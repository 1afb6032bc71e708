"""tag-commit against a real git server over smart HTTP: clone, edit, commit, push, race."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.gitfaults import FaultyGitServer
from tests.support.paths import EXAMPLE_APPS, TEST_TOKEN, TEST_USER
from tests.support.repos import push_commit

IMAGE = "registry.example/druppie/drone-service"
APP = "envs/prod/drone-service"
KUSTOMIZATION = f"{APP}/kustomization.yaml"
BASE = "apps/drone-service"  # the overlay's base, shared with test and acceptatie
DIGEST = "sha256:" + "0123456789abcdef" * 4
# Reaches this machine on Linux but is not loopback: a stand-in for an in-cluster server.
NOT_LOOPBACK = "0.0.0.0"  # noqa: S104 - a host in a URL, nothing binds to it


def args(repo, tag="1.0.5", *extra, path=APP, image=IMAGE):
    return ("tag-commit", "--repo-url", repo.url, "--path", path, "--image", image, "--tag", tag, *extra)


def test_update_commits_only_the_new_tag(druppie_apps, run_step):
    before = druppie_apps.read(KUSTOMIZATION)
    deployment = druppie_apps.read(f"{BASE}/deployment.yaml")
    run = run_step(*args(druppie_apps, "1.0.5", "--digest", DIGEST, "--pipeline-run", "build-drone-xyz"))
    assert run.returncode == 0, run.output
    after = druppie_apps.read(KUSTOMIZATION)
    assert after == before.replace(
        "    newTag: 1.0.4  # written by CI, do not edit by hand\n",
        f"    newTag: 1.0.5  # written by CI, do not edit by hand\n    digest: {DIGEST}\n",
    )
    assert druppie_apps.read(f"{BASE}/deployment.yaml") == deployment
    head = druppie_apps.head()
    assert run.results == {
        "commit": head,
        "revision": f"main@sha1:{head}",
        "changed": "true",
        "previous-tag": "1.0.4",
        "deployed": "true",
        "reason": f"deployed 1.0.5 (was 1.0.4) in {head[:12]}",
        "pull-request-url": "",  # --mode pull-request only
    }
    assert run.stdout.strip() == (
        f"tag-commit: commit={head} revision=main@sha1:{head} changed=true previous-tag=1.0.4 deployed=true "
        f"reason=deployed 1.0.5 (was 1.0.4) in {head[:12]} pull-request-url="
    )
    message = druppie_apps.server.log(druppie_apps.name, fmt="%B")
    assert "drone-service: deploy registry.example/druppie/drone-service:1.0.5 (was 1.0.4)" in message[0]
    assert "Tekton-Pipeline-Run: build-drone-xyz" in message
    assert len(druppie_apps.log()) == 2


def test_rerun_is_idempotent(druppie_apps, run_step):
    first = run_step(*args(druppie_apps))
    second = run_step(*args(druppie_apps))
    assert first.returncode == second.returncode == 0
    assert second.results["changed"] == "false" and second.results["deployed"] == "true"
    assert second.results["commit"] == first.results["commit"] == druppie_apps.head()
    assert second.results["previous-tag"] == "1.0.5"
    assert second.results["reason"] == f"1.0.5 was already set in {KUSTOMIZATION} images[name={IMAGE}]"
    assert len(druppie_apps.log()) == 2


def test_adds_images_entry_when_resources_use_the_image(new_repo, run_step):
    kust = "# hand written\nresources:\n  - deployment.yaml\n"
    deploy = (
        "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - image: " + IMAGE + ":0.9.0\n"
    )
    repo = new_repo({"apps/api/kustomization.yaml": kust, "apps/api/deployment.yaml": deploy})
    run = run_step(*args(repo, "1.0.0", "--allow-path-outside-envs", path="apps/api"))
    assert run.returncode == 0, run.output
    assert repo.read("apps/api/kustomization.yaml") == kust + f"images:\n  - name: {IMAGE}\n    newTag: 1.0.0\n"
    assert repo.read("apps/api/deployment.yaml") == deploy
    assert run.results["previous-tag"] == "0.9.0"


def test_plain_manifest_updated_in_place(new_repo, run_step):
    deploy = (
        "apiVersion: apps/v1\nkind: Deployment  # plain manifests, no kustomize\nspec:\n  template:\n"
        f'    spec:\n      containers:\n      - name: app\n        image: "{IMAGE}:1.2.3"\n'
    )
    repo = new_repo({"plain/app/deploy.yaml": deploy, "other/deploy.yaml": deploy})
    run = run_step(*args(repo, "v1.3.0", path="plain/app"), env={"DRUPPIE_ALLOW_PATH_OUTSIDE_ENVS": "true"})
    assert run.returncode == 0, run.output
    assert repo.read("plain/app/deploy.yaml") == deploy.replace(":1.2.3", ":v1.3.0")
    assert repo.read("other/deploy.yaml") == deploy  # outside --path: untouched


def test_older_tag_never_overwrites_newer_and_the_run_fails_saying_so(druppie_apps, run_step):
    """Not a silent green: a build that is not deployed fails, naming both versions (issue 15)."""
    assert run_step(*args(druppie_apps, "1.0.7")).returncode == 0
    head = druppie_apps.head()
    stale = run_step(*args(druppie_apps, "1.0.6"))
    assert stale.returncode == 1, stale.output
    assert stale.stderr.strip().splitlines()[-1] == (
        f"error: not deployed: {IMAGE}:1.0.6 is older than 1.0.7, which {APP} already has "
        "(a newer build landed first, or the version went backwards); --allow-downgrade deploys it "
        "anyway (a rollback), --allow-no-change accepts that nothing is deployed"
    )
    reason = f"not deployed: {APP} already has 1.0.7, newer than 1.0.6"
    assert stale.results == {  # written all the same, for the summary to show in words
        "commit": head,
        "revision": f"main@sha1:{head}",
        "changed": "false",
        "previous-tag": "1.0.7",
        "deployed": "false",
        "reason": reason,
        "pull-request-url": "",
    }
    assert druppie_apps.head() == head and "newTag: 1.0.7" in druppie_apps.read(KUSTOMIZATION)

    accepted = run_step(*args(druppie_apps, "1.0.6", "--allow-no-change"))
    assert accepted.returncode == 0, accepted.output
    assert re.search(r"warning: .*already at 1.0.7, newer than 1.0.6", accepted.stderr)
    assert accepted.results == stale.results and druppie_apps.head() == head
    from_task = run_step(*args(druppie_apps, "1.0.6"), env={"DRUPPIE_ALLOW_NO_CHANGE": "true"})
    assert from_task.returncode == 0 and from_task.results["deployed"] == "false"

    rollback = run_step(*args(druppie_apps, "1.0.6", "--allow-downgrade"))
    assert rollback.returncode == 0 and rollback.results["changed"] == "true"
    assert rollback.results["deployed"] == "true"
    assert "newTag: 1.0.6" in druppie_apps.read(KUSTOMIZATION)


def test_thirty_apps_at_once_all_land_with_default_options(new_repo, run_step):
    """Many pipelines finishing together: bounded by the deadline, not by a count, none is lost."""
    n = 30
    files = {
        f"envs/prod/app-{i:02d}/kustomization.yaml": (
            f"resources: []\nimages:\n- name: registry.example/druppie/app-{i:02d}  # app {i}\n  newTag: 0.1.0\n"
        )
        for i in range(n)
    }
    repo = new_repo(files)
    with ThreadPoolExecutor(max_workers=n) as pool:
        runs = list(
            pool.map(
                lambda i: run_step(
                    *args(
                        repo, f"1.{i}.0", path=f"envs/prod/app-{i:02d}", image=f"registry.example/druppie/app-{i:02d}"
                    ),
                    timeout=600,
                ),
                range(n),
            )
        )
    assert [r.returncode for r in runs] == [0] * n, [r.stderr for r in runs if r.returncode]
    log = repo.server.log(repo.name, fmt="%H")
    assert len(log) == n + 1
    for i in range(n):
        assert repo.read(f"envs/prod/app-{i:02d}/kustomization.yaml") == files[
            f"envs/prod/app-{i:02d}/kustomization.yaml"
        ].replace("newTag: 0.1.0", f"newTag: 1.{i}.0")
    assert sorted(r.results["commit"] for r in runs) == sorted(log[:-1])  # each run reports its own commit


def test_rising_tags_for_one_image_end_at_the_highest(druppie_apps, run_step):
    tags = [f"1.1.{i}" for i in range(10)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        runs = list(pool.map(lambda tag: run_step(*args(druppie_apps, tag)), tags))
    # A run that finds a newer tag fails (not deployed); every other one lands.
    assert all(r.returncode == (0 if r.results["deployed"] == "true" else 1) for r in runs), [r.stderr for r in runs]
    assert "newTag: 1.1.9  #" in druppie_apps.read(KUSTOMIZATION)
    landed = [r for r in runs if r.results["changed"] == "true"]
    assert all(r.results["deployed"] == "true" for r in landed) and runs[-1].results["deployed"] == "true"
    assert len(druppie_apps.log()) == 1 + len(landed)
    # The history only ever rises, each landed run's commit holds its own tag, and each refused run
    # saw a tag at least as new as its own.
    history = druppie_apps.server.log(druppie_apps.name, fmt="%H")[::-1]
    written = [
        re.search(r"newTag: (\S+)", druppie_apps.server.read_file(druppie_apps.name, KUSTOMIZATION, ref=c))[1]
        for c in history
    ]
    assert written == sorted(written, key=lambda t: tuple(map(int, t.split(".")))) and len(set(written)) == len(written)
    for tag, run in zip(tags, runs, strict=True):
        if run.results["changed"] == "true":
            assert written[history.index(run.results["commit"])] == tag
        else:
            assert tuple(map(int, run.results["previous-tag"].split("."))) >= tuple(map(int, tag.split(".")))


def test_server_error_is_clear_and_pushes_nothing(druppie_apps, run_step):
    head = druppie_apps.head()
    druppie_apps.server.fail_status = 500
    try:
        run = run_step(*args(druppie_apps), "--transient-retries", "1")
    finally:
        druppie_apps.server.fail_status = 0
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: git server error at {druppie_apps.url}: HTTP 500 (gave up after 1 retries)"
    )
    assert run.results == {} and druppie_apps.head() == head


def test_server_error_on_push_is_clear_and_pushes_nothing(druppie_apps, run_step):
    head = druppie_apps.head()
    druppie_apps.server.fail_status, druppie_apps.server.fail_path = 500, "git-receive-pack"
    try:
        run = run_step(*args(druppie_apps), "--transient-retries", "1")
    finally:
        druppie_apps.server.fail_status, druppie_apps.server.fail_path = 0, ""
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: git server error at {druppie_apps.url}: HTTP 500 (gave up after 1 retries)"
    )
    assert run.results == {} and druppie_apps.head() == head


@pytest.fixture
def faults(git_server):
    """Fault injection on the session's git server, cleared whatever the test does."""
    yield git_server
    git_server.clear_faults()


def test_clone_succeeds_after_two_503s(druppie_apps, run_step, faults):
    fault = faults.fail_next(2, 503, f"/{druppie_apps.name}.git/info/refs?service=git-upload-pack")
    run = run_step(*args(druppie_apps))
    assert run.returncode == 0, run.output
    assert fault.count == 0 and run.stderr.count("HTTP 503; retry") == 2
    assert "retry 2/4 of the clone" in run.stderr
    assert "newTag: 1.0.5" in druppie_apps.read(KUSTOMIZATION)


def test_push_succeeds_after_a_502(druppie_apps, run_step, faults):
    fault = faults.fail_next(1, 502, f"/{druppie_apps.name}.git/git-receive-pack")
    run = run_step(*args(druppie_apps))
    assert run.returncode == 0, run.output
    assert fault.count == 0 and "HTTP 502; retry 1/4 of the push" in run.stderr
    assert run.results["commit"] == druppie_apps.head() and len(druppie_apps.log()) == 2


@pytest.mark.parametrize("path", ["git-upload-pack", "git-receive-pack"])
def test_connection_reset_is_retried(druppie_apps, run_step, faults, path):
    fault = faults.reset_next(1, f"/{druppie_apps.name}.git/{path}")
    run = run_step(*args(druppie_apps))
    assert run.returncode == 0, run.output
    assert fault.count == 0 and "retry 1/4" in run.stderr
    assert run.results["commit"] == druppie_apps.head() and len(druppie_apps.log()) == 2


@pytest.mark.parametrize(
    "status,message", [(403, "authentication to {url} failed"), (404, "repository {url} not found")]
)
def test_client_errors_are_not_retried(druppie_apps, run_step, faults, status, message):
    faults.fail_next(10, status, f"/{druppie_apps.name}.git/")
    run = run_step(*args(druppie_apps))
    assert run.returncode == 1
    assert message.format(url=druppie_apps.url) in run.stderr.strip().splitlines()[-1]
    assert "retry" not in run.stderr
    assert faults.requests_to(f"/{druppie_apps.name}.git/") == 1


def test_persistent_503_gives_up_after_the_bounded_retries(druppie_apps, run_step, faults):
    faults.fail_next(100, 503, f"/{druppie_apps.name}.git/")
    run = run_step(*args(druppie_apps))
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: git server error at {druppie_apps.url}: HTTP 503 (gave up after 4 retries)"
    )
    assert faults.requests_to(f"/{druppie_apps.name}.git/") == 5
    assert run.results == {} and len(druppie_apps.log()) == 1


def test_transient_retries_stop_at_the_deadline(druppie_apps, run_step, faults):
    faults.fail_next(1000, 503, f"/{druppie_apps.name}.git/")
    started = time.monotonic()
    run = run_step(*args(druppie_apps), "--timeout", "2s", "--transient-retries", "20")
    assert run.returncode == 1
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .endswith(f"HTTP 503 (gave up after {run.stderr.count('retry ')} retries: --timeout reached)")
    )
    assert time.monotonic() - started < 10


def test_server_down_is_clear(run_step):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/druppie-apps.git"
    run = run_step("tag-commit", "--repo-url", url, "--path", APP, "--image", IMAGE, "--tag", "1.0.5")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith(f"error: cannot reach git server {url}:")


def test_missing_branch_is_clear(druppie_apps, run_step):
    run = run_step(*args(druppie_apps), "--branch", "release")
    assert run.returncode == 1
    assert f"error: branch 'release' not found in {druppie_apps.url}" in run.stderr


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--tag", "1.0", "invalid --tag '1.0': must be a semantic version"),
        ("--tag", "latest", "invalid --tag 'latest'"),
        ("--digest", "sha256:abc", "invalid --digest 'sha256:abc'"),
        ("--image", "Registry.Example/UPPER", "invalid --image 'Registry.Example/UPPER'"),
        ("--image", IMAGE + ":1.0.0", "give the name only"),
        ("--repo-url", "ftp://example.org/apps.git", "invalid --repo-url 'ftp://example.org/apps.git'"),
        ("--repo-url", "file:///srv/apps.git", "invalid --repo-url 'file:///srv/apps.git'"),
        ("--path", "../../etc", "invalid --path '../../etc'"),
        ("--path", "/etc", "invalid --path '/etc'"),
        ("--branch", "bad..branch", "invalid --branch 'bad..branch'"),
        ("--message", "{app} {secret}", "invalid --message '{app} {secret}': unknown field {secret}"),
        ("--author-email", "nobody", "invalid --author-email 'nobody'"),
        ("--author-name", " ", "invalid --author-name ' ': must not be empty"),
        ("--max-attempts", "-1", "Invalid value for '--max-attempts'"),
        ("--transient-retries", "-1", "Invalid value for '--transient-retries'"),
        ("--timeout", "soon", 'error: --timeout: "soon" is not a duration (use 90s, 30m, 1.5h or 7d)'),
    ],
)
def test_bad_input_is_one_clear_line_and_nothing_is_pushed(druppie_apps, run_step, flag, value, message):
    requests_before = druppie_apps.server.requests
    run = run_step(*args(druppie_apps), flag, value)
    assert run.returncode == 2
    assert message in run.stderr
    assert len([line for line in run.stderr.splitlines() if line.startswith(("error:", "Error:"))]) == 1
    assert druppie_apps.server.requests == requests_before  # validated before any network call
    assert run.results == {} and len(druppie_apps.log()) == 1


def test_bad_values_from_environment_are_named_too(druppie_apps, run_step):
    run = run_step(
        "tag-commit",
        env={
            "DRUPPIE_REPO_URL": druppie_apps.url,
            "DRUPPIE_PATH": APP,
            "DRUPPIE_IMAGE": IMAGE,
            "DRUPPIE_TAG": "one.two",
        },
    )
    assert run.returncode == 2 and "invalid --tag 'one.two'" in run.stderr


def test_image_not_in_path_fails_without_commit(druppie_apps, run_step):
    run = run_step(*args(druppie_apps, image="registry.example/druppie/unknown"))
    assert run.returncode == 1
    assert "image 'registry.example/druppie/unknown' not found under 'envs/prod/drone-service'" in run.stderr
    assert len(druppie_apps.log()) == 1


def test_clone_cost_does_not_follow_repo_size(new_repo, run_step, git_server):
    """A 4 MB blob outside --path must not be downloaded (shallow + blob filter + sparse)."""
    import os

    big = os.urandom(2 * 1024 * 1024).hex()
    repo = new_repo(
        {
            "envs/prod/drone-service/kustomization.yaml": f"images:\n- name: {IMAGE}\n  newTag: 1.0.0\n",
            "blobs/big.txt": big,
        }
    )
    sent_before = git_server.bytes_sent
    run = run_step(*args(repo, "1.0.1"))
    assert run.returncode == 0, run.output
    assert git_server.bytes_sent - sent_before < 200_000


def test_basic_auth_workspace_and_token_never_printed(auth_git_server, new_repo, run_step, tmp_path):
    from tests.support.paths import EXAMPLE_APPS

    repo = new_repo(source_dir=EXAMPLE_APPS, server=auth_git_server)
    workspace = tmp_path / "basic-auth"
    workspace.mkdir()
    host = auth_git_server.base_url.removeprefix("http://")
    (workspace / ".git-credentials").write_text(f"http://{TEST_USER}:{TEST_TOKEN}@{host}\n")
    (workspace / ".gitconfig").write_text("[user]\n\tname = From Workspace\n")

    ok = run_step(*args(repo), "--basic-auth", str(workspace))
    assert ok.returncode == 0, ok.output
    assert "newTag: 1.0.5" in repo.read(KUSTOMIZATION)

    no_creds = run_step(*args(repo, "1.0.6"))
    assert no_creds.returncode == 1
    assert f"error: authentication to {repo.url} failed" in no_creds.stderr

    (workspace / ".git-credentials").write_text(f"http://{TEST_USER}:{TEST_TOKEN}x@{host}\n")
    wrong = run_step(*args(repo, "1.0.6"), "--basic-auth", str(workspace))
    assert wrong.returncode == 1 and "authentication" in wrong.stderr

    in_url = run_step(
        *args(repo, "1.0.6"), "--repo-url", repo.url.replace("http://", f"http://{TEST_USER}:{TEST_TOKEN}@")
    )
    assert in_url.returncode == 0, in_url.output
    assert "http://***@" in in_url.stderr  # the URL is shown, its userinfo masked

    auth_git_server.fail_status = 503
    try:
        failing = run_step(
            *args(repo, "1.0.7"),
            "--transient-retries",
            "0",
            "--repo-url",
            repo.url.replace("http://", f"http://{TEST_USER}:{TEST_TOKEN}@"),
        )
    finally:
        auth_git_server.fail_status = 0
    assert failing.returncode == 1 and "HTTP 503" in failing.stderr

    for run in (ok, no_creds, wrong, in_url, failing):
        everything = run.output + "".join(run.results.values())
        assert TEST_TOKEN not in everything
        assert TEST_TOKEN[:12] not in everything


def test_ssh_directory_workspace(druppie_apps, ssh_git_server, run_step, tmp_path):
    workspace = ssh_git_server.workspace(tmp_path / "ssh")
    url = ssh_git_server.url(druppie_apps.name)
    run = run_step(*args(druppie_apps), "--repo-url", url, "--ssh-directory", str(workspace))
    assert run.returncode == 0, run.output
    assert "newTag: 1.0.5" in druppie_apps.read(KUSTOMIZATION)
    assert (workspace / "id_ed25519").stat().st_mode & 0o777 == 0o644  # the mounted Secret is left alone

    key = (workspace / "id_ed25519").read_text().splitlines()[2]
    assert key not in run.output

    untrusted = run_step(
        *args(druppie_apps, "1.0.6"),
        "--repo-url",
        url,
        "--ssh-directory",
        str(ssh_git_server.workspace(tmp_path / "no-known-hosts", known_hosts=False)),
    )
    assert untrusted.returncode == 2 and "no known_hosts file" in untrusted.stderr

    (workspace / "known_hosts").write_text(
        f"[127.0.0.1]:{ssh_git_server.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    spoofed = run_step(*args(druppie_apps, "1.0.6"), "--repo-url", url, "--ssh-directory", str(workspace))
    assert spoofed.returncode == 1 and "Host key verification failed" in spoofed.stderr
    assert len(druppie_apps.log()) == 2


def test_push_declined_by_a_server_hook_is_not_retried(druppie_apps, run_step):
    hook = druppie_apps.server.repo_path(druppie_apps.name) / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected: open a merge request' >&2\nexit 1\n")
    hook.chmod(0o755)
    pushes = druppie_apps.server.requests_to(f"/{druppie_apps.name}.git/git-receive-pack")
    run = run_step(*args(druppie_apps))
    assert run.returncode == 1
    assert run.stderr.count("retry") == 0
    assert druppie_apps.server.requests_to(f"/{druppie_apps.name}.git/git-receive-pack") == pushes + 1
    assert (
        "error: push to main rejected by the server: [remote rejected] (pre-receive hook declined): "
        "main is protected: open a merge request"
    ) in run.stderr
    assert len(druppie_apps.log()) == 1 and run.results == {}


# Secrets in the URL: every part of the userinfo (user and password), also percent-encoded.


@pytest.fixture(scope="module")
def token_user_server():
    """A git server that takes a token as the user name with no password, as GitHub does."""
    with FaultyGitServer(credentials=(TEST_TOKEN, "")) as server:
        yield server


def _encoded(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


USERINFO = {
    "token-as-user": (f"{TEST_TOKEN}@", "token"),
    "token-as-user-encoded": (f"{_encoded(TEST_TOKEN)}@", "token"),
    "user-password": (f"{TEST_USER}:{TEST_TOKEN}@", "basic"),
    "user-password-encoded": (f"{_encoded(TEST_USER)}:{_encoded(TEST_TOKEN)}@", "basic"),
}


@pytest.mark.parametrize("form", USERINFO)
def test_url_userinfo_never_printed(form, token_user_server, auth_git_server, new_repo, run_step, tmp_path):
    userinfo, kind = USERINFO[form]
    server = token_user_server if kind == "token" else auth_git_server
    repo = new_repo(source_dir=EXAMPLE_APPS, server=server)
    url = repo.url.replace("http://", f"http://{userinfo}")

    ok = run_step(*args(repo), "--repo-url", url)
    assert ok.returncode == 0, ok.output
    assert f"cloning {repo.url.replace('http://', 'http://***@')} " in ok.stderr
    assert "newTag: 1.0.5" in repo.read(KUSTOMIZATION)

    server.fail_next(100, 503, f"/{repo.name}.git/")
    try:
        down = run_step(*args(repo, "1.0.6"), "--repo-url", url, "--transient-retries", "1")
    finally:
        server.clear_faults()
    assert down.returncode == 1
    assert down.stderr.strip().splitlines()[-1] == (
        f"error: git server error at {repo.url.replace('http://', 'http://***@')}: HTTP 503 (gave up after 1 retries)"
    )
    missing = run_step(*args(repo, "1.0.6"), "--repo-url", url.replace(f"/{repo.name}.git", "/nothing-here.git"))
    assert missing.returncode == 1 and "not found" in missing.stderr
    wrong = run_step(*args(repo, "1.0.6"), "--repo-url", repo.url.replace("http://", f"http://{userinfo[:-1]}x@"))
    assert wrong.returncode == 1 and "authentication" in wrong.stderr

    secrets = {TEST_TOKEN, TEST_TOKEN[:12], _encoded(TEST_TOKEN)[:24], TEST_TOKEN[-12:]}
    if kind == "basic":
        secrets |= {TEST_USER, _encoded(TEST_USER)}
    for run in (ok, down, missing, wrong):
        everything = run.stdout + run.stderr + "".join(run.results.values())
        assert not [s for s in secrets if s in everything], everything


# ssh: file names in the ssh-directory workspace are data, never shell code.


@pytest.mark.parametrize("name", ["id_x;touch $X;", "id_$(touch $X)", "id_`touch $X`"])
def test_ssh_key_file_name_runs_no_command(druppie_apps, ssh_git_server, run_step, tmp_path, name):
    workspace = ssh_git_server.workspace(tmp_path / "ssh")
    (workspace / name).write_text((workspace / "id_ed25519").read_text())
    (workspace / name).chmod(0o644)
    marker = tmp_path / "pwned"
    run = run_step(
        *args(druppie_apps),
        "--repo-url",
        ssh_git_server.url(druppie_apps.name),
        "--ssh-directory",
        str(workspace),
        env={"X": str(marker)},
    )
    assert not marker.exists(), "a file name in the workspace ran as a shell command"
    assert run.returncode == 0, run.output
    assert "newTag: 1.0.5" in druppie_apps.read(KUSTOMIZATION)


# Credentials over plain http:// only to this machine, unless explicitly allowed.


@pytest.mark.parametrize(
    "url",
    [
        f"http://{TEST_USER}:{TEST_TOKEN}@git.example.org/druppie-apps.git",
        f"http://{TEST_TOKEN}@10.1.2.3:3000/druppie-apps.git",
    ],
)
def test_credentials_in_url_over_plain_http_are_refused(run_step, url):
    run = run_step("tag-commit", "--repo-url", url, "--path", APP, "--image", IMAGE, "--tag", "1.0.5")
    host = url.split("@")[1].split("/")[0].split(":")[0]
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"error: refusing to send credentials over plain http:// to {host!r}: use https://, "
        "or pass --allow-plain-http for a git server inside the cluster"
    ]
    assert TEST_TOKEN not in run.output


def _workspace(tmp_path, server):
    workspace = tmp_path / "basic-auth"
    workspace.mkdir(exist_ok=True)
    port = server.base_url.rsplit(":", 1)[1]
    (workspace / ".git-credentials").write_text(
        "".join(f"http://{TEST_USER}:{TEST_TOKEN}@{host}:{port}\n" for host in ("127.0.0.1", NOT_LOOPBACK, "localhost"))
    )
    return workspace


def test_plain_http_to_a_non_loopback_host_needs_the_opt_in(auth_git_server, new_repo, run_step, tmp_path):
    """0.0.0.0 reaches this machine on Linux but is not loopback: a stand-in for an in-cluster server."""
    repo = new_repo(source_dir=EXAMPLE_APPS, server=auth_git_server)
    outside = repo.url.replace("127.0.0.1", NOT_LOOPBACK)
    workspace = _workspace(tmp_path, auth_git_server)
    before = auth_git_server.requests

    in_url = run_step(*args(repo), "--repo-url", outside.replace("http://", f"http://{TEST_USER}:{TEST_TOKEN}@"))
    by_workspace = run_step(*args(repo), "--repo-url", outside, "--basic-auth", str(workspace))
    for run in (in_url, by_workspace):
        assert run.returncode == 2, run.output
        assert "error: refusing to send credentials over plain http:// to '0.0.0.0'" in run.stderr
    assert auth_git_server.requests == before  # refused before any network call

    allowed = run_step(
        *args(repo), "--repo-url", outside, "--basic-auth", str(workspace), env={"DRUPPIE_ALLOW_PLAIN_HTTP": "true"}
    )
    assert allowed.returncode == 0, allowed.output
    assert "warning: sending credentials over plain http:// to '0.0.0.0' (--allow-plain-http)" in allowed.stderr
    assert "newTag: 1.0.5" in repo.read(KUSTOMIZATION)

    loopback = run_step(
        *args(repo, "1.0.6"), "--repo-url", repo.url.replace("127.0.0.1", "localhost"), "--basic-auth", str(workspace)
    )
    assert loopback.returncode == 0, loopback.output
    assert "plain http" not in loopback.stderr
    for run in (in_url, by_workspace, allowed, loopback):
        assert TEST_TOKEN not in run.output


def test_plain_http_without_credentials_is_fine(druppie_apps, run_step):
    run = run_step(*args(druppie_apps), "--repo-url", druppie_apps.url.replace("127.0.0.1", NOT_LOOPBACK))
    assert run.returncode == 0, run.output
    assert "plain http" not in run.stderr


# --path stays under envs/ (issue 15): nothing outside it is edited or pushed unless explicitly allowed.

FLUX_SYSTEM = "flux-system/kustomization.yaml"
FLUX_KUST = f"resources: [gotk-components.yaml]\nimages:\n- name: {IMAGE}\n  newTag: 1.0.4\n"


@pytest.fixture
def apps_with_flux_system(druppie_apps):
    """druppie-apps plus a flux-system folder that also names the image (what an attacker would edit)."""
    push_commit(druppie_apps, {FLUX_SYSTEM: FLUX_KUST})
    return druppie_apps


@pytest.mark.parametrize("path", ["envs/prod/../../flux-system", "flux-system", "envs/prod/drone-service/../../.."])
def test_a_path_outside_envs_is_refused_and_nothing_is_pushed(apps_with_flux_system, run_step, path):
    repo = apps_with_flux_system
    head, requests = repo.head(), repo.server.requests
    run = run_step(*args(repo, path=path))
    assert run.returncode == 2, run.output
    assert run.stderr.strip().splitlines() == [run.stderr.strip().splitlines()[-1]]
    assert run.stderr.startswith(f"error: invalid --path {path!r}: ")
    assert repo.server.requests == requests  # refused before any network call
    assert repo.head() == head and repo.read(FLUX_SYSTEM) == FLUX_KUST and run.results == {}


def test_another_folder_only_with_the_opt_in(apps_with_flux_system, run_step):
    repo = apps_with_flux_system
    refused = run_step(*args(repo, path="flux-system"), env={"DRUPPIE_ALLOW_PATH_OUTSIDE_ENVS": "false"})
    assert refused.returncode == 2 and "pass --allow-path-outside-envs" in refused.stderr
    allowed = run_step(*args(repo, path="flux-system"), env={"DRUPPIE_ALLOW_PATH_OUTSIDE_ENVS": "true"})
    assert allowed.returncode == 0, allowed.output
    assert "newTag: 1.0.5" in repo.read(FLUX_SYSTEM)


@pytest.mark.parametrize(
    "symlinks,path",
    [
        ({"envs/prod/evil": "../../flux-system"}, "envs/prod/evil"),  # the folder is a link out of envs/
        ({"envs/staging": ".."}, "envs/staging/flux-system"),  # a link higher up
    ],
)
def test_a_symbolic_link_out_of_envs_is_refused_and_nothing_is_pushed(apps_with_flux_system, run_step, symlinks, path):
    repo = apps_with_flux_system
    head = push_commit(repo, symlinks=symlinks)
    run = run_step(*args(repo, path=path))
    assert run.returncode == 2, run.output
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: invalid --path {path!r}: it leads outside envs/ through a symbolic link"
    )
    assert repo.head() == head and repo.read(FLUX_SYSTEM) == FLUX_KUST and run.results == {}
