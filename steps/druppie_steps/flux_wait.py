"""flux-wait: make Flux pull the pushed commit and wait until exactly that revision is applied and healthy.

Better than `flux reconcile kustomization --with-source` on two counts (shared notes flux.md):
it checks that the applied revision *is* the pushed commit (or one that contains it), and it fails
as soon as Flux reports a failure for that revision instead of waiting out the timeout.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import click

from .core import log
from .core.errors import InvalidInput, StepError
from .core.options import option, results_dir_option, workspace_option
from .core.results import summary_line, write_results

REREQUEST_PAUSE_SECONDS = 1.0


def parse_duration(value: str) -> float:
    """``5m``, ``90s``, ``1h30m``, ``300`` (seconds) as seconds; InvalidInput naming the value otherwise."""
    import re

    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise InvalidInput(f"invalid --timeout {value!r}: use a duration such as 5m, 90s or 1h30m")
        seconds = sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in parts)
    if seconds <= 0:
        raise InvalidInput(f"invalid --timeout {value!r}: must be more than zero")
    return seconds


def now_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@click.command("flux-wait")
@option("--kustomization", required=True, help="Name of the Flux Kustomization to wait for.")
@option("--namespace", default="flux-system", help="Namespace of the Kustomization.")
@option("--revision", required=True, help="Commit sha or Flux revision <branch>@sha1:<sha> (tag-commit's revision result).")
@option("--timeout", default="5m", help="How long to wait in total, e.g. 5m, 90s.")
@option("--kubeconfig", default="", help="Kubeconfig file; default: in-cluster, then KUBECONFIG.")
@option("--repo-url", default="", help="GitOps repo URL; lets a newer revision that contains the target count as reached.")
@workspace_option("--basic-auth", "basic_auth_dir", "Folder with .git-credentials and .gitconfig for --repo-url")
@workspace_option("--ssh-directory", "ssh_dir", "Folder with ssh keys and known_hosts for --repo-url")
@results_dir_option
def flux_wait(kustomization: str, namespace: str, revision: str, timeout: str, kubeconfig: str, repo_url: str,
              basic_auth_dir: str, ssh_dir: str, results_dir: str | None) -> None:
    """Reconcile SOURCE and KUSTOMIZATION and wait until REVISION is applied and healthy."""
    from .flux.status import parse_target

    try:
        target = parse_target(revision)
    except ValueError as err:
        raise InvalidInput(str(err)) from err
    seconds = parse_duration(timeout)
    if repo_url:
        from .gitops.git import validate_repo_url
        validate_repo_url(repo_url)
    started = time.monotonic()
    deadline = started + seconds
    with tempfile.TemporaryDirectory(prefix="druppie-flux-wait-") as scratch:
        contains = Ancestry(repo_url, target, Path(scratch), basic_auth_dir, ssh_dir) if repo_url else _unknown
        result = _wait(kustomization, namespace, target, deadline, kubeconfig or None, contains)
    result["duration-seconds"] = f"{time.monotonic() - started:.1f}"
    write_results(results_dir, result)
    click.echo(summary_line("flux-wait", result))


def _unknown(_sha: str) -> bool | None:
    return None


class Ancestry:
    """Does commit X contain the target? Answered from a treeless partial clone (commits only)."""

    def __init__(self, url: str, target: str, scratch: Path, basic_auth_dir: str, ssh_dir: str) -> None:
        self.url, self.target, self.scratch = url, target, scratch
        self.auth = (basic_auth_dir or None, ssh_dir or None)
        self.answers: dict[str, bool | None] = {}
        self.env: dict[str, str] | None = None

    def __call__(self, sha: str) -> bool | None:
        if sha.startswith(self.target) or self.target.startswith(sha):
            return True
        if sha not in self.answers:
            self.answers[sha] = self._ask(sha)
        return self.answers[sha]

    def _ask(self, sha: str) -> bool | None:
        from .gitops.git import git_environment

        if self.env is None:
            self.env = git_environment(self.scratch, *self.auth)
        repo = self.scratch / "history.git"
        if not repo.exists():
            subprocess.run(["git", "init", "--quiet", "--bare", str(repo)], env=self.env, check=True)
        # Commits only (no trees, no blobs): cheap even on a long history. Fetch the target too, so
        # "not an ancestor" (False) differs from "unknown" (None).
        fetch = subprocess.run(["git", "-C", str(repo), "fetch", "--quiet", "--filter=tree:0", self.url, sha, self.target],
                               env=self.env, capture_output=True, text=True)
        if fetch.returncode != 0:
            log.warn(f"cannot fetch {sha[:12]} to check that it contains {self.target[:12]}")
            return None
        check = subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", self.target, sha],
                               env=self.env, capture_output=True, text=True)
        return {0: True, 1: False}.get(check.returncode)


def _wait(name: str, namespace: str, target: str, deadline: float, kubeconfig: str | None,
          contains: Callable[[str], bool | None]) -> dict[str, str]:
    from .core.kube import api_client
    from .flux.status import (
        Phase, describe, has_health_checks, kustomization_verdict, revision_sha, source_verdict, suspended,
    )
    from .flux.watch import FluxApi, FluxObject, Timeout

    api = FluxApi(api_client(kubeconfig))
    ks_ref = FluxObject("Kustomization", namespace, name)
    ks = api.get_retrying(ks_ref, deadline)
    source_ref = ks["spec"]["sourceRef"]
    src_ref = FluxObject(source_ref["kind"], source_ref.get("namespace") or namespace, source_ref["name"])
    source = api.get_retrying(src_ref, deadline)
    for obj, ref in ((ks, ks_ref), (source, src_ref)):
        if suspended(obj):
            raise StepError(f"{ref} is suspended (spec.suspend: true); resume it with `flux resume`")
    if not has_health_checks(ks):
        log.warn(f"{ks_ref} has neither wait nor healthChecks: Ready means \"applied\", not \"healthy\"")

    said: set[str] = set()

    def say(ref: object, message: str) -> None:
        if message and message not in said:
            said.add(message)
            log.progress(f"{ref}: {message}")

    last = {"source": source, "ks": ks}
    try:
        # 1. The source must have fetched the target (ask again while it fetched an older commit).
        requested = now_stamp()
        api.request_reconcile(src_ref, requested, deadline)
        log.progress(f"requested a reconcile of {src_ref} for {target[:12]}")
        while True:
            last["source"], verdict = api.follow(
                src_ref, lambda o: _say_and(say, src_ref, source_verdict(o, target, requested, contains)),
                lambda v: v.phase is not Phase.WAITING, deadline)
            if verdict.phase is Phase.DONE:
                say(src_ref, verdict.message)
                break
            if verdict.phase is Phase.FAILED:
                raise StepError(f"{src_ref} failed: {verdict.reason}: {verdict.message}")
            time.sleep(REREQUEST_PAUSE_SECONDS)  # REREQUEST: fetched before our push was visible
            requested = now_stamp()
            api.request_reconcile(src_ref, requested, deadline)
            say(src_ref, f"{verdict.message}; asked again")

        # 2. The Kustomization must apply it and be healthy.
        requested = now_stamp()
        api.request_reconcile(ks_ref, requested, deadline)
        while True:
            last["ks"], verdict = api.follow(
                ks_ref, lambda o: _say_and(say, ks_ref, kustomization_verdict(o, target, requested, contains)),
                lambda v: v.phase is not Phase.WAITING, deadline)
            if verdict.phase is Phase.DONE:
                log.progress(f"{ks_ref}: applied {verdict.revision} and Ready ({verdict.reason})")
                return {"applied-revision": verdict.revision, "reason": verdict.reason}
            if verdict.phase is Phase.SUPERSEDED:
                newer = last["ks"].get("status", {}).get("lastAttemptedRevision", "")
                if contains(revision_sha(newer)):
                    say(ks_ref, f"health check superseded by {newer}, which contains the target; waiting for it")
                    time.sleep(REREQUEST_PAUSE_SECONDS)
                    continue
                raise StepError(f"{ks_ref}: superseded: a newer revision arrived before {target[:12]} was checked "
                                f"({verdict.message})")
            raise StepError(f"{ks_ref} failed for revision {verdict.revision}: {verdict.reason}: {verdict.message}")
    except Timeout as timeout:
        if timeout.last is not None:
            last["ks" if timeout.last.get("kind") == "Kustomization" else "source"] = timeout.last
        details = describe(last["source"]) + "\n" + describe(last["ks"])
        raise StepError(f"timed out waiting for {ks_ref} to apply {target[:12]}; last conditions:\n{details}")


def _say_and(say: Callable[[object, str], None], ref: object, verdict):
    from .flux.status import Phase

    if verdict.phase is Phase.WAITING:
        say(ref, verdict.message)
    return verdict
