"""Folders the steps create in a shared Tekton workspace.

The tasks of one pipeline share the source workspace but not a user: most steps run as 65532,
the build step as root without CAP_DAC_OVERRIDE (which cannot write into a folder 65532 owns
with mode 0755). A folder a step creates there (``.druppie/`` for reports) is therefore made
writable for all, so whichever task runs next can write its report beside the others.
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents with mode 0777 (whatever the umask); return it."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        os.chmod(folder, 0o777)  # noqa: S103 - shared by tasks under other uids, see above
    return path
