"""The git side of a GitOps change: a minimal clone, commit, and push that survives races.

We drive the ``git`` CLI directly rather than through GitPython: partial clone, sparse checkout
and ``push --porcelain`` are CLI features GitPython only passes through, the CLI gives us exact
control of the environment (credentials, no prompts), and it keeps imports light.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InvalidInput, StepError
from ..core.redact import redact, register_secret

_SCP_LIKE = re.compile(r"^(?P<user>[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>(?!/)[^\s]+)$")
ALLOWED_SCHEMES = ("https", "http", "ssh")


def validate_repo_url(url: str) -> str:
    """Accept https://, http://, ssh:// and scp-like ``git@host:org/repo.git``; name the bad value otherwise."""
    if _SCP_LIKE.match(url):
        return url
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ALLOWED_SCHEMES or not parsed.hostname or not parsed.path.strip("/"):
        raise InvalidInput(
            f"invalid --repo-url {redact(url)!r}: use https://host/org/repo.git, ssh://... or git@host:org/repo.git"
        )
    if parsed.password:
        register_secret(parsed.password)
        register_secret(urllib.parse.unquote(parsed.password))
    return url


def validate_branch(branch: str) -> str:
    ok = subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"], capture_output=True).returncode == 0
    if not ok or branch.startswith("-"):
        raise InvalidInput(f"invalid --branch {branch!r}: not a valid git branch name")
    return branch


class GitError(StepError):
    """A git command failed; the message is already one redacted line naming the server."""


def describe_failure(url: str, stderr: str) -> str:
    """Turn git's stderr into one line that says what went wrong with which server."""
    text = redact(stderr)
    safe_url = redact(url)
    patterns = [
        (r"returned error: (5\d\d)", lambda m: f"git server error at {safe_url}: HTTP {m[1]}"),
        (r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED",
         lambda m: f"host key of {safe_url} is not the one in known_hosts (ssh-directory workspace): "
                   "Host key verification failed"),
        (r"Authentication failed|returned error: 40[13]|could not read Username|Permission denied \(publickey",
         lambda m: f"authentication to {safe_url} failed: check the basic-auth or ssh-directory workspace"),
        (r"returned error: 404|repository '.*' not found|does not appear to be a git repository",
         lambda m: f"repository {safe_url} not found"),
        (r"Remote branch (\S+) not found", lambda m: f"branch {m[1]!r} not found in {safe_url}"),
        (r"Failed to connect|Could not resolve host|Connection refused|Connection timed out|"
         r"Operation timed out|Could not connect|Connection reset",
         lambda m: f"cannot reach git server {safe_url}: {_last_line(text)}"),
    ]
    for pattern, message in patterns:
        match = re.search(pattern, text)
        if match:
            return message(match)
    return f"git failed for {safe_url}: {_last_line(text)}"


def _last_line(text: str) -> str:
    """git's own verdict: the first ``fatal:``/``error:`` line, else the last line it printed."""
    lines = [l.strip() for l in text.strip().splitlines() if l.strip() and not l.startswith("hint:")]
    verdicts = [l for l in lines if l.startswith(("fatal:", "error:"))]
    return (verdicts or lines or ["no output"])[0 if verdicts else -1]


@dataclass
class PushOutcome:
    pushed: bool
    branch_moved: bool = False  # rejected because someone else pushed first: fetch and retry
    detail: str = ""


class Workspace:
    """A shallow, sparse, partial clone of one branch, and the operations a GitOps edit needs."""

    def __init__(self, path: Path, url: str, branch: str, env: dict[str, str]) -> None:
        self.path, self.url, self.branch, self.env = path, url, branch, env

    def git(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["git", *args], cwd=self.path, env=self.env, input=stdin, text=True, capture_output=True,
        )
        if check and proc.returncode != 0:
            raise GitError(describe_failure(self.url, proc.stderr))
        return proc

    @classmethod
    def clone(cls, url: str, branch: str, subdir: str, dest: Path, env: dict[str, str]) -> "Workspace":
        """Fetch one commit of one branch, trees only, then the blobs of ``subdir`` alone.

        Cost does not grow with history (depth 1) nor with repository size (blob filter plus
        sparse checkout); servers without filter support fall back to a depth-1 clone.
        """
        proc = subprocess.run(
            ["git", "clone", "--quiet", "--depth=1", "--single-branch", f"--branch={branch}", "--no-tags",
             "--filter=blob:none", "--no-checkout", "--", url, str(dest)],
            env=env, text=True, capture_output=True,
        )
        if proc.returncode != 0:
            raise GitError(describe_failure(url, proc.stderr))
        ws = cls(dest, url, branch, env)
        if subdir:
            ws.git("sparse-checkout", "set", "--cone", "--", subdir)
        ws.git("checkout", "--quiet", branch)
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
        """Move to the branch's current head on the server, dropping our unpushed commit."""
        self.git("fetch", "--quiet", "--depth=1", "--filter=blob:none", "--no-tags", "origin",
                 f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}")
        self.git("reset", "--quiet", "--hard", f"refs/remotes/origin/{self.branch}")

    def commit(self, files: list[Path], message: str, author_name: str, author_email: str) -> str:
        self.git("add", "--", *[str(f.relative_to(self.path)) for f in files])
        ident = {"GIT_AUTHOR_NAME": author_name, "GIT_AUTHOR_EMAIL": author_email,
                 "GIT_COMMITTER_NAME": author_name, "GIT_COMMITTER_EMAIL": author_email}
        proc = subprocess.run(["git", "commit", "--quiet", "--no-verify", "-F", "-"], cwd=self.path,
                              env={**self.env, **ident}, input=message, text=True, capture_output=True)
        if proc.returncode != 0:
            raise GitError(f"git commit failed: {_last_line(redact(proc.stderr + proc.stdout))}")
        return self.head()

    def push(self) -> PushOutcome:
        proc = self.git("push", "--porcelain", "origin", f"HEAD:refs/heads/{self.branch}", check=False)
        ref_lines = [l for l in proc.stdout.splitlines() if l[:1] in ("!", " ", "+", "*", "=", "-")]
        if proc.returncode == 0:
            return PushOutcome(pushed=True)
        if ref_lines and ref_lines[0].startswith("!"):
            detail = ref_lines[0].split("\t")[-1]
            moved = re.search(r"fetch first|non-fast-forward|stale info|cannot lock ref|"
                              r"incorrect old value|failed to update ref", detail)
            # What the server's hooks said (e.g. "main is protected") is the part the user needs.
            said = [l[7:].strip() for l in proc.stderr.splitlines() if l.startswith("remote:") and l[7:].strip()]
            if said and not moved:
                detail += ": " + "; ".join(said)
            return PushOutcome(pushed=False, branch_moved=bool(moved), detail=redact(detail))
        raise GitError(describe_failure(self.url, proc.stderr))


def git_environment(scratch: Path, basic_auth_dir: str | None, ssh_dir: str | None) -> dict[str, str]:
    """Environment for every git call: no prompts, credentials from the Tekton workspaces only.

    Like the community git-clone task, ``basic-auth`` holds ``.git-credentials`` and ``.gitconfig``
    and ``ssh-directory`` holds keys and ``known_hosts``. We copy them into ``scratch`` (mode 0600,
    which ssh insists on) instead of the user's home, and register every secret for redaction.
    """
    env = dict(os.environ)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/false", SSH_ASKPASS="/bin/false",
               GIT_HTTP_LOW_SPEED_LIMIT="1000", GIT_HTTP_LOW_SPEED_TIME="60", LC_ALL="C")
    config = ["[safe]", "\tdirectory = *", "[protocol]", "\tversion = 2", "[advice]", "\tdetachedHead = false"]
    if basic_auth_dir:
        auth = Path(basic_auth_dir)
        creds = auth / ".git-credentials"
        if not creds.is_file():
            raise InvalidInput(f"invalid basic-auth workspace {basic_auth_dir!r}: no .git-credentials file in it")
        for line in creds.read_text().splitlines():
            password = urllib.parse.urlsplit(line.strip()).password
            if password:
                register_secret(password)
                register_secret(urllib.parse.unquote(password))
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
            raise InvalidInput(f"invalid ssh-directory workspace {ssh_dir!r}: not a folder")
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
            raise InvalidInput(f"invalid ssh-directory workspace {ssh_dir!r}: no known_hosts file in it "
                               "(add the git server's host key, e.g. from ssh-keyscan)")
        if not keys:
            raise InvalidInput(f"invalid ssh-directory workspace {ssh_dir!r}: no private key (id_*) in it")
        opts = [f"-o UserKnownHostsFile={known}", "-o StrictHostKeyChecking=yes", "-o BatchMode=yes",
                "-o IdentitiesOnly=yes"]
        if (dot_ssh / "config").is_file():
            opts.insert(0, f"-F {dot_ssh / 'config'}")
        env["GIT_SSH_COMMAND"] = " ".join(["ssh", *opts, *[f"-i {k}" for k in sorted(keys)]])
    global_config = scratch / "gitconfig"
    global_config.write_text("\n".join(config) + "\n")
    env["GIT_CONFIG_GLOBAL"] = str(global_config)
    return env
