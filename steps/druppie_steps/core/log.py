"""Logging for steps: plain lines on stderr, redacted, with the elapsed time for long waits."""

import sys
import time

from .redact import redact

_started = time.monotonic()


def elapsed() -> float:
    return time.monotonic() - _started


def info(message: str) -> None:
    print(redact(message), file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(redact(f"warning: {message}"), file=sys.stderr, flush=True)


def progress(message: str) -> None:
    """A progress line with the time since the step started, e.g. ``[  12.3s] building``."""
    print(redact(f"[{elapsed():6.1f}s] {message}"), file=sys.stderr, flush=True)
