"""The git side of a GitOps change: a minimal clone, commit, and push that survives races.

We drive the ``git`` CLI directly rather than through GitPython: partial clone, sparse checkout
and ``push --porcelain`` are CLI features GitPython only passes through, the CLI gives us exact
control of the environment (credentials, no prompts), and it keeps imports light.
"""

from __future__ import annotations

import ipaddress
import math
import os
import random
import re
import shlex
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..core import log
from ..core.errors import InvalidInputError, StepError
from ..core.redact import redact, register_url_secrets

T = TypeVar("T")

_SCP_LIKE = re.compile(r"^(?P<user>[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>(?!/)[^\s]+)$")
ALLOWED_SCHEMES = ("https", "http", "ssh")


def validate_repo_url(url: str, flag: str = "--repo-url") -> str:
    """Accept https://, http://, ssh:// and scp-like ``git@host:org/repo.git``; name the bad value otherwise.

    A value starting with ``-`` is refused too: git would read it as an option.
    """
    if _SCP_LIKE.match(url) and not url.startswith("-"):
        return url
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ALLOWED_SCHEMES or not parsed.hostname or not parsed.path.strip("/"):
        raise InvalidInputError(
            f"invalid {flag} {redact(url)!r}: use https://host/org/repo.git, ssh://... or git@host:org/repo.git"
        )
    if parsed.scheme != "ssh" or parsed.password:  # an ssh user alone is the login (git@), not a credential
        register_url_secrets(url)
    return url


def repo_identity(url: str) -> str:
    """host/path of a git URL, without user, port, scheme or .git: https and ssh forms of one repo agree."""
    scp = re.match(r"^(?:[\w.-]+@)?([\w.-]+):(?!//)(.+)$", url)
    if scp:
        host, path = scp.groups()
    else:
        host, _, path = re.sub(r"^[a-z+]+://([^@/]*@)?", "", url).partition("/")
    return f"{host.split(':')[0].lower()}/{path.strip('/').removesuffix('.git')}"


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_plain_http(url: str, workspace_credentials: bool, allow_plain_http: bool) -> None:
    """Refuse to send credentials in clear text (http://) anywhere but to this machine.

    Credentials are the URL's userinfo or a bound basic-auth workspace. ``allow_plain_http`` is the
    explicit opt-in for a git server inside the cluster that only speaks plain HTTP.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or not (parsed.username or parsed.password or workspace_credentials):
        return
    host = parsed.hostname or ""
    if is_loopback(host):
        return
    if not allow_plain_http:
        raise InvalidInputError(
            f"refusing to send credentials over plain http:// to {host!r}: use https://, "
            "or pass --allow-plain-http for a git server inside the cluster"
        )
    log.warn(
        f"sending credentials over plain http:// to {host!r} (--allow-plain-http): anyone on the path can read them"
    )


def validate_branch(branch: str) -> str:
    ok = subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"], capture_output=True).returncode == 0
    if not ok or branch.startswith("-"):
        raise InvalidInputError(f"invalid --branch {branch!r}: not a valid git branch name")
    return branch


class GitError(StepError):
    """A git command failed; the message is already one redacted line naming the server."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient  # worth retrying: the server may answer next time


# An answer about us (4xx, credentials, host key, missing repo) never changes by retrying; a 5xx or
# a dropped connection may (a restarting or overloaded server, a proxy in between).
_PERMANENT = re.compile(
    r"returned error: 4\d\d|HTTP 4\d\d|Authentication failed|could not read|askpass|"
    r"Permission denied|Host key verification failed|not found|"
    r"does not appear to be a git repository|"
    r"not our ref|couldn't find remote ref|unadvertised object"
)  # a revision the server lacks
_TRANSIENT = re.compile(
    r"returned error: 5\d\d|HTTP 5\d\d|Connection reset|Recv failure|Empty reply from server|"
    r"remote end hung up unexpectedly|early EOF|transfer closed"
)


def is_transient(stderr: str) -> bool:
    return bool(_TRANSIENT.search(stderr)) and not _PERMANENT.search(stderr)


def failure(url: str, stderr: str) -> GitError:
    """The GitError for a failed git call: one redacted line, transient or not."""
    return GitError(describe_failure(url, stderr), transient=is_transient(stderr))


def describe_failure(url: str, stderr: str) -> str:
    """Turn git's stderr into one line that says what went wrong with which server."""
    text = redact(stderr)
    safe_url = redact(url)
    patterns: list[tuple[str, Callable[[re.Match[str]], str]]] = [
        (r"returned error: (5\d\d)", lambda m: f"git server error at {safe_url}: HTTP {m[1]}"),
        (
            r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED",
            lambda m: (
                f"host key of {safe_url} is not the one in known_hosts (ssh-directory workspace): "
                "Host key verification failed"
            ),
        ),
        (
            r"Authentication failed|returned error: 40[13]|could not read (Username|Password)|askpass response|"
            r"Permission denied \(publickey",
            lambda m: f"authentication to {safe_url} failed: check the basic-auth or ssh-directory workspace",
        ),
        (
            r"returned error: 404|repository '.*' not found|does not appear to be a git repository",
            lambda m: f"repository {safe_url} not found",
        ),
        (r"Remote branch (\S+) not found", lambda m: f"branch {m[1]!r} not found in {safe_url}"),
        (
            r"Failed to connect|Could not resolve host|Connection refused|Connection timed out|"
            r"Operation timed out|Could not connect|Connection reset",
            lambda m: f"cannot reach git server {safe_url}: {_last_line(text)}",
        ),
    ]
    for pattern, message in patterns:
        match = re.search(pattern, text)
        if match:
            return message(match)
    return f"git failed for {safe_url}: {_last_line(text)}"


def full_jitter(attempt: int, base: float, cap: float) -> float:
    """Uniform in [0, min(cap, base * 2^attempt)]: exponential, capped, and spread across racing runs."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - timing jitter, not a secret


@dataclass
class TransientRetry:
    """Retry a git operation on transient server errors: a bounded count, within the step's deadline."""

    retries: int = 4
    deadline: float = math.inf  # time.monotonic() by which everything must be over
    base: float = 0.5
    cap: float = 8.0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, what: str, operation: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return operation()
            except GitError as err:
                if not err.transient:
                    raise
                if attempt == self.retries:
                    raise GitError(f"{err} (gave up after {attempt} retries)") from err
                wait = full_jitter(attempt, self.base, self.cap)
                if wait >= self.remaining():
                    raise GitError(f"{err} (gave up after {attempt} retries: --timeout reached)") from err
                attempt += 1
                log.warn(f"{err}; retry {attempt}/{self.retries} of the {what} in {wait:.1f}s")
                time.sleep(wait)


def _last_line(text: str) -> str:
    """git's own verdict: the first ``fatal:``/``error:`` line, else the last line it printed."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip() and not line.startswith("hint:")]
    verdicts = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (verdicts or lines or ["no output"])[0 if verdicts else -1]


@dataclass
class PushOutcome:
    pushed: bool
    branch_moved: bool = False  # rejected because someone else pushed first: fetch and retry
    detail: str = ""


class Workspace:
    """A shallow, sparse, partial clone of one branch, and the operations a GitOps edit needs."""

    def __init__(
        self, path: Path, url: str, branch: str, env: dict[str, str], retry: TransientRetry | None = None
    ) -> None:
        self.path, self.url, self.branch, self.env = path, url, branch, env
        self.retry = retry or TransientRetry()

    def git(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = _run_git(list(args), self.url, self.retry, cwd=self.path, env=self.env, stdin=stdin)
        if check and proc.returncode != 0:
            raise failure(self.url, proc.stderr)
        return proc

    @classmethod
    def clone(
        cls, url: str, branch: str, subdir: str, dest: Path, env: dict[str, str], retry: TransientRetry | None = None
    ) -> Workspace:
        """Fetch one commit of one branch, trees only, then the blobs of ``subdir`` alone.

        Cost does not grow with history (depth 1) nor with repository size (blob filter plus
        sparse checkout); servers without filter support fall back to a depth-1 clone.
        """
        retry = retry or TransientRetry()

        def attempt() -> Workspace:
            shutil.rmtree(dest, ignore_errors=True)  # what a failed attempt left behind
            proc = _run_git(
                [
                    "clone",
                    "--quiet",
                    "--depth=1",
                    "--single-branch",
                    f"--branch={branch}",
                    "--no-tags",
                    "--filter=blob:none",
                    "--no-checkout",
                    "--",
                    url,
                    str(dest),
                ],
                url,
                retry,
                env=env,
            )
            if proc.returncode != 0:
                raise failure(url, proc.stderr)
            ws = cls(dest, url, branch, env, retry)
            if subdir:
                ws.git("sparse-checkout", "set", "--cone", "--", subdir)
            ws.git("checkout", "--quiet", branch)  # fetches the blobs of subdir: a network call too
            return ws

        return retry.run("clone", attempt)

    @classmethod
    def at_commit(
        cls, url: str, sha: str, subdir: str, dest: Path, env: dict[str, str], retry: TransientRetry | None = None
    ) -> Workspace:
        """One commit by its sha (what Flux applied), trees only, then the blobs of ``subdir`` alone; for
        reading, so no branch. Git servers answer a fetch by sha over protocol v2 (the config's)."""
        retry = retry or TransientRetry()
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        ws = cls(dest, url, "", env, retry)
        ws.git("init", "--quiet")
        ws.git("remote", "add", "origin", url)  # the promisor the checkout fetches subdir's blobs from
        retry.run("fetch", lambda: ws.git("fetch", "--quiet", "--depth=1", "--filter=blob:none", "--no-tags",
                                          "origin", sha))  # fmt: skip
        ws.git("sparse-checkout", "set", "--cone", "--", subdir)
        retry.run("checkout", lambda: ws.git("checkout", "--quiet", "--detach", "FETCH_HEAD"))
        return ws

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").stdout.strip()

    def include(self, *subdirs: str) -> None:
        """Add folders to the sparse checkout (e.g. the base of an overlay); their blobs are fetched on demand.

        --skip-checks: a kustomization may list a file; cone mode then checks out its folder's files.
        """
        if self.git("config", "--bool", "core.sparseCheckout", check=False).stdout.strip() == "true":
            self.git("sparse-checkout", "add", "--skip-checks", "--", *subdirs)

    def refresh(self) -> None:
        """Move to the branch's current head on the server, dropping our unpushed commit.

        Cheap whatever the repository: the new head only (depth 1, trees), then the blobs of the
        sparse folder as the reset needs them; the clone is reused.
        """

        def attempt() -> None:
            self.git(
                "fetch",
                "--quiet",
                "--depth=1",
                "--filter=blob:none",
                "--no-tags",
                "origin",
                f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}",
            )
            self.git("reset", "--quiet", "--hard", f"refs/remotes/origin/{self.branch}")

        self.retry.run("fetch", attempt)

    def last_commit_setting(self, subdir: str, tag: str, digest: str, depth: int) -> str | None:
        """The newest of the branch's last ``depth`` commits after which a file under ``subdir``
        names ``digest`` and the tag ``tag`` (``newTag: <tag>``): the build ran there then. None
        when no such commit is in that history. Fetches the history's commits and trees only; git
        reads the blobs it compares on demand."""
        self.retry.run("fetch", lambda: self.git("fetch", "--quiet", f"--deepen={depth}", "--filter=blob:none",
                                                  "--no-tags", "origin", self.branch))  # fmt: skip
        found = self.git("log", f"-{depth}", "--format=%H", f"-S{digest}", "HEAD", "--", subdir).stdout.split()
        newtag = re.compile(rf"^\s*newTag:\s*['\"]?{re.escape(tag)}['\"]?\s*(?:#.*)?$", re.M)
        for commit in found:
            names = self.git("ls-tree", "-r", "--name-only", commit, "--", subdir).stdout.split()
            for name in names:
                text = self.git("show", f"{commit}:{name}", check=False).stdout
                if digest in text and newtag.search(text):
                    return commit
        return None

    def source_commit(self, subdir: str, digest: str, depth: int) -> str:
        """The app's commit the deployed ``digest`` was built from: the ``Source-Commit:`` trailer of the
        newest of HEAD's last ``depth`` commits that brought ``digest`` into ``subdir`` (tag-commit writes
        it into every promotion; a merge brings in its pull request's commit). "" when none says so.
        Fetches the history's commits and trees only (from the commit this workspace was made at)."""
        head = self.head()
        self.retry.run("fetch", lambda: self.git("fetch", "--quiet", f"--deepen={depth}", "--filter=blob:none",
                                                  "--no-tags", "origin", head))  # fmt: skip
        out = self.git("log", f"-{depth}", "--format=%H%x00%B%x01", f"-S{digest}", head, "--", subdir).stdout
        for record in out.split("\x01"):
            _, _, message = record.partition("\x00")
            found = re.search(r"(?m)^Source-Commit: ([0-9a-f]{40})\s*$", message)
            if found:
                return found.group(1)
            if message.strip():
                return ""  # the newest commit that brought the digest in names no source: say nothing
        return ""

    def commit(self, files: list[Path], message: str, author_name: str, author_email: str) -> str:
        self.git("add", "--", *[str(f.relative_to(self.path)) for f in files])
        ident = {
            "GIT_AUTHOR_NAME": author_name,
            "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": author_name,
            "GIT_COMMITTER_EMAIL": author_email,
        }
        proc = _run_git(
            ["commit", "--quiet", "--no-verify", "-F", "-"],
            self.url,
            self.retry,
            cwd=self.path,
            env={**self.env, **ident},
            stdin=message,
        )
        if proc.returncode != 0:
            raise GitError(f"git commit failed: {_last_line(redact(proc.stderr + proc.stdout))}")
        return self.head()

    def push(self, branch: str | None = None, lease: str | None = None) -> PushOutcome:
        """Push HEAD to ``branch`` (default the clone's); a transient server error is retried here, a
        rejection is the caller's to judge.

        Pushing the same commit again is safe: if the failed attempt did land, git says "up to date".
        ``lease``: replace the branch only if it is still at that commit ("" : only if it does not
        exist); a forced push that loses no one else's update (a moved branch counts as moved).
        """
        return self.retry.run("push", lambda: self._push_once(branch or self.branch, lease))

    def remote_branch(self, branch: str) -> str | None:
        """The commit ``branch`` points at on the server, or None when there is no such branch."""
        ref = f"refs/heads/{branch}"
        proc = self.retry.run("ls-remote", lambda: self.git("ls-remote", "origin", ref))
        for line in proc.stdout.splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        return None

    def fetch_tip(self, branch: str) -> str:
        """Fetch ``branch``'s tip (depth 1, trees only) into refs/remotes/origin/; returns its commit."""

        def attempt() -> None:
            self.git(
                "fetch",
                "--quiet",
                "--depth=1",
                "--filter=blob:none",
                "--no-tags",
                "origin",
                f"+refs/heads/{branch}:refs/remotes/origin/{branch}",
            )

        self.retry.run("fetch", attempt)
        return self.git("rev-parse", f"refs/remotes/origin/{branch}").stdout.strip()

    def checkout_remote(self, branch: str) -> str:
        """Fetch ``branch`` (its tip only) and check it out detached; returns its commit. The sparse
        folders stay as they were; ``reset(commit)`` goes back."""
        tip = self.fetch_tip(branch)
        self.git("checkout", "--quiet", "--detach", tip)
        return tip

    def message(self, commit: str) -> str:
        """The commit's message, as written (a commit this clone has)."""
        return self.git("cat-file", "commit", commit).stdout.split("\n\n", 1)[-1]

    def reset(self, commit: str) -> None:
        """Back to ``commit`` (one this clone has), dropping what was checked out or committed since."""
        self.git("checkout", "--quiet", "-B", self.branch, commit)
        self.git("reset", "--quiet", "--hard", commit)

    def tree(self, commit: str) -> str:
        return self.git("rev-parse", f"{commit}^{{tree}}").stdout.strip()

    def parents(self, commit: str) -> list[str]:
        """The parents the commit names (read from the object: in a shallow clone rev-list shows none)."""
        text = self.git("cat-file", "commit", commit).stdout
        return [line.split()[1] for line in text.split("\n\n", 1)[0].splitlines() if line.startswith("parent ")]

    def credential(self, url: str) -> tuple[str, str] | None:
        """The user and password (a token) git would send to ``url``: ``git credential fill`` with the
        workspace's helpers, never a prompt; None when there is none."""
        proc = self.git("credential", "fill", stdin=f"url={url}\n\n", check=False)
        if proc.returncode != 0:
            return None
        fields = dict(line.partition("=")[::2] for line in proc.stdout.splitlines() if "=" in line)
        if not fields.get("password"):
            return None
        return fields.get("username", ""), fields["password"]

    def _push_once(self, branch: str, lease: str | None = None) -> PushOutcome:
        force = [] if lease is None else [f"--force-with-lease=refs/heads/{branch}:{lease}"]
        proc = self.git("push", "--porcelain", *force, "origin", f"HEAD:refs/heads/{branch}", check=False)
        ref_lines = [line for line in proc.stdout.splitlines() if line[:1] in ("!", " ", "+", "*", "=", "-")]
        if proc.returncode == 0:
            return PushOutcome(pushed=True)
        if ref_lines and ref_lines[0].startswith("!"):
            detail = ref_lines[0].split("\t")[-1]
            moved = re.search(
                r"fetch first|non-fast-forward|stale info|cannot lock ref|"
                r"incorrect old value|failed to update ref",
                detail,
            )
            # What the server's hooks said (e.g. "main is protected") is the part the user needs.
            said = [
                line[7:].strip() for line in proc.stderr.splitlines() if line.startswith("remote:") and line[7:].strip()
            ]
            if said and not moved:
                detail += ": " + "; ".join(said)
            return PushOutcome(pushed=False, branch_moved=bool(moved), detail=redact(detail))
        raise failure(self.url, proc.stderr)


def _run_git(
    args: list[str],
    url: str,
    retry: TransientRetry,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run git, killed at the step's deadline so that a hanging server cannot outlast --timeout."""
    remaining = retry.remaining()
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            input=stdin,
            text=True,
            capture_output=True,
            timeout=None if remaining == math.inf else max(remaining, 1.0),
        )
    except subprocess.TimeoutExpired as err:
        raise GitError(f"git {args[0]} with {redact(url)} did not finish before the deadline (--timeout)") from err


def git_environment(scratch: Path, basic_auth_dir: str | None, ssh_dir: str | None) -> dict[str, str]:
    """Environment for every git call: no prompts, credentials from the Tekton workspaces only.

    Like the community git-clone task, ``basic-auth`` holds ``.git-credentials`` and ``.gitconfig``
    and ``ssh-directory`` holds keys and ``known_hosts``. We copy them into ``scratch`` (mode 0600,
    which ssh insists on) instead of the user's home, and register every secret for redaction.
    """
    env = dict(os.environ)
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="/bin/false",
        SSH_ASKPASS="/bin/false",
        GIT_HTTP_LOW_SPEED_LIMIT="1000",
        GIT_HTTP_LOW_SPEED_TIME="60",
        LC_ALL="C",
    )
    config = ["[safe]", "\tdirectory = *", "[protocol]", "\tversion = 2", "[advice]", "\tdetachedHead = false"]
    if basic_auth_dir:
        auth = Path(basic_auth_dir)
        creds = auth / ".git-credentials"
        if not creds.is_file():
            raise InvalidInputError(f"invalid basic-auth workspace {basic_auth_dir!r}: no .git-credentials file in it")
        for line in creds.read_text().splitlines():
            register_url_secrets(line)
        store = scratch / "git-credentials"
        shutil.copyfile(creds, store)
        store.chmod(0o600)
        if (auth / ".gitconfig").is_file():
            config += ["[include]", f"\tpath = {auth / '.gitconfig'}"]
        # Our helper comes after the included one and an empty helper resets any earlier list.
        config += ["[credential]", "\thelper =", f"\thelper = store --file={store}"]
    if ssh_dir:
        src = Path(ssh_dir)
        if not src.is_dir():
            raise InvalidInputError(f"invalid ssh-directory workspace {ssh_dir!r}: not a folder")
        dot_ssh = scratch / "ssh"
        shutil.copytree(src, dot_ssh, dirs_exist_ok=True)
        dot_ssh.chmod(0o700)
        keys = []
        for f in dot_ssh.iterdir():
            f.chmod(0o600)
            if f.is_file() and f.name.startswith("id_") and not f.name.endswith(".pub"):
                keys.append(f)
        known = dot_ssh / "known_hosts"
        if not known.is_file():
            # Trusting whatever host answers would let anyone in the middle receive our pushes.
            raise InvalidInputError(
                f"invalid ssh-directory workspace {ssh_dir!r}: no known_hosts file in it "
                "(add the git server's host key, e.g. from ssh-keyscan)"
            )
        if not keys:
            raise InvalidInputError(f"invalid ssh-directory workspace {ssh_dir!r}: no private key (id_*) in it")
        ssh = [
            "ssh",
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ]
        if (dot_ssh / "config").is_file():
            ssh[1:1] = ["-F", str(dot_ssh / "config")]
        for key in sorted(keys):
            ssh += ["-i", str(key)]
        # git runs GIT_SSH_COMMAND through a shell, and file names in a workspace are anyone's words.
        env["GIT_SSH_COMMAND"] = shlex.join(ssh)
    global_config = scratch / "gitconfig"
    global_config.write_text("\n".join(config) + "\n")
    env["GIT_CONFIG_GLOBAL"] = str(global_config)
    return env
