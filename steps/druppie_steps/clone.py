"""clone: check out one revision of a repository, shallow, into a workspace folder.

Our own small git-clone, so a pipeline needs no hub and no other image: ``git init``, then a
shallow fetch of exactly the revision (a branch, a tag, a full or short commit sha), then a
detached checkout. Credentials come from the same workspaces as tag-commit (``basic-auth``,
``ssh-directory``) and never reach a log, a result or the checked-out folder.

Finding the revision, cheapest first:

1. ``git fetch --depth N <url> <revision>``: a ref name, or a full sha, which servers speaking
   protocol v2 (GitHub, GitLab, Gitea, git itself) and every smart-HTTP server hand out;
2. a short sha, or a full sha the server refuses to give by id (protocol v0 over ssh): the
   commit graph alone (``--filter=tree:0``, no trees, no files) of every branch and tag is
   fetched into a scratch repository to find the full sha and the nearest branch or tag
   holding it; then the sha is fetched by id, or, when refused, that ref deep enough to reach it.

The ``commit-depth`` result, the image version's patch number in druppie-ci-cd, is the number of
commits on the first-parent chain from the root to the commit, the commit included (``git rev-list
--count --first-parent``): one more for every commit or merge on a branch, whatever the committer
clocks say, and never the same for two commits of one branch. Counting needs the history, not the
files: the commit graph alone (``--filter=tree:0``) is fetched into the scratch repository (by id,
else every branch and tag), so the checkout stays shallow and the cost is that of the commits.

The folder ends up holding the checkout and nothing else: it is emptied first (the workspace
may be reused), and emptied again on any failure, so a later step never sees half a checkout.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import click

from .core import log
from .core.errors import InvalidInputError, StepError
from .core.options import Duration, flag_option, option, results_dir_option, timeout_option, workspace_option
from .core.redact import redact
from .core.results import summary_line, write_results
from .gitops.git import (
    GitError,
    TransientRetry,
    Workspace,
    check_plain_http,
    failure,
    git_environment,
    validate_repo_url,
)

SHORT_SHA = re.compile(r"[0-9a-f]{4,39}")
FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # sha1, and sha256 repositories
_SSH_SCHEMES = ("ssh", "git+ssh", "ssh+git")
# What git says when the server has no such ref, has no such object, or will not give it by id.
_NO_REF = re.compile(r"couldn't find remote ref")
_NOT_OURS = re.compile(r"not our ref")
_REFUSED = re.compile(r"unadvertised object|allow(Reachable|Any|Tip)SHA1InWant")
ALL_REFS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")


class _MissingError(GitError):
    """The server has no such ref (no-ref), no such object (not-ours), or will not give it by id (refused)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class RevisionNotFoundError(GitError):
    def __init__(self, revision: str, url: str) -> None:
        super().__init__(f"revision {revision!r} not found in {redact(url)}")


def validate_revision(revision: str) -> str:
    """A branch, tag, ref (refs/...), HEAD or commit sha; "" means the remote's default branch (HEAD).

    Refspec syntax (``a:b``, a leading ``+``) and revision expressions (``main~1``) are refused: the
    value is fetched as one ref or object name, nothing else.
    """
    value = revision.strip()
    if not value:
        return "HEAD"
    ok = subprocess.run(["git", "check-ref-format", "--allow-onelevel", value], capture_output=True).returncode == 0
    if not ok or value.startswith(("-", "+")):
        raise InvalidInputError(f"invalid --revision {revision!r}: give a branch, a tag or a commit sha")
    return value


def target_folder(output: str, subdirectory: str) -> Path:
    """``output``/``subdirectory``, refused when it would lie outside ``output`` (``..``, an absolute
    path, a symbolic link leading elsewhere) or be the file system root: the folder is emptied."""
    if not output.strip():
        raise InvalidInputError("missing --output: the folder to check out into (the output workspace)")
    sub = subdirectory.strip().replace("\\", "/")
    cleaned = posixpath.normpath(sub) if sub else "."
    if sub.startswith(("/", "~")) or cleaned == ".." or cleaned.startswith("../") or "\0" in sub:
        raise InvalidInputError(
            f"invalid --subdirectory {subdirectory!r}: must be a folder inside the output workspace, e.g. src"
        )
    root = Path(output)
    target = root if cleaned == "." else root / cleaned
    resolved_root, resolved = root.resolve(), target.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise InvalidInputError(
            f"invalid --subdirectory {subdirectory!r}: it leads outside {output} "
            f"(to {resolved}, through a symbolic link)"
        )
    if resolved == Path(resolved.anchor):
        raise InvalidInputError(f"invalid --output {output!r}: refusing to empty the file system root")
    return target


def public_url(url: str) -> str:
    """The URL without credentials, for the ``url`` result: userinfo dropped (https), or only the
    login kept (ssh, where it is no secret); scp-like ``git@host:path`` stays as it is."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = hostport
    if at and parts.scheme.lower() in _SSH_SCHEMES and userinfo.split(":")[0]:
        netloc = f"{userinfo.split(':')[0]}@{hostport}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def empty_folder(folder: Path) -> int:
    """Delete everything inside ``folder`` (not the folder: it may be a mount), following no symbolic
    link out of it. Read-only folders (a Go module cache) are made writable first. Returns the count."""

    def writable_and_retry(func, path, _exc):  # type: ignore[no-untyped-def]
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
        func(path)

    count = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, onerror=writable_and_retry)
                else:
                    os.unlink(entry.path)
                count += 1
    except OSError as err:
        raise StepError(f"cannot empty the output folder {folder}: {err.filename}: {err.strerror}") from err
    return count


def prepare_folder(folder: Path, delete_existing: bool) -> None:
    """An empty folder we may write to; what it held goes only with --delete-existing."""
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"invalid --output {str(folder)!r}: not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StepError(f"cannot create the output folder {folder}: {err.strerror}") from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StepError(
            f"cannot write to the output folder {folder} as uid {os.getuid()}: bind a workspace "
            "this user may write to (e.g. podTemplate securityContext fsGroup: 65532)"
        )
    if any(folder.iterdir()):
        if not delete_existing:
            raise StepError(f"the output folder {folder} is not empty and --delete-existing is false")
        log.info(f"emptied {folder} ({empty_folder(folder)} entries)")


class Fetcher:
    """The git calls of one checkout: into the output folder, and a scratch repository for lookups."""

    def __init__(self, url: str, folder: Path, scratch: Path, env: dict[str, str], retry: TransientRetry) -> None:
        self.url, self.scratch = url, scratch
        self.repo = Workspace(folder, url, "", env, retry)
        self.retry = retry

    def fetch(self, ws: Workspace, *args: str) -> None:
        """``git fetch <args> -- <url> <refspecs>``; a revision the server lacks is a GitError that
        names why (the caller decides), a server error is retried."""

        def attempt() -> None:
            proc = ws.git("fetch", "--quiet", "--no-tags", *args, check=False)
            if proc.returncode != 0:
                for kind, pattern in (("no-ref", _NO_REF), ("not-ours", _NOT_OURS), ("refused", _REFUSED)):
                    if pattern.search(proc.stderr):
                        raise _MissingError(kind)
                raise failure(self.url, proc.stderr)

        self.retry.run("fetch", attempt)

    def fetch_into_repo(self, depth: int, *refspecs: str) -> str | None:
        """Fetch into the output repository; the reason when the server lacks the revision, else None."""
        try:
            self.fetch(self.repo, *([f"--depth={depth}"] if depth else []), "--", self.url, *refspecs)
        except _MissingError as err:
            return err.kind
        return None

    def commit_of(self, ws: Workspace, name: str) -> str | None:
        proc = ws.git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def checkout(self, revision: str, depth: int) -> str:
        """Fetch ``revision`` and check it out detached; returns the full sha."""
        self.repo.git("init", "--quiet")
        missing = self.fetch_into_repo(depth, revision)
        if missing is None:
            sha = self.commit_of(self.repo, "FETCH_HEAD")
            if sha is None:
                raise StepError(f"revision {revision!r} in {redact(self.url)} is not a commit")
        elif missing == "not-ours" or (missing == "no-ref" and not SHORT_SHA.fullmatch(revision)):
            raise RevisionNotFoundError(revision, self.url)
        else:
            sha = self._by_lookup(revision, depth, sha_refused=missing == "refused")
        self.repo.git("checkout", "--quiet", "--detach", sha)
        self.repo.git("remote", "add", "origin", public_url(self.url))  # for tools that read it; no secret
        return sha

    def commit_depth(self, sha: str, depth: int) -> int:
        """Commits on the first-parent chain from the root to ``sha``, ``sha`` included."""
        if depth == 0:  # the whole history is in the checkout already
            return self._first_parent_count(self.repo, sha)
        graph = Workspace(self.scratch / "graph", self.url, "", self.repo.env, self.retry)
        if not graph.path.exists():  # else the look-up fetched every branch and tag already
            Workspace(self.scratch, self.url, "", self.repo.env, self.retry).git("init", "--quiet", "--bare", "graph")
            try:
                self.fetch(graph, "--filter=tree:0", "--", self.url, sha)
            except _MissingError:  # not given by id (protocol v0): through the refs, as the look-up does
                self.fetch(graph, "--filter=tree:0", "--", self.url, *ALL_REFS)
        if self.commit_of(graph, sha) is None:
            raise StepError(
                f"cannot count the history of {sha[:12]}: {redact(self.url)} gave no commit graph holding it"
            )
        return self._first_parent_count(graph, sha)

    @staticmethod
    def _first_parent_count(ws: Workspace, sha: str) -> int:
        return int(ws.git("rev-list", "--count", "--first-parent", "--end-of-options", sha).stdout)

    def _by_lookup(self, revision: str, depth: int, sha_refused: bool) -> str:
        """A short sha, or a sha the server will not give by id: find it in the commit graph of every
        branch and tag (commits only), then fetch it by id or through the nearest ref that holds it."""
        log.progress(f"looking up {revision} in the commit graph of every branch and tag of {self.url}")
        graph = Workspace(self.scratch / "graph", self.url, "", self.repo.env, self.retry)
        Workspace(self.scratch, self.url, "", self.repo.env, self.retry).git("init", "--quiet", "--bare", "graph")
        self.fetch(graph, "--filter=tree:0", "--", self.url, *ALL_REFS)
        proc = graph.git("rev-parse", "--verify", "--end-of-options", f"{revision}^{{commit}}", check=False)
        if proc.returncode != 0:
            if "ambiguous" in proc.stderr:
                raise StepError(
                    f"revision {revision!r} is ambiguous in {redact(self.url)}: more than one "
                    "commit starts with it; give more of the sha"
                )
            raise RevisionNotFoundError(revision, self.url)
        sha = proc.stdout.strip()
        if not sha_refused and self.fetch_into_repo(depth, sha) is None:
            return sha
        # The server gives only what its refs point at: fetch the nearest ref deep enough to hold sha.
        holders = graph.git(
            "for-each-ref", "--contains", sha, "--format=%(refname)", "refs/heads", "refs/tags"
        ).stdout.split()
        if not holders:
            raise RevisionNotFoundError(revision, self.url)
        distance, ref = min((int(graph.git("rev-list", "--count", f"{sha}..{r}").stdout), r) for r in holders)
        log.progress(f"the server does not give {sha[:12]} by id: fetching {ref}, {distance} commits above it")
        self.fetch_into_repo(distance + depth if depth else 0, ref)
        if self.commit_of(self.repo, sha) is None and (self.repo.path / ".git" / "shallow").exists():
            # The ref moved on since the look-up: its whole history, then.
            self.fetch(self.repo, "--unshallow", "--", self.url, ref)
        if self.commit_of(self.repo, sha) is None:
            raise RevisionNotFoundError(revision, self.url)
        return sha


@click.command("clone")
@option(
    "--repo-url",
    hidden_aliases=("--url",),
    required=True,
    help="Repository to check out (https://, ssh:// or git@host:path).",
)
@option(
    "--revision",
    default="main",
    help="Branch, tag or commit sha (full, or short: costs a look-up of the commit graph); '' is the default branch.",
)
@workspace_option("--output", "output", "Folder to check out into, emptied first")
@option("--subdirectory", default="", help="Folder inside --output to check out into instead (created if missing).")
@option("--depth", type=click.IntRange(0, 1_000_000), default=1, help="Commits of history to fetch; 0: all of it.")
@flag_option(
    "--delete-existing",
    default=True,
    help="Empty the folder first; with --no-delete-existing, fail when it is not empty.",
)
@timeout_option("10m")
@option(
    "--transient-retries",
    type=click.IntRange(0, 20),
    default=4,
    help="Retries of a fetch after a server error (HTTP 5xx, connection reset).",
)
@flag_option(
    "--allow-plain-http",
    default=False,
    help="Permit credentials over http:// to a non-loopback host (an in-cluster git server).",
)
@workspace_option("--basic-auth", "basic_auth_dir", "Folder with .git-credentials and .gitconfig")
@workspace_option("--ssh-directory", "ssh_dir", "Folder with ssh keys (id_*), known_hosts and config")
@results_dir_option
def clone(
    repo_url: str,
    revision: str,
    output: str,
    subdirectory: str,
    depth: int,
    delete_existing: bool,
    timeout: Duration,
    transient_retries: int,
    allow_plain_http: bool,
    basic_auth_dir: str,
    ssh_dir: str,
    results_dir: str | None,
) -> None:
    """Check out REVISION of REPO_URL, shallow and detached, into OUTPUT (emptied first)."""
    retry = TransientRetry(transient_retries, deadline=time.monotonic() + timeout.seconds)
    url = validate_repo_url(repo_url)
    revision = validate_revision(revision)
    folder = target_folder(output, subdirectory)
    check_plain_http(url, bool(basic_auth_dir), allow_plain_http)
    os.umask(0o002)  # group-writable, so steps under another uid with the pod's fsGroup can write too

    with tempfile.TemporaryDirectory(prefix="druppie-clone-") as scratch:
        env = git_environment(
            Path(scratch), basic_auth_dir or None, ssh_dir or None
        )  # bad workspaces: before any change
        prepare_folder(folder, delete_existing)
        try:
            log.progress(f"fetching {revision} of {url} (depth {depth or 'all'}) into {folder}")
            fetcher = Fetcher(url, folder, Path(scratch), env, retry)
            sha = fetcher.checkout(revision, depth)
            date = Workspace(folder, url, "", env, retry).git("log", "-1", "--format=%ct", sha).stdout.strip()
            count = fetcher.commit_depth(sha, depth)
            log.progress(f"{sha[:12]} is commit {count} of its first-parent history")
            results = {"commit": sha, "url": public_url(url), "committer-date": date, "commit-depth": str(count)}
            write_results(results_dir, results)
        except BaseException:
            try:
                empty_folder(folder)  # no half checkout for the next step to trip over
            except StepError as err:
                log.warn(str(err))
            raise
    log.progress(f"checked out {sha} ({revision}) into {folder}")
    click.echo(summary_line("clone", results))
