"""flux-wait rejects bad input with one line naming the value, before touching any cluster."""

import pytest

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
    from druppie_steps.flux_wait import _repo_identity

    assert (_repo_identity(a) == _repo_identity(b)) is same
