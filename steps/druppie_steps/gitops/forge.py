"""The forge's pull-request API: find the open pull request of a branch, open one, update its text.

Gitea and GitHub share the shapes that matter here (paths under ``/repos/{owner}/{repo}/pulls``,
the fields ``number``, ``html_url``, ``head.ref``, ``head.repo.full_name``, ``base.ref``, ``title``,
``body``). They differ in small ways, kept in ``Forge`` and ``ForgeClient``:

- the API root: Gitea serves it at ``<forge>/api/v1`` (below a sub-path too), GitHub at
  ``https://api.github.com`` and GitHub Enterprise at ``https://<host>/api/v3``;
- paging: Gitea's ``limit`` (at most 50 by default), GitHub's ``per_page`` (at most 100);
- listing: GitHub filters by ``head=<owner>:<branch>`` and ``base``; Gitea 1.27 ignores ``head``
  (measured), so every answer is filtered here as well;
- a second pull request for the same branches: Gitea answers 409, GitHub 422;
- editing answers 201 on Gitea, 200 on GitHub.

GitLab's merge requests are the same three calls with other names (API v4: ``/projects/<url-encoded
path>/merge_requests``, ``iid``, ``web_url``, ``source_branch``, ``target_branch``, ``description``,
state ``opened``, 409 for a second one, ``PUT`` to edit), mapped here onto the same ``PullRequest``.

Every failure is one ``ForgeError`` line naming the API root and the HTTP status (or why the
forge could not be reached); 5xx and connection failures are marked transient (retried by the
caller within its deadline), 4xx never. Redirects are not followed: the token would go along.
The token never appears in a message (core.redact).
"""

from __future__ import annotations

import base64
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..core.errors import InvalidInputError
from ..core.redact import redact, register_secret
from .git import _SCP_LIKE, GitError, TransientRetry

KINDS = ("gitea", "github", "gitlab")
GITHUB_HOST = "github.com"
GITHUB_API = "https://api.github.com"
REQUEST_TIMEOUT_SECONDS = 30.0
MAX_PAGES = 20  # 1000 open pull requests (Gitea) are plenty for one GitOps repository


class ForgeError(GitError):
    """An API call failed: one redacted line naming the forge's API root and the HTTP status."""

    def __init__(self, message: str, status: int = 0, transient: bool = False) -> None:
        super().__init__(message, transient=transient)
        self.status = status  # 0: no answer at all


@dataclass(frozen=True)
class Forge:
    """Where the pull requests of one repository live: the kind, the API root, owner and name."""

    kind: str  # gitea, github or gitlab
    api_url: str  # without a trailing /
    owner: str  # GitLab: the project's whole namespace (groups/subgroups)
    repo: str

    @property
    def pulls_path(self) -> str:
        if self.kind == "gitlab":
            return f"/projects/{urllib.parse.quote(self.full_name, safe='')}/merge_requests"
        return f"/repos/{urllib.parse.quote(self.owner)}/{urllib.parse.quote(self.repo)}/pulls"

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"


def _repo_parts(repo_url: str) -> tuple[str, str, list[str]]:
    """(scheme, host[:port], the path's folders) of an http(s), ssh or scp-like URL, ``.git`` dropped."""
    scp = _SCP_LIKE.match(repo_url)
    if scp and "://" not in repo_url:
        scheme, netloc, path = "scp", scp["host"], scp["path"]
    else:
        parsed = urllib.parse.urlsplit(repo_url)
        host = parsed.hostname or ""
        netloc = f"{host}:{parsed.port}" if parsed.port else host
        scheme, path = parsed.scheme, parsed.path
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2:
        raise InvalidInputError(f"invalid --repo-url {redact(repo_url)!r}: no <owner>/<repository> in its path")
    return scheme, netloc, [*parts[:-1], parts[-1].removesuffix(".git")]


def resolve_forge(repo_url: str, kind: str, api_url: str) -> Forge:
    """The forge of ``repo_url``: ``kind`` auto is GitHub for github.com and undecided elsewhere (a
    Gitea, a GitHub Enterprise and a GitLab look alike from their URLs); ``api_url`` "" is derived
    where the repository URL gives it (http(s): Gitea ``<root>/api/v1``, GitHub Enterprise
    ``https://<host>/api/v3``, GitLab ``https://<host>/api/v4``), and must be given for ssh URLs of
    a forge other than github.com. On GitLab every folder of the path is the project's (subgroups);
    on Gitea the last two are owner and repository and any before them the forge's sub-path."""
    scheme, netloc, parts = _repo_parts(repo_url)
    host = netloc.split(":")[0].lower()
    owner, repo = ("/".join(parts[:-1]) if kind == "gitlab" else parts[-2]), parts[-1]
    prefix = "".join(f"/{p}" for p in parts[:-2])
    if kind == "auto":
        if host != GITHUB_HOST:
            raise InvalidInputError(
                f"invalid --forge 'auto': the kind of forge at {host!r} cannot be told from --repo-url; "
                "pass --forge gitea, --forge github or --forge gitlab"
            )
        kind = "github"
    if kind not in KINDS:
        raise InvalidInputError(f"invalid --forge {kind!r}: use auto, gitea, github or gitlab")
    if api_url:
        parsed = urllib.parse.urlsplit(api_url)
        if parsed.scheme not in ("https", "http") or not parsed.hostname or parsed.username or parsed.password:
            raise InvalidInputError(
                f"invalid --forge-api-url {redact(api_url)!r}: use http(s)://host[:port]/path, without credentials "
                "(the token comes from the basic-auth workspace)"
            )
        return Forge(kind, api_url.rstrip("/"), owner, repo)
    if kind == "github" and host == GITHUB_HOST:
        return Forge(kind, GITHUB_API, owner, repo)
    if scheme not in ("https", "http"):
        raise InvalidInputError(
            f"invalid --forge-api-url '': the API of {host!r} cannot be derived from an ssh --repo-url; "
            "pass --forge-api-url, e.g. https://git.example.org/api/v1"
        )
    root = f"{scheme}://{netloc}{prefix if kind == 'gitea' else ''}"
    return Forge(kind, root + {"gitea": "/api/v1", "github": "/api/v3", "gitlab": "/api/v4"}[kind], owner, repo)


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str  # the page people open (html_url)
    head_sha: str
    title: str
    body: str


def _pull_request(data: Any) -> PullRequest:
    if "iid" in data and "web_url" in data:  # a GitLab merge request
        return PullRequest(
            int(data["iid"]), str(data["web_url"]), str(data.get("sha") or ""), data.get("title") or "",
            data.get("description") or "",
        )  # fmt: skip
    head = data.get("head") or {}
    return PullRequest(
        int(data["number"]),
        str(data["html_url"]),
        str(head.get("sha") or ""),
        data.get("title") or "",
        data.get("body") or "",
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx becomes an HTTPError: the Authorization header never follows it elsewhere


class ForgeClient:
    """The three calls tag-commit makes, as the user of ``username``/``token`` (basic-auth's entry)."""

    def __init__(self, forge: Forge, username: str, token: str, retry: TransientRetry | None = None) -> None:
        self.forge = forge
        self.retry = retry or TransientRetry()
        register_secret(token)
        if forge.kind in ("github", "gitlab"):  # GitLab takes personal, project and group tokens so too
            self._auth = f"Bearer {token}"
        else:  # Gitea takes a token as the password of basic auth, as git sends it
            self._auth = "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()
        self._opener = urllib.request.build_opener(_NoRedirect)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.retry.run(f"{method} {path.split('?')[0]}", lambda: self._call_once(method, path, body))

    def _call_once(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        where = f"forge API {self.forge.api_url}"
        what = f"{method} {path.split('?')[0]}"
        headers = {"Authorization": self._auth, "Accept": "application/json", "User-Agent": "druppie-tag-commit"}
        if self.forge.kind == "github":
            headers.update({"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        url = self.forge.api_url + path
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - http(s) only
        remaining = self.retry.remaining()
        timeout = (
            REQUEST_TIMEOUT_SECONDS if remaining == math.inf else max(1.0, min(REQUEST_TIMEOUT_SECONDS, remaining))
        )
        try:
            with self._opener.open(request, timeout=timeout) as resp:
                content = resp.read()
        except urllib.error.HTTPError as err:
            said = _message(err.read())
            raise ForgeError(
                redact(f"{where} answered HTTP {err.code} to {what}" + (f": {said}" if said else "")),
                status=err.code,
                transient=err.code >= 500 or err.code == 429,
            ) from None
        except (TimeoutError, urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ForgeError(redact(f"cannot reach {where} ({what}): {reason}"), transient=True) from None
        try:
            return json.loads(content) if content.strip() else None
        except ValueError:
            raise ForgeError(redact(f"{where} answered {what} with something that is not JSON")) from None

    def find_open(self, head: str, base: str) -> PullRequest | None:
        """The open pull request from ``head`` into ``base`` of this repository (not of a fork), or None."""
        github, gitlab = self.forge.kind == "github", self.forge.kind == "gitlab"
        size = 50 if self.forge.kind == "gitea" else 100
        query: dict[str, str] = {
            "state": "opened" if gitlab else "open",
            ("limit" if size == 50 else "per_page"): str(size),
        }
        if github:
            query.update(head=f"{self.forge.owner}:{head}", base=base)
        if gitlab:
            query.update(source_branch=head, target_branch=base)
        for page in range(1, MAX_PAGES + 1):
            answer = self._call("GET", f"{self.forge.pulls_path}?{urllib.parse.urlencode({**query, 'page': page})}")
            if not isinstance(answer, list):
                raise ForgeError(f"forge API {self.forge.api_url} answered the list of pull requests with no list")
            for data in answer:
                if _is_ours(data, head, base, self.forge.full_name):
                    return _pull_request(data)
            if len(answer) < size:
                return None
        return None

    def create(self, head: str, base: str, title: str, body: str) -> PullRequest | None:
        """The new pull request; None when one for these branches exists already (409 Gitea and GitLab, 422 GitHub)."""
        fields = {"head": head, "base": base, "title": title, "body": body}
        if self.forge.kind == "gitlab":
            fields = {"source_branch": head, "target_branch": base, "title": title, "description": body}
        try:
            data = self._call("POST", self.forge.pulls_path, fields)
        except ForgeError as err:
            if err.status in (409, 422) and "already exist" in str(err).lower():
                return None
            raise
        return _pull_request(data)

    def update(self, number: int, title: str, body: str) -> PullRequest:
        if self.forge.kind == "gitlab":
            fields = {"title": title, "description": body}
            return _pull_request(self._call("PUT", f"{self.forge.pulls_path}/{number}", fields))
        return _pull_request(self._call("PATCH", f"{self.forge.pulls_path}/{number}", {"title": title, "body": body}))


def _is_ours(data: Any, head: str, base: str, full_name: str) -> bool:
    if "source_branch" in data:  # a GitLab merge request: from this project, not a fork
        return bool(
            data.get("state") == "opened"
            and data.get("source_branch") == head
            and data.get("target_branch") == base
            and data.get("source_project_id") == data.get("target_project_id")
        )
    head_data, base_data = data.get("head") or {}, data.get("base") or {}
    repo = head_data.get("repo") or {}
    same_repo = str(repo.get("full_name") or full_name).lower() == full_name.lower()
    return bool(
        data.get("state") == "open" and head_data.get("ref") == head and base_data.get("ref") == base and same_repo
    )


def _message(raw: bytes) -> str:
    """The forge's own words from an error answer (``message``, and GitHub's ``errors[].message``), one line."""
    try:
        data = json.loads(raw)
    except ValueError:
        text = raw.decode(errors="replace").strip()
        return " ".join(text.split())[:200]
    if not isinstance(data, dict):
        return ""
    said = data.get("message") or data.get("error") or ""
    parts = ["; ".join(map(str, said)) if isinstance(said, list) else str(said)]  # GitLab: a list at times
    for err in data.get("errors") or []:
        if isinstance(err, dict) and err.get("message"):
            parts.append(str(err["message"]))
    return " ".join("; ".join(p for p in parts if p).split())[:300]
