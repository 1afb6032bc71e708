"""druppie-build's seccomp profile, for real: `druppie-step build` in a container like the Task's build
step (root, the Task's three capabilities, no new privileges, runc; testbed/seccomp.py) under
tasks/druppie-build/0.1/seccomp/druppie-build.json, started by podman and by a containerd of the
test's own (which reads the profile as a kubelet's containerd does). The example app builds and pushes with it, and a
RUN step (or the step itself) that calls keyctl or ptrace gets EPERM, which podman's default profile
(what druppie-build.json was before it was trimmed) lets through. The registry is on loopback and
the base is busybox, as in test_build.py; the builds reach the registry by name
(registry.druppie.test, answered by a DNS server of the test), as they do in a cluster: the C
library's lookups take syscalls (sendmmsg) that a lookup-free build never makes.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from testbed import seccomp
from testbed.apps import drone_app
from tests.support.checkout import commit_all


@pytest.fixture(autouse=True, scope="module")
def _tools():
    if not (shutil.which("podman") and Path(seccomp.RUNC).is_file() and shutil.which("gcc")):
        pytest.fail("needs podman, runc and gcc: `make setup` installs them")


DENIED_BY_THE_PROFILE = ("keyctl", "add_key", "request_key", "ptrace", "userfaultfd", "perf_event_open", "bpf")


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    # Port 53 of the machine's address is the one a resolv.conf can name. Another `make test` on
    # this machine may hold it for a while: wait for it, then fail (a skip would hide the tests).
    deadline = time.monotonic() + 300
    while True:
        try:
            server = seccomp.TinyDNS()
            break
        except OSError as err:
            if time.monotonic() > deadline:
                pytest.fail(f"no DNS server for the test: port 53 stayed taken for 300 s: {err}")
            time.sleep(1)
    yield server.resolv_conf(tmp_path_factory.mktemp("dns"))
    server.stop()


def by_name(ref: str) -> str:
    return ref.replace("127.0.0.1", seccomp.REGISTRY_NAME, 1)


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    return seccomp.build_probe(tmp_path_factory.mktemp("probe") / "probe")


def build_in_pod(tmp_path: Path, registry, dns: Path, app: Path, profile: Path, version: str, repo: str, caps=None):
    """`druppie-step build` of ``app`` in a build-step container under ``profile`` (with the Task's
    capabilities unless ``caps``); (process, results)."""
    commit_all(app)
    pod = seccomp.BuildPod(tmp_path / "pod", mounts=[(app, "/workspace/source", "ro")], resolv_conf=dns)
    try:
        argv = seccomp.step_argv(
            "/workspace/source",
            *("--image", by_name(f"{registry.host}/{repo}"), "--version", version, "--no-tls-verify"),
            *("--build-args", f"BASE_IMAGE={by_name(registry.base)}"),
        )
        proc = pod.run(argv, profile, caps=caps)
        return proc, seccomp.results(pod)
    finally:
        pod.remove()


def with_probe_run_step(app: Path, probe: Path) -> Path:
    shutil.copy(probe, app / "probe")
    (app / "Containerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY drone_service /app/drone_service\nCOPY probe /probe\n"
        "RUN /probe\nUSER 65532:65532\n"
    )
    return app


def test_the_example_app_builds_and_pushes_under_the_trimmed_profile(registry, dns, tmp_path):
    app = drone_app(tmp_path / "app")
    proc, results = build_in_pod(tmp_path, registry, dns, app, seccomp.PROFILE, "1.0.5", "druppie/drone-service")
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            f"docker://{registry.host}/druppie/drone-service:1.0.5",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert results["IMAGE_URL"] == f"{by_name(registry.host)}/druppie/drone-service:1.0.5"
    assert results["IMAGE_DIGEST"] == served and results["sbom"] == ".druppie/sbom.cdx.json"


def test_run_steps_work_under_the_trimmed_profile_but_keyctl_and_ptrace_are_refused(registry, dns, probe, tmp_path):
    app = drone_app(tmp_path / "app", "run-instruction")  # its own RUN (sh, mkdir, id) in the chroot, then the probe
    app = with_probe_run_step(app, probe)
    proc, results = build_in_pod(tmp_path, registry, dns, app, seccomp.PROFILE, "2.0.0", "druppie/with-run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(results) == set(seccomp.RESULTS)
    seen = seccomp.probe_lines(proc.stderr)
    assert seen["getpid"] == "ok"
    # buildah stacks its own filter (podman's default) for RUN: of two refusals the newer filter's errno
    # wins (ENOSYS for what that one does not know); keyctl and ptrace it allows, so EPERM is ours.
    assert {name: seen[name] for name in DENIED_BY_THE_PROFILE if seen[name] not in ("EPERM", "ENOSYS")} == {}
    assert seen["keyctl"] == seen["ptrace"] == "EPERM"


def test_podmans_default_profile_lets_a_run_step_use_keyctl_and_ptrace(registry, dns, probe, tmp_path):
    """What the trimmed profile takes away: with the profile druppie-build.json was before, the same
    RUN step reaches the kernel's key store and ptrace. (With the capabilities the Task had then,
    SYS_CHROOT too: podman's default allows buildah's chroot only with it; ours has no such condition.)"""
    app = with_probe_run_step(drone_app(tmp_path / "app"), probe)
    caps = seccomp.profile_capabilities()
    proc, _ = build_in_pod(tmp_path, registry, dns, app, seccomp.PODMAN_DEFAULT, "2.0.1", "druppie/with-run", caps)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = seccomp.probe_lines(proc.stderr)
    assert seen["keyctl"] == "ok" and seen["ptrace"] == "ok"


def test_the_step_itself_gets_eperm_and_a_32_bit_syscall_is_killed(probe, tmp_path):
    """The profile holds for every process of the step, not only for RUN steps; and it filters the
    native x86_64 ABI only, so a 32-bit syscall (int 0x80) kills its process (SIGSYS)."""
    pod = seccomp.BuildPod(tmp_path / "pod", mounts=[(probe.parent, "/probe", "ro")])
    try:
        proc = pod.run(["/probe/probe"], seccomp.PROFILE)
        assert proc.returncode == 0, proc.stderr
        seen = seccomp.probe_lines(proc.stdout)
        assert seen["getpid"] == "ok"
        assert {name: seen[name] for name in DENIED_BY_THE_PROFILE} == dict.fromkeys(DENIED_BY_THE_PROFILE, "EPERM")
        proc = pod.run(["/probe/probe", "int80"], seccomp.PROFILE)
        assert proc.returncode == 128 + 31 and "int80=" not in proc.stdout  # SIGSYS
        before = pod.run(["/probe/probe", "int80"], seccomp.PODMAN_DEFAULT)
        assert seccomp.probe_lines(before.stdout) == {"int80": "ok"}
    finally:
        pod.remove()


# --- containerd: how a kubelet's runtime reads a Localhost profile ------------------------------


@pytest.fixture(scope="module")
def containerd():
    if not (shutil.which("containerd") and shutil.which("ctr")):
        pytest.fail("needs containerd and ctr: `make setup` installs them")
    server = seccomp.Containerd()
    yield server
    server.stop()


def test_containerd_reads_the_profile_as_a_kubelet_has_it_read_and_the_app_builds(
    registry, probe, containerd, tmp_path
):
    """containerd loads a Localhost profile as the runtime-spec's LinuxSeccomp (not Docker's format):
    under it, by containerd and runc, the app with a RUN step builds and pushes, and the RUN step's
    keyctl and ptrace get EPERM. (By address: ctr mounts the machine's resolv.conf over ours.)"""
    app = with_probe_run_step(drone_app(tmp_path / "app", "run-instruction"), probe)
    commit_all(app)
    pod = seccomp.BuildPod(tmp_path / "pod", mounts=[(app, "/workspace/source", "ro")])
    try:
        argv = seccomp.step_argv(
            "/workspace/source",
            *("--image", f"{registry.host}/druppie/by-containerd", "--version", "1.0.0", "--no-tls-verify"),
            *("--build-args", f"BASE_IMAGE={registry.base}"),
        )
        proc = containerd.run(pod, argv, seccomp.PROFILE)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert set(seccomp.results(pod)) == set(seccomp.RESULTS)
    finally:
        pod.remove()
    seen = seccomp.probe_lines(proc.stderr)
    assert seen["getpid"] == "ok" and seen["keyctl"] == seen["ptrace"] == "EPERM"


def test_under_containerd_podmans_default_profile_let_bpf_and_perf_event_open_through(probe, containerd, tmp_path):
    """What druppie-build.json was, read by containerd: Docker's conditions on capabilities are not
    part of the runtime-spec, so its rules that allow bpf and perf_event_open only with
    CAP_SYS_ADMIN allowed them to every pod (the kernel, not the filter, answered). Now: EPERM."""
    pod = seccomp.BuildPod(tmp_path / "pod", mounts=[(probe.parent, "/probe", "ro")])
    try:
        before = seccomp.probe_lines(containerd.run(pod, ["/probe/probe"], seccomp.PODMAN_DEFAULT).stdout)
        after = seccomp.probe_lines(containerd.run(pod, ["/probe/probe"], seccomp.PROFILE).stdout)
    finally:
        pod.remove()
    assert before["bpf"] not in ("EPERM", "ENOSYS") and before["perf_event_open"] not in ("EPERM", "ENOSYS")
    assert before["keyctl"] == before["ptrace"] == "ok"
    assert {name: after[name] for name in DENIED_BY_THE_PROFILE} == dict.fromkeys(DENIED_BY_THE_PROFILE, "EPERM")
