"""Measure the syscalls of druppie-build's step and make its seccomp profile from what was measured.

  .venv/bin/python hack/seccomp_measure.py           # measure, and compare with the committed profile
  .venv/bin/python hack/seccomp_measure.py --write   # ... and rewrite tasks/druppie-build/0.1/seccomp/*.json
  .venv/bin/python hack/seccomp_measure.py --app DIR [--containerfile NAME] [--base python]  # and this app

Run it again for a new buildah, druppie-step, syft or Tekton entrypoint, and for an app whose RUN
steps need more. Every build runs in a container like the Task's build step (testbed/seccomp.py:
root, the Task's three capabilities and SYS_CHROOT, which buildah holds where it chroots: its own
user namespace (seccomp.profile_capabilities); no new privileges, runc), offline: registries on loopback (one
plain, one with TLS and a password) that the builds reach by name (a DNS server of the tool's), a
busybox base and, when hack/images.sh has made it, the debootstrap bookworm + python3 base.
Needs root, podman, runc, strace, gcc and musl-gcc (make setup installs them).

1. trace: every build runs under podman's default profile (what druppie-build.json was), the whole
   step (Tekton's entrypoint, druppie-step, git, buildah and its RUN steps, syft) under
   ``strace -f -c``: the name of every syscall made, whether it succeeded or not.
2. runtime: the same builds without strace, under a profile that allows what (1) found and logs
   everything else (SCMP_ACT_LOG): the kernel's log names what runc makes after it loaded the filter
   (with and without no-new-privileges) and calls strace cannot count (exit_group never returns).
3. profile: what (1) and (2) found that podman's default allowed this pod, plus KERNEL_ISSUED and
   VDSO (below: calls a measurement cannot be relied on to see); refused with EPERM on purpose:
   DENIED; anything else: ENOSYS.
4. check: every build again under that profile (SCMP_ACT_ERRNO); each must end as under podman's.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hack import seccomp_install  # noqa: E402
from testbed import seccomp  # noqa: E402
from testbed.apps import drone_app  # noqa: E402
from testbed.registry import push_busybox_base, start_registry  # noqa: E402

# Kept though a measurement may not show them, because the kernel decides when they are made:
# restart_syscall resumes a sleep a signal interrupted (a stopped and continued process); exit and
# exit_group never return, so strace -c cannot count them (step 2 sees them); rt_sigreturn ends
# every signal handler. And the vDSO's calls: the kernel answers them in user space, without a
# syscall, only where the node's clock source allows it (not on every VM): elsewhere they are syscalls.
KERNEL_ISSUED = ("restart_syscall", "exit", "exit_group", "rt_sigreturn")
VDSO = ("clock_gettime", "clock_getres", "gettimeofday", "time", "getcpu")
# Refused with EPERM, whatever the capabilities: the kernel's key store, tracing and reading other
# processes, BPF and perf, loading kernels and modules, userfaultfd, io_uring, and the rest of what
# podman's default refuses. Anything else the profile does not allow is ENOSYS, on which programs
# fall back to older calls (clone3 to clone, the new mount API to mount(2), ...).
DENIED = (
    "add_key",
    "keyctl",
    "request_key",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "kcmp",
    "pidfd_getfd",
    "bpf",
    "perf_event_open",
    "fanotify_init",
    "lookup_dcookie",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "acct",
    "quotactl",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "iopl",
    "ioperm",
    "clock_settime",
    "clock_adjtime",
    "settimeofday",
    "adjtimex",
    "open_by_handle_at",
    "name_to_handle_at",
    "vhangup",
    "uselib",
    "ustat",
    "sysfs",
    "vmsplice",
    "migrate_pages",
    "move_pages",
    "mbind",
    "set_mempolicy",
)
NAME = seccomp.REGISTRY_NAME  # the builds reach both registries by this name
STRACE = ["strace", "-f", "-qq", "-c", "-U", "name,calls,errors", "-S", "name"]

MULTISTAGE = """\
# COPY --from another stage, ADD of a folder and of a tar (unpacked), COPY --chown, RUN as a user.
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS stage
RUN mkdir -p /out && echo built > /out/stamp && ls -la /out > /out/listing
FROM ${BASE_IMAGE}
COPY --from=stage /out /opt/out
ADD drone_service /app/drone_service
ADD extra.tar /opt/extracted/
COPY --chown=65532:65532 pyproject.toml /app/owned.toml
RUN cat /opt/out/stamp && ls /opt/extracted && ls -l /app/owned.toml
USER 65532:65532
RUN id -u && env | grep -c PATH
ENTRYPOINT ["python3", "-m", "drone_service"]
"""
FAILING_RUN = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY drone_service /app/drone_service
RUN echo about to fail && exit 3
"""
LIBC = """\
# The C library's everyday calls (hack/seccomp_libc_workload.c) from glibc and musl (Alpine's), as root and as a user.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY libc/ /usr/local/bin/
RUN mkdir -m 1777 /tmp && for w in /usr/local/bin/libc-*; do $w; done
USER 65532:65532
RUN for w in /usr/local/bin/libc-*; do $w; done
"""
PYTHON = """\
# What Python apps' Containerfiles do: install a package, add a system user, a venv and pip, shell tools.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY . /src
RUN dpkg -i /src/probe.deb && dpkg -s druppie-probe | grep -q installed && apt-cache policy druppie-probe
RUN useradd --system --uid 10001 --no-create-home app && id app
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-index --no-cache-dir /src/dist/*.whl \\
    && /opt/venv/bin/python -c "import drone_service" && python3 -m compileall -q /src/drone_service
RUN set -e; ls -la / >/dev/null; cp -a /etc /tmp/etc; tar -C /tmp -czf /tmp/etc.tgz etc; mkdir /tmp/x; \\
    tar -C /tmp/x -xzf /tmp/etc.tgz; find /usr/lib/python3.11 -name "*.py" | wc -l; sha256sum /bin/ls; \\
    sed -i "s/^/# /" /tmp/etc/debian_version; chmod -R go-w /tmp/etc; chown -R 10001:10001 /tmp/x; \\
    ln -s /tmp/etc /tmp/l; stat /tmp/l >/dev/null; du -sh /tmp/x; touch -d @0 /tmp/x; date -u; nproc; \\
    perl -e "print qq(perl\\n)"; bash -c "exec 3>&1; echo bash >&3"; rm -rf /tmp/etc /tmp/x /tmp/etc.tgz /tmp/l
USER 10001
RUN /opt/venv/bin/python -c "import os, sys, subprocess, tempfile, threading, shutil; \\
    t = threading.Thread(target=print, args=('thread',)); t.start(); t.join(); \\
    d = tempfile.mkdtemp(); shutil.copytree('/opt/venv/bin', d + '/bin'); \\
    print(subprocess.run(['id', '-u'], capture_output=True, text=True).stdout.strip(), sys.version)" \\
    && getent hosts registry.druppie.test \\
    && python3 -c "import socket; print(socket.getaddrinfo('registry.druppie.test', 443)[0])"
ENTRYPOINT ["/opt/venv/bin/python", "-m", "drone_service"]
"""


@dataclass
class Case:
    name: str
    what: str
    variant: str | None = None
    containerfile: str = ""  # written into the checkout as Containerfile.measure
    base: str = "busybox"  # or "python": the debootstrap base
    version: str = ""  # the tag; by default one of its own
    image: str = ""  # the repository in the registry; by default the case's name
    registry: str = "plain"  # or "tls": TLS with a private CA (ca-certs workspace) and a password (dockerconfig)
    succeeds: bool = True
    app: Path | None = None  # an app of one's own (--app)
    prepare: Callable[[Path], None] | None = None
    found: set[str] = field(default_factory=set)


def commit_all(folder: Path) -> None:
    """The folder as a git checkout of one commit (what the build step checks it is given)."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    who = {"NAME": "dev", "EMAIL": "dev@example.org", "DATE": "1767225600 +0000"}  # a fixed date: one sha
    env |= {f"GIT_{role}_{key}": value for role in ("AUTHOR", "COMMITTER") for key, value in who.items()}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "measure"]):
        subprocess.run(["git", "-C", str(folder), *args], env=env, check=True, capture_output=True)


def libc_workloads(app: Path) -> None:
    """hack/seccomp_libc_workload.c built static with gcc (glibc) and, when there, musl-gcc (musl-tools)."""
    (app / "libc").mkdir()
    source = ROOT / "hack/seccomp_libc_workload.c"
    for compiler, name in (("gcc", "libc-glibc"), ("musl-gcc", "libc-musl")):
        if shutil.which(compiler):
            cmd = [compiler, "-static", "-O2", "-w", "-o", str(app / "libc" / name), str(source), "-lpthread"]
            subprocess.run(cmd, check=True, capture_output=True)
        else:
            print(f"   ({compiler} missing: no {name} workload; apt-get install musl-tools)", file=sys.stderr)


def tarball_of_the_app(app: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "notes.txt").write_text("unpacked by ADD\n")
        subprocess.run(["tar", "-C", tmp, "-cf", str(app / "extra.tar"), "notes.txt"], check=True)


def python_packages(app: Path) -> None:
    """A .deb of one file for dpkg, and the app as a wheel for pip (both offline)."""
    probe_deb(app)
    wheel_of(app)


def wheel_of(app: Path) -> None:
    """The app's package as a pure-Python wheel in dist/ (made here: the base has no `wheel`)."""
    name, version = "drone_service", "1.0.0"
    dist = app / "dist"
    dist.mkdir()
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/{p.name}": p.read_bytes() for p in sorted((app / name).glob("*.py"))}
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: drone-service\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: druppie\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [f"{path},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}" for path, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(dist / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        for path, data in files.items():
            whl.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), data)


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def probe_deb(app: Path) -> None:
    """A package of one file for `dpkg -i`."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "DEBIAN").mkdir()
        (root / "DEBIAN/control").write_text(
            "Package: druppie-probe\nVersion: 1.0\nArchitecture: all\nMaintainer: druppie <ci@example.org>\n"
            "Description: a file for measuring a build\n"
        )
        (root / "usr/share/druppie-probe").mkdir(parents=True)
        (root / "usr/share/druppie-probe/README").write_text("installed by apt-get\n")
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "--build", str(root), str(app / "probe.deb")],
            check=True,
            capture_output=True,
        )


def cases(app: Path | None = None, containerfile: str = "", base: str = "given") -> list[Case]:
    found = [
        Case("example-app", "examples/drone-service: COPY, ENV, USER; push of two tags, SBOM", version="1.0.0"),
        Case(
            "built-before",
            "the same commit again: the registry has it, handed over without building",
            version="1.0.0",
            image="example-app",
        ),
        Case(
            "tls-password",
            "the app to a registry with TLS (a private CA: ca-certs workspace) and a password (dockerconfig)",
            registry="tls",
        ),
        Case("run-instruction", "a RUN instruction (busybox sh, mkdir, id) in the chroot", "run-instruction"),
        Case(
            "multistage",
            "two stages, COPY --from, ADD of a folder and a tar, COPY --chown, RUN as 65532",
            containerfile=MULTISTAGE,
            prepare=tarball_of_the_app,
        ),
        Case(
            "libc",
            "a RUN step of static glibc and musl programs making the C library's everyday calls",
            containerfile=LIBC,
            prepare=libc_workloads,
        ),
        Case("broken-copy", "COPY of a missing folder: buildah fails", "broken-containerfile", succeeds=False),
        Case("failing-run", "a RUN step that exits 3: buildah fails", containerfile=FAILING_RUN, succeeds=False),
        Case(
            "python",
            "debootstrap bookworm + python3: dpkg -i, useradd, venv + pip install, coreutils, tar, perl, bash, "
            "python as 10001",
            containerfile=PYTHON,
            base="python",
            prepare=python_packages,
        ),
    ]
    if app:
        found.append(Case(f"app:{app.name}", f"{app}", app=app, containerfile=containerfile, base=base))
    return found


class Measurement:
    """The registries (by name: TinyDNS answers for REGISTRY_NAME), their bases, and the builds."""

    def __init__(self, work: Path) -> None:
        self.work, self.runs = work, 0
        self.phase = "trace"  # each phase pushes to repositories of its own, so each builds afresh
        self.dns = seccomp.TinyDNS()
        self.resolv_conf = self.dns.resolv_conf(work)
        (work / "registry").mkdir()
        self.registry = start_registry(work / "registry")
        self.tls, self.ca = seccomp.start_tls_registry(work / "tls-registry", "ci", secrets.token_hex(8))
        self.auth = work / "dockerconfig"
        self.tls.auth_file(self.auth)
        (self.auth / "config.json").write_text((self.auth / "config.json").read_text().replace("127.0.0.1", NAME))
        self.bases = {"busybox": push_busybox_base(self.registry)}
        tarball = seccomp.python_base_tarball()
        if tarball:
            self.bases["python"] = seccomp.push_rootfs(self.registry, tarball, "base/bookworm-python3")
        tls_base = f"{self.tls.host}/base/busybox:1"
        seccomp.copy_image(self.bases["busybox"], tls_base, self.ca, self.tls.user, self.tls.password)
        self.tls_bases = {"busybox": tls_base}

    def stop(self) -> None:
        self.registry.stop()
        self.tls.stop()
        self.dns.stop()

    def named(self, ref: str) -> str:
        """``ref`` by the registry's name rather than its address: the build looks it up."""
        return ref.replace("127.0.0.1", NAME, 1)

    def checkout(self, case: Case) -> Path:
        dest = self.work / "apps" / case.name.replace(":", "-")
        if dest.exists():
            return dest
        if case.app:
            shutil.copytree(case.app, dest, ignore=shutil.ignore_patterns(".git"))
        else:
            drone_app(dest, case.variant)
        if case.prepare:
            case.prepare(dest)
        if case.containerfile and not case.app:
            (dest / "Containerfile.measure").write_text(case.containerfile)
        commit_all(dest)
        return dest

    def build(
        self, case: Case, profile: Path, trace: bool = False, no_new_privileges: bool = True
    ) -> tuple[subprocess.CompletedProcess[str], str]:
        self.runs += 1
        app = self.checkout(case)
        mounts = [(app, "/workspace/source", "ro"), (self.ca, "/ca", "ro"), (self.auth, "/auth", "ro")]
        pod = seccomp.BuildPod(self.work / f"pod-{self.runs}", mounts=mounts, resolv_conf=self.resolv_conf)
        registry, bases = (self.tls, self.tls_bases) if case.registry == "tls" else (self.registry, self.bases)
        repository = f"{self.phase}/{case.image or case.name.replace(':', '-')}"
        args = ["--image", self.named(f"{registry.host}/{repository}")]
        if case.registry == "tls":
            args += ["--ca-certs", "/ca", "--dockerconfig", "/auth"]
        else:
            args += ["--no-tls-verify"]
        args += ["--version", case.version or f"1.0.{self.runs}"]
        if case.base in bases:
            args += ["--build-args", f"BASE_IMAGE={self.named(bases[case.base])}"]
        if case.containerfile:
            args += ["--containerfile", "Containerfile.measure" if not case.app else case.containerfile]
        out = pod.work / "tekton/home/strace.txt"
        wrap = [*STRACE, "-o", "/tekton/home/strace.txt"] if trace else []
        proc = pod.run(
            seccomp.step_argv("/workspace/source", *args, wrap=wrap),
            profile,
            no_new_privileges=no_new_privileges,
            caps=seccomp.profile_capabilities(),  # podman's default would refuse the nested chroot
        )
        traced = out.read_text() if trace and out.is_file() else ""
        pod.remove()  # the pod's emptyDir, podman's state
        return proc, traced

    def expected(self, case: Case, profile: Path, **kw) -> tuple[subprocess.CompletedProcess[str], str]:
        """The build, once more when it did not end as it should: buildah fails now and then whatever
        the profile (seen once under podman's default: "Close_Fd sealing memfd copy: Device or resource busy")."""
        proc, traced = self.build(case, profile, **kw)
        if (proc.returncode == 0) != case.succeeds:
            last = proc.stderr.strip().splitlines()[-1:] or [""]
            print(f"   {case.name}: exit {proc.returncode} ({last[0][:200]}); once more", file=sys.stderr)
            proc, traced = self.build(case, profile, **kw)
        return proc, traced


def strace_names(text: str) -> set[str]:
    """The syscall names of `strace -c -U name,calls,errors` output (the native ABI's table)."""
    names = set()
    for line in text.splitlines()[2:]:
        if line.startswith("-"):
            continue
        name = line.split()[0]
        if name == "total":
            break
        names.add(name)
    return names


def make_profile(names: set[str], reference: dict) -> dict:
    """A profile that allows ``names`` (with podman's conditions on their arguments), refuses DENIED
    with EPERM and anything else with ENOSYS, for the native x86_64 ABI only.

    It means the same to every runtime: podman and CRI-O read Docker's format, containerd (and so a
    kubelet on it) reads the file as the runtime-spec's LinuxSeccomp and ignores Docker's
    ``archMap``, ``includes`` and ``excludes``. So it has ``architectures`` and no conditions on
    capabilities: those of podman's rules are settled here for seccomp.profile_capabilities()."""
    caps = seccomp.profile_capabilities()
    always, some = seccomp.allowed(reference, caps)
    plain = sorted(n for n in names if n in always and n not in some)
    denied = sorted(n for n in DENIED if n not in names and seccomp.syscall_number(n) is not None)
    rules: list[dict] = [
        {
            "names": denied,
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
            "comment": "refused on purpose (EPERM): the key store, tracing and reading other processes, BPF, perf, "
            "kernels and modules, userfaultfd, io_uring, clocks, reboot, ...; anything else not allowed: ENOSYS",
        },
        {
            "names": plain,
            "action": "SCMP_ACT_ALLOW",
            "comment": "measured by hack/seccomp_measure.py: the build step (Tekton's entrypoint, druppie-step, git, "
            "buildah --isolation chroot and its RUN steps, syft) and runc; and the calls the kernel makes a program "
            "make (restart_syscall, exit, exit_group, rt_sigreturn) or answers in the vDSO where the node allows it",
        },
    ]
    for rule in reference["syscalls"]:  # a measured name podman allows for some arguments only: its rules
        kept = sorted(set(rule["names"]) & names & some)
        if not kept or not seccomp.applies(rule, caps):
            continue
        copy = {"names": kept, "action": rule["action"], "args": rule.get("args")}
        if rule.get("errnoRet") is not None:
            copy["errnoRet"] = rule["errnoRet"]
        copy = {k: v for k, v in copy.items() if v}
        if copy not in rules:
            rules.append(copy)
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        # The native ABI only: the builds make no 32-bit (x86, x32) syscall, and a 32-bit call is
        # then killed (SIGSYS) rather than let through the compat paths.
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": rules,
    }


def summary(profile: dict, caps: list[str]) -> tuple[set[str], set[str]]:
    always, some = seccomp.allowed(profile, caps)
    native = {n for n in always | some if seccomp.syscall_number(n) is not None}
    return native, {n for n in some if seccomp.syscall_number(n) is not None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"rewrite {seccomp.PROFILE.relative_to(ROOT)}")
    parser.add_argument("--app", type=Path, help="also measure the build of this app (a folder with a Containerfile)")
    parser.add_argument("--containerfile", default="", help="the --app's Containerfile, relative to it")
    parser.add_argument(
        "--base",
        choices=["given", "busybox", "python"],
        default="given",
        help="the --app's BASE_IMAGE build arg: its own FROM (must be reachable), or one of the offline bases",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", type=Path, help="write the measurement (names per build) there")
    parser.add_argument("--only", action="append", default=[], help="measure only this build (not with --write)")
    opts = parser.parse_args()
    if opts.only and opts.write:
        parser.error("--write needs every build measured: leave out --only")

    reference = seccomp.load(seccomp.PODMAN_DEFAULT)
    caps = seccomp.profile_capabilities()
    work = Path(tempfile.mkdtemp(prefix="druppie-seccomp-"))
    started = time.monotonic()
    m = Measurement(work)
    try:
        bases = m.bases
        todo = [c for c in cases(opts.app, opts.containerfile, opts.base) if c.base in bases or c.base == "given"]
        todo = [c for c in todo if not opts.only or c.name in opts.only]
        if not todo:
            raise SystemExit(f"nothing to measure: {opts.only} is none of {[c.name for c in cases()]}")
        skipped = [c.name for c in cases(opts.app, opts.containerfile, opts.base) if c not in todo and not opts.only]

        print(f"1. trace: each build under podman's default profile, in strace -f -c ({len(todo)} builds)")
        for case in todo:
            proc, text = m.expected(case, seccomp.PODMAN_DEFAULT, trace=True)
            if (proc.returncode == 0) != case.succeeds:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{case.name}: exit {proc.returncode} under podman's default profile")
            case.found = strace_names(text)
            if "32 bit mode" in text or "x32 mode" in text:
                print(f"   {case.name}: 32-bit syscalls too: this profile has the native ABI only", file=sys.stderr)
            print(f"   {case.name:16} {len(case.found):4} syscalls  ({case.what})")
        traced = set().union(*(c.found for c in todo))
        always, some = seccomp.allowed(reference, caps)
        refused = traced - always - some  # made, refused by podman's default, and the build works all the same
        measured = (traced | set(KERNEL_ISSUED) | set(VDSO)) - refused

        print("2. runtime: the builds again without strace, under the measured set, logging anything else")
        candidate = make_profile(measured, reference)
        candidate["defaultAction"] = "SCMP_ACT_LOG"
        candidate["syscalls"] = candidate["syscalls"][1:]  # nothing refused: log it
        log_profile = work / "log.json"
        log_profile.write_text(json.dumps(candidate))
        logged: dict[str, set[str]] = {}
        for case in todo:  # without no-new-privileges runc loads the filter earlier: once is enough
            for nnp in (True, False) if case is todo[0] else (True,):
                m.phase = "runtime" if nnp else "runtime-without-nnp"
                mark = seccomp.kmsg_mark()
                proc, _ = m.expected(case, log_profile, no_new_privileges=nnp)
                time.sleep(0.5)  # the kernel's audit thread writes the log a moment later
                for name, comms in seccomp.logged_syscalls(mark).items():
                    logged.setdefault(name, set()).update(comms)
                if (proc.returncode == 0) != case.succeeds:
                    raise SystemExit(
                        f"{case.name}: exit {proc.returncode} under the logging profile: {proc.stderr[-2000:]}"
                    )
        for name, comms in sorted(logged.items()):
            print(f"   {name:20} by {', '.join(sorted(comms))}")
        runtime = {n for n in logged if n in always | some}
        final = make_profile(measured | runtime, reference)

        print("3. check: every build under the new profile (unknown syscalls: ENOSYS)")
        new_profile = work / "druppie-build.json"
        new_profile.write_text(json.dumps(final, indent=2) + "\n")
        m.phase = "check"
        for case in todo:
            proc, _ = m.expected(case, new_profile)
            ok = (proc.returncode == 0) == case.succeeds
            print(f"   {case.name:16} {'as under podman default' if ok else 'DIFFERS: ' + proc.stderr[-2000:]}")
            if not ok:
                return 1

        before, _ = summary(reference, caps)
        after, _ = summary(final, caps)
        committed, _ = summary(seccomp.load(seccomp.PROFILE), caps)
        print(f"\nsyscalls a build pod may make on x86_64: podman's default {len(before)}, now {len(after)}")
        print(f"   made by the builds (strace): {len(traced)}")
        print(f"   made, refused by podman's default, and the builds work without: {sorted(refused)}")
        print(f"   needed by the runtime after loading the filter (log): {sorted(runtime - traced)}")
        print(f"   no longer allowed: {len(before - after)}: {' '.join(sorted(before - after))}")
        if after != committed:
            print(f"   the committed profile differs: +{sorted(after - committed)} -{sorted(committed - after)}")
        if skipped:
            print(f"   not measured (no base: run `make images` for the debootstrap one): {skipped}")
        if opts.json:
            record = {c.name: sorted(c.found) for c in todo}
            opts.json.write_text(json.dumps({"builds": record, "runtime": sorted(logged), "refused": sorted(refused)}))
        if opts.write:
            seccomp.PROFILE.write_text(json.dumps(final, indent=2) + "\n")
            for path, text in seccomp_install.expected().items():  # the installers' copies
                path.write_text(text)
            print(f"wrote {seccomp.PROFILE.relative_to(ROOT)} and the installers' copies (hack/seccomp_install.py)")
        print(f"({time.monotonic() - started:.0f} s, {m.runs} builds)")
        return 0
    finally:
        m.stop()
        if opts.keep:
            print(f"work folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
