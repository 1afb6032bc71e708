"""seccomp-install: put the catalog's Localhost seccomp profiles on a node, and keep them there.

druppie-build names a Localhost seccomp profile (``druppie-build.json``); a kubelet looks for it in
its root folder's ``seccomp/`` (``/var/lib/kubelet/seccomp`` on most nodes). The catalog's
DaemonSet (install/seccomp) runs this on every node with that folder mounted and the profiles from
a ConfigMap:

    druppie-step seccomp-install --profiles /profiles --into /host/seccomp

It checks every profile first (nothing is written when one is bad), writes each one whose content
differs (a temporary file renamed over the old: a build starting meanwhile reads the old or the new
profile, never half of one), touches no other file, and then checks again every ``--interval``
seconds, so a profile someone deleted or edited on the node comes back. ``--check`` only compares
(the DaemonSet's readiness probe: ready means installed); ``--once`` installs and exits.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from pathlib import Path

import click

from .core.errors import InvalidInputError, StepError
from .core.log import info
from .core.options import DURATION, Duration, flag_option, option

ACTIONS = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
           "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"}  # fmt: skip


def read_profiles(folder: Path) -> dict[str, bytes]:
    """Every ``*.json`` in ``folder`` (a ConfigMap mount's visible files), each checked to be a seccomp
    profile in the runtime-spec's format. Raises InvalidInputError naming the first bad one."""
    if not folder.is_dir():
        raise InvalidInputError(f"invalid --profiles {folder}: not a folder")
    profiles = {}
    for path in sorted(folder.glob("*.json")):
        content = path.read_bytes()
        try:
            profile = json.loads(content)
        except ValueError as err:
            raise InvalidInputError(f"invalid --profiles {folder}: {path.name} is not JSON ({err})") from err
        problem = profile_problem(profile)
        if problem:
            raise InvalidInputError(f"invalid --profiles {folder}: {path.name} is not a seccomp profile: {problem}")
        profiles[path.name] = content
    if not profiles:
        raise InvalidInputError(f"invalid --profiles {folder}: it holds no *.json seccomp profile")
    return profiles


def profile_problem(profile: object) -> str | None:
    """What makes ``profile`` no seccomp profile a runtime loads, or None."""
    if not isinstance(profile, dict):
        return "not a JSON object"
    if profile.get("defaultAction") not in ACTIONS:
        return f"defaultAction {profile.get('defaultAction')!r} is none of {', '.join(sorted(ACTIONS))}"
    syscalls = profile.get("syscalls", [])
    if not isinstance(syscalls, list):
        return "syscalls is not a list"
    for rule in syscalls:
        if not isinstance(rule, dict) or not isinstance(rule.get("names"), list) or rule.get("action") not in ACTIONS:
            return f"a syscalls entry has no list of names or no valid action: {json.dumps(rule)[:80]}"
    return None


def differing(profiles: dict[str, bytes], into: Path) -> list[str]:
    """The names of the profiles that ``into`` lacks or holds with other content."""
    return [name for name, content in profiles.items() if not _same(into / name, content)]


def _same(path: Path, content: bytes) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.read_bytes() == content
    except OSError:
        return False


def install(profiles: dict[str, bytes], into: Path) -> list[str]:
    """Write the profiles that differ into ``into``, each atomically; returns their names."""
    written = []
    for name in differing(profiles, into):
        temporary = into / f".{name}.{os.getpid()}.tmp"
        try:
            with open(temporary, "wb") as out:
                out.write(profiles[name])
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, into / name)
        except OSError as err:
            temporary.unlink(missing_ok=True)
            raise StepError(f"cannot write {into / name}: {err.strerror or err}") from err
        written.append(name)
        info(f"installed {name} (sha256 {hashlib.sha256(profiles[name]).hexdigest()[:12]}) into {into}")
    return written


@click.command("seccomp-install")
@option("--profiles", "profiles_dir", required=True, help="Folder of the seccomp profiles (*.json) to install.")
@option("--into", "into", required=True, help="The node's kubelet seccomp folder, e.g. /var/lib/kubelet/seccomp.")
@option("--interval", type=DURATION, default="60s", help="How often to check that the profiles are still there.")
@flag_option("--once", default=False, help="Install and exit, instead of checking again until stopped.")
@flag_option("--check", default=False, help="Only compare: exit 1 naming what is missing or differs.")
def seccomp_install(profiles_dir: str, into: str, interval: Duration, once: bool, check: bool) -> None:
    """Install the catalog's seccomp profiles into a node's kubelet seccomp folder; keep them there."""
    profiles = read_profiles(Path(profiles_dir))
    target = Path(into)
    if not target.is_dir():
        raise InvalidInputError(f"invalid --into {into}: not a folder (mount the kubelet's seccomp folder there)")
    if check:
        stale = differing(profiles, target)
        if stale:
            raise StepError(f"not installed in {into}: {', '.join(stale)}")
        return
    if not install(profiles, target):
        info(f"{', '.join(profiles)} already installed in {into}")
    if once:
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    info(f"checking {into} every {interval}")
    while not stop.wait(interval.seconds):
        install(profiles, target)
    info("stopped")
