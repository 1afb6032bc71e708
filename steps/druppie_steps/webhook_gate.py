"""webhook-gate: the EventListener's interceptor that decides whether a push may start a run.

Every field of a webhook delivery is untrusted until it is checked against what the platform team
configured: a list of allowed repositories (``owner/name`` on a forge) and, for each, its app name,
its branch and its own webhook secret. A delivery starts a run only when

1. it is a push event, with a JSON body naming a repository that is in the list;
2. its X-Hub-Signature-256 is the HMAC of the body with *that repository's* secret (a delivery
   signed with app B's secret that names app A is refused);
3. its clone_url is exactly that forge's URL of exactly that repository;
4. it pushes that repository's branch, to a full commit id (no deletion, no tag);
5. it is not the pipeline's own push (the bot as sender AND tag-commit's trailer in the commit);
6. its head commit does not ask for no run (``[skip ci]`` or ``[ci skip]`` in its message, as on
   GitHub and GitLab: a push that only reverts or fixes text need not be built and deployed).

Then the gate hands the EventListener the configured values, not the payload's: the app name,
the repository URL, the commit, and a run name derived from app and commit (the PipelineRun's
name, so a replayed delivery starts no second run). A refused delivery is logged in one line
with its event id and the reason, naming only the repository: no sender, no e-mail address.

A second EventListener (druppie-prod-deploy) asks the same gate about druppie-apps' pull requests
(its interceptor param ``trigger: prod-merge``). Such a delivery starts a run only when it is a
``pull_request`` event of the configured GitOps repository, signed with that repository's secret, with
its clone_url, that closed a pull request by merging it into the configured branch, from a branch
``promote/<app>/prod`` of that same repository (not a fork) for an app in the list. The run gets the
app, its repository URL (for the commit status), the merge commit and a run name made of app and
merge commit.

It speaks Tekton Triggers' interceptor protocol (an InterceptorRequest in, an
InterceptorResponse out) over HTTP, as a namespaced ``Interceptor`` the EventListener calls:

    druppie-step webhook-gate --config /etc/druppie-gate/repositories.yaml --secrets /etc/druppie-gate/secrets

The configuration (a ConfigMap):

    bot: druppie-ci                          # the login tag-commit pushes with
    repositories:
      - repository: waterschap/drone-service # owner/name on the forge
        forge: https://github.com            # clone_url must be <forge>/<owner>/<name>.git
        app: drone-service                   # default: the repository's name, if it is a valid app name
        branch: main                         # default: main
        secret: drone-service                # the key in the secrets folder; default: the app name
    gitops:                                  # optional: druppie-apps, for druppie-prod-deploy
      repository: waterschap/druppie-apps
      forge: https://github.com
      branch: main                           # default: main
      secret: druppie-apps                   # default: druppie-apps
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import signal
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import yaml

from .core.errors import InvalidInputError
from .core.log import info as log
from .core.options import option

APP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
REPOSITORY = re.compile(r"^[A-Za-z0-9][-_.A-Za-z0-9]*/[A-Za-z0-9][-_.A-Za-z0-9]*$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
TRAILER = re.compile(r"(?m)^Tekton-Pipeline-Run: ")
SKIP_CI = re.compile(r"\[(skip ci|ci skip)\]", re.IGNORECASE)
LOGIN = re.compile(r"^[A-Za-z0-9][-_.A-Za-z0-9]{0,38}$")
OK_TO_TEST = re.compile(r"(?m)^\s*/ok-to-test\s*$")
PULL_ACTIONS = ("opened", "reopened", "synchronize", "synchronized")  # GitHub says synchronize, Gitea synchronized
PROD_BRANCH = re.compile(r"^promote/([a-z0-9][-a-z0-9]{0,38}[a-z0-9]?)/prod$")
# The interceptor param `trigger`: which question the gate answers.
TRIGGERS = ("push", "pull-request", "ok-to-test", "prod-merge")
# gRPC codes, as Triggers reads them from an interceptor's status.
FAILED_PRECONDITION, PERMISSION_DENIED, INVALID_ARGUMENT = 9, 7, 3


@dataclass(frozen=True)
class Repository:
    full_name: str  # owner/name, as the forge spells it
    forge: str  # https://github.com, without a trailing slash
    app: str
    branch: str
    secret: str  # the secret's key in the secrets folder
    # Logins (lowercase) whose pull requests from forks are checked at once and whose /ok-to-test
    # comment starts the checks of anyone's pull request.
    trusted: frozenset[str] = frozenset()

    @property
    def clone_url(self) -> str:
        return f"{self.forge}/{self.full_name}.git"


@dataclass(frozen=True)
class Config:
    bot: str
    repositories: dict[str, Repository]  # by lowercase full name (forges treat names case-insensitively)
    refused: dict[str, str]  # lowercase full name -> why its entry cannot be used
    gitops: Repository | None = None  # druppie-apps (its app field unused), for the prod-merge trigger

    def app(self, name: str) -> Repository | None:
        return next((r for r in self.repositories.values() if r.app == name), None)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""
    code: int = 0
    extensions: dict[str, str] | None = None


def load_config(path: Path) -> Config:
    """The gate's configuration; an entry that cannot be used is kept with the reason (each of its
    deliveries is refused with that reason), a malformed file is an error naming it."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InvalidInputError(f"--config {path}: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("repositories"), list):
        raise InvalidInputError(f"--config {path}: needs a 'repositories' list")
    bot = str(doc.get("bot", "druppie-ci"))
    repositories: dict[str, Repository] = {}
    refused: dict[str, str] = {}
    for i, entry in enumerate(doc["repositories"]):
        if not isinstance(entry, dict) or not REPOSITORY.match(str(entry.get("repository", ""))):
            raise InvalidInputError(f"--config {path}: repositories[{i}] needs repository: owner/name")
        full_name = str(entry["repository"])
        forge = str(entry.get("forge", "")).rstrip("/")
        if not forge.startswith(("https://", "http://")):
            raise InvalidInputError(f"--config {path}: {full_name}: forge must be an http(s) URL, not {forge!r}")
        app = str(entry.get("app", full_name.rpartition("/")[2].lower()))
        secret = str(entry.get("secret", app))
        key = full_name.lower()
        if key in repositories or key in refused:
            raise InvalidInputError(f"--config {path}: {full_name} is listed twice")
        if not APP_NAME.match(app):
            refused[key] = (
                f"repository {full_name}: {app!r} cannot be an app name (lowercase letters, digits and '-', "
                "at most 40); set app: in the gate's configuration"
            )
        elif not SECRET_KEY.match(secret):
            refused[key] = f"repository {full_name}: secret key {secret!r} is not a valid Secret key"
        else:
            trusted = entry.get("trusted", [])
            if not isinstance(trusted, list) or not all(isinstance(t, str) and LOGIN.match(t) for t in trusted):
                raise InvalidInputError(
                    f"--config {path}: {full_name}: trusted must be a list of logins, not {trusted!r}"
                )
            repositories[key] = Repository(full_name, forge, app, str(entry.get("branch", "main")), secret,
                                           frozenset(t.lower() for t in trusted))  # fmt: skip
    apps = [r.app for r in repositories.values()]
    twice = sorted({a for a in apps if apps.count(a) > 1})
    if twice:
        raise InvalidInputError(f"--config {path}: app {twice[0]} is given to more than one repository")
    return Config(bot, repositories, refused, _gitops(path, doc.get("gitops")))


def _gitops(path: Path, entry: object) -> Repository | None:
    if entry is None:
        return None
    if not isinstance(entry, dict) or not REPOSITORY.match(str(entry.get("repository", ""))):
        raise InvalidInputError(f"--config {path}: gitops needs repository: owner/name")
    full_name = str(entry["repository"])
    forge = str(entry.get("forge", "")).rstrip("/")
    if not forge.startswith(("https://", "http://")):
        raise InvalidInputError(f"--config {path}: gitops: forge must be an http(s) URL, not {forge!r}")
    secret = str(entry.get("secret", "druppie-apps"))
    if not SECRET_KEY.match(secret):
        raise InvalidInputError(f"--config {path}: gitops: secret key {secret!r} is not a valid Secret key")
    return Repository(full_name, forge, "", str(entry.get("branch", "main")), secret)


def header(headers: dict[str, list[str]], name: str) -> str:
    """A request header's first value, whatever its case (Go canonicalises X-GitHub-Event to X-Github-Event)."""
    for key, values in headers.items():
        if key.lower() == name.lower() and values:
            return values[0]
    return ""


def _event(headers: dict[str, list[str]]) -> str:
    return header(headers, "X-GitHub-Event") or header(headers, "X-Gitea-Event")


def _listed_and_signed(
    config: Config, secrets: dict[str, bytes], body: str, headers: dict[str, list[str]]
) -> tuple[Repository, dict[str, Any]] | Verdict:
    """The listed app repository a delivery names, and its payload, once its signature (that
    repository's own secret) and clone_url hold; else the refusal."""
    try:
        payload = json.loads(body)
    except ValueError:
        return Verdict(False, "the body is not JSON", INVALID_ARGUMENT)
    repo = payload.get("repository") if isinstance(payload, dict) else None
    if not isinstance(repo, dict):
        return Verdict(False, "the body names no repository", INVALID_ARGUMENT)
    full_name = repo.get("full_name")
    if not isinstance(full_name, str) or not full_name:
        return Verdict(False, "the body names no repository", INVALID_ARGUMENT)
    key = full_name.lower()
    shown = full_name if REPOSITORY.match(full_name) else repr(full_name[:100])
    if key in config.refused:
        return Verdict(False, config.refused[key], FAILED_PRECONDITION)
    allowed = config.repositories.get(key)
    if allowed is None:
        return Verdict(False, f"repository {shown} is not in the gate's list", PERMISSION_DENIED)
    secret = secrets.get(allowed.secret)
    if not secret:
        return Verdict(
            False, f"repository {allowed.full_name}: no secret {allowed.secret!r} mounted", FAILED_PRECONDITION
        )
    signature = header(headers, "X-Hub-Signature-256")
    expected = "sha256=" + hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        why = "is missing" if not signature else "does not match its secret"
        return Verdict(False, f"repository {allowed.full_name}: the signature {why}", PERMISSION_DENIED)
    if repo.get("clone_url") != allowed.clone_url:
        return Verdict(
            False, f"repository {allowed.full_name}: clone_url is not {allowed.clone_url}", PERMISSION_DENIED
        )
    return allowed, payload


def decide(config: Config, secrets: dict[str, bytes], body: str, headers: dict[str, list[str]]) -> Verdict:
    """Whether this delivery may start a run, and with which values. Pure: no I/O."""
    event = _event(headers)
    if event != "push":
        return Verdict(False, f"not a push event ({event or 'no event header'})", FAILED_PRECONDITION)
    checked = _listed_and_signed(config, secrets, body, headers)
    if isinstance(checked, Verdict):
        return checked
    allowed, payload = checked
    ref, after = payload.get("ref"), payload.get("after")
    if ref != f"refs/heads/{allowed.branch}":
        return Verdict(False, f"repository {allowed.full_name}: a push to {str(ref)[:100]!r}, not to {allowed.branch}",
                       FAILED_PRECONDITION)  # fmt: skip
    if not isinstance(after, str) or not COMMIT.match(after):
        return Verdict(False, f"repository {allowed.full_name}: 'after' is not a commit id", INVALID_ARGUMENT)
    if set(after) == {"0"} or payload.get("deleted") is True:
        return Verdict(False, f"repository {allowed.full_name}: the branch was deleted", FAILED_PRECONDITION)
    sender, head = _object(payload.get("sender")), _object(payload.get("head_commit"))
    if sender.get("login") == config.bot and TRAILER.search(str(head.get("message", ""))):
        return Verdict(False, f"repository {allowed.full_name}: the pipeline's own commit", FAILED_PRECONDITION)
    if SKIP_CI.search(str(head.get("message", ""))):
        return Verdict(False, f"repository {allowed.full_name}: the head commit says [skip ci]", FAILED_PRECONDITION)
    return Verdict(True, extensions={
        "app_name": allowed.app, "repo_url": allowed.clone_url, "revision": after,
        "run_name": f"{allowed.app}-{after[:12]}",
    })  # fmt: skip


def decide_pull_request(config: Config, secrets: dict[str, bytes], body: str, headers: dict[str, list[str]]) -> Verdict:
    """Whether a pull request to a listed app's branch may run its checks (druppie-pr-check) now: a
    branch of the repository itself (its author may push there anyway), or a fork of a trusted login.
    Anyone else's waits for a trusted login's /ok-to-test. Pure: no I/O."""
    event = _event(headers)
    if event != "pull_request":
        return Verdict(False, f"not a pull_request event ({event or 'no event header'})", FAILED_PRECONDITION)
    checked = _listed_and_signed(config, secrets, body, headers)
    if isinstance(checked, Verdict):
        return checked
    allowed, payload = checked
    pull = _object(payload.get("pull_request"))
    number = pull.get("number", payload.get("number"))
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        return Verdict(False, f"repository {allowed.full_name}: the pull request has no number", INVALID_ARGUMENT)
    pr = f"repository {allowed.full_name}: pull request #{number}"
    action = payload.get("action")
    if action not in PULL_ACTIONS:
        return Verdict(False, f"{pr}: action {str(action)[:40]!r} starts no check", FAILED_PRECONDITION)
    base = _object(pull.get("base"))
    if base.get("ref") != allowed.branch:
        return Verdict(False, f"{pr} is for {str(base.get('ref'))[:100]!r}, not {allowed.branch}", FAILED_PRECONDITION)
    head = _object(pull.get("head"))
    sha = head.get("sha")
    if not isinstance(sha, str) or not COMMIT.match(sha):
        return Verdict(False, f"{pr}: head.sha is not a commit id", INVALID_ARGUMENT)
    same_repository = str(_object(head.get("repo")).get("full_name", "")).lower() == allowed.full_name.lower()
    author = str(_object(pull.get("user")).get("login", "")).lower()
    if not same_repository and author not in allowed.trusted:
        return Verdict(False, f"{pr} comes from a fork of a login not in the trusted list: it waits for /ok-to-test",
                       PERMISSION_DENIED)  # fmt: skip
    return Verdict(True, extensions={
        "app_name": allowed.app, "repo_url": allowed.clone_url, "revision": sha, "pull_request": str(number),
        "run_name": f"{allowed.app}-pr{number}-{sha[:12]}",
    })  # fmt: skip


def decide_ok_to_test(config: Config, secrets: dict[str, bytes], body: str, headers: dict[str, list[str]]) -> Verdict:
    """Whether a comment starts the checks of a pull request: `/ok-to-test` on a line of its own, by a
    trusted login, on an open pull request of a listed app. The run checks out refs/pull/<n>/head, as
    the forge has it then. Pure: no I/O."""
    event = _event(headers)
    if event != "issue_comment":
        return Verdict(False, f"not an issue_comment event ({event or 'no event header'})", FAILED_PRECONDITION)
    checked = _listed_and_signed(config, secrets, body, headers)
    if isinstance(checked, Verdict):
        return checked
    allowed, payload = checked
    issue = _object(payload.get("issue"))
    number = issue.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        return Verdict(False, f"repository {allowed.full_name}: the comment names no issue number", INVALID_ARGUMENT)
    on = f"repository {allowed.full_name}: a comment on #{number}"
    comment = _object(payload.get("comment"))
    if payload.get("action") != "created" or not OK_TO_TEST.search(str(comment.get("body", ""))):
        return Verdict(False, f"{on} that does not say /ok-to-test", FAILED_PRECONDITION)
    if not isinstance(issue.get("pull_request"), dict) or issue.get("state") != "open":
        return Verdict(False, f"{on}: not an open pull request", FAILED_PRECONDITION)
    if str(_object(comment.get("user")).get("login", "")).lower() not in allowed.trusted:
        return Verdict(False, f"{on}: /ok-to-test by a login not in the trusted list", PERMISSION_DENIED)
    comment_id = comment.get("id")
    if not isinstance(comment_id, int) or isinstance(comment_id, bool) or comment_id <= 0:
        return Verdict(False, f"{on}: the comment has no id", INVALID_ARGUMENT)
    return Verdict(True, extensions={
        "app_name": allowed.app, "repo_url": allowed.clone_url, "revision": f"refs/pull/{number}/head",
        "pull_request": str(number), "run_name": f"{allowed.app}-pr{number}-ok{comment_id}"[:63],
    })  # fmt: skip


def decide_prod_merge(config: Config, secrets: dict[str, bytes], body: str, headers: dict[str, list[str]]) -> Verdict:
    """Whether this delivery is a merged prod pull request of druppie-apps that may start
    druppie-prod-deploy, and with which values. Pure: no I/O."""
    event = header(headers, "X-GitHub-Event") or header(headers, "X-Gitea-Event")
    if event != "pull_request":
        return Verdict(False, f"not a pull_request event ({event or 'no event header'})", FAILED_PRECONDITION)
    gitops = config.gitops
    if gitops is None:
        return Verdict(False, "no gitops repository in the gate's configuration", FAILED_PRECONDITION)
    try:
        payload = json.loads(body)
    except ValueError:
        return Verdict(False, "the body is not JSON", INVALID_ARGUMENT)
    repo = payload.get("repository") if isinstance(payload, dict) else None
    if not isinstance(repo, dict) or not isinstance(repo.get("full_name"), str) or not repo["full_name"]:
        return Verdict(False, "the body names no repository", INVALID_ARGUMENT)
    full_name = repo["full_name"]
    if full_name.lower() != gitops.full_name.lower():
        shown = full_name if REPOSITORY.match(full_name) else repr(full_name[:100])
        return Verdict(False, f"repository {shown} is not the gitops repository", PERMISSION_DENIED)
    name = f"repository {gitops.full_name}"
    secret = secrets.get(gitops.secret)
    if not secret:
        return Verdict(False, f"{name}: no secret {gitops.secret!r} mounted", FAILED_PRECONDITION)
    signature = header(headers, "X-Hub-Signature-256")
    expected = "sha256=" + hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return Verdict(False, f"{name}: the signature {'is missing' if not signature else 'does not match its secret'}",
                       PERMISSION_DENIED)  # fmt: skip
    if repo.get("clone_url") != gitops.clone_url:
        return Verdict(False, f"{name}: clone_url is not {gitops.clone_url}", PERMISSION_DENIED)
    pull = _object(payload.get("pull_request"))
    number = pull.get("number", payload.get("number"))
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        return Verdict(False, f"{name}: the pull request has no number", INVALID_ARGUMENT)
    pr = f"{name}: pull request #{number}"
    if payload.get("action") != "closed" or pull.get("merged") is not True:
        return Verdict(False, f"{pr} was not merged (action {str(payload.get('action'))[:40]!r})", FAILED_PRECONDITION)
    base = _object(pull.get("base"))
    if base.get("ref") != gitops.branch:
        return Verdict(False, f"{pr} was merged into {str(base.get('ref'))[:100]!r}, not {gitops.branch}",
                       FAILED_PRECONDITION)  # fmt: skip
    head = _object(pull.get("head"))
    head_repo = _object(head.get("repo"))
    if str(head_repo.get("full_name", "")).lower() != gitops.full_name.lower():
        return Verdict(False, f"{pr} comes from another repository (a fork)", PERMISSION_DENIED)
    branch = PROD_BRANCH.match(str(head.get("ref", "")))
    app = config.app(branch.group(1)) if branch else None
    if app is None:
        return Verdict(False, f"{pr} comes from {str(head.get('ref'))[:100]!r}, not promote/<app>/prod of a listed app",
                       FAILED_PRECONDITION)  # fmt: skip
    merge = pull.get("merge_commit_sha")
    if not isinstance(merge, str) or not COMMIT.match(merge):
        return Verdict(False, f"{pr}: merge_commit_sha is not a commit id", INVALID_ARGUMENT)
    return Verdict(True, extensions={
        "app_name": app.app, "repo_url": app.clone_url, "revision": merge, "pull_request": str(number),
        "run_name": f"{app.app}-prod-{merge[:12]}",
    })  # fmt: skip


def _object(value: object) -> dict[str, Any]:
    """A JSON object of the payload, or an empty one for anything else."""
    return value if isinstance(value, dict) else {}


def read_secrets(folder: Path) -> dict[str, bytes]:
    """The mounted Secret's keys (one file each; Kubernetes' ..data links are skipped)."""
    found = {}
    for path in folder.iterdir():
        if not path.name.startswith(".") and path.is_file():
            found[path.name] = path.read_bytes().strip()
    return found


def response(verdict: Verdict) -> dict[str, Any]:
    if verdict.allowed:
        return {"continue": True, "extensions": verdict.extensions or {}, "status": {"code": 0}}
    return {"continue": False, "status": {"code": verdict.code, "message": verdict.reason}}


class Gate:
    """The served state: configuration and secrets, read again when their files change (a
    ConfigMap or Secret update reaches a mounted volume without a restart)."""

    def __init__(self, config_path: Path, secrets_dir: Path) -> None:
        self.config_path, self.secrets_dir = config_path, secrets_dir
        self._lock = threading.Lock()
        self._stamp: tuple[float, ...] = ()
        self._config = load_config(config_path)
        self._secrets = read_secrets(secrets_dir)

    def _current(self) -> tuple[Config, dict[str, bytes]]:
        stamp = (self.config_path.stat().st_mtime, *(p.stat().st_mtime for p in sorted(self.secrets_dir.iterdir())))
        with self._lock:
            if stamp != self._stamp:
                self._config, self._secrets, self._stamp = (
                    load_config(self.config_path),
                    read_secrets(self.secrets_dir),
                    stamp,
                )
            return self._config, self._secrets

    @property
    def config(self) -> Config:
        return self._current()[0]

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        config, secrets = self._current()
        body = request.get("body") if isinstance(request.get("body"), str) else ""
        headers = request.get("header") if isinstance(request.get("header"), dict) else {}
        params = request.get("interceptor_params")
        trigger = params.get("trigger", "push") if isinstance(params, dict) else "push"
        if trigger not in TRIGGERS:
            verdict = Verdict(False, f"the EventListener asks about trigger {str(trigger)[:40]!r}; the gate knows "
                                     f"{', '.join(TRIGGERS)}", INVALID_ARGUMENT)  # fmt: skip
        else:
            judge = {"push": decide, "pull-request": decide_pull_request, "ok-to-test": decide_ok_to_test,
                     "prod-merge": decide_prod_merge}[trigger]  # fmt: skip
            verdict = judge(config, secrets, body or "", headers or {})
        event = str((request.get("context") or {}).get("event_id", "?"))[:64]
        if verdict.allowed:
            ext = verdict.extensions or {}
            log(f"event {event}: run {ext['run_name']} for {ext['repo_url']}")
        else:
            log(f"event {event}: refused: {verdict.reason}")
        return response(verdict)


def serve(gate: Gate, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # no access log: one line per decision
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                request = json.loads(self.rfile.read(min(length, 10 * 2**20)))
                answer = gate.handle(request if isinstance(request, dict) else {})
            except (ValueError, InvalidInputError) as err:
                answer = {"continue": False, "status": {"code": INVALID_ARGUMENT, "message": str(err)[:300]}}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ready" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


@click.command("webhook-gate")
@option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The allowed repositories (YAML; see the webhook-gate section of the triggers README).",
)
@option(
    "--secrets",
    "secrets_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    required=True,
    help="Folder with one webhook secret per repository (a mounted Secret).",
)
@option("--listen", default="0.0.0.0:8080", help="host:port to serve the interceptor protocol on.")  # fmt: skip
def webhook_gate(config_path: Path, secrets_dir: Path, listen: str) -> None:
    """Serve the EventListener's interceptor: which pushes may start a run (see the module docstring)."""
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise InvalidInputError(f"invalid --listen {listen!r}: use host:port")
    gate = Gate(config_path, secrets_dir)
    server = serve(gate, host or "0.0.0.0", int(port))  # noqa: S104 - a pod's own address
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    log(f"webhook-gate: {len(gate.config.repositories)} repositories allowed, listening on {listen}")
    server.serve_forever()
