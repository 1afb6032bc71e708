"""The druppie-build step's container on this machine, to measure and test its seccomp profile.

``BuildPod`` runs a command as the Task runs its build step: root, every capability dropped but the
Task's four, no new privileges, the given seccomp profile, started by podman with runc. Its root
file system is this machine's ``/usr`` (read-only, Debian bookworm's buildah, git and python, as in
the druppie-build image) plus druppie-step from this checkout, syft and Tekton's entrypoint from the
cache; nothing comes from an image store. Podman's own state is private (``--root`` in the work
folder), so other podman users of the machine are not touched.

Also here: ``Containerd``, the same container by a containerd of its own (which reads a profile as
a kubelet's containerd does); the syscall numbers and names of libseccomp (what runc itself uses);
the kernel's log of ``SCMP_ACT_LOG`` (which syscalls a profile would have refused); reading a
profile; a DNS server and a TLS registry for builds that reach their registry by name; a probe.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml

from localcluster.ociimage import MANIFEST_TYPE, Image, _digest
from localcluster.toolchain import ROOT, cache_dir, toolchain

from .registry import Registry, free_port

TASK = ROOT / "tasks/druppie-build/0.1/druppie-build.yaml"
PROFILE = ROOT / "tasks/druppie-build/0.1/seccomp/druppie-build.json"
# Podman's default profile (Debian's containers-common), what druppie-build.json was before it was
# trimmed: the reference a trimmed profile is compared with, and the one measurements run under.
PODMAN_DEFAULT = Path("/usr/share/containers/seccomp.json")
RUNC = "/usr/sbin/runc"
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The machine's hard limits are below podman's defaults (nofile 1048576): ask for what is allowed.
LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"]
RESULTS = ("IMAGE_URL", "IMAGE_DIGEST", "IMAGE_TAGS", "sbom")
# The druppie-build image's containers configuration (vfs storage, policy, registries).
CONTAINERS_CONF = ROOT / "images/druppie-build/containers"
ARCH = "x86_64"  # the Task's platform (linux/amd64); the measurement is of this architecture


def step_security_context() -> dict:
    """The build step's securityContext, as the Task has it."""
    (step,) = yaml.safe_load(TASK.read_text())["spec"]["steps"]
    return step["securityContext"]


def capabilities() -> list[str]:
    return list(step_security_context()["capabilities"]["add"])


def profile_capabilities() -> list[str]:
    """What the profile is measured and settled for: the Task's capabilities and SYS_CHROOT, which
    buildah holds in the user namespace it makes for itself and chroots in (the pod has no
    SYS_CHROOT). podman's default allows ``chroot`` only with CAP_SYS_CHROOT, a condition that a
    kubelet's containerd ignores; the filter is the same in both namespaces."""
    caps = capabilities()
    return caps if "SYS_CHROOT" in caps else [*caps, "SYS_CHROOT"]


def entrypoint_binary() -> Path | None:
    """Tekton's entrypoint (PID 1 of every step container), built by hack/cluster-build.sh."""
    path = cache_dir() / f"tekton-pipeline-{toolchain()['TEKTON_PIPELINE_VERSION']}" / "bin" / "entrypoint"
    return path if path.is_file() else None


def syft_dir() -> Path:
    return cache_dir() / f"syft-{toolchain()['SYFT_VERSION']}"


@dataclass
class BuildPod:
    """A container like the build step's; ``work`` keeps podman's state, the root fs and the storage."""

    work: Path
    mounts: list[tuple[Path, str, str]] = field(default_factory=list)  # (host, container, "ro"/"rw")
    resolv_conf: Path | None = None  # the pod's /etc/resolv.conf (default: podman's, the machine's)

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.rootfs = self.work / "rootfs"
        for folder in ("usr", "etc/containers", "tmp", "root", "proc", "sys", "dev", "var/tmp", "run"):
            (self.rootfs / folder).mkdir(parents=True, exist_ok=True)
        for link in ("bin", "sbin", "lib", "lib64"):  # Debian's merged /usr
            if not (self.rootfs / link).is_symlink():
                (self.rootfs / link).symlink_to(f"usr/{link}")
        (self.rootfs / "tmp").chmod(0o1777)
        (self.rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (self.rootfs / "etc/group").write_text("root:x:0:\n")
        (self.rootfs / "etc/hosts").write_text("127.0.0.1 localhost\n")
        (self.rootfs / "etc/nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")  # Debian's
        for conf in CONTAINERS_CONF.iterdir():
            shutil.copy(conf, self.rootfs / "etc/containers" / conf.name)
        # The pod's volumes: buildah's storage (an emptyDir), Tekton's folders, the reports.
        for folder in ("storage", "tekton/results", "tekton/home", "tekton/run", "reports"):
            (self.work / folder).mkdir(parents=True, exist_ok=True)

    def podman(self) -> list[str]:
        if not hasattr(self, "state"):  # podman wants its runroot shorter than 50 characters
            self.state = Path(tempfile.mkdtemp(prefix="druppie-pod-"))
        state = self.state
        return [
            "podman",
            "--root",
            str(state / "root"),
            "--runroot",
            str(state / "run"),
            "--tmpdir",
            str(state / "tmp"),
            "--storage-driver",
            "vfs",
            "--runtime",
            RUNC,
            "--events-backend",
            "file",
            "--cgroup-manager",
            "cgroupfs",
        ]

    def volumes(self) -> list[tuple[Path, str, str]]:
        """The pod's mounts: the machine's /usr, this checkout, the storage and Tekton's folders."""
        volumes = [
            (Path("/usr"), "/usr", "ro"),
            (ROOT, str(ROOT), "ro"),
            (self.work / "storage", "/var/lib/containers", "rw"),
            (self.work / "tekton", "/tekton", "rw"),
            (self.work / "reports", "/druppie/reports", "rw"),
            *self.mounts,
        ]
        interpreter = Path(sys.base_prefix)  # the venv's python (pyenv's, or /usr's)
        if not str(interpreter).startswith("/usr/"):
            volumes.append((interpreter, str(interpreter), "ro"))
        for extra in (syft_dir(), entrypoint_binary()):
            if extra is not None and extra.exists():
                folder = extra if extra.is_dir() else extra.parent
                volumes.append((folder, str(folder), "ro"))
        if self.resolv_conf:
            volumes.append((self.resolv_conf, "/etc/resolv.conf", "ro"))
        return volumes

    @staticmethod
    def environment() -> dict[str, str]:
        path = ":".join([str(ROOT / ".venv/bin"), str(syft_dir()), "/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin"])
        return {"PATH": path, "HOME": "/tekton/home", "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}

    def run(
        self,
        argv: Sequence[str],
        profile: Path,
        env: dict[str, str] | None = None,
        no_new_privileges: bool = True,
        timeout: float = 900,
        caps: Sequence[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the container under ``profile`` with ``caps`` (the Task's unless given);
        its output, not raised on failure."""
        ctx = step_security_context()
        volumes = self.volumes()
        cmd = [
            *self.podman(),
            "run",
            "--rm",
            "--network",
            "host",  # the test registry listens on the machine's loopback
            *LIMITS,
            "--user",
            str(ctx["runAsUser"]),
            "--cap-drop",
            "ALL",
            "--cap-add",
            ",".join(capabilities() if caps is None else caps),
            "--security-opt",
            f"seccomp={profile}",
            *(["--security-opt", "no-new-privileges"] if no_new_privileges else []),
            "--workdir",
            "/druppie/reports",
        ]
        for key, value in {**self.environment(), **(env or {})}.items():
            cmd += ["--env", f"{key}={value}"]
        for host, inside, mode in volumes:
            cmd += ["--volume", f"{host}:{inside}:{mode}"]
        cmd += ["--rootfs", str(self.rootfs), *argv]  # options before --rootfs: after it, all is the command
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def remove(self) -> None:
        """Remove the pod's folders: its storage (an emptyDir's worth) and podman's state."""
        for folder in (self.work, getattr(self, "state", None)):
            if folder:
                shutil.rmtree(folder, ignore_errors=True)


def step_argv(source: str, *args: str, wrap: Sequence[str] = ()) -> list[str]:
    """``druppie-step build`` as the Task's step runs it: under Tekton's entrypoint when it is built."""
    step = [str(ROOT / ".venv/bin/druppie-step"), "build", "--source", source, "--results-dir", "/tekton/results"]
    entrypoint = entrypoint_binary()
    if entrypoint is None:
        return [*wrap, *step, *args]
    return [
        *wrap,
        str(entrypoint),
        "-post_file",
        "/tekton/run/0/out",
        "-termination_path",
        "/tekton/termination",
        "-step_metadata_dir",
        "/tekton/run/0/status",
        "-results",
        ",".join(RESULTS),
        "-entrypoint",
        step[0],
        "--",
        *step[1:],
        *args,
    ]


def results(pod: BuildPod) -> dict[str, str]:
    folder = pod.work / "tekton/results"
    return {p.name: p.read_text() for p in folder.iterdir()} if folder.is_dir() else {}


# ---- syscalls: names and numbers as libseccomp (runc's) knows them ------------------------------


def _libseccomp() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    return lib


def _arch_token(arch: str = ARCH) -> int:
    return _libseccomp().seccomp_arch_resolve_name(arch.encode())


def syscall_number(name: str, arch: str = ARCH) -> int | None:
    """The number of ``name`` on ``arch`` (None when that architecture has no such syscall)."""
    number = _libseccomp().seccomp_syscall_resolve_name_arch(_arch_token(arch), name.encode())
    return number if number >= 0 else None


def syscall_name(number: int, arch: str = ARCH) -> str:
    lib = _libseccomp()
    pointer = lib.seccomp_syscall_resolve_num_arch(_arch_token(arch), number)
    if not pointer:
        return f"syscall_{number}"
    name = ctypes.string_at(pointer).decode()
    ctypes.CDLL(ctypes.util.find_library("c")).free(ctypes.c_void_p(pointer))
    return name


# ---- profiles -----------------------------------------------------------------------------------

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def applies(rule: dict, caps: Iterable[str], arch: str = ARCH) -> bool:
    """Whether a rule of Docker's format holds for a container with ``caps`` on ``arch``."""
    have = {c if c.startswith("CAP_") else f"CAP_{c}" for c in caps}
    includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
    if includes.get("caps") and not set(includes["caps"]) <= have:
        return False
    if excludes.get("caps") and set(excludes["caps"]) & have:
        return False
    if includes.get("arches") and GO_ARCH.get(arch, arch) not in includes["arches"]:
        return False
    return not (excludes.get("arches") and GO_ARCH.get(arch, arch) in excludes["arches"])


def allowed(profile: dict, caps: Iterable[str], arch: str = ARCH) -> tuple[set[str], set[str]]:
    """What ``profile`` lets a container with ``caps`` on ``arch`` call: (names allowed whatever the
    arguments, names allowed for some arguments only)."""
    always: set[str] = set()
    some: set[str] = set()
    for rule in profile["syscalls"]:
        if rule["action"] == "SCMP_ACT_ALLOW" and applies(rule, caps, arch):
            (some if rule.get("args") else always).update(rule["names"])
    return always, some - always


def load(path: Path) -> dict:
    return json.loads(path.read_text())


# ---- the kernel's log of SCMP_ACT_LOG ------------------------------------------------------------

_AUDIT = re.compile(r"type=1326 .*?\bpid=(\d+)\b.*?\bcomm=\"([^\"]*)\".*?\bsyscall=(\d+)\b.*?\bcode=0x7ffc0000")


def kmsg_mark() -> int:
    """The sequence number of the newest kernel log record."""
    last = 0
    for seq, _ in _kmsg():
        last = seq
    return last


def logged_syscalls(since: int) -> dict[str, set[str]]:
    """Syscalls a profile's SCMP_ACT_LOG let through after ``since``: {name: {comm, ...}}."""
    found: dict[str, set[str]] = {}
    for seq, message in _kmsg():
        match = _AUDIT.search(message)
        if seq > since and match:
            found.setdefault(syscall_name(int(match.group(3))), set()).add(match.group(2))
    return found


def _kmsg() -> list[tuple[int, str]]:
    records = []
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                raw = os.read(fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # a record was overwritten while reading: go on
                continue
            head, _, message = raw.decode(errors="replace").partition(";")
            records.append((int(head.split(",")[1]), message))
    finally:
        os.close(fd)
    return records


# ---- base images from a root file system tarball -------------------------------------------------


def push_rootfs(registry: Registry, tarball: Path, repository: str, tag: str = "1") -> str:
    """An image of one layer, ``tarball`` (e.g. debootstrap's, hack/images.sh), pushed; its reference."""
    from localcluster.ociimage import push

    layer = tarball.read_bytes()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Cmd": ["/bin/sh"],
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            },
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "testbed.seccomp"}],
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer), "size": len(layer)}
            ],
        },
        sort_keys=True,
    ).encode()
    push(Image(layer, config, manifest), registry.host, repository, tag)
    return f"{registry.host}/{repository}:{tag}"


def python_base_tarball() -> Path | None:
    """The offline bookworm + python3 base hack/images.sh made (cached), if it did."""
    found = sorted((cache_dir() / "base-images").glob("bookworm-python3-*.tar"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


# ---- a probe: which syscalls a profile lets through ------------------------------------------------

PROBE_C = r"""
/* One line per syscall: "name=ok" when the kernel ran it, else the errno's name (EPERM, ENOSYS, ...).
   With the argument int80 it makes one 32-bit (int 0x80) getpid instead. Static: runs in any image. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

static void report(const char *name, long ret) {
    printf("%s=%s\n", name, ret >= 0 ? "ok" : strerrorname_np(errno));
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "int80") == 0) {
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory"); /* i386 getpid */
        printf("int80=%s\n", ret >= 0 ? "ok" : strerrorname_np((int)-ret));
        return 0;
    }
    report("getpid", syscall(SYS_getpid));
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session keyring */, 1));
    report("add_key", syscall(SYS_add_key, "user", "druppie-probe", "x", 1, -2 /* process keyring */));
    report("request_key", syscall(SYS_request_key, "user", "druppie-probe-none", NULL, 0));
    report("ptrace", syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("bpf", syscall(SYS_bpf, 0, NULL, 0));
    return 0;
}
"""


def build_probe(dest: Path) -> Path:
    """The probe as a static binary at ``dest`` (gcc, glibc's static libc)."""
    source = dest.with_suffix(".c")
    source.write_text(PROBE_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(dest), str(source)], check=True, capture_output=True)
    return dest


def probe_lines(output: str) -> dict[str, str]:
    """The probe's lines in ``output`` (a build log, say): {syscall: "ok" or errno name}."""
    found = re.findall(r"^(getpid|keyctl|add_key|request_key|ptrace|userfaultfd|perf_event_open|bpf|int80)=(\w+)$",
                       output, re.MULTILINE)  # fmt: skip
    return dict(found)


# ---- names: a DNS server on loopback, and a registry with TLS and a password ---------------------

ZONE = "druppie.test"
REGISTRY_NAME = f"registry.{ZONE}"


def dns_address() -> str:
    """The machine's own address (the default route's source): buildah hands a pod's nameserver to
    RUN steps unless it is a loopback one, which it swaps for public servers."""
    route = subprocess.run(["ip", "-4", "route", "get", "192.0.2.1"], capture_output=True, text=True).stdout
    found = re.search(r"\bsrc (\d+\.\d+\.\d+\.\d+)", route)
    return found.group(1) if found else "127.0.0.153"


class TinyDNS:
    """Answers A queries for names under ZONE with 127.0.0.1 (NXDOMAIN for other names, no records
    for other types) on port 53 (UDP) of ``address``: so that the step, buildah and RUN steps look a
    registry up by name, as they do in a cluster, and make the C library's and Go's DNS calls."""

    def __init__(self, address: str = "") -> None:
        address = address or dns_address()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.address = address
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return
            answer = self.answer(query)
            if answer:
                self.sock.sendto(answer, peer)

    @staticmethod
    def answer(query: bytes) -> bytes:
        if len(query) < 12:
            return b""
        labels, i = [], 12
        while i < len(query) and query[i]:
            labels.append(query[i + 1 : i + 1 + query[i]].decode(errors="replace"))
            i += 1 + query[i]
        qtype = struct.unpack("!H", query[i + 1 : i + 3])[0] if i + 3 <= len(query) else 0
        question = query[12 : i + 5]
        name = ".".join(labels).lower()
        ours = name == ZONE or name.endswith("." + ZONE)
        records = b""
        if ours and qtype == 1:  # A: one record, name by pointer to the question
            records = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + bytes([127, 0, 0, 1])
        flags = 0x8180 if ours else 0x8183  # a response, recursion available; NXDOMAIN for others
        header = query[:2] + struct.pack("!HHHHH", flags, 1, 1 if records else 0, 0, 0)
        return header + question + records

    def stop(self) -> None:
        self.sock.close()

    def resolv_conf(self, folder: Path) -> Path:
        path = folder / "resolv.conf"
        path.write_text(f"nameserver {self.address}\noptions timeout:1 attempts:1\n")
        return path


def start_tls_registry(root: Path, user: str, password: str) -> tuple[Registry, Path]:
    """docker-registry over TLS (a certificate of its own CA, for REGISTRY_NAME and 127.0.0.1) that
    wants a password; (the registry, a folder with the CA as *.crt, the ca-certs workspace)."""
    ca = root / "ca"
    ca.mkdir(parents=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={REGISTRY_NAME}",
         "-addext", f"subjectAltName=DNS:{REGISTRY_NAME},IP:127.0.0.1",
         "-keyout", str(root / "registry.key"), "-out", str(ca / "registry.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    (root / "htpasswd").write_text(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
    port = free_port()
    config = root / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {ca / 'registry.crt'}\n"
        f"    key: {root / 'registry.key'}\nlog:\n  level: warn\n"
        f"auth:\n  htpasswd:\n    realm: druppie-test\n    path: {root / 'htpasswd'}\n"
    )
    process = subprocess.Popen(
        [shutil.which("docker-registry") or "docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        probe = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ca / "registry.crt"),
             f"https://127.0.0.1:{port}/v2/"],
            capture_output=True, text=True,
        )  # fmt: skip
        if probe.stdout == "401":
            return Registry(f"127.0.0.1:{port}", process, user, password), ca
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("docker-registry with TLS did not start")


def copy_image(source: str, dest: str, ca: Path, user: str, password: str) -> None:
    """skopeo copy from a plain-HTTP registry to one with TLS and a password."""
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-cert-dir", str(ca),
         "--dest-creds", f"{user}:{password}", f"docker://{source}", f"docker://{dest}"],
        check=True, capture_output=True,
    )  # fmt: skip


# ---- containerd, which reads a Localhost profile as a kubelet has it read ------------------------

# What containerd's default spec grants and the build step drops (it keeps the Task's four).
CONTAINERD_DEFAULT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                           "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")  # fmt: skip


class Containerd:
    """A containerd of its own (its root, state and socket in a folder of its own; no CRI plugin), so
    that `ctr run --seccomp-profile` loads a profile as the kubelet's containerd loads a Localhost one:
    as the runtime-spec's LinuxSeccomp (contrib/seccomp.WithProfile), not in Docker's format."""

    NAMESPACE = "druppie-seccomp"
    # containerd v2 splits the CRI into three plugins; v1.6 has the first only (it ignores the others).
    CRI_PLUGINS = ("io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime")

    def __init__(self, bin_dir: Path | None = None) -> None:
        """Debian's containerd, or the one in ``bin_dir`` (containerd, ctr and its runc shim, e.g.
        containerd v2 from hack/cluster-build.sh userns: its shim is found on PATH)."""
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="druppie-ctrd-"))  # short: sockets live under it
        self.address = str(self.dir / "containerd.sock")
        config = self.dir / "config.toml"
        disabled = ", ".join(f'"{p}"' for p in self.CRI_PLUGINS)
        config.write_text(
            f'version = 2\nroot = "{self.dir / "root"}"\nstate = "{self.dir / "state"}"\n'
            f'disabled_plugins = [{disabled}]\n[grpc]\n  address = "{self.address}"\n'
        )
        self.log = (self.dir / "containerd.log").open("w")
        env = dict(os.environ)
        if bin_dir is not None:
            env["PATH"] = f"{bin_dir}:{env.get('PATH', DEBIAN_PATH)}"
        self.process = subprocess.Popen(
            [self.binary("containerd"), "--config", str(config)], stdout=self.log, stderr=self.log, env=env
        )
        for _ in range(300):
            if subprocess.run(self.ctr("version"), capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"containerd did not start: {(self.dir / 'containerd.log').read_text()[-2000:]}")

    def binary(self, name: str) -> str:
        return str(self.bin_dir / name) if self.bin_dir else name

    def ctr(self, *args: str) -> list[str]:
        return [self.binary("ctr"), "--address", self.address, "--namespace", self.NAMESPACE, *args]

    def run(self, pod: BuildPod, argv: Sequence[str], profile: Path, env: dict[str, str] | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """``argv`` in ``pod``'s root file system and mounts, by containerd and runc, under ``profile``
        (no no-new-privileges: ctr has no flag for it, so runc loads the filter earlier, as measured)."""
        keep = set(capabilities())
        cmd = self.ctr("run", "--rm", "--net-host", "--seccomp", "--seccomp-profile", str(profile))
        for cap in CONTAINERD_DEFAULT_CAPS:
            if cap not in keep:
                cmd += ["--cap-drop", f"CAP_{cap}"]
        for host, inside, mode in pod.volumes():
            cmd += ["--mount", f"type=bind,src={host},dst={inside},options=rbind:{mode}"]
        for key, value in {**pod.environment(), **(env or {})}.items():
            cmd += ["--env", f"{key}={value}"]
        cmd += ["--cwd", "/druppie/reports", "--rootfs", str(pod.rootfs), f"c{secrets.token_hex(4)}", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        subprocess.run(["umount", "-R", str(self.dir)], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
