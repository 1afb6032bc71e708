"""Decisions on Flux objects: pure functions of a status object, tested on objects the real
controllers produced (tests/fixtures/flux-status/). Nothing here talks to the API.

Field names and reasons are those of source-controller and kustomize-controller
(source.toolkit.fluxcd.io/v1, kustomize.toolkit.fluxcd.io/v1). The facts these decisions rest on:

- Revisions: a GitRepository that follows a branch reports ``main@sha1:<sha>``, one pinned to a
  commit ``sha1:<sha>``, very old releases ``main/<sha>``; SHA-256 repositories ``sha256:<sha>``.
- A reconcile is requested by writing any new value into the annotation
  ``reconcile.fluxcd.io/requestedAt``. The controller reads it when an attempt *starts* and copies it
  into ``status.lastHandledReconcileAt`` when that attempt ends, whether it succeeded or failed.
  Others write it too: ``flux reconcile`` (RFC3339Nano), the notification-controller Receiver (Go's
  ``time.Time.String()``, e.g. ``2026-11-26 04:45:34.1 +0000 UTC m=+1.2``), a second flux-wait.
- The Kustomization sets ``lastAttemptedRevision`` before it builds and ``lastAppliedRevision`` only
  after apply and health checks passed. Its ``Ready`` condition keeps the outcome of the last
  attempt until the next attempt ends, so a ``Ready=False`` can describe an attempt made long
  before ours (e.g. a health check that failed because the image was not pushed yet).
- ``HealthCheckCanceled``: a newer reconciliation cancelled the health check; its outcome decides.
- ``ArtifactFailed`` is written before ``lastAttemptedRevision`` is updated, so it names no revision.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import Enum, auto

from ..core.kube import KubeObject

# Abbreviated or full SHA-1 (7..40 hex), or a full SHA-256 (64 hex): what git and Flux print.
_SHA = re.compile(r"^(?:[0-9a-f]{7,40}|[0-9a-f]{64})$")
# RFC3339 / RFC3339Nano (flux CLI, us) and Go's time.String() (the Receiver): date, time, optional
# fraction, zone offset; Go's trailing " UTC m=+1.2" is ignored.
_STAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?\s*(Z|[+-]\d\d:?\d\d)(?:\s.*)?$")
REQUEST_ANNOTATION = "reconcile.fluxcd.io/requestedAt"

# Ready=False reasons that end an attempt: fail fast with Flux's message (when the attempt is ours).
FAILURE_REASONS = {"BuildFailed", "ArtifactFailed", "HealthCheckFailed", "PruneFailed", "ReconciliationFailed"}

# Without a repository to prove ancestry, a source that keeps fetching the same other revision for
# this long after handling our requests has moved past the target: a pushed commit is visible to a
# fetch within seconds, so a longer "behind" is not lag.
BEHIND_FOR_GOOD_SECONDS = 30.0


class Phase(Enum):
    WAITING = auto()
    DONE = auto()
    FAILED = auto()
    REREQUEST = auto()  # the source fetched, but not our commit yet: ask it again
    SUPERSEDED = auto()  # Flux moved on to a revision not known to contain ours


@dataclass(frozen=True)
class Verdict:
    phase: Phase
    reason: str
    message: str
    revision: str = ""


def revision_sha(revision: str | None) -> str:
    """The commit sha of any Flux revision form: ``main@sha1:<sha>``, ``sha1:<sha>``, ``main/<sha>``, ``<sha>``;
    empty when there is none (an OCI digest without a sha form, garbage)."""
    if not revision:
        return ""
    tail = revision.rpartition("@")[2]
    tail = tail.partition(":")[2] if tail.startswith(("sha1:", "sha256:")) else tail.rpartition("/")[2]
    return tail.lower() if _SHA.match(tail.lower()) else ""


def parse_target(revision: str) -> str:
    """The sha of ``--revision``; ValueError naming the value when it is not one."""
    sha = revision_sha(revision.strip())
    if not sha:
        raise ValueError(
            f"invalid --revision {revision!r}: give a commit sha (7-40 hex digits) or Flux's <branch>@sha1:<sha>"
        )
    return sha


def same_commit(a: str, b: str) -> bool:
    """Do two shas (either may be abbreviated) name the same commit? Never for an empty one."""
    return bool(a and b) and (a.startswith(b) or b.startswith(a))


def instant(stamp: str) -> int | None:
    """A requestedAt value as nanoseconds since the epoch; None when it is no timestamp (a token)."""
    match = _STAMP.match(stamp.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        seconds = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second)))
    except ValueError:
        return None
    if zone != "Z":
        sign = -1 if zone[0] == "+" else 1  # 12:00+02:00 is 10:00Z
        digits = zone[1:].replace(":", "")
        seconds += sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds * 10**9 + int((fraction or "").ljust(9, "0"))


def handled_since(obj: KubeObject, requested_at: str) -> bool:
    """Has the controller finished an attempt that started at or after our request ``requested_at``?

    ``obj`` must have been read after we wrote ``requested_at``. Another writer may have replaced
    our value since (a second flux-wait, ``flux reconcile``, a Receiver): a handled request that is
    that newer value, or a later time, counts as well.
    """
    handled = (obj.get("status") or {}).get("lastHandledReconcileAt")
    if not handled:
        return False
    current = ((obj.get("metadata") or {}).get("annotations") or {}).get(REQUEST_ANNOTATION)
    if handled in (requested_at, current):
        # Ours, or the value that overwrote ours after we wrote it (whatever its format).
        return True
    ours, theirs = instant(requested_at), instant(handled)
    return ours is not None and theirs is not None and theirs >= ours


def condition(obj: KubeObject, kind: str) -> KubeObject:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def describe(obj: KubeObject) -> str:
    """The conditions of an object, one line each, for diagnostics on timeout."""
    conds = (obj.get("status") or {}).get("conditions") or []
    kind = obj.get("kind", "object")
    name = (obj.get("metadata") or {}).get("name", "?")
    lines = [f"{kind} {name}: " + ("no conditions" if not conds else "")]
    lines += [f"  {c.get('type')}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}" for c in conds]
    return "\n".join(lines)


def suspended(obj: KubeObject) -> bool:
    return bool((obj.get("spec") or {}).get("suspend"))


def progress_message(obj: KubeObject) -> str:
    """What the controller says it is doing now (Reconciling, else Ready), for the progress log."""
    for kind in ("Reconciling", "Ready"):
        cond = condition(obj, kind)
        if cond.get("status") in ("True", "Unknown") and cond.get("message"):
            return str(cond["message"])
    return ""


def no_ancestry(_sha: str) -> bool | None:
    """``contains`` without a repository: whether a commit contains the target is unknown."""
    return None


def source_verdict(
    source: KubeObject, target: str, requested_at: str, contains: Callable[[str], bool | None] = no_ancestry
) -> Verdict:
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
    # No observedGeneration check: source-controller moves it only on success, so after a spec
    # change a failed fetch would never count. An attempt that handled our request used the spec
    # as it was then.
    if not handled_since(source, requested_at):
        # Until our request is handled, only live progress (Reconciling) is news; Ready still
        # describes the previous fetch.
        live = condition(source, "Reconciling").get("status") == "True"
        return Verdict(
            Phase.WAITING, "Fetching", (live and progress_message(source)) or "waiting for the source to fetch"
        )
    fetch = condition(source, "FetchFailed")
    if fetch.get("status") == "True":
        return Verdict(Phase.FAILED, fetch.get("reason", "FetchFailed"), fetch.get("message", ""), artifact_rev)
    if sha and contains(sha):
        return Verdict(
            Phase.DONE,
            "ArtifactContainsTarget",
            f"source has newer revision {artifact_rev}, which contains the target",
            artifact_rev,
        )
    # Fetched, but another commit: our push was not visible yet (or a mirror lags), or a newer
    # commit landed on top of ours. Ask again; source_moved_past decides when to stop.
    return Verdict(
        Phase.REREQUEST,
        "ArtifactBehind",
        f"source fetched {artifact_rev or 'nothing'}, not the target yet",
        artifact_rev,
    )


def source_moved_past(start_revision: str, fetched_revision: str, behind_seconds: float) -> bool:
    """After a REREQUEST that ``contains`` could not settle: has the source moved past the target for good?

    Our commit was pushed before we asked, so a source that, after handling our request, fetched a
    revision other than the one it had when we started has a newer head that is not ours. One
    that keeps the starting revision is behind only while the push is not visible yet, which
    lasts seconds, not ``BEHIND_FOR_GOOD_SECONDS``.
    """
    fetched = revision_sha(fetched_revision)
    if not fetched:
        return False
    return not same_commit(fetched, revision_sha(start_revision)) or behind_seconds >= BEHIND_FOR_GOOD_SECONDS


def kustomization_verdict(
    ks: KubeObject,
    target: str,
    requested_at: str,
    contains: Callable[[str], bool | None] = no_ancestry,
    older: Collection[str] = (),
) -> Verdict:
    """Is exactly ``target`` (or a descendant) applied and healthy, has it failed, or do we wait?

    A failure counts only for an attempt that started at or after our request ``requested_at``
    (``handled_since``) and was for the target or a revision that contains it. ``older`` holds
    shas known to precede the target (what the source had before it reached the target): an
    attempt on one of those is the controller catching up, not Flux moving on.
    """
    status = ks.get("status") or {}
    generation = (ks.get("metadata") or {}).get("generation")
    handled = handled_since(ks, requested_at)
    # kustomize-controller moves observedGeneration only on success; an attempt that handled our
    # request used the spec as it was then, so its failure counts even while the generation lags.
    if status.get("observedGeneration") != generation and not handled:
        return Verdict(Phase.WAITING, "NotObserved", f"waiting for the controller to observe generation {generation}")
    ready = condition(ks, "Ready")
    applied = status.get("lastAppliedRevision")
    attempted = status.get("lastAttemptedRevision", "")

    def is_target(revision: str | None) -> bool:
        sha = revision_sha(revision)
        return same_commit(sha, target) or (bool(sha) and contains(sha) is True)

    if ready.get("status") == "True" and is_target(applied):
        return Verdict(
            Phase.DONE, ready.get("reason", "ReconciliationSucceeded"), ready.get("message", ""), str(applied)
        )
    stalled = condition(ks, "Stalled")
    if stalled.get("status") == "True":
        return Verdict(Phase.FAILED, stalled.get("reason", "Stalled"), stalled.get("message", ""), attempted)
    reason = ready.get("reason", "")
    waiting = Verdict(Phase.WAITING, reason or "Progressing", progress_message(ks) or "waiting for the Kustomization")
    if not handled:
        return waiting  # whatever Ready says, it is about an attempt that started before our request
    message = ready.get("message", "")
    failed = ready.get("status") == "False" and reason in FAILURE_REASONS and "retrying in" not in message
    # ("Source artifact not found, retrying in 30s": transient, the controller retries by itself.)
    if not (failed or ready.get("status") == "True"):
        return waiting
    if is_target(attempted):  # Ready=True here means lastAppliedRevision lags: wait for it
        return Verdict(Phase.FAILED, reason, message, attempted) if failed else waiting
    if failed and reason == "ArtifactFailed":
        # Written before lastAttemptedRevision moves on (e.g. "kustomization path not found"): the
        # attempt was for the source's artifact after our request, i.e. the target or newer.
        return Verdict(Phase.FAILED, reason, message)
    sha = revision_sha(attempted)
    if not sha or any(same_commit(sha, old) for old in older):
        return waiting
    proof = "does not contain" if contains(sha) is False else "is not known to contain"
    return Verdict(Phase.SUPERSEDED, reason, f"Flux moved on to {attempted}, which {proof} {target[:12]}", attempted)


def has_health_checks(ks: KubeObject) -> bool:
    spec = ks.get("spec") or {}
    return bool(spec.get("wait") or spec.get("healthChecks"))


@dataclass(frozen=True)
class Deployed:
    """What a healthy environment runs: the commit Flux applied and the folder it applied."""

    revision: str  # as Flux reports it, e.g. main@sha1:<sha>
    sha: str
    path: str  # spec.path without ./, e.g. envs/test/drone-service


def running_healthy(ks: KubeObject) -> Deployed:
    """Promotion's precondition on the environment's Kustomization: ValueError saying why not.

    It runs what it last applied, healthy, only when: not suspended (drift would go uncorrected),
    health checks on (else Ready means "applied", not "healthy"), its current spec reconciled
    (observedGeneration), Ready=True (Flux's verdict of the last attempt, health checks included), and
    no newer revision attempted since (one being applied or failing: the environment is changing).
    """
    meta, spec, status = (ks.get(k) or {} for k in ("metadata", "spec", "status"))
    name = f"Kustomization {meta.get('namespace', '?')}/{meta.get('name', '?')}"
    if spec.get("suspend"):
        raise ValueError(f"{name} is suspended: Flux corrects no drift there, so what it runs is unknown")
    if not has_health_checks(ks):
        raise ValueError(f'{name} has neither wait nor healthChecks: its Ready means "applied", not "healthy"')
    if status.get("observedGeneration") != meta.get("generation"):
        raise ValueError(
            f"{name} has not reconciled its current spec yet (generation {meta.get('generation')}, "
            f"observed {status.get('observedGeneration')})"
        )
    ready = condition(ks, "Ready")
    if ready.get("status") != "True":
        why = " ".join(f"{ready.get('reason', '')}: {ready.get('message', '')}".split()).strip(": ")
        raise ValueError(f"{name} is not healthy (Ready={ready.get('status', 'missing')}{': ' + why if why else ''})")
    applied = status.get("lastAppliedRevision", "")
    sha = revision_sha(applied)
    if not sha:
        raise ValueError(f"{name} reports no applied git revision (lastAppliedRevision {applied!r})")
    attempted = status.get("lastAttemptedRevision", "")
    if attempted and not same_commit(revision_sha(attempted), sha):
        raise ValueError(f"{name} is applying {attempted} over {applied}: wait until it is Ready for it")
    path = str(spec.get("path") or "").strip()
    path = "/".join(p for p in path.split("/") if p not in ("", "."))
    if not path or ".." in path.split("/"):
        raise ValueError(f"{name} has spec.path {spec.get('path')!r}: not a folder inside its repository")
    return Deployed(applied, sha, path)
