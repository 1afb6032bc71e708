"""A client of a Gitea's REST API and git over HTTP, as an admin or another user.

    forge = GiteaClient("http://10.244.3.1:3000", token=admin_token)
    url = forge.create_repo("druppie-apps", files={"README.md": "hi\\n"})
    forge.add_webhook("druppie-apps", "http://10.96.0.20:8080/", secret="s3cret")
    sha = forge.commit_file("druppie-apps", "README.md", "bye\\n", "a real push event")

Gitea processes pushes in a queue: right after ``git push`` its API may still call a new repo
empty (and its branch API then answers 500), so ``push`` and ``create_repo`` return only once the
branch shows the pushed commit. The contents API (``commit_file``) is synchronous. git gets a
token through ``GIT_CONFIG_*`` environment variables (``http.extraHeader``), never on a command
line (``clone_url(..., with_credentials=True)`` puts it in a URL, for callers that need one).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .process import http_request

ADMIN = "druppie-admin"  # "admin" itself is a name Gitea reserves
COMMITTER = {"name": "druppie", "email": "druppie@druppie.local"}


class GiteaError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


class GiteaClient:
    """Calls ``base_url``'s API as the admin (``token``); other users' tokens are made on demand."""

    def __init__(self, base_url: str, token: str, admin_password: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._passwords: dict[str, str] = {ADMIN: admin_password} if admin_password else {}
        self._tokens: dict[str, str] = {ADMIN: token}

    @property
    def admin(self) -> str:
        return ADMIN

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        basic: tuple[str, str] | None = None,
        raw: bool = False,
    ) -> Any:
        """Call ``/api/v1{path}`` as the admin (or ``token``, or ``basic`` user and password)."""
        headers = {"Accept": "application/json"}
        if basic:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
        elif token if token is not None else self.token:  # token="": anonymous
            headers["Authorization"] = f"token {token if token is not None else self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            with http_request(f"{self.base_url}/api/v1{path}", method, data, headers, timeout=30) as resp:
                content = resp.read()
        except urllib.error.HTTPError as err:
            raise GiteaError(method, path, err.code, err.read().decode(errors="replace")) from None
        if raw:
            return content
        return json.loads(content) if content.strip() else None

    def version(self) -> str:
        return self.api("GET", "/version")["version"]

    def _full(self, repo: str) -> tuple[str, str]:
        owner, _, name = repo.rpartition("/")
        return owner or ADMIN, name.removesuffix(".git")

    def _repo_path(self, repo: str) -> str:
        owner, name = self._full(repo)
        return f"/repos/{urllib.parse.quote(owner)}/{urllib.parse.quote(name)}"

    # users and tokens
    def create_user(self, name: str, password: str, email: str | None = None) -> dict:
        """A second identity (e.g. the CI bot whose pushes the trigger must ignore); not an admin."""
        user = self.api(
            "POST",
            "/admin/users",
            {
                "username": name,
                "email": email or f"{name}@druppie.local",
                "password": password,
                "must_change_password": False,
                "send_notify": False,
            },
        )
        self._passwords[name] = password
        return user

    def token_for(self, user: str, password: str | None = None, scopes: tuple[str, ...] = ("all",)) -> str:
        """A new API token for ``user`` (made with the user's own password, as Gitea demands)."""
        if user in self._tokens and password is None:
            return self._tokens[user]
        password = password or self._passwords[user]
        made = self.api(
            "POST",
            f"/users/{urllib.parse.quote(user)}/tokens",
            {"name": f"druppie-{secrets.token_hex(4)}", "scopes": list(scopes)},
            basic=(user, password),
        )
        self._tokens[user] = made["sha1"]
        return made["sha1"]

    # repositories
    def repo(self, repo: str) -> dict:
        return self.api("GET", self._repo_path(repo))

    def create_repo(
        self,
        name: str,
        source_dir: Path | None = None,
        files: dict[str, str] | None = None,
        private: bool = False,
        branch: str = "main",
    ) -> str:
        """A new repo of the admin; with content, one commit pushed over HTTP. Returns its clone URL."""
        self.api(
            "POST", "/user/repos", {"name": name, "private": private, "auto_init": False, "default_branch": branch}
        )
        if source_dir or files:
            with tempfile.TemporaryDirectory(prefix="druppie-gitea-seed-") as tmp:
                work = Path(tmp)
                if source_dir:
                    shutil.copytree(source_dir, work, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
                for rel, content in (files or {}).items():
                    (work / rel).parent.mkdir(parents=True, exist_ok=True)
                    (work / rel).write_text(content, newline="")
                self._git(work, "init", "--quiet", f"--initial-branch={branch}")
                self._git(work, "add", "-A")
                self._git(work, "commit", "--quiet", "-m", "seed")
                self.push(name, work, branch)
        return self.clone_url(name)

    def clone_url(self, repo: str, with_credentials: bool = False, user: str | None = None) -> str:
        owner, name = self._full(repo)
        auth = ""
        if with_credentials:
            who = user or ADMIN
            auth = f"{urllib.parse.quote(who)}:{urllib.parse.quote(self.token_for(who))}@"
        scheme, _, address = self.base_url.partition("://")
        return f"{scheme}://{auth}{address}/{owner}/{name}.git"

    def url(self, name: str) -> str:  # the GitServer spelling
        return self.clone_url(name)

    def push(
        self,
        repo: str,
        workdir: Path,
        branch: str = "main",
        user: str | None = None,
        force: bool = False,
        also: tuple[str, ...] = (),
    ) -> None:
        """Push ``branch`` of the clone ``workdir`` to ``repo`` as ``user`` (default the admin), and the
        refspecs ``also`` (e.g. a tag) in the same push."""
        args = ["push", "--quiet", *(["--force"] if force else []), self.clone_url(repo), f"{branch}:{branch}", *also]
        self._git(Path(workdir), *args, token=self.token_for(user or ADMIN))
        self.wait_for_head(repo, self._git(Path(workdir), "rev-parse", branch).strip(), branch)

    def wait_for_head(self, repo: str, sha: str, branch: str = "main", timeout: float = 30) -> None:
        """Wait until Gitea has processed a push of ``sha``: it handles pushes in a queue, so right
        after ``git push`` its API may still call the repo empty or show the old head."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                # Empty first: while Gitea still calls the repo empty, its branch API panics (500).
                if not self.repo(repo)["empty"] and self.head(repo, branch) == sha:
                    return
            except GiteaError as err:
                if err.status not in (404, 409):
                    raise
            if time.monotonic() > deadline:
                raise RuntimeError(f"{repo}: {branch} not at {sha} after {timeout:.0f}s")
            time.sleep(0.05)

    def git_env(self, token: str | None = None) -> dict[str, str]:
        """Environment for git commands against this forge: the token as a header, not in argv or URLs."""
        return _git_env(token or self.token)

    def _git(self, work: Path, *args: str, token: str | None = None) -> str:
        env = {
            **os.environ,
            **_git_env(token),
            "GIT_AUTHOR_NAME": COMMITTER["name"],
            "GIT_AUTHOR_EMAIL": COMMITTER["email"],
            "GIT_COMMITTER_NAME": COMMITTER["name"],
            "GIT_COMMITTER_EMAIL": COMMITTER["email"],
        }
        proc = subprocess.run(["git", *args], cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"git {args[0]} failed: {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def commit_file(
        self, repo: str, path: str, content: str, message: str, branch: str = "main", user: str | None = None
    ) -> str:
        """Create or update ``path`` through the contents API (a real push event); returns the commit sha."""
        base = f"{self._repo_path(repo)}/contents/{urllib.parse.quote(path)}"
        token = self.token_for(user or ADMIN)
        body: dict[str, Any] = {
            "content": base64.b64encode(content.encode()).decode(),
            "message": message,
            "branch": branch,
        }
        try:
            existing = self.api("GET", f"{base}?ref={urllib.parse.quote(branch)}", token=token)
            body["sha"] = existing["sha"]
        except GiteaError as err:
            if err.status != 404:
                raise
        answer = self.api("PUT", base, body, token=token)
        return answer["commit"]["sha"]

    def head(self, repo: str, branch: str = "main") -> str:
        return self.api("GET", f"{self._repo_path(repo)}/branches/{urllib.parse.quote(branch)}")["commit"]["id"]

    def read_file(self, repo: str, path: str, ref: str = "main") -> str:
        raw = self.api(
            "GET", f"{self._repo_path(repo)}/raw/{urllib.parse.quote(path)}?ref={urllib.parse.quote(ref)}", raw=True
        )
        return raw.decode()

    def log(self, repo: str, ref: str = "main") -> list[str]:
        """``sha subject`` of the commits of ``ref``, newest first (as GitServer.log)."""
        commits = self.api(
            "GET",
            f"{self._repo_path(repo)}/commits?sha={urllib.parse.quote(ref)}"
            "&stat=false&verification=false&files=false&limit=50",
        )
        return [f"{c['sha']} {c['commit']['message'].splitlines()[0]}" for c in commits]

    def add_collaborator(self, repo: str, user: str, permission: str = "write") -> None:
        self.api("PUT", f"{self._repo_path(repo)}/collaborators/{urllib.parse.quote(user)}", {"permission": permission})

    # webhooks
    def add_webhook(
        self, repo: str, url: str, secret: str, events: tuple[str, ...] = ("push",), branch_filter: str = "*"
    ) -> dict:
        return self.api(
            "POST",
            f"{self._repo_path(repo)}/hooks",
            {
                "type": "gitea",
                "active": True,
                "events": list(events),
                "branch_filter": branch_filter,
                "config": {"url": url, "content_type": "json", "secret": secret},
            },
        )

    def hook(self, repo: str, hook_id: int) -> dict:
        return self.api("GET", f"{self._repo_path(repo)}/hooks/{hook_id}")

    def hooks(self, repo: str) -> list[dict]:
        return self.api("GET", f"{self._repo_path(repo)}/hooks")

    def test_hook(self, repo: str, hook_id: int) -> None:
        """Make Gitea deliver a push event of the latest commit to the hook now."""
        self.api("POST", f"{self._repo_path(repo)}/hooks/{hook_id}/tests")


def _git_env(token: str | None) -> dict[str, str]:
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    if token:
        env.update(
            {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: token {token}",
            }
        )
    return env
