"""install/userns, the component for clusters with user-namespaced pods: rendered by the real kustomize
with the team's catalog and trigger, it gives the trigger's PipelineRuns `hostUsers: false` for the
build task, and changes nothing else: druppie-build's step keeps the Task's three capabilities,
measured to suffice with and without a user namespace (tests/integration/test_build_userns.py).
That such a pod starts is a node's matter (containerd v2, runc >= 1.2): tests/e2e/test_userns.py
runs one on a kubelet.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from hack import catalog
from testbed.readme import yaml_blocks
from testbed.userns import THREE
from tests.support import kustomize

ROOT = catalog.ROOT
COMPONENT = ROOT / "install/userns"


def rendered(folder: Path) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(kustomize.build(folder)) if d}


def overlay(tmp_path: Path, *, triggers: bool = True, component: bool = True) -> Path:
    folder = tmp_path / ("team-userns" if component else "team")
    folder.mkdir()
    resources = [os.path.relpath(ROOT, folder)]  # kustomize takes relative paths only
    if triggers:
        resources.append(os.path.relpath(ROOT / "triggers/druppie-ci-cd", folder))
    kustomization: dict = {"resources": resources}
    if component:
        kustomization["components"] = [os.path.relpath(COMPONENT, folder)]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return folder


def test_the_build_task_runs_in_a_user_namespace_and_nothing_else_changes(tmp_path):
    with_userns, plain = rendered(overlay(tmp_path)), rendered(overlay(tmp_path, component=False))
    context = with_userns[("Task", "druppie-build")]["spec"]["steps"][0]["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"], "add": list(THREE)}
    assert context["seccompProfile"] == {"type": "Localhost", "localhostProfile": "druppie-build.json"}
    template = with_userns[("TriggerTemplate", "druppie-ci-cd")]
    specs = template["spec"]["resourcetemplates"][0]["spec"]["taskRunSpecs"]
    (build,) = [s for s in specs if s["pipelineTaskName"] == "build"]
    assert build == {"pipelineTaskName": "build", "serviceAccountName": "druppie-build",
                     "podTemplate": {"hostUsers": False}}  # fmt: skip
    assert [s for s in specs if "podTemplate" in s] == [build], "only the build task runs in a user namespace"
    del build["podTemplate"]
    assert with_userns == plain, "nothing else changed"


def test_a_team_without_the_trigger_renders_unchanged_and_sets_the_podtemplate_itself(tmp_path):
    objects = rendered(overlay(tmp_path, triggers=False))
    assert objects == rendered(overlay(tmp_path, triggers=False, component=False))
    assert not any(kind == "TriggerTemplate" for kind, _ in objects)


def test_the_readme_names_this_component_and_the_podtemplate_a_pipelinerun_needs():
    url = "https://github.com/waterschap/druppie-catalog//install/userns?ref=main"
    (block,) = [b for b in yaml_blocks(ROOT / "tasks/druppie-build/0.1/README.md") if url in b]
    overlay_part, pipelinerun_part = yaml.safe_load_all(block)
    assert overlay_part == {"components": [url]}
    (build,) = pipelinerun_part["spec"]["taskRunSpecs"]
    assert build == {"pipelineTaskName": "build", "serviceAccountName": "druppie-build",
                     "podTemplate": {"hostUsers": False}}  # fmt: skip


def test_containerd_v2s_state_folder_is_reachable_from_a_pods_own_user_namespace(tmp_path):
    """runc reaches the rootfs from inside the pod's user namespace (host IDs of its own block): a
    0700 folder on the way (pytest's, mkdtemp's) gave EACCES at "remount-propagation" (make
    test-e2e-userns on a fresh machine). Others may enter every folder on the way, not list it."""
    import stat

    from localcluster.containerd2 import traversable

    private = tmp_path / "pytest-of-root" / "cluster0"
    private.mkdir(parents=True)
    for folder in (tmp_path / "pytest-of-root", private):
        folder.chmod(0o700)
    state = private / "containerd" / "state"
    changed = traversable(state)
    assert private in changed and tmp_path / "pytest-of-root" in changed
    assert state.stat().st_mode & stat.S_IXOTH
    for folder in (private, tmp_path / "pytest-of-root"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o701, folder  # enter, not list
    assert traversable(state) == []  # once is enough
