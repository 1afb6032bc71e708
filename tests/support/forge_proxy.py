"""A reverse proxy in front of a real forge's API that fails on purpose, for tag-commit's API error tests.

    with ForgeProxy(gitea.base_url) as proxy:             # proxy.url + "/api/v1" is Gitea's API
        proxy.fail_next(1, 500, "POST", "/pulls")          # the next POST to .../pulls answers 500
        hold = proxy.hold_next("PATCH", "/pulls/")         # the next PATCH waits: hold.arrived.wait(),
        ...                                                # then hold.release.set() passes it on
        ...
    proxy.requests                                         # [(method, path)] of every request

Everything else is passed to the forge unchanged (method, path, body, Authorization, Content-Type,
Accept) and its answer returned as it came, so the step talks to the real Gitea through it.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PASSED_HEADERS = ("Authorization", "Content-Type", "Accept", "User-Agent")


@dataclass
class Hold:
    method: str
    path: str
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Fault:
    count: int
    status: int
    method: str
    path: str  # a part of the request's path


class ForgeProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.holds: list[Hold] = []
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                    fault = next(
                        (f for f in proxy.faults if f.count and f.method == self.command and f.path in self.path), None
                    )
                    if fault:
                        fault.count -= 1
                    hold = next((h for h in proxy.holds if h.method == self.command and h.path in self.path), None)
                    if hold:
                        proxy.holds.remove(hold)
                if hold:
                    hold.arrived.set()
                    hold.release.wait(60)
                if fault:
                    return self._answer(fault.status, b'{"message":"injected by the test proxy"}')
                headers = {h: self.headers[h] for h in PASSED_HEADERS if self.headers.get(h)}
                request = urllib.request.Request(  # noqa: S310 - the test's own forge, http
                    proxy.upstream + self.path, body, headers, method=self.command
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - see above
                        self._answer(resp.status, resp.read())
                except urllib.error.HTTPError as err:
                    self._answer(err.code, err.read())

            def _answer(self, status: int, content: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_PATCH(self) -> None:
                self._handle()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def fail_next(self, count: int, status: int, method: str, path: str = "") -> Fault:
        fault = Fault(count, status, method, path)
        with self._lock:
            self.faults.append(fault)
        return fault

    def hold_next(self, method: str, path: str = "") -> Hold:
        hold = Hold(method, path)
        with self._lock:
            self.holds.append(hold)
        return hold

    def __enter__(self) -> ForgeProxy:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for hold in self.holds:
            hold.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
