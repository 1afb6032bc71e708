"""tag-commit into one environment of the example druppie-apps (test, acceptatie, prod: overlays over
one base per app), against a real git server: the commit is that overlay's tag and nothing else, and
the other environments render exactly as before (the real kustomize)."""

from __future__ import annotations

import pytest
import yaml

from localcluster.gitserver import run
from tests.support import kustomize

IMAGE = "registry.example/druppie/drone-service"
ENVS = ("test", "acceptatie", "prod")


def rendered_images(folder) -> list[str]:
    docs = [d for d in yaml.safe_load_all(kustomize.build(folder)) if d and d["kind"] == "Deployment"]
    return [c["image"] for d in docs for c in d["spec"]["template"]["spec"]["containers"]]


@pytest.mark.parametrize("env", ENVS)
def test_tag_commit_into_one_environment_leaves_the_others_untouched(env, druppie_apps, run_step, tmp_path):
    seed = druppie_apps.head()
    step = run_step("tag-commit", "--repo-url", druppie_apps.url, "--path", f"envs/{env}/drone-service",
                    "--image", IMAGE, "--tag", "1.0.5")  # fmt: skip
    assert step.returncode == 0, step.output
    assert step.results["changed"] == "true" and step.results["previous-tag"] == "1.0.4", step.output
    head = druppie_apps.head()
    git_dir = str(druppie_apps.server.repo_path(druppie_apps.name))
    changed = run("git", "--git-dir", git_dir, "diff", "--name-only", seed, head).stdout.split()
    assert changed == [f"envs/{env}/drone-service/kustomization.yaml"]

    before, after = tmp_path / "before", tmp_path / "after"
    run("git", "clone", "--quiet", druppie_apps.url, str(after))
    run("git", "clone", "--quiet", druppie_apps.url, str(before))
    run("git", "-C", str(before), "checkout", "--quiet", seed)
    for other in ENVS:
        folder = f"envs/{other}/drone-service"
        if other == env:
            assert rendered_images(after / folder) == [f"{IMAGE}:1.0.5"]
            assert rendered_images(before / folder) == [f"{IMAGE}:1.0.4"]
        else:
            assert kustomize.build(after / folder) == kustomize.build(before / folder), f"{folder} changed"
