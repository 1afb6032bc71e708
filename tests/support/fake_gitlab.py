"""A FAKE of GitLab's REST API (v4) for merge requests: not GitLab, only the three endpoints tag-commit uses.

Why a fake: GitLab cannot run here (no network; its Omnibus image is far beyond this machine's
test budget). The git side of a test runs against a real Gitea; only the API calls come here
(tag-commit's ``--forge gitlab --forge-api-url <fake>``). The server is FakeGitHub's, with
GitLab's routes and shapes instead, as GitLab's "Merge requests API" documents them:

- ``GET /projects/:id/merge_requests``: ``:id`` the URL-encoded path (``group%2Fproject``); query
  ``state`` (opened, closed, locked, merged, all), ``source_branch``, ``target_branch``,
  ``per_page`` (default 20, at most 100), ``page``; 200 with a list of merge requests.
- ``POST /projects/:id/merge_requests``: ``source_branch``, ``target_branch``, ``title``,
  ``description``; 201 with the merge request; 409 ``{"message": ["Another open merge request
  already exists for this source branch: !<iid>"]}`` when one is open for that source branch.
- ``PUT /projects/:id/merge_requests/:merge_request_iid``: ``title``, ``description``, ``state_event``;
  200 with the merge request.

Every request needs ``Authorization: Bearer <token>`` (GitLab also takes ``PRIVATE-TOKEN``, which
tag-commit does not send), else 401
``{"message": "401 Unauthorized"}``; anything else is 404 ``{"message": "404 Not Found"}``. A merge
request holds ``id``, ``iid``, ``project_id``, ``title``, ``description``, ``state``,
``source_branch``, ``target_branch``, ``source_project_id``, ``target_project_id``, ``sha``,
``web_url`` and ``author.username``.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

from tests.support.fake_github import FakeGitHub

PROJECT_ID = 42
NOT_FOUND = {"message": "404 Not Found"}


class FakeGitLab(FakeGitHub):
    def answer(self, method: str, target: str, auth: str, raw: bytes) -> tuple[int, Any]:
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or given != self.token:
            return 401, {"message": "401 Unauthorized"}
        parsed = urllib.parse.urlsplit(target)
        match = re.fullmatch(r"/projects/([^/]+)/merge_requests(?:/(\d+))?", parsed.path)
        if not match or urllib.parse.unquote(match[1]).lower() != self.full_name.lower():
            return 404, NOT_FOUND
        body = json.loads(raw) if raw else {}
        if method == "GET" and match[2] is None:
            return 200, self._list_mrs(urllib.parse.parse_qs(parsed.query))
        if method == "POST" and match[2] is None:
            return self._create_mr(body)
        if method == "PUT" and match[2] is not None:
            return self._update_mr(int(match[2]), body)
        return 404, NOT_FOUND

    def _list_mrs(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        state = query.get("state", ["all"])[0]
        found = [m for m in self.pulls if state == "all" or m["state"] == state]
        for key in ("source_branch", "target_branch"):
            if key in query:
                found = [m for m in found if m[key] == query[key][0]]
        size = min(int(query.get("per_page", ["20"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        return [self._fresh_mr(m) for m in sorted(found, key=lambda m: -m["iid"])[(page - 1) * size : page * size]]

    def _create_mr(self, body: dict[str, Any]) -> tuple[int, Any]:
        source, target = body.get("source_branch", ""), body.get("target_branch", "")
        if not body.get("title") or not source or not target:
            return 400, {"error": "title, source_branch, target_branch are missing"}
        existing = next((m for m in self.pulls if m["state"] == "opened" and m["source_branch"] == source), None)
        if existing:
            return 409, {
                "message": [f"Another open merge request already exists for this source branch: !{existing['iid']}"]
            }
        iid = len(self.pulls) + 1
        mr = {
            "id": 500 + iid,
            "iid": iid,
            "project_id": PROJECT_ID,
            "title": body["title"],
            "description": body.get("description"),
            "state": "opened",
            "source_branch": source,
            "target_branch": target,
            "source_project_id": PROJECT_ID,
            "target_project_id": PROJECT_ID,
            "sha": "",
            "web_url": f"https://gitlab.example/{self.full_name}/-/merge_requests/{iid}",
            "author": {"username": self.login},
        }
        self.pulls.append(mr)
        return 201, self._fresh_mr(mr)

    def _update_mr(self, iid: int, body: dict[str, Any]) -> tuple[int, Any]:
        mr = next((m for m in self.pulls if m["iid"] == iid), None)
        if mr is None:
            return 404, NOT_FOUND
        for key in ("title", "description"):
            if key in body:
                mr[key] = body[key]
        if body.get("state_event") in ("close", "reopen"):
            mr["state"] = "closed" if body["state_event"] == "close" else "opened"
        return 200, self._fresh_mr(mr)

    def _fresh_mr(self, mr: dict[str, Any]) -> dict[str, Any]:
        mr["sha"] = self.resolve_sha(mr["source_branch"])
        return json.loads(json.dumps(mr))
