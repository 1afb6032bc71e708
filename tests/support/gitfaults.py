"""A GitServer that fails on purpose: every request with an HTTP status, or the next N requests
whose path matches (an HTTP status, or a connection reset), for the steps' retry and error tests.

    server.fail_status, server.fail_path = 500, "git-receive-pack"  # every push answers 500
    server.fail_next(2, 503, "git-upload-pack")                      # the next 2 fetches answer 503
    server.reset_next(1, "git-receive-pack")                         # the next push: connection reset
    server.hang_next(1, "git-upload-pack", 30)                       # the next fetch: no answer for 30 s
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from localcluster.gitserver import GitServer


@dataclass
class Fault:
    """Answer the next ``count`` requests whose path contains ``path`` with ``status``, or reset them (0)."""

    count: int
    status: int
    path: str = ""
    hang: float = 0.0  # seconds to hold the connection without a word, then close it


class FaultyGitServer(GitServer):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fail_status = 0  # set to e.g. 500 to make requests fail...
        self.fail_path = ""  # ...those whose path contains this (e.g. "git-receive-pack": pushes only)
        self.faults: list[Fault] = []
        self._faults_lock = threading.Lock()

    def fail_next(self, count: int, status: int, path: str = "") -> Fault:
        """The next ``count`` requests whose path contains ``path`` get HTTP ``status``."""
        fault = Fault(count, status, path)
        with self._faults_lock:
            self.faults.append(fault)
        return fault

    def reset_next(self, count: int, path: str = "") -> Fault:
        """The next ``count`` requests whose path contains ``path`` have their connection reset."""
        return self.fail_next(count, 0, path)

    def hang_next(self, count: int, path: str = "", seconds: float = 30.0) -> Fault:
        """The next ``count`` requests whose path contains ``path`` get no answer for ``seconds`` (a hung server)."""
        fault = Fault(count, 0, path, hang=seconds)
        with self._faults_lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._faults_lock:
            self.faults.clear()

    def take_fault(self, path: str) -> Fault | None:
        with self._faults_lock:
            for fault in self.faults:
                if fault.count > 0 and fault.path in path:
                    fault.count -= 1
                    return fault
        return None

    def intercept(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.fail_status and self.fail_path in handler.path:
            handler.send_error(self.fail_status, "injected failure")
            return True
        fault = self.take_fault(handler.path)
        if fault and fault.hang:
            time.sleep(fault.hang)
            handler.close_connection = True
            return True
        if fault and fault.status:
            handler.send_error(fault.status, "injected failure")
            return True
        if fault:
            # SO_LINGER 0: close sends a TCP RST, what the client sees as "connection reset by peer".
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
            handler.close_connection = True
            return True
        return False
