"""druppie-build.json, the build step's seccomp profile: made by hack/seccomp_measure.py from what
builds were measured to call (tests/integration/test_build_seccomp.py runs builds under it)."""

from __future__ import annotations

import pytest

from hack import seccomp_measure
from testbed import seccomp

PROFILE = seccomp.load(seccomp.PROFILE)
EVERY_CAPABILITY = ["SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_BOOT", "SYS_PACCT", "SYS_RAWIO", "SYS_TIME", "BPF"]
EVERY_CAPABILITY += ["PERFMON", "DAC_READ_SEARCH", "AUDIT_WRITE", "SYS_TTY_CONFIG", "SYS_NICE", "SYS_RESOURCE"]
# What issue 15 names, and their kin: refused with EPERM whatever capabilities a pod is given.
REFUSED = ["keyctl", "add_key", "request_key", "ptrace", "process_vm_readv", "process_vm_writev", "bpf"]
REFUSED += ["perf_event_open", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module"]
REFUSED += ["userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "reboot", "syslog", "swapon"]
# What buildah's chroot isolation does as root without CAP_SYS_ADMIN: re-execute itself (from a
# memfd) in a user and mount namespace, mount /proc and friends there, pivot_root/chroot for RUN,
# switch users, and load its own seccomp filter for the RUN process.
BUILDAH_NEEDS = ["unshare", "clone", "clone3", "mount", "umount2", "pivot_root", "chroot", "setresuid", "setresgid"]
BUILDAH_NEEDS += ["setgroups", "capset", "seccomp", "memfd_create", "execveat", "execve", "prctl", "sethostname"]


def _allowed(caps):
    always, some = seccomp.allowed(PROFILE, caps)
    return always | some


def _refused_with_eperm():
    return {
        n for r in PROFILE["syscalls"] if r["action"] == "SCMP_ACT_ERRNO" and r.get("errnoRet") == 1 for n in r["names"]
    }


@pytest.mark.parametrize("name", REFUSED)
def test_keys_tracing_bpf_perf_kernels_modules_userfaultfd_are_refused_whatever_the_capabilities(name):
    assert name not in _allowed(EVERY_CAPABILITY)
    assert name in _refused_with_eperm()


def test_what_buildahs_chroot_isolation_needs_is_allowed_and_little_else():
    allowed = _allowed(seccomp.capabilities())
    # sethostname is the exception: buildah calls it for RUN, podman's default refused it, builds work without it
    assert set(BUILDAH_NEEDS) - {"sethostname"} <= allowed and "sethostname" not in allowed
    assert len(allowed) < 200  # measured: 162 on x86_64, podman's default allows 312
    assert allowed == _allowed(EVERY_CAPABILITY)


def test_it_means_the_same_to_containerd_which_reads_it_as_the_runtime_specs_linux_seccomp():
    """containerd (a kubelet's runtime) ignores Docker's archMap, includes and excludes: the profile
    has none, only what the runtime-spec has (comments aside)."""
    assert set(PROFILE) == {"defaultAction", "defaultErrnoRet", "architectures", "syscalls"}
    assert {key for rule in PROFILE["syscalls"] for key in rule} <= {"names", "action", "errnoRet", "args", "comment"}


def test_every_name_is_a_syscall_of_x86_64_and_none_is_both_allowed_and_refused():
    names = {n for rule in PROFILE["syscalls"] for n in rule["names"]}
    assert {n for n in names if seccomp.syscall_number(n) is None} == set()
    assert _allowed(EVERY_CAPABILITY) & _refused_with_eperm() == set()


def test_the_native_abi_only_and_enosys_for_the_rest():
    assert PROFILE["architectures"] == ["SCMP_ARCH_X86_64"]
    assert (PROFILE["defaultAction"], PROFILE["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 38)


def test_the_profile_is_what_the_measure_tool_makes_of_its_own_allow_list():
    """Hand edits show: the profile must be make_profile() of the names it allows (rerun the tool)."""
    allowed = {n for r in PROFILE["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    assert seccomp_measure.make_profile(allowed, seccomp.load(seccomp.PODMAN_DEFAULT)) == PROFILE
