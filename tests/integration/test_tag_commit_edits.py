"""tag-commit through the CLI on edits the image editor must get right or refuse: real git server."""

from __future__ import annotations

IMAGE = "registry.example/druppie/drone-service"
DEPLOY = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: drone\nspec:\n  template:\n    spec:\n"
    f"      containers:\n      - name: app\n        image: {IMAGE}:1.0.4\n"
)


def args(repo, path, tag="1.0.5", *extra):
    return ("tag-commit", "--repo-url", repo.url, "--path", path, "--image", IMAGE, "--tag", tag, *extra)


def test_non_semver_current_tag_is_replaced_with_a_warning(new_repo, run_step):
    kust = f"resources: [deployment.yaml]\nimages:\n- name: {IMAGE}\n  newTag: latest\n"
    repo = new_repo({"envs/prod/drone/kustomization.yaml": kust, "envs/prod/drone/deployment.yaml": DEPLOY})
    run = run_step(*args(repo, "envs/prod/drone"))
    assert run.returncode == 0, run.output
    assert run.results["changed"] == "true" and run.results["previous-tag"] == "latest"
    assert (
        "the current tag latest is not a semantic version and cannot be ordered; replacing it with 1.0.5" in run.output
    )
    assert repo.read("envs/prod/drone/kustomization.yaml") == kust.replace("latest", "1.0.5")
    # From here on the semver guard holds again.
    stale = run_step(*args(repo, "envs/prod/drone", "1.0.4"))
    assert stale.returncode == 1 and stale.results["deployed"] == "false", stale.output
    assert "error: not deployed: " in stale.stderr and "is older than 1.0.5" in stale.stderr
    assert repo.read("envs/prod/drone/kustomization.yaml") == kust.replace("latest", "1.0.5")


def test_overlay_over_a_base_outside_path_gets_an_images_entry(new_repo, run_step):
    overlay = "# prod overlay\nresources:\n  - ../../../base/drone\n"
    base = "resources:\n  - deployment.yaml\n"
    repo = new_repo(
        {
            "envs/prod/drone/kustomization.yaml": overlay,
            "base/drone/kustomization.yaml": base,
            "base/drone/deployment.yaml": DEPLOY,
        }
    )
    run = run_step(*args(repo, "envs/prod/drone"))
    assert run.returncode == 0, run.output
    assert run.results["previous-tag"] == "1.0.4"
    entry = f"images:\n  - name: {IMAGE}\n    newTag: 1.0.5\n"
    assert repo.read("envs/prod/drone/kustomization.yaml") == overlay + entry
    assert repo.read("base/drone/deployment.yaml") == DEPLOY and repo.read("base/drone/kustomization.yaml") == base


def test_a_construct_that_cannot_be_edited_safely_fails_and_pushes_nothing(new_repo, run_step):
    kust = f"x-tag: &t 1.0.4\nimages:\n- name: {IMAGE}\n  newTag: *t\n"
    repo = new_repo({"envs/prod/drone/kustomization.yaml": kust})
    run = run_step(*args(repo, "envs/prod/drone"))
    assert run.returncode == 1
    assert "envs/prod/drone/kustomization.yaml:4: 'newTag' is an alias or an anchor used elsewhere" in run.output
    assert repo.read("envs/prod/drone/kustomization.yaml") == kust and len(repo.log()) == 1
