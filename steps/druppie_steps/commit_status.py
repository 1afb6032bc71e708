"""commit-status: report a run's stages as commit statuses on the app's forge (Gitea or GitHub).

Both forges take the same call, ``POST <api>/repos/{owner}/{repo}/statuses/{sha}`` with a JSON body
``{"state", "context", "description", "target_url"}`` and answer 201; a second status with the same
context replaces the first in the commit's combined view. Gitea's API root is ``<forge>/api/v1``
(token scope ``write:repository`` and write access to the repository: it has no narrower scope),
GitHub's ``https://api.github.com`` (a fine-grained token with "Commit statuses: write" only).

A status is news about a run, not part of it: when the forge cannot be reached or refuses (4xx,
5xx) the step says so in one warning line naming the forge and the HTTP status, writes
``reported=false`` and the reason as results, and exits 0, so a deployment never fails for it. So
does a missing token (the status-token workspace not bound, or its Secret absent). What is the
caller's bug, a bad option, is one line naming the option and exit code 2, before any call.

``--status CONTEXT=STATE[:DESCRIPTION]``, repeatable (one per line in ``DRUPPIE_STATUS``). STATE is
a forge state (pending, success, failure, error) or what Tekton says of a pipeline task
(``$(tasks.<name>.status)``: Succeeded, Failed, None), then DESCRIPTION is its
``$(tasks.<name>.reason)`` and the step words the description itself. The token is read from a
file (``<--credentials>/token``, the workspace), never from an option or variable, and masked in every line.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from . import __version__
from .core import log
from .core.errors import InvalidInputError
from .core.options import Duration, flag_option, option, results_dir_option, timeout_option, workspace_option
from .core.redact import redact, register_secret
from .core.results import summary_line, write_results

FORGE_STATES = ("pending", "success", "failure", "error")
# $(tasks.<name>.status) -> the forge's state. "None": Tekton did not run it (an earlier task failed).
TEKTON_STATES = {"Succeeded": "success", "Failed": "failure", "None": "failure"}
FORGES = ("auto", "gitea", "github")
SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
CONTEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,254}")
MAX_DESCRIPTION = 140  # GitHub refuses a longer one (422); Gitea keeps any
STATUS_HINT = "use CONTEXT=STATE[:DESCRIPTION], e.g. 'druppie/test=pending:started'"
TOKEN_KEY = "token"  # noqa: S105 - the name of the Secret's key, not a secret


class _Lines(click.types.StringParamType):
    """A repeatable option whose variable holds one value per line (click splits on any blank by default)."""

    envvar_list_splitter = "\n"


@dataclass(frozen=True)
class Status:
    context: str
    state: str
    description: str


@dataclass(frozen=True)
class Forge:
    """Where the statuses of one repository go: ``api`` + ``/repos/{owner}/{repo}/statuses/{sha}``."""

    kind: str  # gitea or github
    api: str
    owner: str
    repo: str

    def statuses_url(self, commit: str) -> str:
        quote = urllib.parse.quote
        return f"{self.api}/repos/{quote(self.owner)}/{quote(self.repo)}/statuses/{commit}"

    @property
    def where(self) -> str:
        """``gitea at https://host`` for the log: the forge by kind and address, no path, no credentials."""
        parts = urllib.parse.urlsplit(self.api)
        return f"{self.kind} at {parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def tekton_description(status: str, reason: str) -> str:
    """What a pipeline task's status and reason say, in the words a forge's status list shows."""
    if status == "Succeeded":
        return "succeeded"
    if status == "Failed":
        return "failed" + (f" ({reason})" if reason and reason not in ("Failed", "None") else "")
    return "not run: an earlier task failed or the run was stopped"


def parse_status(text: str) -> Status:
    """``CONTEXT=STATE[:DESCRIPTION]``; a Tekton status (Succeeded, Failed, None) is mapped to a forge state."""
    context, eq, rest = text.strip().partition("=")
    state, _, description = rest.partition(":")
    context, state, description = context.strip(), state.strip(), " ".join(description.split())
    if len(description) > MAX_DESCRIPTION:
        description = description[: MAX_DESCRIPTION - 3] + "..."
    if not eq or not context:
        raise InvalidInputError(f"invalid --status {text!r}: {STATUS_HINT}")
    if not CONTEXT.fullmatch(context):
        raise InvalidInputError(
            f"invalid --status {text!r}: the context {context!r} is not letters, digits and ._/- "
            "(at most 255, e.g. druppie/test)"
        )
    if state in TEKTON_STATES:
        return Status(context, TEKTON_STATES[state], tekton_description(state, description))
    if state not in FORGE_STATES:
        raise InvalidInputError(
            f"invalid --status {text!r}: the state {state!r} is none of {', '.join(FORGE_STATES)} "
            f"or Tekton's {', '.join(TEKTON_STATES)}"
        )
    return Status(context, state, description)


def parse_statuses(values: tuple[str, ...]) -> list[Status]:
    """Every --status (a value may hold several, one per line, as DRUPPIE_STATUS does); one per context."""
    lines = [line for value in values for line in value.splitlines() if line.strip()]
    if not lines:
        raise InvalidInputError(f"invalid --status: none given ({STATUS_HINT})")
    statuses: dict[str, Status] = {}
    for line in lines:
        status = parse_status(line)
        if status.context in statuses:
            raise InvalidInputError(f"invalid --status {line.strip()!r}: the context {status.context!r} is given twice")
        statuses[status.context] = status
    return list(statuses.values())


def validate_commit(value: str) -> str:
    commit = value.strip().lower()
    if not SHA.fullmatch(commit):
        raise InvalidInputError(
            f"invalid --commit {value!r}: not a full commit sha (40 hex digits, 64 in a sha256 repository); "
            "a forge takes statuses on a commit, not a branch or a short sha"
        )
    return commit


def _http_url(value: str, flag: str) -> str:
    parts = urllib.parse.urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise InvalidInputError(f"invalid {flag} {redact(value)!r}: use an http(s):// URL without credentials")
    return value.strip().rstrip("/")


def run_link(target_url: str, dashboard_url: str, pipeline_run: str, namespace: str) -> str:
    """--target-url as given, else the run's page in Tekton Dashboard, else no link."""
    if target_url.strip():
        return _http_url(target_url, "--target-url")
    if not dashboard_url.strip():
        return ""
    dashboard = _http_url(dashboard_url, "--dashboard-url")
    for flag, value in (("--pipeline-run", pipeline_run), ("--namespace", namespace)):
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", value.strip()):
            raise InvalidInputError(
                f"invalid {flag} {value!r}: not a Kubernetes name (--dashboard-url links to the run's page)"
            )
    return f"{dashboard}/#/namespaces/{namespace.strip()}/pipelineruns/{pipeline_run.strip()}"


def forge_of(repo_url: str, forge: str, api_url: str) -> Forge:
    """The forge and repository of ``--repo-url`` (https, http, ssh or git@host:owner/repo), its API root
    derived unless ``--api-url`` gives it."""
    if forge not in FORGES:
        raise InvalidInputError(f"invalid --forge {forge!r}: use {', '.join(FORGES)}")
    from .gitops.git import _SCP_LIKE  # git@host:owner/repo, as the git steps read it

    url = repo_url.strip()
    scp = _SCP_LIKE.match(url) if "://" not in url else None
    if scp:
        scheme, host, port, path = "https", scp["host"], None, scp["path"]
    else:
        parts = urllib.parse.urlsplit(url)
        if parts.username or parts.password:
            register_secret(parts.password)
            register_secret(parts.username)
        if parts.scheme not in ("https", "http", "ssh") or not parts.hostname:
            raise InvalidInputError(
                f"invalid --repo-url {redact(url)!r}: use https://host/owner/repo.git (or ssh://, git@host:owner/repo)"
            )
        scheme = "https" if parts.scheme == "ssh" else parts.scheme
        host, port, path = parts.hostname, parts.port if parts.scheme != "ssh" else None, parts.path
    segments = [s for s in path.strip("/").split("/") if s]
    if len(segments) < 2:
        raise InvalidInputError(f"invalid --repo-url {redact(url)!r}: no owner/repo in its path")
    owner, repo = segments[-2], segments[-1].removesuffix(".git")
    kind = forge if forge != "auto" else ("github" if host in ("github.com", "www.github.com") else "gitea")
    if api_url:
        api = _http_url(api_url, "--api-url")
    elif kind == "github":
        api = "https://api.github.com" if host in ("github.com", "www.github.com") else f"https://{host}/api/v3"
    else:
        base = "/".join(segments[:-2])  # a Gitea under a sub-path: https://host/gitea/owner/repo
        api = f"{scheme}://{host}" + (f":{port}" if port else "") + (f"/{base}" if base else "") + "/api/v1"
    return Forge(kind, api, owner, repo)


def check_plain_http(forge: Forge, allow_plain_http: bool) -> None:
    """The token goes in a header: never over plain http:// to another machine without the opt-in."""
    from .gitops.git import is_loopback

    parts = urllib.parse.urlsplit(forge.api)
    if parts.scheme != "http" or is_loopback(parts.hostname or ""):
        return
    if not allow_plain_http:
        raise InvalidInputError(
            f"refusing to send the status token over plain http:// to {parts.hostname!r}: use https://, "
            "or pass --allow-plain-http for a forge inside the cluster"
        )
    log.warn(f"sending the status token over plain http:// to {parts.hostname!r} (--allow-plain-http)")


def read_token(credentials: str) -> tuple[str, str]:
    """(token, "") or ("", why there is none). A missing token is not the caller's bug: statuses are optional."""
    if not credentials:
        return "", "no status token (the status-token workspace is not bound)"
    path = Path(credentials) / TOKEN_KEY
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return "", f"no status token at {path} (the status-token Secret is absent or has no key {TOKEN_KEY!r})"
    except (OSError, UnicodeDecodeError) as err:
        return "", f"cannot read the status token at {path} ({type(err).__name__})"
    if not token or any(c.isspace() for c in token):
        return "", f"the status token at {path} is empty or not one word"
    register_secret(token)
    return token, ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would resend the token elsewhere (or turn the POST into a GET): treat it as an answer."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _answer_message(body: bytes) -> str:
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace")
    return " ".join(str(message).split())[:200]


def _hint(forge: Forge, code: int) -> str:
    full = f"{forge.owner}/{forge.repo}"
    if code == 401:
        return "the token is not valid (revoked, expired or mistyped?)"
    if code == 403:
        if forge.kind == "github":
            return f"the token needs the permission Commit statuses: write on {full}"
        return f"the token needs the scope write:repository and its user write access to {full}"
    if code == 404:
        return f"no repository {full} or no such commit there, or the token may not see it"
    return ""


def post_status(forge: Forge, token: str, commit: str, status: Status, target_url: str, timeout: float) -> str:
    """Post one status; "" when the forge took it, else one line saying what the forge answered."""
    body: dict[str, str] = {"state": status.state, "context": status.context}
    if status.description:
        body["description"] = status.description
    if target_url:
        body["target_url"] = target_url
    headers = {"Content-Type": "application/json", "User-Agent": f"druppie-step/{__version__}"}
    if forge.kind == "github":
        headers |= {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "Authorization": f"Bearer {token}",
        }
    else:
        headers |= {"Accept": "application/json", "Authorization": f"token {token}"}
    request = urllib.request.Request(  # noqa: S310 - the API root is http(s) only (forge_of, --api-url)
        forge.statuses_url(commit), data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            code = response.status
            answer = response.read()
    except urllib.error.HTTPError as err:
        code, answer = err.code, err.read() if err.fp else b""
    except (urllib.error.URLError, OSError) as err:
        why = getattr(err, "reason", err)
        return f"{forge.where} unreachable ({one_line(str(why) or type(err).__name__)})"
    if code in (200, 201):
        return ""
    said = _answer_message(answer)
    hint = _hint(forge, code)
    return f"{forge.where} answered HTTP {code}" + (f": {said}" if said else "") + (f"; {hint}" if hint else "")


def one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def report(
    forge: Forge, token: str, commit: str, statuses: list[Status], target_url: str, deadline: float
) -> tuple[list[Status], str]:
    """Post each status in order, one retry after a 5xx or a connection failure; stop at the first
    failure (the others would meet the same forge). Returns those reported and why the rest were not."""
    done: list[Status] = []
    for status in statuses:
        for attempt in (1, 2):
            left = deadline - time.monotonic()
            if left <= 0:
                return done, "the step's --timeout passed"
            failed = post_status(forge, token, commit, status, target_url, min(left, 30.0))
            retry = failed and attempt == 1 and ("unreachable" in failed or "HTTP 5" in failed)
            if not retry:
                break
            log.warn(f"commit status {status.context}: {failed}; trying once more")
            time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
        if failed:
            return done, failed
        log.info(
            f"commit status {status.context}={status.state}"
            + (f" ({status.description})" if status.description else "")
            + f" on {forge.owner}/{forge.repo}@{commit[:12]} ({forge.where})"
        )
        done.append(status)
    return done, ""


@click.command("commit-status")
@option("--repo-url", required=True, help="The app's repository, whose commit gets the statuses.")
@option("--commit", required=True, help="The full commit sha the statuses are about.")
@option(
    "--status",
    "status_values",
    type=_Lines(),
    multiple=True,
    help="CONTEXT=STATE[:DESCRIPTION], repeatable (one per line in the variable). STATE: pending, success, "
    "failure, error, or Tekton's Succeeded, Failed, None with its reason as DESCRIPTION.",
)
@option("--target-url", default="", help="Link from each status to the run; none if empty (and no --dashboard-url).")
@option(
    "--dashboard-url",
    default="",
    help="Tekton Dashboard's address: the link goes to --pipeline-run's page there (unless --target-url).",
)
@option("--pipeline-run", default="", help="The PipelineRun the statuses are about ($(context.pipelineRun.name)).")
@option("--namespace", default="", help="Its namespace ($(context.taskRun.namespace) in the Task).")
@option("--forge", default="auto", help="gitea or github; auto: github for github.com, else gitea.")
@option(
    "--api-url",
    default="",
    help="The forge's API root (Gitea https://host/api/v1, GitHub Enterprise https://host/api/v3); "
    "derived from --repo-url if empty.",
)
@workspace_option(
    "--credentials",
    "credentials",
    f"Folder with the file {TOKEN_KEY!r}: a token that may write commit statuses (the status-token Secret)",
)
@flag_option(
    "--allow-plain-http",
    default=False,
    help="Send the token over plain http:// to another machine (a forge inside the cluster only).",
)
@timeout_option("1m")
@results_dir_option
def commit_status(
    repo_url: str,
    commit: str,
    status_values: tuple[str, ...],
    target_url: str,
    dashboard_url: str,
    pipeline_run: str,
    namespace: str,
    forge: str,
    api_url: str,
    credentials: str,
    allow_plain_http: bool,
    timeout: Duration,
    results_dir: str | None,
) -> None:
    """Report statuses on a commit of the app's repository (Gitea or GitHub); results reported and reason.

    A forge that cannot be reached or refuses is a warning and reported=false, never a failure."""
    deadline = time.monotonic() + timeout.seconds
    where = forge_of(repo_url, forge.strip().lower(), api_url)
    sha = validate_commit(commit)
    statuses = parse_statuses(status_values)
    link = run_link(target_url, dashboard_url, pipeline_run, namespace)
    token, why = read_token(credentials)
    done: list[Status] = []
    if token:  # without one nothing is sent: plain http:// is no concern (as clone without credentials)
        check_plain_http(where, allow_plain_http)
        done, why = report(where, token, sha, statuses, link, deadline)
    missed = [s.context for s in statuses if s not in done]
    if missed:
        log.warn(f"commit statuses NOT reported on {where.owner}/{where.repo}@{sha[:12]} ({', '.join(missed)}): {why}")
    results = {"reported": "false" if missed else "true", "reason": f"{', '.join(missed)}: {why}" if missed else ""}
    write_results(results_dir, results)
    click.echo(summary_line("commit-status", results))
