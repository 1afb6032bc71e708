"""Processes of the cluster: liveness, stopping a whole process group, readiness probes, logs."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import sys
import time
import urllib.request
from pathlib import Path


def log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours counts as dead (and is reaped here)
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:
        pass
    try:  # an exited process not yet reaped by its parent (or init) is a zombie: dead too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill(pid: int, timeout: float = 10) -> None:
    if not alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)


def http_request(url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None,
                 timeout: float = 10, context: ssl.SSLContext | None = None) -> http.client.HTTPResponse:  # fmt: skip
    """One HTTP request to an http(s) URL only (the cluster's own servers, never file: or a custom
    scheme); raises urllib.error.HTTPError for an error status. Use it as a context manager."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310 - checked
    return urllib.request.urlopen(request, timeout=timeout, context=context)  # noqa: S310 - scheme checked above


def http_ok(url: str, token: str | None = None) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # readiness probe only
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with http_request(url, headers=headers, timeout=2, context=ctx) as resp:
        return resp.status == 200


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def running_anywhere(name: str) -> bool:
    """Is a live process (not a zombie just killed) named ``name`` on this machine? pgrep counts
    zombies too, so right after a stop it would still see the process it stopped."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() == name and alive(int(proc.name)):
                return True
        except OSError:
            continue
    return False
