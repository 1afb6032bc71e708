"""flux-wait rejects bad input with one line naming the value, before touching any cluster; its git
fetch (the ancestry check in --repo-url) against a real git server that fails on purpose."""

import time

import pytest

from druppie_steps.gitops.git import TransientRetry
from tests.support.paths import TEST_TOKEN, TEST_USER
from tests.support.repos import push_commit

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--revision", "main@sha1:not-a-sha", "invalid --revision 'main@sha1:not-a-sha'"),
        ("--revision", "", "invalid --revision ''"),
        ("--revision", "   ", "invalid --revision '   '"),
        ("--revision", "main@sha1:", "invalid --revision 'main@sha1:'"),
        ("--revision", SHA + "0", f"invalid --revision '{SHA}0'"),
        ("--revision", "main@sha1:abc123", "invalid --revision 'main@sha1:abc123'"),
        ("--timeout", "5 minutes", 'error: --timeout: "5 minutes" is not a duration (use 90s, 30m, 1.5h or 7d)'),
        ("--timeout", "0s", 'error: --timeout: "0s" must be more than zero (use 90s, 30m, 1.5h or 7d)'),
        ("--repo-url", "ftp://x/y.git", "invalid --repo-url 'ftp://x/y.git'"),
    ],
)
def test_bad_input(run_step, tmp_path, flag, value, message):
    run = run_step(
        "flux-wait",
        "--kustomization",
        "drone-service-prod",
        "--revision",
        SHA,
        "--kubeconfig",
        str(tmp_path / "never-read"),
        flag,
        value,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"error: {run.stderr.split('error: ', 1)[1].strip()}"]
    assert message in run.stderr and run.results == {}


def test_unreadable_kubeconfig_is_clear(run_step, tmp_path):
    run = run_step(
        "flux-wait",
        "--kustomization",
        "drone-service-prod",
        "--revision",
        SHA,
        "--kubeconfig",
        str(tmp_path / "missing"),
    )
    assert run.returncode == 1
    assert f"error: cannot load Kubernetes credentials from {tmp_path / 'missing'}" in run.stderr


def test_no_revision_contains_the_target(tmp_path):
    """An empty (unparsable) revision Flux reports must not count as one that contains the target."""
    from druppie_steps.flux_wait import Ancestry

    contains = Ancestry("http://127.0.0.1:9/never-fetched.git", SHA, tmp_path, "", "")
    assert contains("") is False
    assert contains(SHA[:7]) is True and contains(SHA) is True  # the target itself, without a fetch


@pytest.mark.parametrize(
    "a,b,same",
    [
        ("https://github.com/waterschap/druppie-apps.git", "https://github.com/waterschap/druppie-apps", True),
        ("https://github.com/waterschap/druppie-apps.git", "ssh://git@github.com/waterschap/druppie-apps.git", True),
        ("git@github.com:waterschap/druppie-apps.git", "https://GitHub.com/waterschap/druppie-apps/", True),
        (
            "ssh://git@github.com:22/waterschap/druppie-apps",
            "https://user:token@github.com/waterschap/druppie-apps",
            True,
        ),
        ("https://github.com/waterschap/druppie-apps.git", "https://github.com/waterschap/druppie-infra.git", False),
        ("http://127.0.0.1:8080/apps-1.git", "http://localhost:8080/apps-1.git", False),
    ],
)
def test_repo_url_compared_with_the_sources_url(a, b, same):
    from druppie_steps.gitops.git import repo_identity

    assert (repo_identity(a) == repo_identity(b)) is same


# Credentials over plain http:// only to this machine, unless explicitly allowed (as clone and tag-commit).

PLAIN = "http://10.1.2.3:3000/druppie-apps.git"
REFUSED = (
    "error: refusing to send credentials over plain http:// to '10.1.2.3': use https://, "
    "or pass --allow-plain-http for a git server inside the cluster"
)


def flux_wait(run_step, tmp_path, *extra, env=None):
    return run_step(
        "flux-wait",
        "--kustomization",
        "drone-service-prod",
        "--revision",
        SHA,
        "--kubeconfig",
        str(tmp_path / "missing"),
        *extra,
        env=env,
    )


@pytest.fixture
def basic_auth(tmp_path):
    workspace = tmp_path / "basic-auth"
    workspace.mkdir()
    (workspace / ".git-credentials").write_text(f"http://{TEST_USER}:{TEST_TOKEN}@10.1.2.3:3000\n")
    return workspace


@pytest.mark.parametrize("how", ["in the url", "in the workspace"])
def test_credentials_over_plain_http_are_refused_before_any_network_call(run_step, tmp_path, basic_auth, how):
    if how == "in the url":
        extra = ("--repo-url", PLAIN.replace("http://", f"http://{TEST_USER}:{TEST_TOKEN}@"))
    else:
        extra = ("--repo-url", PLAIN, "--basic-auth", str(basic_auth))
    run = flux_wait(run_step, tmp_path, *extra)
    assert run.returncode == 2, run.output
    assert run.stderr.strip().splitlines() == [REFUSED]  # not even the kubeconfig was read
    assert TEST_TOKEN not in run.output and run.results == {}


def test_plain_http_with_the_opt_in_goes_on_with_a_warning(run_step, tmp_path, basic_auth):
    run = flux_wait(
        run_step,
        tmp_path,
        "--repo-url",
        PLAIN,
        "--basic-auth",
        str(basic_auth),
        env={"DRUPPIE_ALLOW_PLAIN_HTTP": "true"},
    )
    assert "warning: sending credentials over plain http:// to '10.1.2.3' (--allow-plain-http)" in run.stderr
    assert run.returncode == 1 and "cannot load Kubernetes credentials" in run.stderr  # got past the check
    assert TEST_TOKEN not in run.output


# The ancestry fetch: retried on transient errors, bounded by the step's deadline.


@pytest.fixture
def two_commits(new_repo):
    repo = new_repo({"a.txt": "1\n"})
    first = repo.head()
    return repo, first, push_commit(repo, {"a.txt": "2\n"})


@pytest.fixture
def faults(git_server):
    yield git_server
    git_server.clear_faults()


def ancestry(url, target, tmp_path, seconds=60.0, retries=4):
    from druppie_steps.flux_wait import Ancestry

    return Ancestry(url, target, tmp_path, "", "", TransientRetry(retries, deadline=time.monotonic() + seconds))


def test_ancestry_is_answered_from_the_repository(two_commits, tmp_path):
    repo, first, second = two_commits
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    assert ancestry(repo.url, first, tmp_path / "a")(second) is True
    assert ancestry(repo.url, second, tmp_path / "b")(first) is False


def test_ancestry_fetch_is_retried_after_transient_server_errors(two_commits, tmp_path, faults, capfd):
    repo, first, second = two_commits
    fault = faults.fail_next(2, 503, f"/{repo.name}.git/")
    assert ancestry(repo.url, first, tmp_path)(second) is True
    assert fault.count == 0
    assert capfd.readouterr().err.count("HTTP 503; retry") == 2


def test_ancestry_fetch_of_a_hung_server_ends_at_the_deadline(two_commits, tmp_path, faults, capfd):
    repo, first, second = two_commits
    faults.hang_next(10, f"/{repo.name}.git/", seconds=30)
    started = time.monotonic()
    assert ancestry(repo.url, first, tmp_path, seconds=2)(second) is None  # unknown, not a guess
    assert time.monotonic() - started < 10
    assert "did not finish before the deadline (--timeout)" in capfd.readouterr().err


def test_ancestry_fetch_refused_by_the_server_is_unknown_and_says_why(two_commits, tmp_path, faults, capfd):
    repo, first, second = two_commits
    faults.fail_next(10, 404, f"/{repo.name}.git/")
    assert ancestry(repo.url, first, tmp_path)(second) is None
    err = capfd.readouterr().err
    assert f"repository {repo.url} not found" in err and "retry" not in err
