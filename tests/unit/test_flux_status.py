"""flux-wait's decisions, on status objects recorded from the real controllers in the e2e run
(tests/fixtures/flux-status, refreshed with DRUPPIE_RECORD_FIXTURES=1 make test-e2e)."""

import copy
import json
from pathlib import Path

import pytest

from druppie_steps.flux.status import (
    Phase, describe, has_health_checks, kustomization_verdict, parse_target, progress_message, revision_sha,
    source_verdict, suspended,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flux-status"
OTHER = "0123456789abcdef0123456789abcdef01234567"


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def sha(revision: str) -> str:
    return revision_sha(revision)


@pytest.mark.parametrize("revision,expected", [
    ("main@sha1:" + OTHER, OTHER), ("sha1:" + OTHER, OTHER), ("main/" + OTHER, OTHER), (OTHER, OTHER),
    ("release/v1@sha1:" + OTHER.upper(), OTHER), ("main@sha1:xyz", ""), ("", ""),
])
def test_revision_forms(revision, expected):
    assert revision_sha(revision) == expected


def test_bad_revision_is_named():
    with pytest.raises(ValueError, match=r"invalid --revision 'main@sha1:nope'"):
        parse_target("main@sha1:nope")


def test_ready_at_target_is_done():
    ks = load("kustomization-ready")
    target = sha(ks["status"]["lastAppliedRevision"])
    verdict = kustomization_verdict(ks, target, "any")
    assert verdict.phase is Phase.DONE and verdict.reason == "ReconciliationSucceeded"
    assert verdict.revision == ks["status"]["lastAppliedRevision"]
    assert kustomization_verdict(ks, target[:12], "any").phase is Phase.DONE  # a short sha works too


def test_ready_at_another_revision_waits_unless_it_contains_the_target():
    ks = load("kustomization-ready")
    assert kustomization_verdict(ks, OTHER, "any").phase is Phase.WAITING
    assert kustomization_verdict(ks, OTHER, "any", contains=lambda s: True).phase is Phase.DONE
    assert kustomization_verdict(ks, OTHER, "any", contains=lambda s: False).phase is Phase.WAITING


def test_build_failed_for_the_target_fails_with_fluxs_words():
    ks = load("kustomization-build-failed")
    target = sha(ks["status"]["lastAttemptedRevision"])
    verdict = kustomization_verdict(ks, target, "any")
    assert verdict.phase is Phase.FAILED and verdict.reason == "BuildFailed"
    assert verdict.message.startswith("kustomize build failed:") and "deployment.yaml" in verdict.message


def test_build_failed_for_another_revision_is_not_ours():
    ks = load("kustomization-build-failed")
    older = sha(ks["status"]["lastAppliedRevision"])
    assert kustomization_verdict(ks, older, "any").phase is Phase.WAITING


@pytest.mark.parametrize("i", range(4))
def test_progressing_waits_and_says_what_flux_does(i):
    ks = load(f"kustomization-progressing-{i}")
    target = sha(load("kustomization-ready")["status"]["lastAppliedRevision"])
    verdict = kustomization_verdict(ks, target, "any")
    assert verdict.phase is Phase.WAITING
    assert verdict.message == progress_message(ks)
    assert verdict.message.split(" for ")[0] in ("Fetching manifests", "Building manifests", "Detecting drift",
                                                 "Running health checks")


def test_new_generation_not_yet_observed_waits():
    ks = load("kustomization-ready")
    ks["metadata"]["generation"] += 1  # the spec changed after this status was written
    verdict = kustomization_verdict(ks, sha(ks["status"]["lastAppliedRevision"]), "any")
    assert verdict.phase is Phase.WAITING and verdict.reason == "NotObserved"


def test_suspended_is_seen():
    assert suspended(load("kustomization-suspended"))
    assert not suspended(load("kustomization-ready"))


def test_source_at_target_is_done():
    repo = load("gitrepository-ready")
    verdict = source_verdict(repo, sha(repo["status"]["artifact"]["revision"]), "any")
    assert verdict.phase is Phase.DONE


def test_source_that_fetched_an_older_commit_is_asked_again():
    repo = load("gitrepository-behind")
    handled = repo["status"]["lastHandledReconcileAt"]
    assert source_verdict(repo, OTHER, handled).phase is Phase.REREQUEST
    waiting = source_verdict(repo, OTHER, "2000-01-01T00:00:00Z")  # our request not handled yet
    assert waiting.phase is Phase.WAITING
    assert waiting.message == "waiting for the source to fetch"  # not the stale "stored artifact" of the last fetch
    newer = source_verdict(repo, OTHER, handled, contains=lambda s: True)
    assert newer.phase is Phase.DONE and newer.reason == "ArtifactContainsTarget"


# Reasons the e2e run cannot provoke on kwok (pods always become ready) are checked on a recorded
# object whose Ready condition is set to what kustomize-controller writes in those cases.
def with_ready(name: str, status: str, reason: str, message: str) -> dict:
    ks = copy.deepcopy(load(name))
    for cond in ks["status"]["conditions"]:
        if cond["type"] == "Ready":
            cond.update(status=status, reason=reason, message=message)
    return ks


@pytest.mark.parametrize("reason", ["HealthCheckFailed", "ArtifactFailed", "PruneFailed", "ReconciliationFailed"])
def test_other_failure_reasons_fail_for_the_target(reason):
    ks = with_ready("kustomization-build-failed", "False", reason, "health check failed after 3m")
    verdict = kustomization_verdict(ks, sha(ks["status"]["lastAttemptedRevision"]), "any")
    assert verdict.phase is Phase.FAILED and verdict.reason == reason


@pytest.mark.parametrize("reason", ["DependencyNotReady", "Progressing"])
def test_not_yet_reasons_keep_waiting(reason):
    ks = with_ready("kustomization-build-failed", "False", reason, "dependency 'flux-system/infra' is not ready")
    assert kustomization_verdict(ks, sha(ks["status"]["lastAttemptedRevision"]), "any").phase is Phase.WAITING


def test_health_check_canceled_is_superseded():
    ks = with_ready("kustomization-progressing-3", "False", "HealthCheckCanceled", "New reconciliation triggered")
    verdict = kustomization_verdict(ks, OTHER, "any")
    assert verdict.phase is Phase.SUPERSEDED


def test_stalled_fails_at_once():
    ks = copy.deepcopy(load("kustomization-progressing-0"))
    ks["status"]["conditions"].append({"type": "Stalled", "status": "True", "reason": "InvalidPath",
                                       "message": "path not found"})
    verdict = kustomization_verdict(ks, OTHER, "any")
    assert verdict.phase is Phase.FAILED and verdict.reason == "InvalidPath"


def test_describe_lists_every_condition():
    text = describe(load("kustomization-build-failed"))
    assert text.splitlines()[0].startswith("Kustomization ")
    assert "Ready=False BuildFailed: kustomize build failed" in text


def test_health_checks_detected():
    ks = load("kustomization-ready")
    assert has_health_checks(ks)
    ks["spec"]["wait"] = False
    assert not has_health_checks(ks)
