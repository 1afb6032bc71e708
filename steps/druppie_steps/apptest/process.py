"""Run a program with a deadline: its output streamed to the log (redacted), its tail kept.

The program runs in its own process group; at the deadline the whole group is killed, and when
the program ends, whatever it left running (a test server, a stray child) is killed too, so the
step never hangs on a child that holds the output pipe open.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core import log
from ..core.errors import StepError

TAIL_LINES = 60


@dataclass
class Finished:
    returncode: int
    tail: list[str]  # the last lines of output (stdout and stderr together)
    seconds: float

    def last_line(self, pattern: str = "") -> str:
        """The last non-empty line matching the regex ``pattern``, else the last non-empty line."""
        lines = [line.strip() for line in self.tail if line.strip()]
        if pattern:
            for line in reversed(lines):
                if re.search(pattern, line):
                    return line
        return lines[-1] if lines else ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    deadline: float,
    what: str,
    timeout_text: str,
    echo_prefix: str = "",
    on_line: Callable[[str], None] | None = None,
) -> Finished:
    """Run ``argv``; StepError when it cannot start or outlives ``deadline`` (time.monotonic())."""
    started = time.monotonic()
    if deadline - started <= 0:
        raise StepError(f"{what} did not start: the --timeout of {timeout_text} was used up before it")
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError as err:
        raise StepError(f"{what}: command not found: {argv[0]}") from err
    except PermissionError as err:
        raise StepError(f"{what}: {argv[0]} is not executable") from err
    except OSError as err:
        raise StepError(f"{what}: cannot start {argv[0]}: {err.strerror}") from err
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    stdout = proc.stdout
    if stdout is None:  # cannot be: stdout=PIPE above
        raise StepError(f"{what}: no output pipe for {argv[0]}")

    def pump() -> None:
        for raw in iter(stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            tail.append(line)
            if on_line:
                on_line(line)
            log.info(echo_prefix + line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        returncode = proc.wait(timeout=deadline - time.monotonic())
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
        reader.join(timeout=5)
        raise StepError(f"{what} did not finish within the --timeout of {timeout_text}") from None
    except BaseException:
        _kill_group(proc)
        raise
    _kill_group(proc)  # whatever it left running
    reader.join(timeout=5)
    return Finished(returncode, list(tail), time.monotonic() - started)
