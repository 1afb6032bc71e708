"""Tekton results: one file per result in the results directory, written without a trailing newline."""

import os
from pathlib import Path

from .errors import StepError
from .redact import redact


def write_results(results_dir: str | None, results: dict[str, str]) -> None:
    """Write every result, or none: files go to a temporary name first, then are renamed."""
    if not results_dir:
        return
    directory = Path(results_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staged = []
        for name, value in results.items():
            tmp = directory / f".{name}.tmp"
            tmp.write_text(redact(value), encoding="utf-8")
            staged.append((tmp, directory / name))
        for tmp, final in staged:
            os.replace(tmp, final)
    except OSError as err:
        raise StepError(f"cannot write results to {results_dir}: {err.strerror}") from err


def summary_line(step: str, results: dict[str, str]) -> str:
    """The one-line summary printed on stdout, e.g. ``tag-commit: changed=true commit=abc...``."""
    return redact(f"{step}: " + " ".join(f"{k}={v}" for k, v in results.items()))
