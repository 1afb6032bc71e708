"""druppie-build in a user-namespaced pod on a real kubelet: the node runs containerd v2.4.2 and
runc v1.5.3 (DRUPPIE_CONTAINERD=2, `make test-e2e-userns`), the catalog's druppie-build Task (its
three capabilities: SETUID, SETGID, SETFCAP) comes through a team overlay with install/userns, and
the TaskRun asks for `podTemplate: {hostUsers: false}` as the Task's README says. The kubelet gives
the pod a block of host IDs of its own, and the build runs and pushes. In the node's user namespace
the same three build too (buildah chroots in a user namespace of its own either way), and one fewer,
SETFCAP, is too few in both: buildah cannot map root into its namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
import yaml

from localcluster.gitserver import seed_repo
from localcluster.toolchain import ROOT
from testbed.apps import drone_app
from testbed.site import BASE_REPO, push_offline_base
from testbed.userns import THREE
from tests.support import kustomize
from tests.support.ci_tasks import clone
from tests.support.e2e import ci_commands, wait_for

pytestmark = pytest.mark.userns
STEP_IMAGE = "ghcr.io/waterschap/druppie-step:0.1.0"


@pytest.fixture(scope="module")
def userns_ci(cluster, tekton, tmp_path_factory):
    """The app on the cluster's git server and the catalog's druppie-build with install/userns."""
    if "containerd2" not in cluster.features:
        pytest.fail("this module needs a node on containerd v2: run it with `make test-e2e-userns`")
    seed_repo(cluster.git_root / "drone-service.git", source_dir=drone_app(tmp_path_factory.mktemp("app") / "app"))
    push_offline_base(cluster.registry)
    commands = ci_commands()
    tekton.run(commands["kubectl apply -n"])
    tekton.run(commands["kubectl create secret"])
    # The component as a team's overlay applies it: the catalog's druppie-build, three capabilities.
    overlay = tmp_path_factory.mktemp("team-userns")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(ROOT, overlay)],
        "components": [os.path.relpath(ROOT / "install/userns", overlay)],
    }))  # fmt: skip
    (task,) = [d for d in yaml.safe_load_all(kustomize.build(overlay)) if d and d["kind"] == "Task"
               and d["metadata"]["name"] == "druppie-build"]  # fmt: skip
    assert task["spec"]["steps"][0]["securityContext"]["capabilities"]["add"] == list(THREE)
    cluster.kubectl("apply", "-n", "ci", "-f", "-", input=json.dumps(task))
    return commands


def build(cluster, version: str, host_users: bool, task: str = "druppie-build") -> tuple[dict, dict, str]:
    """A TaskRun of druppie-build as the Task's README shows it: (TaskRun, its pod, its log)."""
    head = subprocess.run(["git", "--git-dir", str(cluster.git_root / "drone-service.git"), "rev-parse", "main"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    name = f"build-userns-{uuid.uuid4().hex[:6]}"
    run = {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": name, "namespace": "ci"},
        "spec": {
            "taskRef": {"name": task},
            "serviceAccountName": "druppie-build",
            "podTemplate": {"hostUsers": host_users},
            "params": [
                {"name": "image", "value": f"{cluster.registry}/druppie/drone-service"},
                {"name": "version", "value": version},
                {"name": "commit", "value": head},
                {"name": "tls-verify", "value": "false"},
                {"name": "build-args", "value": f"BASE_IMAGE={cluster.registry}/{BASE_REPO}"},
            ],
            "workspaces": [
                {"name": "source", "persistentVolumeClaim": {"claimName": "drone-service-source"}},
                {"name": "dockerconfig", "secret": {"secretName": "registry-credentials"}},
            ],
        },
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(run))

    def done() -> dict | None:
        taskrun = cluster.get_json("taskrun", "-n", "ci", name)
        return taskrun if taskrun.get("status", {}).get("completionTime") else None

    finished = wait_for(f"TaskRun {name}", done, timeout=600, interval=2)
    pod = cluster.get_json("pod", "-n", "ci", finished["status"]["podName"])
    log = cluster.kubectl("logs", "-n", "ci", finished["status"]["podName"], "-c", "step-build", check=False)
    return finished, pod, log.stdout + log.stderr


def test_a_pod_with_host_users_false_gets_a_block_of_host_ids_of_its_own(cluster, tekton, userns_ci):
    name = f"uid-map-{uuid.uuid4().hex[:6]}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ci"},
        "spec": {
            "hostUsers": False,
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [{
                "name": "show", "image": STEP_IMAGE, "command": ["cat", "/proc/self/uid_map", "/proc/self/gid_map"],
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                    "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            }],
        },
    }  # fmt: skip
    cluster.kubectl("create", "-f", "-", input=json.dumps(pod))
    wait_for(f"pod {name}", lambda: cluster.get_json("pod", "-n", "ci", name)["status"].get("phase") == "Succeeded",
             timeout=120)  # fmt: skip
    maps = cluster.kubectl("logs", "-n", "ci", name).stdout.split("\n")
    mappings = [line.split() for line in maps if line.strip()]
    # Container IDs 0-65535 are host IDs of a block the kubelet chose (never the host's own 0).
    assert len(mappings) == 2, maps
    for inside, host, size in mappings:
        assert (inside, size) == ("0", "65536") and int(host) >= 65536 and int(host) % 65536 == 0, maps
    cluster.kubectl("delete", "pod", "-n", "ci", name, "--wait=false")


def test_the_build_runs_in_a_user_namespace_with_three_capabilities_and_pushes(cluster, tekton, userns_ci):
    assert clone(tekton, cluster, userns_ci)["commit"]
    run, pod, log = build(cluster, "1.0.7", host_users=False)
    assert run["status"]["conditions"][0]["reason"] == "Succeeded", log[-3000:]
    assert pod["spec"]["hostUsers"] is False
    step = next(c for c in pod["spec"]["containers"] if c["name"] == "step-build")
    assert step["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": list(THREE)}
    results = {r["name"]: r["value"] for r in run["status"]["results"]}
    image = f"{cluster.registry}/druppie/drone-service"
    inspect = ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{image}:1.0.7"]
    served = subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.strip()
    assert results["IMAGE_URL"] == f"{image}:1.0.7" and results["IMAGE_DIGEST"] == served


def test_in_the_nodes_user_namespace_the_same_three_build_and_without_setfcap_none_does(cluster, tekton, userns_ci):
    assert clone(tekton, cluster, userns_ci)["commit"]
    run, pod, log = build(cluster, "1.0.8", host_users=True)
    assert run["status"]["conditions"][0]["reason"] == "Succeeded", log[-3000:]
    assert pod["spec"].get("hostUsers", True) is True
    step = next(c for c in pod["spec"]["containers"] if c["name"] == "step-build")
    assert step["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": list(THREE)}
    # The Task with SETFCAP taken away, in either user namespace: buildah cannot map root.
    task = cluster.get_json("task", "-n", "ci", "druppie-build")
    task["metadata"] = {"name": "druppie-build-without-setfcap", "namespace": "ci"}
    task["spec"]["steps"][0]["securityContext"]["capabilities"]["add"] = ["SETUID", "SETGID"]
    cluster.kubectl("apply", "-f", "-", input=json.dumps(task))
    for number, host_users in enumerate((True, False)):
        run, _, log = build(cluster, f"1.0.{9 + number}", host_users=host_users, task=task["metadata"]["name"])
        assert run["status"]["conditions"][0]["status"] == "False", (host_users, log[-3000:])
        assert "_map: operation not permitted" in log, (host_users, log[-3000:])
