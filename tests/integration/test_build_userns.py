"""druppie-build in a user-namespaced pod (``hostUsers: false``), for real: `druppie-step build` in the
build step's container as a kubelet runs it on a node with containerd v2.4.2 and runc v1.5.3
(testbed/userns.py: a user namespace of 65536 IDs, an idmapped volume for every mount, the kubelet's
/proc masks, containerd's own default seccomp profile for RuntimeDefault). Both are built from their
Go modules by hack/cluster-build.sh userns when the cache lacks them (about 2 minutes, once).

What hack/userns_measure.py measured, kept true here: the least that builds an app with a RUN step
and pushes it is SETUID, SETGID and SETFCAP, in a user-namespaced pod and in the node's user namespace
alike (no SYS_CHROOT: buildah, root without CAP_SYS_ADMIN, makes a user namespace of its own and
chroots inside it, where it has every capability), the Localhost profile
druppie-build.json and the default (masked) /proc. One less capability, or RuntimeDefault instead of
the profile, fails with the kernel's refusal, measured:

- without SETFCAP: ``writing "0 0 65536\\n" to /proc/<pid>/uid_map: ... operation not permitted``
  (mapping root into a new user namespace needs CAP_SETFCAP, Linux >= 5.12);
- RuntimeDefault: ``Error during unshare(CLONE_NEWUSER): Operation not permitted`` (containerd's
  default profile allows unshare only with CAP_SYS_ADMIN).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import seccomp, userns
from testbed.apps import drone_app
from tests.support.checkout import commit_all

THREE = userns.THREE
LEAST = userns.Setting(caps=THREE, seccomp="Localhost", proc="Default")


@pytest.fixture(scope="module")
def node():
    server = userns.UsernsNode()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def app_with_run(tmp_path_factory) -> Path:
    app = drone_app(tmp_path_factory.mktemp("apps") / "run", "run-instruction")  # COPY, RUN (sh, mkdir, id), USER
    commit_all(app)
    return app


def build(node, registry, app: Path, setting: userns.Setting, version: str, repo: str):
    """`druppie-step build` of ``app`` in a build-step container with ``setting``; (process, results)."""
    pod = node.pod(mounts=[(app, "/workspace/source", "ro")])
    try:
        argv = seccomp.step_argv(
            "/workspace/source",
            *("--image", f"{registry.host}/{repo}", "--version", version, "--no-tls-verify"),
            *("--build-args", f"BASE_IMAGE={registry.base}"),
        )
        proc = node.run(pod, argv, setting)
        return proc, seccomp.results(pod)
    finally:
        pod.remove()


def test_the_container_is_in_a_user_namespace_of_its_own(node):
    """What the measurement rests on: the step's root is host ID HOST_BASE, and the idmapped volumes
    show the host's root-owned files as root's."""
    pod = node.pod()
    try:
        proc = node.run(pod, ["/bin/sh", "-c", "cat /proc/self/uid_map; stat -c %u /usr/bin /tekton"], LEAST)
    finally:
        pod.remove()
    assert proc.returncode == 0, proc.stderr[-2000:]
    mapping, *owners = proc.stdout.split("\n")
    assert mapping.split() == ["0", str(userns.HOST_BASE), str(userns.SIZE)]
    assert owners[:2] == ["0", "0"]


# In the node's user namespace (hostUsers: true, the Task's default) the same three suffice: buildah,
# root without CAP_SYS_ADMIN, makes a user namespace of its own either way and chroots there.
WHERE = pytest.mark.parametrize("host_users", [False, True], ids=["pod-user-namespace", "node-user-namespace"])


@WHERE
def test_three_capabilities_and_the_profile_build_a_run_step_and_push(node, registry, app_with_run, host_users):
    setting = userns.Setting(caps=THREE, seccomp="Localhost", proc="Default", host_users=host_users)
    repo = f"druppie/userns-least-{'host' if host_users else 'pod'}"
    proc, results = build(node, registry, app_with_run, setting, "1.0.0", repo)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "STEP 3/6: RUN mkdir -p /app/etc" in proc.stderr
    served = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
         f"docker://{registry.host}/{repo}:1.0.0"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert results["IMAGE_DIGEST"] == served and results["IMAGE_URL"].endswith(f"{repo}:1.0.0")
    assert set(results) == set(seccomp.RESULTS)


@WHERE
def test_without_setfcap_buildah_cannot_map_root_into_its_user_namespace(node, registry, app_with_run, host_users):
    smaller = userns.Setting(caps=("SETUID", "SETGID"), seccomp="Localhost", host_users=host_users)
    repo = f"druppie/userns-no-setfcap-{'host' if host_users else 'pod'}"
    proc, results = build(node, registry, app_with_run, smaller, "1.0.1", repo)
    assert proc.returncode != 0 and results.keys() <= {"sbom"}
    assert "to /proc/" in proc.stderr and "_map: operation not permitted" in proc.stderr, proc.stderr[-2000:]


def test_runtime_default_refuses_buildahs_user_namespace(node, registry, app_with_run):
    """containerd's default profile (made by containerd for these capabilities) allows unshare only
    with CAP_SYS_ADMIN, in a user-namespaced pod as in any other."""
    runtime_default = userns.Setting(caps=THREE, seccomp="RuntimeDefault")
    proc, _ = build(node, registry, app_with_run, runtime_default, "1.0.2", "druppie/userns-runtime-default")
    assert proc.returncode != 0
    assert "Error during unshare(CLONE_NEWUSER): Operation not permitted" in proc.stderr, proc.stderr[-2000:]
