"""A git server speaking smart HTTP: ``git http-backend`` behind a small threaded HTTP server.

The same protocol GitHub, GitLab and Gitea speak, with the features the steps rely on switched
on (partial clone filters, protocol v2, push over HTTP), optional basic auth so credentials can
be tested, a switch that makes every request fail with an HTTP status (server-error tests), and
fault injection for the next N requests (transient-error tests):

    with GitServer(root) as server:
        url = server.create_repo("druppie-apps", {"envs/prod/app/kustomization.yaml": "..."})
        server.fail_next(2, 503, "git-upload-pack")  # the next 2 fetch requests answer 503
        server.reset_next(1, "git-receive-pack")      # the next push request: connection reset
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Server-side git config, passed to http-backend through GIT_CONFIG_* variables.
SERVER_CONFIG = {
    "http.receivepack": "true",  # allow push without REMOTE_USER
    "uploadpack.allowFilter": "true",  # partial clone (--filter=blob:none)
    "uploadpack.allowAnySHA1InWant": "true",  # lazy fetch of blobs for a partial clone
    "receive.denyNonFastForwards": "true",
    "core.logAllRefUpdates": "false",
}


@dataclass
class Fault:
    """Answer the next ``count`` requests whose path contains ``path`` with ``status``, or reset them (0)."""

    count: int
    status: int
    path: str = ""


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
        git.requests += 1
        git.request_log.append(f"{self.command} {self.path}")
        if git.fail_status and git.fail_path in self.path:
            self.send_error(git.fail_status, "injected failure")
            return
        fault = git.take_fault(self.path)
        if fault and fault.status:
            self.send_error(fault.status, "injected failure")
            return
        if fault:
            # SO_LINGER 0: close sends a TCP RST, what the client sees as "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
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
        assert proc.stdout is not None
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
            assert proc.stdin is not None
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
        self.fail_status = 0  # set to e.g. 500 to make requests fail...
        self.fail_path = ""  # ...those whose path contains this (e.g. "git-receive-pack": pushes only)
        self.requests = 0
        self.request_log: list[str] = []  # "GET /repo.git/info/refs?...", in order
        self.faults: list[Fault] = []
        self._faults_lock = threading.Lock()
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

    def fail_next(self, count: int, status: int, path: str = "") -> Fault:
        """The next ``count`` requests whose path contains ``path`` get HTTP ``status``."""
        fault = Fault(count, status, path)
        with self._faults_lock:
            self.faults.append(fault)
        return fault

    def reset_next(self, count: int, path: str = "") -> Fault:
        """The next ``count`` requests whose path contains ``path`` have their connection reset."""
        return self.fail_next(count, 0, path)

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


if __name__ == "__main__":  # serve a folder of bare repos: python -m localcluster.gitserver ROOT [PORT [HOST]]
    import sys
    import time

    server = GitServer(
        Path(sys.argv[1]),
        port=int(sys.argv[2]) if len(sys.argv) > 2 else 0,
        host=sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1",
    ).start()
    print(server.base_url, flush=True)
    while True:
        time.sleep(3600)
