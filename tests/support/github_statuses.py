"""A FAKE of GitHub's commit status endpoint, on loopback: not GitHub, and not tested against it.

GitHub cannot run here (no network, not free software), so the GitHub side of druppie-step
commit-status is checked against this stand-in, written from GitHub's REST documentation
("REST API endpoints for commit statuses", API version 2022-11-28), not from recorded traffic:

- ``POST /repos/{owner}/{repo}/statuses/{sha}`` with ``Authorization: Bearer <token>`` (or
  ``token <token>``), body ``{"state", "target_url", "description", "context"}``; ``state`` is one of
  error, failure, pending, success (no warning or skipped, which Gitea adds); ``context`` defaults to
  "default"; answers 201 with the status (``id``, ``state``, ``context``, ``description``,
  ``target_url``, ``creator``, ...).
- A bad token is 401 "Bad credentials"; a token without "Commit statuses: write" 403 "Resource not
  accessible by personal access token"; a bad state or a description over 140 characters 422
  "Validation Failed"; an unknown repository 404 "Not Found".
- ``GET /repos/{owner}/{repo}/commits/{ref}/statuses``: the statuses, newest first.

What the fake cannot tell: whether GitHub's real answers carry more or other fields, and its rate
limits. The Gitea side runs against the real Gitea (tests/integration/test_commit_status.py).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STATES = ("error", "failure", "pending", "success")
_POST = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/statuses/(?P<sha>[0-9a-f]{40})$")
_LIST = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/commits/(?P<sha>[^/]+)/statuses$")


@dataclass
class FakeGitHub:
    """``write_token`` may write statuses on ``repos``; ``read_token`` is a token without that permission."""

    repos: set[str]
    write_token: str
    read_token: str = "github_pat_read_only_0000000000"
    statuses: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> FakeGitHub:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _token(self) -> str:
                scheme, _, token = self.headers.get("Authorization", "").partition(" ")
                return token if scheme.lower() in ("bearer", "token") else ""

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": raw}
                )
                match = _POST.match(self.path)
                token = self._token()
                if token not in (fake.write_token, fake.read_token):
                    return self._answer(401, {"message": "Bad credentials", "status": "401"})
                if not match or f"{match['owner']}/{match['repo']}" not in fake.repos:
                    return self._answer(404, {"message": "Not Found", "status": "404"})
                if token != fake.write_token:
                    return self._answer(403, {"message": "Resource not accessible by personal access token"})
                body = json.loads(raw or b"{}")
                if body.get("state") not in STATES or len(body.get("description") or "") > 140:
                    return self._answer(422, {"message": "Validation Failed", "status": "422"})
                key = (f"{match['owner']}/{match['repo']}", match["sha"])
                status = {
                    "id": sum(len(v) for v in fake.statuses.values()) + 1,
                    "state": body["state"],
                    "context": body.get("context") or "default",
                    "description": body.get("description"),
                    "target_url": body.get("target_url"),
                    "creator": {"login": "druppie-status-bot"},
                }
                fake.statuses.setdefault(key, []).insert(0, status)
                return self._answer(201, status)

            def do_GET(self) -> None:
                match = _LIST.match(self.path)
                if not match:
                    return self._answer(404, {"message": "Not Found"})
                return self._answer(200, fake.statuses.get((f"{match['owner']}/{match['repo']}", match["sha"]), []))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def latest(self, repo: str, sha: str) -> dict[str, tuple[str, str]]:
        """Each context's newest (state, description), as GitHub's combined view shows it."""
        found: dict[str, tuple[str, str]] = {}
        for status in self.statuses.get((repo, sha), []):
            found.setdefault(status["context"], (status["state"], status["description"] or ""))
        return found
