"""Which e2e tests may run at the same time on the one cluster two pytest workers share.

A worker takes a scope whole (xdist's loadscope, keyed by ``e2e_scope``):
- group "ci": the modules that use the namespace ci, the loop (Gitea, the platform's Kustomizations)
  or the shipped Flux objects (drone-service-prod in productie), one after the other;
- a module of OWN_GROUP whole: its module fixtures set up everything its tests share;
- any other test alone: each test of ALONE's modules has its own Flux app and namespaces.
A new e2e module must be put in one of the three (tests/unit/test_e2e_groups.py checks it).
"""

from __future__ import annotations

from pathlib import Path

from xdist.scheduler import LoadScopeScheduling

CI_GROUP = {"test_ci_tasks", "test_tekton", "test_loop", "test_otap_loop", "test_pr_checks",
            "test_otap_environments", "test_teams", "test_flux_gitops"}  # fmt: skip
# Tests of other modules that use ci's druppie-flux-wait, which group ci deletes and remakes.
CI_GROUP_TESTS = {"test_flux_wait::test_the_tasks_rbac_is_enough_and_no_more",
                  "test_flux_wait::test_admission_policy_lets_the_service_account_only_request_reconciles"}  # fmt: skip
OWN_GROUP = {"test_samples", "test_userns"}  # test_samples in namespace samples, with Flux namespaces of its own
ALONE = {"test_flux_wait"}


def e2e_scope(nodeid: str) -> str:
    """The unit of work a worker takes whole: "ci", a module of OWN_GROUP, else the test itself."""
    path, _, test = nodeid.partition("::")
    module = Path(path).stem
    if module in CI_GROUP or f"{module}::{test.split('[')[0]}" in CI_GROUP_TESTS:
        return "ci"
    return module if module in OWN_GROUP else nodeid


class E2EScheduling(LoadScopeScheduling):
    """xdist's loadscope with e2e_scope for its scopes. (xdist's own loadgroup marks do not take with
    pytest 9, which no longer reads the node id xdist rewrites: both workers ran the loop.)"""

    def _split_scope(self, nodeid: str) -> str:
        return e2e_scope(nodeid)
