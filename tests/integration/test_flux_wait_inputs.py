"""flux-wait rejects bad input with one line naming the value, before touching any cluster."""

import pytest

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("flag,value,message", [
    ("--revision", "main@sha1:not-a-sha", "invalid --revision 'main@sha1:not-a-sha'"),
    ("--timeout", "5 minutes", "invalid --timeout '5 minutes'"),
    ("--timeout", "0s", "invalid --timeout '0s': must be more than zero"),
    ("--repo-url", "ftp://x/y.git", "invalid --repo-url 'ftp://x/y.git'"),
])
def test_bad_input(run_step, tmp_path, flag, value, message):
    run = run_step("flux-wait", "--kustomization", "drone-service-prod", "--revision", SHA,
                   "--kubeconfig", str(tmp_path / "never-read"), flag, value)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"error: {run.stderr.split('error: ', 1)[1].strip()}"]
    assert message in run.stderr and run.results == {}


def test_unreadable_kubeconfig_is_clear(run_step, tmp_path):
    run = run_step("flux-wait", "--kustomization", "drone-service-prod", "--revision", SHA,
                   "--kubeconfig", str(tmp_path / "missing"))
    assert run.returncode == 1
    assert f"error: cannot load Kubernetes credentials from {tmp_path / 'missing'}" in run.stderr
