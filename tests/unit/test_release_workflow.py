"""The release workflow (.github/workflows/release.yml): the README's release commands and nothing
else, every action pinned by commit, the least permissions, and inputs only through the environment.
GitHub's runner is not here: make lint runs actionlint on it; the release itself (hack/release.py,
images, bundles, the tag) runs in tests/integration/test_bundles.py and the e2e tier."""

from __future__ import annotations

import re
import shlex
import subprocess

import yaml

from localcluster.toolchain import cache_dir, toolchain
from testbed.readme import block_with
from tests.support.paths import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github/workflows/release.yml"


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps() -> list[dict]:
    (job,) = workflow()["jobs"].values()
    return job["steps"]


def commands(step: dict) -> list[str]:
    """A run step's commands without sudo and its --preserve-env, the environment's values put in."""
    env = {**workflow()["jobs"]["release"]["env"], "TAG": "v0.1.0"}
    out = []
    for line in step["run"].replace("\\\n", " ").splitlines():
        words = shlex.split(line)
        if not words:
            continue
        while words[0] == "sudo":
            words = [w for w in words[1:] if not w.startswith("--preserve-env")]
        out.append(shlex.join(re.sub(r"\$(\w+)", lambda m: env.get(m[1], m[0]), w) for w in words))
    return out


def test_it_runs_the_readmes_release_commands_after_make_test():
    run = [c for s in steps() if "run" in s for c in commands(s)]
    release = block_with(REPO_ROOT / "README.md", "make release TAG=")
    assert [c for c in run if c.startswith(("make", "git push"))] == ["make test", *release]
    targets = re.findall(r"^([a-z-]+):.*## ", (REPO_ROOT / "Makefile").read_text(), re.M)
    assert {c.split()[1] for c in run if c.startswith("make")} <= set(targets)


def test_every_action_is_pinned_by_commit_with_its_version_beside_it():
    text = WORKFLOW.read_text()
    uses = re.findall(r"uses: (\S+)(.*)", text)
    assert uses, "the workflow uses actions"
    for action, rest in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", rest), f"{action}: say which version the commit is"


def test_least_permissions_and_inputs_only_through_the_environment():
    assert workflow()["permissions"] == {}
    (job,) = workflow()["jobs"].values()
    assert job["permissions"] == {"contents": "write", "packages": "write"}
    assert list(workflow()[True]) == ["workflow_dispatch"], "started by hand only (yaml reads `on` as True)"
    for step in steps():
        assert "${{" not in step.get("run", ""), f"{step.get('name')}: an expression pasted into a script"
    secrets = [k for s in steps() for k, v in s.get("env", {}).items() if "secrets." in str(v)]
    assert secrets == ["TOKEN"], "the token reaches only the login step"


def test_actionlint_refuses_an_input_pasted_into_a_script(tmp_path):
    """The check make lint runs can fail: actionlint on a copy with a bad reference."""
    broken = tmp_path / ".github/workflows/release.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        WORKFLOW.read_text().replace("run: sudo git push", "run: echo ${{ inputs.tga }} && sudo git push")
    )
    actionlint = cache_dir() / f"actionlint-{toolchain()['ACTIONLINT_VERSION']}" / "actionlint"
    good = subprocess.run([str(actionlint), str(WORKFLOW)], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout
    bad = subprocess.run([str(actionlint), str(broken)], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 1 and 'property "tga" is not defined' in bad.stdout, bad.stdout
