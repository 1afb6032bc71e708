#!/usr/bin/env python3
"""Which capabilities, seccomp profile and /proc mount druppie-build needs in a user-namespaced pod.

Runs `druppie-step build` (the Task's step: registry checks, buildah, push, digest check, SBOM) in
the build step's container as a kubelet runs it with ``hostUsers: false`` on a node with containerd
v2.4.2 and runc v1.5.3 (testbed/userns.py; both built by hack/cluster-build.sh userns), for every
combination of

- capabilities: none (drop ALL), SETUID+SETGID, those and SETFCAP (the Task's three), the four the
  Task had before (and SYS_CHROOT), containerd's default fourteen (nothing dropped), the four or the
  fourteen plus SYS_ADMIN
  (which, like every capability in a user namespace, acts on that namespace's own things only);
- seccomp: RuntimeDefault (containerd's default profile, made by containerd for those
  capabilities) or Localhost druppie-build.json;
- procMount: Default (the kubelet's masked and read-only paths) or Unmasked;

and two builds: the example app (COPY, ENV, USER) and the app with a RUN step (its run-instruction
variant). The same with ``hostUsers: true`` for two, three and four capabilities, for comparison.
Prints one line per run: the setting, ok or the reason the build failed (the kernel's refusal as
buildah reports it: the step's own last line is often only buildah's "Unable to determine exit
status"). The registry and the busybox base are on loopback; nothing leaves the machine. About 5
minutes on two busy cores (57 builds; the failing ones stop within a second).

    .venv/bin/python hack/userns_measure.py [--app example|run] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hack.seccomp_measure import commit_all  # noqa: E402
from testbed import seccomp  # noqa: E402
from testbed.apps import drone_app  # noqa: E402
from testbed.registry import push_busybox_base, start_registry  # noqa: E402
from testbed.userns import FOUR, Setting, UsernsNode  # noqa: E402

CAPS = {
    "none": (),
    "SETUID+SETGID": ("SETUID", "SETGID"),
    "three": ("SETUID", "SETGID", "SETFCAP"),
    "four": FOUR,
    "default": seccomp.CONTAINERD_DEFAULT_CAPS,
    "four+SYS_ADMIN": (*FOUR, "SYS_ADMIN"),
    "default+SYS_ADMIN": (*seccomp.CONTAINERD_DEFAULT_CAPS, "SYS_ADMIN"),
}
APPS = {"example": None, "run": "run-instruction"}  # the drone app and its variant with a RUN step
# The lines of a failed build worth quoting, most telling first: the kernel's refusal as buildah
# reports it, else runc's or the step's own error line.
REASONS = (
    re.compile(r"Error during unshare\(CLONE_NEWUSER\): .*"),
    re.compile(r"writing .{0,20} to /proc/\d+/[ug]id_map: (?:write /proc/\d+/[ug]id_map: )?[a-z ]+"),
    re.compile(r"setting up pivot dir: .*?: permission denied"),
    re.compile(r"chroot.*: operation not permitted"),
    re.compile(r"^(?:ctr: .*|Error: .*|error: .*)$", re.MULTILINE),
)


def settings(quick: bool = False) -> list[tuple[str, Setting]]:
    """Every combination in user namespaces, then the host user namespace's for comparison:
    (the capabilities' name, the setting)."""
    found = [
        (name, Setting(caps=caps, seccomp=profile, proc=proc))
        for (name, caps), profile, proc in itertools.product(
            CAPS.items(), ("RuntimeDefault", "Localhost"), ("Default", "Unmasked")
        )
    ]
    if quick:  # the interesting corners only
        found = [(n, s) for n, s in found if n in ("three", "four", "default+SYS_ADMIN") and s.proc == "Default"]
    found += [
        (name, Setting(caps=CAPS[name], seccomp=p, host_users=True))
        for name, p in itertools.product(("SETUID+SETGID", "three", "four"), ("RuntimeDefault", "Localhost"))
    ]
    return found


def outcome(proc: subprocess.CompletedProcess[str], results: dict[str, str]) -> str:
    """The word ok for a build that pushed and wrote its results, else its most telling error line."""
    if proc.returncode == 0 and set(results) == set(seccomp.RESULTS):
        return "ok"
    output = proc.stderr + proc.stdout
    for reason in REASONS:
        found = reason.findall(output)
        if found:
            return re.sub(r"/proc/\d+/", "/proc/<pid>/", found[-1]).strip()
    return output.strip()[-400:]


def build(node: UsernsNode, registry, app: Path, setting: Setting, version: str, repo: str) -> tuple[str, float]:
    pod = node.pod(mounts=[(app, "/workspace/source", "ro")])
    started = time.monotonic()
    try:
        argv = seccomp.step_argv(
            "/workspace/source",
            *("--image", f"{registry.host}/{repo}", "--version", version, "--no-tls-verify"),
            *("--build-args", f"BASE_IMAGE={registry.base}"),
        )
        proc = node.run(pod, argv, setting)
        return outcome(proc, seccomp.results(pod)), time.monotonic() - started
    finally:
        pod.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=[*APPS, "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="only the four and four+SYS_ADMIN")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="druppie-userns-measure-"))
    (work / "registry").mkdir()
    registry = start_registry(work / "registry")
    registry.base = push_busybox_base(registry)
    node = UsernsNode()
    try:
        apps = list(APPS) if args.app == "both" else [args.app]
        for name in apps:
            app = drone_app(work / f"app-{name}", APPS[name])
            commit_all(app)
            for number, (caps, setting) in enumerate(settings(args.quick)):
                result, seconds = build(node, registry, app, setting, f"1.0.{number}", f"druppie/userns-{name}")
                users = "host" if setting.host_users else "pod"
                print(f"{name:8} users={users:4} caps={caps:17} seccomp={setting.seccomp:14} "
                      f"proc={setting.proc:8} {seconds:3.0f}s  {result}", flush=True)  # fmt: skip
    finally:
        node.stop()
        registry.stop()
        subprocess.run(["rm", "-rf", str(work)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
