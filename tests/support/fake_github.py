"""A FAKE of GitHub's REST API for pull requests: not GitHub, only the three endpoints tag-commit uses.

Why a fake: GitHub cannot run here (no network, no GitHub Enterprise image), while Gitea, which
the other tests use for real, differs from GitHub exactly where a client can go wrong (paging
parameter, the ``head=<owner>:<branch>`` filter, 422 instead of 409 for a second pull request,
200 instead of 201 for an edit, ``Bearer`` tokens). The git side of a test still runs against a
real Gitea; only the API calls come here (tag-commit's ``--forge github --forge-api-url <fake>``).

Limited to, with the shapes of GitHub's REST docs (API version 2022-11-28, "Pulls"):

- ``GET /repos/{owner}/{repo}/pulls``: query ``state`` (open, closed, all; default open),
  ``head`` (``user:ref-name``), ``base``, ``per_page`` (default 30, at most 100), ``page``;
  200 with a list of pull requests.
- ``POST /repos/{owner}/{repo}/pulls``: JSON ``title``, ``head``, ``base``, ``body``; 201 with the
  pull request; 422 ``Validation Failed`` with ``errors: [{resource: PullRequest, code: custom,
  message: "A pull request already exists for <owner>:<head>."}]`` when one is open for head and base.
- ``PATCH /repos/{owner}/{repo}/pulls/{pull_number}``: JSON ``title``, ``body``, ``state``, ``base``;
  200 with the pull request.

Every request needs ``Authorization: Bearer <token>`` (or ``token <token>``), else 401 ``Bad
credentials``; an unknown repository or path is 404 ``Not Found``. A pull request holds what a
client reads: ``id``, ``number``, ``url``, ``html_url``, ``state``, ``title``, ``body``, ``draft``,
``user.login``, ``head``/``base`` with ``label``, ``ref``, ``sha`` and ``repo.full_name``.
``head.sha`` comes from ``resolve_sha(ref)`` (the test's real git server).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DOCS = "https://docs.github.com/rest/pulls/pulls"


class FakeGitHub:
    def __init__(self, owner: str, repo: str, token: str, resolve_sha: Callable[[str], str], login: str = "ci-bot"):
        self.owner, self.repo, self.token, self.login = owner, repo, token, login
        self.resolve_sha = resolve_sha
        self.pulls: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers (lowercase names)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with fake._lock:
                    fake.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                    status, answer = fake.answer(self.command, self.path, self.headers.get("Authorization", ""), raw)
                content = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_PATCH(self) -> None:
                self._handle()

            def do_PUT(self) -> None:  # not GitHub's here (404): FakeGitLab's edit
                self._handle()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def answer(self, method: str, target: str, auth: str, raw: bytes) -> tuple[int, Any]:
        scheme, _, given = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token") or given != self.token:
            return 401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
        parsed = urllib.parse.urlsplit(target)
        match = re.fullmatch(r"/repos/([^/]+)/([^/]+)/pulls(?:/(\d+))?", parsed.path)
        if not match or f"{match[1]}/{match[2]}".lower() != self.full_name.lower():
            return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
        body = json.loads(raw) if raw else {}
        if method == "GET" and match[3] is None:
            return 200, self._list(urllib.parse.parse_qs(parsed.query))
        if method == "POST" and match[3] is None:
            return self._create(body)
        if method == "PATCH" and match[3] is not None:
            return self._update(int(match[3]), body)
        return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}

    def _list(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        state = query.get("state", ["open"])[0]
        found = [p for p in self.pulls if state == "all" or p["state"] == state]
        if "head" in query:
            found = [p for p in found if p["head"]["label"] == query["head"][0]]
        if "base" in query:
            found = [p for p in found if p["base"]["ref"] == query["base"][0]]
        size = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        return [self._fresh(p) for p in sorted(found, key=lambda p: -p["number"])[(page - 1) * size : page * size]]

    def _create(self, body: dict[str, Any]) -> tuple[int, Any]:
        head, base = body.get("head", ""), body.get("base", "")
        if not body.get("title") or not head or not base:
            return 422, {
                "message": "Validation Failed",
                "errors": [{"resource": "PullRequest", "code": "missing_field"}],
            }
        if any(p["state"] == "open" and p["head"]["ref"] == head and p["base"]["ref"] == base for p in self.pulls):
            return 422, {
                "message": "Validation Failed",
                "errors": [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {self.owner}:{head}.",
                    }
                ],
                "documentation_url": f"{DOCS}#create-a-pull-request",
            }
        number = len(self.pulls) + 1
        pull = {
            "id": 1000 + number,
            "number": number,
            "url": f"{self.url}/repos/{self.full_name}/pulls/{number}",
            "html_url": f"https://github.example/{self.full_name}/pull/{number}",
            "state": "open",
            "title": body["title"],
            "body": body.get("body"),
            "draft": False,
            "user": {"login": self.login},
            "head": {"label": f"{self.owner}:{head}", "ref": head, "sha": "", "repo": {"full_name": self.full_name}},
            "base": {"label": f"{self.owner}:{base}", "ref": base, "sha": "", "repo": {"full_name": self.full_name}},
        }
        self.pulls.append(pull)
        return 201, self._fresh(pull)

    def _update(self, number: int, body: dict[str, Any]) -> tuple[int, Any]:
        pull = next((p for p in self.pulls if p["number"] == number), None)
        if pull is None:
            return 404, {"message": "Not Found", "documentation_url": f"{DOCS}#update-a-pull-request"}
        for key in ("title", "body", "state"):
            if key in body:
                pull[key] = body[key]
        if "base" in body:
            pull["base"]["ref"] = body["base"]
        return 200, self._fresh(pull)

    def _fresh(self, pull: dict[str, Any]) -> dict[str, Any]:
        pull["head"]["sha"] = self.resolve_sha(pull["head"]["ref"])
        return json.loads(json.dumps(pull))

    def __enter__(self) -> FakeGitHub:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
