"""A git server speaking smart HTTP: ``git http-backend`` behind a small threaded HTTP server, and
the cluster component serving druppie-apps with it.

The same protocol GitHub, GitLab and Gitea speak, with the features the steps rely on switched
on (partial clone filters, protocol v2, push over HTTP), optional basic auth so credentials can
be tested, and counters of requests and bytes sent (tests check that clones stay small):

    with GitServer(root) as server:
        url = server.create_repo("druppie-apps", {"envs/prod/app/kustomization.yaml": "..."})

Tests inject faults through a subclass (tests/support/gitfaults.py) that overrides ``intercept``.
``python -m localcluster.gitserver ROOT [PORT [HOST]]`` serves a folder of bare repos in the foreground.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .component import Component
from .context import Context
from .process import http_ok
from .toolchain import ROOT

# Server-side git config, passed to http-backend through GIT_CONFIG_* variables.
SERVER_CONFIG = {
    "http.receivepack": "true",  # allow push without REMOTE_USER
    "uploadpack.allowFilter": "true",  # partial clone (--filter=blob:none)
    "uploadpack.allowAnySHA1InWant": "true",  # lazy fetch of blobs for a partial clone
    "receive.denyNonFastForwards": "true",
    "core.logAllRefUpdates": "false",
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read step output only
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _authorized(self) -> str | None:
        creds = self.server.git.credentials
        if creds is None:
            return ""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None
            if (user, password) == creds:
                return user
        return None

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        git = self.server.git
        with git.lock:
            git.requests += 1
            git.request_log.append(f"{self.command} {self.path}")
        if git.intercept(self):
            return
        user = self._authorized()
        if user is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="druppie-git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self._body() if self.command == "POST" else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(git.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_HTTP_MAX_REQUEST_BUFFER": "100M",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": user,
            "REMOTE_ADDR": self.client_address[0],
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(git.root),
            "GIT_CONFIG_COUNT": str(len(SERVER_CONFIG)),
        }
        for i, (key, value) in enumerate(SERVER_CONFIG.items()):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        proc = subprocess.Popen(
            ["git", "http-backend"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        writer = threading.Thread(target=self._feed, args=(proc, body), daemon=True)
        writer.start()
        if proc.stdout is None:
            raise RuntimeError("git http-backend has no stdout")
        status, headers = 200, []
        while True:  # CGI response headers
            line = proc.stdout.readline().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        try:
            while chunk := proc.stdout.read1(64 * 1024):
                self.wfile.write(chunk)
                git.bytes_sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        writer.join()
        proc.wait()

    @staticmethod
    def _feed(proc: subprocess.Popen, body: bytes) -> None:
        try:
            if proc.stdin is None:
                return
            proc.stdin.write(body)
            proc.stdin.close()
        except BrokenPipeError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    git: GitServer


class GitServer:
    """Serves every bare repository under ``root`` at ``http://127.0.0.1:<port>/<name>.git``."""

    def __init__(
        self,
        root: Path | None = None,
        credentials: tuple[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._tmp = None if root else tempfile.TemporaryDirectory(prefix="druppie-git-")
        self.root = Path(root or self._tmp.name)  # type: ignore[union-attr]
        self.root.mkdir(parents=True, exist_ok=True)
        self.credentials = credentials
        self.lock = threading.Lock()
        self.requests = 0
        self.request_log: list[str] = []  # "GET /repo.git/info/refs?...", in order
        self.bytes_sent = 0  # response bytes, to check that clones stay small
        self._httpd = _Server((host, port), _Handler)
        self._httpd.git = self
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, name: str, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"{self.base_url.replace('http://', 'http://' + auth)}/{name}.git"

    def intercept(self, handler: BaseHTTPRequestHandler) -> bool:
        """Answer a request before git sees it (True: answered). Here never; tests override it."""
        return False

    def requests_to(self, path_part: str) -> int:
        return sum(path_part in r for r in self.request_log)

    def start(self) -> GitServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self) -> GitServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def repo_path(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def create_repo(
        self, name: str, files: dict[str, str] | None = None, branch: str = "main", source_dir: Path | None = None
    ) -> str:
        """A new bare repo with one commit holding ``files`` (and/or a copy of ``source_dir``)."""
        seed_repo(self.repo_path(name), files, branch, source_dir)
        return self.url(name)

    def read_file(self, name: str, path: str, ref: str = "main") -> str:
        return run("git", "--git-dir", str(self.repo_path(name)), "show", f"{ref}:{path}").stdout

    def log(self, name: str, ref: str = "main", fmt: str = "%H %s") -> list[str]:
        out = run("git", "--git-dir", str(self.repo_path(name)), "log", f"--format={fmt}", ref).stdout
        return out.splitlines()


def seed_repo(
    bare: Path, files: dict[str, str] | None = None, branch: str = "main", source_dir: Path | None = None
) -> None:
    """(Re)create the bare repo ``bare`` with one commit holding ``files`` and/or ``source_dir``."""
    if bare.exists():
        shutil.rmtree(bare)
    run("git", "init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare))
    if not (files or source_dir):
        return
    with tempfile.TemporaryDirectory(prefix="druppie-seed-") as tmp:
        work = Path(tmp)
        if source_dir:
            shutil.copytree(source_dir, work, dirs_exist_ok=True)
        for rel, content in (files or {}).items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_text(content, newline="")
        run("git", "init", "--quiet", f"--initial-branch={branch}", cwd=work)
        run("git", "add", "-A", cwd=work)
        run("git", "commit", "--quiet", "-m", "seed", cwd=work, env=COMMIT_ENV)
        run("git", "push", "--quiet", str(bare), f"{branch}:{branch}", cwd=work)


COMMIT_ENV = {
    "GIT_AUTHOR_NAME": "seed",
    "GIT_AUTHOR_EMAIL": "seed@druppie.local",
    "GIT_COMMITTER_NAME": "seed",
    "GIT_COMMITTER_EMAIL": "seed@druppie.local",
}


def run(*cmd: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", **(env or {})}
    return subprocess.run(cmd, cwd=cwd, env=full_env, text=True, capture_output=True, check=True)


class GitServerComponent(Component):
    """The cluster's git server, serving druppie-apps (seeded from examples/) and the tests' repos."""

    name = "git-server"
    needs = ("bridge",)

    @staticmethod
    def root(ctx: Context) -> Path:
        return ctx.component_dir("git")

    @staticmethod
    def url(ctx: Context, repo: str = "druppie-apps") -> str:
        return f"http://{ctx.host_ip}:{ctx.port('git')}/{repo}.git"

    def start(self, ctx: Context) -> None:
        seed_repo(self.root(ctx) / "druppie-apps.git", source_dir=ROOT / "examples" / "druppie-apps")
        ctx.spawn(self.name, [sys.executable, "-m", "localcluster.gitserver", self.root(ctx), ctx.port("git"),
                              ctx.host_ip], env={"PYTHONPATH": str(ROOT)})  # fmt: skip

    def ready(self, ctx: Context) -> None:
        ctx.wait_until(self.name, lambda: http_ok(f"{self.url(ctx)}/info/refs?service=git-upload-pack"), interval=0.05)


def main(argv: list[str]) -> int:
    """Serve a folder of bare repos in the foreground: ROOT [PORT [HOST]]."""
    server = GitServer(Path(argv[0]), port=int(argv[1]) if len(argv) > 1 else 0,
                       host=argv[2] if len(argv) > 2 else "127.0.0.1").start()  # fmt: skip
    print(server.base_url, flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
