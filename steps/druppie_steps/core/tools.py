"""Where a step finds the programs it runs (gitleaks, osv-scanner, trivy, syft, buildah).

On PATH first: the step images put them in /usr/local/bin. Then in the folder of the running
interpreter: ``make setup`` links them into .venv/bin, and ``.venv/bin/druppie-step`` run without
an activated venv has that folder in ``sys.executable`` but not on PATH.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .errors import StepError


def interpreter_dir() -> Path:
    """The folder of the running interpreter, as invoked (a venv's bin, not the Python it links to)."""
    return Path(sys.executable).parent


def which(name: str) -> str | None:
    """The program ``name`` on PATH, else beside the interpreter; None when neither has it."""
    return shutil.which(name) or shutil.which(name, path=str(interpreter_dir()))


def require(name: str, hint: str) -> str:
    """The program's path, or a StepError saying where it was looked for and where it should be."""
    found = which(name)
    if not found:
        raise StepError(f"{name} not found on PATH or in {interpreter_dir()}: {hint}")
    return found
