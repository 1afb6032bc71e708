"""tag-commit --rollback-reason against a real git server: an environment goes back to a build it ran
before (tag and digest found in its own history), older or not, with the reason in the commit; a
build it never ran is refused in one line with nothing pushed, and the downgrade guard stays on
without the option."""

from __future__ import annotations

IMAGE = "registry.example/druppie/drone-service"
APP = "envs/prod/drone-service"
KUSTOMIZATION = f"{APP}/kustomization.yaml"
OLD, NEW, NEVER = ("sha256:" + c * 64 for c in "abc")


def deploy(run_step, repo, tag: str, digest: str, *extra: str):
    return run_step("tag-commit", "--repo-url", repo.url, "--path", APP, "--image", IMAGE, "--tag", tag,
                    "--digest", digest, *extra)  # fmt: skip


def test_a_rollback_puts_back_the_build_that_ran_before_and_says_why(druppie_apps, run_step):
    assert deploy(run_step, druppie_apps, "1.0.5", OLD).returncode == 0
    ran_old = druppie_apps.head()
    assert deploy(run_step, druppie_apps, "1.0.6", NEW).returncode == 0
    # Without the option the guard holds: an older tag is not deployed.
    guarded = deploy(run_step, druppie_apps, "1.0.5", OLD)
    assert guarded.returncode == 1 and "older than 1.0.6" in guarded.stderr
    back = deploy(run_step, druppie_apps, "1.0.5", OLD, "--rollback-reason", "1.0.6 answers 500 on /health")
    assert back.returncode == 0, back.output
    assert back.results["deployed"] == "true" and back.results["previous-tag"] == "1.0.6"
    text = druppie_apps.read(KUSTOMIZATION)
    assert "newTag: 1.0.5" in text and f"digest: {OLD}" in text
    lines = druppie_apps.server.log(druppie_apps.name, fmt="%B")  # the newest commit's message first
    assert lines[0] == f"drone-service: deploy {IMAGE}:1.0.5 (was 1.0.6)"
    assert "Rollback: 1.0.6 answers 500 on /health" in lines and f"Rollback-To: {ran_old}" in lines


def test_a_build_the_environment_never_ran_is_no_rollback(druppie_apps, run_step):
    assert deploy(run_step, druppie_apps, "1.0.5", OLD).returncode == 0
    assert deploy(run_step, druppie_apps, "1.0.6", NEW).returncode == 0
    head = druppie_apps.head()
    for tag, digest in (("1.0.5", NEVER), ("1.0.3", OLD)):  # another build under that tag; that build, another tag
        refused = deploy(run_step, druppie_apps, tag, digest, "--rollback-reason", "try")
        assert refused.returncode == 1 and refused.results.get("commit", "") == ""
        line = refused.stderr.strip().splitlines()[-1]
        assert f"not a rollback: {IMAGE}:{tag}@{digest} never ran in {APP} on main" in line, line
    assert druppie_apps.head() == head, "nothing pushed"


def test_a_rollback_names_its_digest_and_one_line_of_reason(druppie_apps, run_step):
    head = druppie_apps.head()
    for extra, expected in (
        (("--rollback-reason", "no digest"), "a rollback needs the --digest"),
        (("--digest", OLD, "--rollback-reason", "two\nlines"), "one line of 1 to 300 characters"),
        (("--digest", OLD, "--rollback-reason", "   "), "one line of 1 to 300 characters"),
    ):
        run = run_step("tag-commit", "--repo-url", druppie_apps.url, "--path", APP, "--image", IMAGE, "--tag",
                       "1.0.5", *extra)  # fmt: skip
        assert run.returncode == 2 and "invalid --rollback-reason" in run.stderr and expected in run.stderr
    assert druppie_apps.head() == head
