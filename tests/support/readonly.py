"""Run a program with a folder mounted read-only, as Tekton mounts a readOnly workspace.

Root bypasses file permissions, so a chmod proves nothing in these tests; a read-only bind mount in
a private mount namespace (``unshare -m``) holds even for root and leaves the folder writable for
everyone else.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

_SCRIPT = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def can_mount_read_only() -> bool:
    """unshare and bind mounts are allowed here (root, or CAP_SYS_ADMIN)."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        return subprocess.run(read_only(Path(folder), ["true"]), capture_output=True).returncode == 0


def read_only(folder: Path, argv: list[str]) -> list[str]:
    """``argv`` run with ``folder`` read-only (in its own mount namespace)."""
    return ["unshare", "-m", "sh", "-c", _SCRIPT, "sh", str(folder), *argv]
