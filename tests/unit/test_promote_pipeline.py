"""druppie-promote: push and wait, or propose by pull request (a protected prod, a rollback of it)."""

from __future__ import annotations

import yaml

from tests.support.paths import REPO_ROOT

PIPELINE = yaml.safe_load((REPO_ROOT / "pipelines/druppie-promote/0.1/druppie-promote.yaml").read_text())
TASKS = {t["name"]: t for t in PIPELINE["spec"]["tasks"]}


def test_a_pull_request_waits_for_nothing_and_names_its_url():
    defaults = {p["name"]: p.get("default") for p in PIPELINE["spec"]["params"]}
    assert (defaults["mode"], defaults["forge"]) == ("push", "auto")
    given = {p["name"]: p["value"] for p in TASKS["tag-commit"]["params"]}
    assert (given["mode"], given["forge"], given["rollback-reason"]) == (
        "$(params.mode)", "$(params.forge)", "$(params.rollback-reason)")  # fmt: skip
    assert TASKS["flux-wait"]["when"] == [{"input": "$(params.mode)", "operator": "in", "values": ["push"]}]
    results = {r["name"]: r["value"] for r in PIPELINE["spec"]["results"]}
    assert results["pull-request-url"] == "$(tasks.tag-commit.results.pull-request-url)"


def test_the_readme_shows_a_rollback_by_pull_request():
    readme = (REPO_ROOT / "pipelines/druppie-promote/0.1/README.md").read_text()
    assert "-p mode=pull-request" in readme and "-p forge=" in readme and "rollback-reason=" in readme
