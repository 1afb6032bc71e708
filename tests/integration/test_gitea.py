"""The local forge: the real Gitea binary on loopback, headless, in a temporary folder.

One Gitea serves the module (started once, stopped after); webhooks go to a small HTTP receiver
on 127.0.0.1 in a thread, and every delivery is checked as the EventListener's github interceptor
would check it (event header, HMAC of the body with the hook's secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from localcluster.gitea import GiteaServer, client_of, missing
from localcluster.gitea_api import ADMIN, GiteaClient, GiteaError
from localcluster.process import free_port, http_request, kill
from localcluster.toolchain import ROOT
from tests.support import gitea_hooks

pytestmark = pytest.mark.skipif(bool(missing()), reason=f"not built yet: {', '.join(missing())}")

SECRET = "hook-s3cret-for-the-trigger"
BOT, BOT_PASSWORD = "ci-bot", "ci-bot-Passw0rd-long"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with GiteaServer(tmp_path_factory.mktemp("gitea")) as gitea:
        print(f"Gitea started in {gitea.start_seconds:.2f}s {gitea.timings}", file=sys.stderr)
        yield gitea


@pytest.fixture(scope="module")
def forge(server):
    """An API client as the admin."""
    return server.client()


class Receiver:
    """Records every POST (headers, body) and answers 200."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.cond:
                    receiver.deliveries.append((dict(self.headers.items()), body))
                    receiver.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/gitea"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, after: str, timeout: float = 20) -> tuple[dict[str, str], dict, bytes]:
        """The push delivery whose ``after`` is the given sha."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for headers, body in self.deliveries:
                    payload = json.loads(body)
                    if payload.get("after") == after:
                        return headers, payload, body
                left = deadline - time.monotonic()
                assert left > 0, f"no delivery for {after}; got {len(self.deliveries)} others"
                self.cond.wait(left)


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.httpd.shutdown()
    r.httpd.server_close()


@pytest.fixture(scope="module")
def bot(forge):
    forge.create_user(BOT, BOT_PASSWORD)
    return forge.token_for(BOT)


def git(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", **(env or {})},
    )


def gitea_processes(state_dir: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(state_dir) in cmdline and "gitea" in cmdline:
                found.append(int(entry.name))
    return found


def test_repo_with_content_clones_over_http_with_the_token(forge, tmp_path):
    url = forge.create_repo(
        "seeded", files={"README.md": "seeded\n", "envs/prod/app.yaml": "replicas: 2\n"}, private=True
    )
    assert url == f"{forge.base_url}/{ADMIN}/seeded.git" == forge.repo("seeded")["clone_url"]
    assert forge.repo("seeded")["default_branch"] == "main"

    refused = git("clone", url, str(tmp_path / "anonymous"), check=False)
    assert refused.returncode != 0  # private: no anonymous clone
    git("clone", forge.clone_url("seeded", with_credentials=True), str(tmp_path / "basic"))
    git("clone", url, str(tmp_path / "header"), env=forge.git_env())  # the token as a header, not in the URL
    for clone in ("basic", "header"):
        assert (tmp_path / clone / "envs/prod/app.yaml").read_text() == "replicas: 2\n"
        assert git("rev-parse", "HEAD", cwd=tmp_path / clone).stdout.strip() == forge.head("seeded")
    assert forge.read_file("seeded", "README.md") == "seeded\n"


def test_repo_from_a_source_folder(forge):
    forge.create_repo("apps", source_dir=ROOT / "examples" / "druppie-apps")
    expected = sorted(
        p.relative_to(ROOT / "examples" / "druppie-apps").as_posix()
        for p in (ROOT / "examples" / "druppie-apps").rglob("*")
        if p.is_file()
    )
    tree = forge.api("GET", f"/repos/{ADMIN}/apps/git/trees/main?recursive=true")["tree"]
    assert sorted(e["path"] for e in tree if e["type"] == "blob") == expected
    assert [line.split(" ", 1)[1] for line in forge.log("apps")] == ["seed"]


def test_contents_api_commit_advances_the_head(forge):
    forge.create_repo("contents", files={"app.yaml": "tag: v1\n"})
    before = forge.head("contents")
    sha = forge.commit_file("contents", "app.yaml", "tag: v2\n", "bump to v2")
    assert sha != before and forge.head("contents") == sha
    created = forge.commit_file("contents", "new/file.txt", "new\n", "add a file")
    assert forge.head("contents") == created
    assert forge.read_file("contents", "app.yaml") == "tag: v2\n"
    assert forge.read_file("contents", "new/file.txt") == "new\n"
    assert [line.split(" ", 1)[1] for line in forge.log("contents")] == ["add a file", "bump to v2", "seed"]


def test_push_webhook_is_signed_json_with_the_trigger_fields(forge, server, receiver):
    forge.create_repo("hooked", files={"app.yaml": "tag: v1\n"})
    hook = forge.add_webhook("hooked", receiver.url, SECRET)
    assert [(h["id"], h["type"], h["events"], h["config"]["content_type"]) for h in forge.hooks("hooked")] == [
        (hook["id"], "gitea", ["push"], "json")
    ]
    before = forge.head("hooked")
    sha = forge.commit_file("hooked", "app.yaml", "tag: v2\n", "bump")

    headers, payload, body = receiver.wait_for(sha)
    assert headers["X-GitHub-Event"] == headers["X-Gitea-Event"] == "push"
    assert headers["Content-Type"] == "application/json"
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Hub-Signature-256"], f"sha256={expected}")
    assert headers["X-Gitea-Signature"] == expected
    assert headers["X-GitHub-Delivery"] == headers["X-Gitea-Delivery"]
    assert payload["ref"] == "refs/heads/main" and payload["before"] == before and payload["after"] == sha
    assert payload["repository"]["clone_url"] == forge.clone_url("hooked")
    assert payload["repository"]["full_name"] == f"{ADMIN}/hooked"
    assert payload["pusher"]["login"] == payload["sender"]["login"] == ADMIN
    assert [c["id"] for c in payload["commits"]] == [sha] and payload["head_commit"]["message"].strip() == "bump"

    # Gitea's own record of it: delivered, answered 200, the same signature.
    [last] = gitea_hooks.wait_for_deliveries(forge, server.db_path, "hooked", hook["id"])
    assert (last["event"], last["delivered"], last["succeeded"], last["response"]["status"]) == (
        "push",
        True,
        True,
        200,
    )
    assert last["request"]["headers"]["X-Hub-Signature-256"] == f"sha256={expected}"
    assert last["request"]["body"].encode() == body and last["uuid"] == headers["X-GitHub-Delivery"]
    with pytest.raises(GiteaError) as other:
        gitea_hooks.deliveries(forge, server.db_path, "contents", hook["id"])
    assert other.value.status == 404


def test_a_git_push_by_a_second_user_names_that_user_as_pusher(forge, receiver, bot, tmp_path):
    forge.create_repo("shared", files={"app.yaml": "tag: v1\n"})
    forge.add_webhook("shared", receiver.url, SECRET)
    with pytest.raises(RuntimeError, match="git push failed"):  # not a collaborator yet
        _push_change(forge, tmp_path / "early", "denied")
    forge.add_collaborator("shared", BOT)
    sha = _push_change(forge, tmp_path / "work", "tag: v2\n")

    headers, payload, _body = receiver.wait_for(sha)
    assert headers["X-GitHub-Event"] == "push"
    assert payload["pusher"]["login"] == payload["sender"]["login"] == BOT
    assert payload["commits"][0]["author"]["email"] == "druppie@druppie.local"
    assert forge.head("shared") == sha

    via_api = forge.commit_file("shared", "app.yaml", "tag: v3\n", "bot bump", user=BOT)
    assert receiver.wait_for(via_api)[1]["pusher"]["login"] == BOT


def _push_change(forge: GiteaClient, work: Path, content: str) -> str:
    git("clone", forge.clone_url("shared"), str(work))
    (work / "app.yaml").write_text(content)
    git("-c", "user.name=druppie", "-c", "user.email=druppie@druppie.local", "commit", "-qam", "bot change", cwd=work)
    forge.push("shared", work, user=BOT)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


def test_a_wrong_token_is_refused(forge, tmp_path):
    forge.create_repo("locked", files={"a": "a\n"}, private=True)
    with pytest.raises(GiteaError) as refused:
        forge.api("GET", "/user", token="0" * 40)
    assert refused.value.status == 401
    with pytest.raises(GiteaError) as hidden:
        forge.api("GET", f"/repos/{ADMIN}/locked", token="")
    assert hidden.value.status == 404  # anonymous: a private repo does not exist
    refs = f"{forge.clone_url('locked')}/info/refs?service=git-upload-pack"
    for auth in ("token " + "0" * 40, "Basic " + base64.b64encode(f"{ADMIN}:{'0' * 40}".encode()).decode()):
        with pytest.raises(urllib.error.HTTPError) as git_refused:
            http_request(refs, headers={"Authorization": auth})
        assert git_refused.value.code == 401, auth
    wrong = forge.clone_url("locked", with_credentials=True).replace(forge.token, "0" * 40)
    clone = git("clone", wrong, str(tmp_path / "c"), check=False)
    assert clone.returncode == 128 and "Authentication failed" in clone.stderr, clone.stderr
    assert "0" * 40 not in clone.stderr  # git masks the password of the URL
    assert forge.api("GET", "/user")["login"] == ADMIN and forge.api("GET", "/user")["is_admin"]


def test_secrets_are_files_of_mode_0600_and_never_logged(server, forge):
    for path in (server.token_file, server.password_file, server.app_ini):
        assert (path.stat().st_mode & 0o777) == 0o600, path
    token = server.token_file.read_text().strip()
    assert token == forge.token and len(token) == 40
    password = server.password_file.read_text().strip()
    assert len(password) == 24 and forge.api("GET", "/user", basic=(ADMIN, password))["login"] == ADMIN
    for log in (server.state_dir / "log").iterdir():
        assert token not in log.read_text(errors="replace") and password not in log.read_text(errors="replace"), log


def test_restart_keeps_repos_and_token_and_stop_leaves_no_process(tmp_path):
    state = tmp_path / "forge"
    with GiteaServer(state) as first:
        first.client().create_repo("kept", files={"f": "1\n"})
        token, head = first.token, first.client().head("kept")
    assert gitea_processes(state) == []
    with GiteaServer(state) as second:  # another port, same state
        forge = second.client()
        assert second.token == forge.token == token and forge.head("kept") == head
        assert forge.repo("kept")["clone_url"] == forge.clone_url("kept")
        pid = second.proc.pid
    assert gitea_processes(state) == [] and not Path(f"/proc/{pid}").exists()


def test_foreground_runner_as_the_cluster_spawns_it(tmp_path):
    state, port = tmp_path / "fg", free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "localcluster.gitea", str(state), str(port), "127.0.0.1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"http://127.0.0.1:{port} Gitea "), line + proc.stderr.read()
        assert str(state / "admin-token") in line
        token = (state / "admin-token").read_text().strip()
        assert token not in line
        client = client_of(state, f"http://127.0.0.1:{port}")
        assert client.token == token and client.api("GET", "/user")["login"] == ADMIN
    finally:
        kill(proc.pid)  # SIGTERM to the group, as LocalCluster.down does
        proc.wait(10)
    assert gitea_processes(state) == []
