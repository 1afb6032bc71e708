"""flux-wait: make Flux pull the pushed commit and wait until exactly that revision is applied and healthy.

Better than `flux reconcile kustomization --with-source` on two counts: it checks that the applied
revision *is* the pushed commit (or one that contains it), and it fails as soon as Flux reports a
failure for that revision instead of waiting out the timeout (the CLI reads the controller's
`Reconciling=True, ProgressingWithRetry` after a failure as "in progress"). How each object state
is judged is in flux/status.py; the task README's "How flux-wait decides" is the prose version.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .core import log
from .core.errors import InvalidInputError, StepError
from .core.options import Duration, flag_option, option, results_dir_option, timeout_option, workspace_option
from .core.results import summary_line, write_results

if TYPE_CHECKING:
    from .core.kube import KubeObject
    from .flux.status import Verdict
    from .gitops.git import TransientRetry

REREQUEST_PAUSE_SECONDS = 1.0


def now_stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@click.command("flux-wait")
@option("--kustomization", required=True, help="Name of the Flux Kustomization to wait for.")
@option("--namespace", default="flux-system", help="Namespace of the Kustomization.")
@option(
    "--revision", required=True, help="Commit sha or Flux revision <branch>@sha1:<sha> (tag-commit's revision result)."
)
@timeout_option("5m")
@option("--kubeconfig", default="", help="Kubeconfig file; default: in-cluster, then KUBECONFIG.")
@option(
    "--repo-url", default="", help="GitOps repo URL; lets a newer revision that contains the target count as reached."
)
@flag_option(
    "--allow-plain-http",
    default=False,
    help="Permit credentials for --repo-url over http:// to a non-loopback host (an in-cluster git server).",
)
@workspace_option("--basic-auth", "basic_auth_dir", "Folder with .git-credentials and .gitconfig for --repo-url")
@workspace_option("--ssh-directory", "ssh_dir", "Folder with ssh keys and known_hosts for --repo-url")
@results_dir_option
def flux_wait(
    kustomization: str,
    namespace: str,
    revision: str,
    timeout: Duration,
    kubeconfig: str,
    repo_url: str,
    allow_plain_http: bool,
    basic_auth_dir: str,
    ssh_dir: str,
    results_dir: str | None,
) -> None:
    """Reconcile SOURCE and KUSTOMIZATION and wait until REVISION is applied and healthy."""
    from .flux.status import no_ancestry, parse_target

    try:
        target = parse_target(revision)
    except ValueError as err:
        raise InvalidInputError(str(err)) from err
    started = time.monotonic()
    deadline = started + timeout.seconds
    retry = None
    if repo_url:
        from .gitops.git import TransientRetry, check_plain_http, validate_repo_url

        validate_repo_url(repo_url)
        check_plain_http(repo_url, bool(basic_auth_dir), allow_plain_http)  # before any network call
        retry = TransientRetry(deadline=deadline)
    with tempfile.TemporaryDirectory(prefix="druppie-flux-wait-") as scratch:
        contains = (
            Ancestry(repo_url, target, Path(scratch), basic_auth_dir, ssh_dir, retry) if repo_url else no_ancestry
        )
        result = _wait(kustomization, namespace, target, deadline, kubeconfig or None, contains, repo_url)
    result["duration-seconds"] = f"{time.monotonic() - started:.1f}"
    write_results(results_dir, result)
    click.echo(summary_line("flux-wait", result))


class Ancestry:
    """Does commit X contain the target? Answered from a treeless partial clone (commits only).

    The fetch is tag-commit's git (gitops/git.py): credentials from the workspaces only, killed at
    the step's deadline, retried on a server error (``retry``); when it fails the answer is None
    (unknown), with a warning that says why.
    """

    def __init__(
        self,
        url: str,
        target: str,
        scratch: Path,
        basic_auth_dir: str,
        ssh_dir: str,
        retry: TransientRetry | None = None,
    ) -> None:
        from .gitops.git import TransientRetry

        self.url, self.target, self.scratch = url, target, scratch
        self.auth = (basic_auth_dir or None, ssh_dir or None)
        self.retry = retry or TransientRetry()
        self.answers: dict[str, bool | None] = {}
        self.env: dict[str, str] | None = None

    def __call__(self, sha: str) -> bool | None:
        from .flux.status import same_commit

        if not sha:
            return False  # no revision (unparsable, empty) contains nothing
        if same_commit(sha, self.target):
            return True
        if sha not in self.answers:
            self.answers[sha] = self._ask(sha)
        return self.answers[sha]

    def _ask(self, sha: str) -> bool | None:
        from .gitops.git import GitError, Workspace, git_environment

        if self.env is None:
            self.env = git_environment(self.scratch, *self.auth)
        repo = Workspace(self.scratch / "history.git", self.url, "", self.env, self.retry)
        try:
            if not repo.path.exists():
                Workspace(self.scratch, self.url, "", self.env, self.retry).git(
                    "init", "--quiet", "--bare", "history.git"
                )
            # Commits only (no trees, no blobs): cheap even on a long history. Fetch the target too, so
            # "not an ancestor" (False) differs from "unknown" (None).
            self.retry.run(
                "fetch",
                lambda: repo.git("fetch", "--quiet", "--no-tags", "--filter=tree:0", "--", self.url, sha, self.target),
            )
        except GitError as err:
            log.warn(f"cannot fetch {sha[:12]} to check that it contains {self.target[:12]}: {err}")
            return None
        check = repo.git("merge-base", "--is-ancestor", self.target, sha, check=False)
        return {0: True, 1: False}.get(check.returncode)


def _wait(
    name: str,
    namespace: str,
    target: str,
    deadline: float,
    kubeconfig: str | None,
    contains: Callable[[str], bool | None],
    repo_url: str = "",
) -> dict[str, str]:
    from .core.kube import api_client
    from .flux.status import (
        Phase,
        describe,
        has_health_checks,
        kustomization_verdict,
        revision_sha,
        same_commit,
        source_moved_past,
        suspended,
    )
    from .flux.watch import FluxApi, FluxObject, WaitTimeoutError
    from .gitops.git import repo_identity

    api = FluxApi(api_client(kubeconfig))
    ks_ref = FluxObject("Kustomization", namespace, name)
    ks = api.get_retrying(ks_ref, deadline)
    source_ref = ks["spec"]["sourceRef"]
    src_ref = FluxObject(source_ref["kind"], source_ref.get("namespace") or namespace, source_ref["name"])
    if src_ref.kind != "GitRepository":
        # OCIRepository and Bucket revisions are digests (latest@sha256:..., sha256:...), never a commit.
        raise StepError(
            f"{ks_ref} takes its manifests from {src_ref}, whose revisions are digests, not git "
            "commits: flux-wait supports GitRepository sources only"
        )
    source = api.get_retrying(src_ref, deadline)
    for obj, ref in ((ks, ks_ref), (source, src_ref)):
        if suspended(obj):
            raise StepError(f"{ref} is suspended (spec.suspend: true); resume it with `flux resume`")
    if not has_health_checks(ks):
        log.warn(f'{ks_ref} has neither wait nor healthChecks: Ready means "applied", not "healthy"')
    source_url = (source.get("spec") or {}).get("url", "")
    if repo_url and source_url and repo_identity(repo_url) != repo_identity(source_url):
        log.warn(
            f"--repo-url {repo_url} is not {src_ref}'s spec.url {source_url}: ancestry is checked in "
            "--repo-url, so it must hold the same history"
        )

    said: set[str] = set()

    def say(ref: object, message: str) -> None:
        if message and message not in said:
            said.add(message)
            log.progress(f"{ref}: {message}")

    def no_proof() -> str:
        if repo_url:
            return f"and whether it contains {target[:12]} could not be checked in --repo-url (see above)"
        return (
            f"and without --repo-url flux-wait cannot check whether it contains {target[:12]}; pass --repo-url "
            "(the GitOps repository) to let a newer revision that contains the target count"
        )

    last = {"source": source, "ks": ks}
    start_revision = ((source.get("status") or {}).get("artifact") or {}).get("revision", "")
    # Revisions known to precede the target: what Flux had before our wait, and what the source
    # fetched while our push was not visible yet. An attempt on one of them is Flux catching up.
    older = {
        sha
        for sha in (
            revision_sha(start_revision),
            *(revision_sha((ks.get("status") or {}).get(k)) for k in ("lastAppliedRevision", "lastAttemptedRevision")),
        )
        if sha and not same_commit(sha, target)
    }
    try:
        # 1. The source must have fetched the target (ask again while it fetched an older commit).
        requested = now_stamp()
        api.request_reconcile(src_ref, requested, deadline)
        log.progress(f"requested a reconcile of {src_ref} for {target[:12]}")
        behind_since = None
        while True:
            last["source"], verdict = api.follow(
                src_ref,
                _decide_source(say, src_ref, target, requested, contains),
                lambda v: v.phase is not Phase.WAITING,
                deadline,
            )
            if verdict.phase is Phase.DONE:
                say(src_ref, verdict.message)
                break
            if verdict.phase is Phase.FAILED:
                raise StepError(f"{src_ref} failed: {verdict.reason}: {_one_line(verdict.message)}")
            fetched = revision_sha(verdict.revision)
            behind_since = behind_since or time.monotonic()
            if contains(fetched) is None and source_moved_past(
                start_revision, verdict.revision, time.monotonic() - behind_since
            ):
                raise StepError(
                    f"{src_ref}: superseded by {verdict.revision}: the source moved past "
                    f"{target[:12]} to it, {no_proof()}"
                )
            if fetched and not same_commit(fetched, target):
                older.add(fetched)
            time.sleep(REREQUEST_PAUSE_SECONDS)  # REREQUEST: fetched before our push was visible
            requested = now_stamp()
            api.request_reconcile(src_ref, requested, deadline)
            say(src_ref, f"{verdict.message}; asked again")

        # 2. The Kustomization must apply it and be healthy.
        requested = now_stamp()
        api.request_reconcile(ks_ref, requested, deadline)
        last["ks"], verdict = api.follow(
            ks_ref,
            lambda o: _say_and(say, ks_ref, kustomization_verdict(o, target, requested, contains, older)),
            lambda v: v.phase is not Phase.WAITING,
            deadline,
        )
        if verdict.phase is Phase.DONE:
            log.progress(f"{ks_ref}: applied {verdict.revision} and Ready ({verdict.reason})")
            return {"applied-revision": verdict.revision, "reason": verdict.reason}
        if verdict.phase is Phase.SUPERSEDED:
            hint = no_proof() if contains(revision_sha(verdict.revision)) is None else ""
            raise StepError(
                f"{ks_ref}: superseded by {verdict.revision}: {verdict.message}" + (f", {hint}" if hint else "")
            )
        raise StepError(failure_message(ks_ref, verdict, last["source"]))
    except WaitTimeoutError as timeout:
        if timeout.last is not None:
            last["ks" if timeout.last.get("kind") == "Kustomization" else "source"] = timeout.last
        details = describe(last["source"]) + "\n" + describe(last["ks"])
        raise StepError(
            f"timed out waiting for {ks_ref} to apply {target[:12]}; last conditions:\n{details}"
        ) from timeout


def failure_message(ks_ref: object, verdict: Verdict, source: KubeObject) -> str:
    """The one line of a Kustomization that failed: its revision, Flux's reason and Flux's message."""
    # A failure that names no revision (ArtifactFailed) is about what the source holds now.
    failed = verdict.revision or ((source.get("status") or {}).get("artifact") or {}).get("revision", "")
    return f"{ks_ref} failed for revision {failed}: {verdict.reason}: {_one_line(verdict.message)}"


def _one_line(text: str) -> str:
    """Flux's message on one line (a CEL or kustomize error spans several)."""
    return " ".join(text.split())


def _say_and(say: Callable[[object, str], None], ref: object, verdict: Verdict) -> Verdict:
    from .flux.status import Phase

    if verdict.phase is Phase.WAITING:
        say(ref, verdict.message)
    return verdict


def _decide_source(
    say: Callable[[object, str], None],
    ref: object,
    target: str,
    requested: str,
    contains: Callable[[str], bool | None],
) -> Callable[[KubeObject], Verdict]:
    """The source's verdict on each version of it, for the reconcile requested at ``requested``."""
    from .flux.status import source_verdict

    return lambda obj: _say_and(say, ref, source_verdict(obj, target, requested, contains))
