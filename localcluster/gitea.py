"""Gitea as the local forge, headless: a real forge whose push webhooks drive Tekton Triggers.

The simple git server (gitserver.py) speaks git but has no users, tokens or webhooks. Gitea has
them, and its push webhook is what the EventListener's github interceptor accepts (it sends
``X-GitHub-Event: push`` and a valid ``X-Hub-Signature-256``). This module runs the binary that
``hack/cluster-build.sh gitea`` builds into ``$DRUPPIE_CACHE/gitea-<GITEA_VERSION>/`` (``gitea``
plus its ``templates/ options/ public/``; no frontend build, so the web UI lacks CSS/JS while the
API and git over HTTP work):

    with GiteaServer(tmp_path / "gitea") as server:
        forge = server.client()  # gitea_api.GiteaClient, as the admin
        url = forge.create_repo("druppie-apps", files={"README.md": "hi\\n"})

``python -m localcluster.gitea STATE_DIR PORT HOST`` runs it in the foreground (as the cluster
spawns its components), printing the URL and the path of the admin token file.

What start() does, and why
--------------------------
1. Writes ``STATE_DIR/app.ini`` (again on every start: the port or host may change; the secrets
   are kept from the previous file):

   - ``[security] INSTALL_LOCK = true`` and our own ``SECRET_KEY``/``INTERNAL_TOKEN``: no install
     page, and Gitea has no reason to rewrite app.ini. ``[oauth2] ENABLED = false`` so it does not
     generate a JWT secret into it either.
   - ``[security] ALLOWED_HOST_LIST = loopback,private``: webhooks to 127.0.0.1, the cluster's
     bridge address and pod IPs are refused by default ("external" only). The webhook sender
     reads ``[webhook] ALLOWED_HOST_LIST`` and falls back to this value; in 1.27 the ``[webhook]``
     key is deprecated (an ERROR "Deprecation: ... removed in v28.0.0" at every start, see
     modules/setting/webhook.go), so only ``[security]`` is set.
   - ``[database] DB_TYPE = sqlite3`` in STATE_DIR, WAL journal (the CLI and the tests' webhook
     history reader read it while the server runs).
   - ``[server]``: ``ROOT_URL = http://HOST:PORT/`` (decides the clone URLs in API answers and
     webhook payloads: give a HOST pods can reach), ``LOCAL_ROOT_URL`` the same (git hooks call the
     internal API through it; the default ``localhost`` is wrong when HOST is a bridge address),
     ``DISABLE_SSH``, ``OFFLINE_MODE`` (no CDN, no gravatar), ``STATIC_ROOT_PATH`` at the cache
     folder, no LFS server.
   - Quick start and quiet: mailer, Actions, packages, swagger off; issue indexer ``db`` (no
     bleve index to open), no code indexer; every cron job off (the update checker would call
     out to dl.gitea.com; a hook-task cleanup would delete the delivery history the tests read);
     queues ``channel`` (in memory: no LevelDB to open; a test forge needs no persistent queue);
     sessions and cache in memory; ``[log]`` level warn, to ``STATE_DIR/log/gitea.log``.
   - As root, ``RUN_USER = root`` and ``GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true`` in the
     environment (Gitea refuses to run as root otherwise).
2. On a fresh STATE_DIR: ``gitea migrate`` (creates the schema), then, while ``gitea web`` starts,
   ``gitea admin user create --admin --must-change-password=false --access-token --access-token-scopes
   all`` (user and token in one process, the token read from its output). On a STATE_DIR used
   before, the saved token is checked and a new one made (``generate-access-token``) if it fails.
3. ``gitea web`` in its own process group, output to ``STATE_DIR/log/web.out``; ready when
   ``/api/v1/version`` answers.

The admin's password and token are written to ``STATE_DIR/admin-password`` and
``STATE_DIR/admin-token`` (mode 0600) and never printed; git is given the token through
``GIT_CONFIG_*`` environment variables (``http.extraHeader``), never on a command line
(``clone_url(..., with_credentials=True)`` puts it in a URL, for callers that need one).

Start time (2 cores, measured with Gitea 1.27.3): 0.8-1.0 s from nothing to a token that works
(``migrate`` ~0.3 s, user and token ~0.15 s, ``web`` ready ~0.45 s after its start); 0.5 s on a
STATE_DIR used before (no migrate, no user). Most of it is Gitea's own process start. What helped
a little (~0.1 s): creating the user while ``gitea web`` starts, and the token in the same CLI call
(migrate, user create, generate-access-token, web one after the other: 0.92-0.97 s). ``gitea web``
alone would migrate too, but the user can only be created once the schema exists, so the separate
``migrate`` is what lets the two run side by side. The quick-start settings above
gain little on an empty database (~0.05 s against Gitea's defaults for indexer, queues, cron,
Actions and packages); they are kept for quiet and for no outgoing calls. ``start_seconds`` and
``timings`` hold the measurement of a run.

The API client (repos, users, tokens, webhooks) is ``gitea_api.GiteaClient``; the component that
runs Gitea in the cluster is ``GiteaComponent`` below.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .component import Component
from .context import Context
from .gitea_api import ADMIN, GiteaClient, GiteaError
from .process import free_port, http_ok, http_request, kill
from .toolchain import ROOT, cache_dir, toolchain

ADMIN_EMAIL = "druppie-admin@druppie.local"


def gitea_dir() -> Path:
    """The cache folder: the ``gitea`` binary and its ``templates/ options/ public/``."""
    return cache_dir() / f"gitea-{toolchain()['GITEA_VERSION']}"


def gitea_binary() -> Path:
    return gitea_dir() / "gitea"


def missing() -> list[str]:
    """What the forge lacks; empty when it can run."""
    folder = gitea_dir()
    if (folder / ".complete").is_file() and gitea_binary().is_file():
        return []
    return [f"{folder} (hack/cluster-build.sh gitea)"]


class GiteaServer:
    """A Gitea serving ``http://host:port/`` with its state (SQLite, repos, logs) in ``state_dir``."""

    def __init__(self, state_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.proc: subprocess.Popen | None = None
        self.own_group = True  # False in the foreground runner: killing its group kills Gitea too
        self.start_seconds: float | None = None
        self.timings: dict[str, float] = {}
        self.token = ""

    # ---- paths and facts ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def app_ini(self) -> Path:
        return self.state_dir / "app.ini"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "gitea.db"

    @property
    def token_file(self) -> Path:
        return self.state_dir / "admin-token"

    @property
    def password_file(self) -> Path:
        return self.state_dir / "admin-password"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "log" / "gitea.log"

    @property
    def admin(self) -> str:
        return ADMIN

    # ---- lifecycle ------------------------------------------------------------------------------
    def client(self) -> GiteaClient:
        """An API client as the admin (token and password from their 0600 files)."""
        return client_of(self.state_dir, self.base_url)

    def __enter__(self) -> GiteaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60) -> GiteaServer:
        if missing():
            raise RuntimeError(f"Gitea not built: {', '.join(missing())}")
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "log").mkdir(exist_ok=True)
        self._write_app_ini()
        fresh = not self.db_path.exists()
        creator = None
        if fresh:
            self._gitea("migrate")
            self.timings["migrate"] = time.monotonic() - started
            # Runs while `gitea web` starts: both only need the schema, which exists now. Gitea makes
            # the password (--random-password: not on a command line) and prints it to our pipe.
            creator = subprocess.Popen(
                self._argv(
                    "admin",
                    "user",
                    "create",
                    "--admin",
                    "--username",
                    ADMIN,
                    "--email",
                    ADMIN_EMAIL,
                    "--random-password",
                    "--random-password-length",
                    "24",
                    "--must-change-password=false",
                    "--access-token",
                    "--access-token-name",
                    "druppie",
                    "--access-token-scopes",
                    "all",
                ),
                env=self._env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=self.state_dir,
            )
        with (self.state_dir / "log" / "web.out").open("ab") as out:
            self.proc = subprocess.Popen(
                self._argv("web", "--port", str(self.port)),
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.state_dir,
                start_new_session=self.own_group,
            )
        try:
            if creator:
                stdout, stderr = creator.communicate(timeout=timeout)
                if creator.returncode != 0:
                    raise RuntimeError(f"gitea admin user create failed: {stderr.strip()[-500:]}")
                password = re.search(r"generated random password is '(.+)'\n", stdout)
                token = re.search(r"Access token was successfully created\.\.\. (\S+)", stdout)
                if not (password and token):
                    raise RuntimeError("gitea admin user create printed no password or no access token")
                _write_secret(self.password_file, password.group(1))
                _write_secret(self.token_file, token.group(1))
                self.timings["admin"] = time.monotonic() - started
            self._wait_ready(timeout)
            self.timings["ready"] = time.monotonic() - started
            self.token = self.token_file.read_text().strip() if self.token_file.exists() else ""
            if not fresh and not self._token_works(self.token):
                self.token = self._gitea(
                    "admin",
                    "user",
                    "generate-access-token",
                    "--username",
                    ADMIN,
                    "--token-name",
                    f"druppie-{int(time.time() * 1000)}",
                    "--scopes",
                    "all",
                    "--raw",
                ).strip()
                _write_secret(self.token_file, self.token)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.own_group:
            kill(self.proc.pid)
        else:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
            self.proc.wait(5)
        self.proc = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"gitea web exited; log: {self.state_dir / 'log'}\n{self._log_tail()}")
            try:
                with http_request(f"{self.base_url}/api/v1/version", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError) as err:
                last = str(err)
            time.sleep(0.05)
        raise RuntimeError(f"gitea web not ready after {timeout:.0f}s ({last})\n{self._log_tail()}")

    def _log_tail(self) -> str:
        parts = []
        for name in ("web.out", "gitea.log"):
            path = self.state_dir / "log" / name
            if path.exists():
                parts.append("\n".join(path.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(parts)

    def _token_works(self, token: str) -> bool:
        if not token:
            return False
        try:
            self.client().api("GET", "/user", token=token)
            return True
        except GiteaError:
            return False

    # ---- configuration and CLI ------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "GITEA_WORK_DIR": str(self.state_dir),
            "GITEA_CUSTOM": str(self.state_dir / "custom"),
            "HOME": str(self.state_dir / "data" / "home"),
        }
        if os.geteuid() == 0:
            env["GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT"] = "true"
        return env

    def _argv(self, *args: str) -> list[str]:
        return [str(gitea_binary()), "--config", str(self.app_ini), "--work-path", str(self.state_dir), *args]

    def _gitea(self, *args: str) -> str:
        proc = subprocess.run(self._argv(*args), env=self._env(), capture_output=True, text=True, cwd=self.state_dir)
        if proc.returncode != 0:
            raise RuntimeError(f"gitea {args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def _write_app_ini(self) -> None:
        kept = {}
        if self.app_ini.exists():  # keep the secrets: they encrypt what the database holds
            for line in self.app_ini.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and key.strip() in ("SECRET_KEY", "INTERNAL_TOKEN"):
                    kept[key.strip()] = value.strip()
        state, static = self.state_dir, gitea_dir()
        url = f"{self.base_url}/"
        sections: dict[str, dict[str, Any]] = {
            "": {
                "APP_NAME": "Druppie forge",
                "RUN_MODE": "prod",
                "RUN_USER": pwd.getpwuid(os.geteuid()).pw_name,
                "WORK_PATH": state,
            },
            "server": {
                "PROTOCOL": "http",
                "HTTP_ADDR": self.host,
                "HTTP_PORT": self.port,
                "DOMAIN": self.host,
                "ROOT_URL": url,
                "LOCAL_ROOT_URL": url,
                "DISABLE_SSH": "true",
                "START_SSH_SERVER": "false",
                "OFFLINE_MODE": "true",
                "STATIC_ROOT_PATH": static,
                "APP_DATA_PATH": state / "data",
                "LFS_START_SERVER": "false",
                "ENABLE_PPROF": "false",
            },
            "database": {"DB_TYPE": "sqlite3", "PATH": self.db_path, "SQLITE_JOURNAL_MODE": "WAL", "LOG_SQL": "false"},
            "repository": {"ROOT": state / "repos", "DEFAULT_BRANCH": "main", "DEFAULT_PRIVATE": "public"},
            "security": {
                "INSTALL_LOCK": "true",
                "SECRET_KEY": kept.get("SECRET_KEY") or secrets.token_urlsafe(48),
                "INTERNAL_TOKEN": kept.get("INTERNAL_TOKEN") or secrets.token_urlsafe(64),
                "ALLOWED_HOST_LIST": "loopback,private",
                "PASSWORD_CHECK_PWN": "false",
                "MIN_PASSWORD_LENGTH": 8,
                "PASSWORD_COMPLEXITY": "off",
            },
            "service": {
                "DISABLE_REGISTRATION": "true",
                "REQUIRE_SIGNIN_VIEW": "false",
                "ENABLE_NOTIFY_MAIL": "false",
                "NO_REPLY_ADDRESS": "noreply.druppie.local",
                "DEFAULT_KEEP_EMAIL_PRIVATE": "false",
            },
            "webhook": {"DELIVER_TIMEOUT": 10, "SKIP_TLS_VERIFY": "true"},
            "mailer": {"ENABLED": "false"},
            "oauth2": {"ENABLED": "false"},
            "actions": {"ENABLED": "false"},
            "packages": {"ENABLED": "false"},
            "api": {"ENABLE_SWAGGER": "false"},
            "indexer": {"ISSUE_INDEXER_TYPE": "db", "REPO_INDEXER_ENABLED": "false"},
            "queue": {"TYPE": "channel"},
            "session": {"PROVIDER": "memory"},
            "cache": {"ADAPTER": "memory"},
            "picture": {"DISABLE_GRAVATAR": "true", "ENABLE_FEDERATED_AVATAR": "false"},
            "log": {"MODE": "file", "LEVEL": "warn", "ROOT_PATH": state / "log"},
            "cron": {"ENABLED": "false", "RUN_AT_START": "false"},
        }
        for job in CRON_JOBS:
            sections[f"cron.{job}"] = {"ENABLED": "false", "RUN_AT_START": "false"}
        lines = ["; written by localcluster/gitea.py at every start; edits are lost\n"]
        for name, values in sections.items():
            if name:
                lines.append(f"\n[{name}]\n")
            lines += [f"{key} = {value}\n" for key, value in values.items()]
        fd = os.open(self.app_ini, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(lines))


CRON_JOBS = (
    "archive_cleanup",
    "update_mirrors",
    "repo_health_check",
    "check_repo_stats",
    "update_migration_poster_id",
    "sync_external_users",
    "cleanup_actions",
    "deleted_branches_cleanup",
    "cleanup_hook_task_table",
    "cleanup_packages",
    "update_checker",
    "stop_zombie_tasks",
    "stop_endless_tasks",
    "cancel_abandoned_jobs",
    "start_schedule_tasks",
)


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)  # an existing file keeps its mode on open


def client_of(state_dir: Path, base_url: str) -> GiteaClient:
    """A client of the Gitea whose state is ``state_dir`` (started by this or another process)."""
    token = (state_dir / "admin-token").read_text().strip()
    password_file = state_dir / "admin-password"
    return GiteaClient(base_url, token, password_file.read_text().strip() if password_file.is_file() else "")


class GiteaComponent(Component):
    """The cluster's forge, in a process of its own (``python -m localcluster.gitea``), on the host address."""

    name = "gitea"
    needs = ("bridge",)
    features = frozenset({"loop"})

    def missing(self) -> list[str]:
        return missing()

    @staticmethod
    def state_dir(ctx: Context) -> Path:
        return ctx.component_dir("gitea")

    @staticmethod
    def base_url(ctx: Context) -> str:
        return f"http://{ctx.host_ip}:{ctx.port('gitea')}"

    def start(self, ctx: Context) -> None:
        ctx.spawn(self.name, [sys.executable, "-m", "localcluster.gitea", self.state_dir(ctx), ctx.port("gitea"),
                              ctx.host_ip], env={"PYTHONPATH": str(ROOT)})  # fmt: skip

    def ready(self, ctx: Context) -> None:
        token = self.state_dir(ctx) / "admin-token"
        url = f"{self.base_url(ctx)}/api/v1/version"
        ctx.wait_until(self.name, lambda: token.is_file() and http_ok(url), interval=0.05)


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 3:
        print("usage: python -m localcluster.gitea STATE_DIR [PORT [HOST]]", file=sys.stderr)
        return 2
    forge = GiteaServer(
        Path(argv[0]),
        host=argv[2] if len(argv) > 2 else "127.0.0.1",
        port=int(argv[1]) if len(argv) > 1 and argv[1] != "0" else None,
    )
    forge.own_group = False  # the cluster kills this process's group: Gitea goes with it

    def stop(signum: int, frame: object) -> None:  # only unwind here: stop() runs in the finally
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        forge.start()
        print(
            f"{forge.base_url} Gitea {forge.client().version()} ready in {forge.start_seconds:.1f}s; "
            f"admin {ADMIN}, token in {forge.token_file}",
            flush=True,
        )
        if forge.proc is None:
            raise RuntimeError("gitea web did not start")
        return forge.proc.wait()
    finally:
        forge.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
