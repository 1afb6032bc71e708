"""Decisions on Flux objects: pure functions of a status object, tested on objects the real
controllers produced (tests/fixtures/flux-status/). Nothing here talks to the API.

Field names and reasons are those of source-controller and kustomize-controller (source.toolkit
.fluxcd.io/v1, kustomize.toolkit.fluxcd.io/v1); see shared notes flux.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Callable

_SHA = re.compile(r"^[0-9a-f]{7,64}$")

# Ready=False reasons that end the attempt for that revision: fail fast with Flux's message.
FAILURE_REASONS = {"BuildFailed", "ArtifactFailed", "HealthCheckFailed", "PruneFailed", "ReconciliationFailed"}
# Ready=False/Unknown reasons that mean "not yet": keep waiting.
WAIT_REASONS = {"Progressing", "DependencyNotReady", "ProgressingWithRetry"}


class Phase(Enum):
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"
    REREQUEST = "rerequest"    # the source fetched, but not our commit yet: ask it again
    SUPERSEDED = "superseded"  # a newer revision took over before ours was checked


@dataclass(frozen=True)
class Verdict:
    phase: Phase
    reason: str
    message: str
    revision: str = ""


def revision_sha(revision: str | None) -> str:
    """The commit sha of any Flux revision form: ``main@sha1:<sha>``, ``sha1:<sha>``, ``main/<sha>``, ``<sha>``."""
    if not revision:
        return ""
    tail = revision.rsplit("@", 1)[-1]
    tail = tail.split(":", 1)[1] if tail.startswith(("sha1:", "sha256:")) else tail.rsplit("/", 1)[-1]
    return tail.lower() if _SHA.match(tail.lower()) else ""


def parse_target(revision: str) -> str:
    """The sha of ``--revision``; ValueError naming the value when it is not one."""
    sha = revision_sha(revision.strip())
    if not sha:
        raise ValueError(f"invalid --revision {revision!r}: give a commit sha or Flux's <branch>@sha1:<sha>")
    return sha


def same_commit(a: str, b: str) -> bool:
    return bool(a and b) and (a.startswith(b) or b.startswith(a))


def condition(obj: dict, kind: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def describe(obj: dict) -> str:
    """The conditions of an object, one line each, for diagnostics on timeout."""
    conds = (obj.get("status") or {}).get("conditions") or []
    kind = obj.get("kind", "object")
    name = (obj.get("metadata") or {}).get("name", "?")
    lines = [f"{kind} {name}: " + ("no conditions" if not conds else "")]
    lines += [f"  {c.get('type')}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}" for c in conds]
    return "\n".join(lines)


def suspended(obj: dict) -> bool:
    return bool((obj.get("spec") or {}).get("suspend"))


def progress_message(obj: dict) -> str:
    """What the controller says it is doing now (Reconciling, else Ready), for the progress log."""
    for kind in ("Reconciling", "Ready"):
        cond = condition(obj, kind)
        if cond and cond.get("status") in ("True", "Unknown") and cond.get("message"):
            return cond["message"]
    return ""


def source_verdict(source: dict, target: str, requested_at: str,
                   contains: Callable[[str], bool | None] = lambda _: None) -> Verdict:
    """Has the GitRepository fetched ``target`` (or a descendant) since we asked at ``requested_at``?

    ``contains(sha)`` says whether commit ``sha`` contains the target (True/False), or None when
    that cannot be established.
    """
    status = source.get("status") or {}
    artifact_rev = (status.get("artifact") or {}).get("revision", "")
    sha = revision_sha(artifact_rev)
    if same_commit(sha, target):
        return Verdict(Phase.DONE, "ArtifactAtTarget", f"source has revision {artifact_rev}", artifact_rev)
    stalled = condition(source, "Stalled")
    if stalled.get("status") == "True":
        return Verdict(Phase.FAILED, stalled.get("reason", "Stalled"), stalled.get("message", ""), artifact_rev)
    handled = status.get("lastHandledReconcileAt") == requested_at
    observed = status.get("observedGeneration") == (source.get("metadata") or {}).get("generation")
    if not (handled and observed):
        # Until our request is handled, only live progress (Reconciling) is news; Ready still
        # describes the previous fetch.
        live = condition(source, "Reconciling").get("status") == "True"
        return Verdict(Phase.WAITING, "Fetching", (live and progress_message(source)) or "waiting for the source to fetch")
    fetch = condition(source, "FetchFailed")
    if fetch.get("status") == "True":
        return Verdict(Phase.FAILED, fetch.get("reason", "FetchFailed"), fetch.get("message", ""), artifact_rev)
    if sha and contains(sha):
        return Verdict(Phase.DONE, "ArtifactContainsTarget", f"source has newer revision {artifact_rev}, "
                       "which contains the target", artifact_rev)
    # Fetched, but an older commit: our push was not visible yet (or a mirror lags). Ask again.
    return Verdict(Phase.REREQUEST, "ArtifactBehind", f"source fetched {artifact_rev or 'nothing'}, not the target yet",
                   artifact_rev)


def kustomization_verdict(ks: dict, target: str, requested_at: str,
                          contains: Callable[[str], bool | None] = lambda _: None) -> Verdict:
    """Is exactly ``target`` (or a descendant) applied and healthy, has it failed, or do we wait?"""
    status = ks.get("status") or {}
    generation = (ks.get("metadata") or {}).get("generation")
    if status.get("observedGeneration") != generation:
        return Verdict(Phase.WAITING, "NotObserved", f"waiting for the controller to observe generation {generation}")
    ready = condition(ks, "Ready")
    applied = status.get("lastAppliedRevision", "")
    attempted = status.get("lastAttemptedRevision", "")

    def is_target(revision: str) -> bool:
        sha = revision_sha(revision)
        return same_commit(sha, target) or (bool(sha) and bool(contains(sha)))

    if ready.get("status") == "True" and is_target(applied):
        return Verdict(Phase.DONE, ready.get("reason", "ReconciliationSucceeded"), ready.get("message", ""), applied)
    stalled = condition(ks, "Stalled")
    if stalled.get("status") == "True":
        return Verdict(Phase.FAILED, stalled.get("reason", "Stalled"), stalled.get("message", ""), attempted)
    reason = ready.get("reason", "")
    if ready.get("status") == "False":
        if reason == "HealthCheckCanceled":
            return Verdict(Phase.SUPERSEDED, reason, ready.get("message", ""), attempted)
        if reason in FAILURE_REASONS and is_target(attempted):
            return Verdict(Phase.FAILED, reason, ready.get("message", ""), attempted)
    return Verdict(Phase.WAITING, reason or "Progressing", progress_message(ks) or "waiting for the Kustomization")


def has_health_checks(ks: dict) -> bool:
    spec = ks.get("spec") or {}
    return bool(spec.get("wait") or spec.get("healthChecks"))
