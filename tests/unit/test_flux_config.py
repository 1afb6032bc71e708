"""The shipped Flux setup says what the seed says (names, intervals, path, prune, wait) and no more RBAC than needed.

The admission policy's CEL is exercised on the real API server in tests/e2e/test_flux_wait.py."""

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FLUX = ROOT / "flux" / "druppie-apps"
CLUSTER_FLUX_WAIT = ROOT / "install" / "cluster" / "flux-wait.yaml"
MAY_RECONCILE = {"ci.druppie.io/flux-wait-namespaces": "ci"}  # ci's druppie-flux-wait may reconcile it


def docs(name):
    return list(yaml.safe_load_all((FLUX / name).read_text()))


def test_gitrepository_follows_main_every_minute():
    (repo,) = docs("gitrepository.yaml")
    assert repo["apiVersion"] == "source.toolkit.fluxcd.io/v1" and repo["kind"] == "GitRepository"
    assert repo["metadata"] == {"name": "druppie-apps", "namespace": "flux-system", "annotations": MAY_RECONCILE}
    assert repo["spec"]["interval"] == "1m" and repo["spec"]["ref"] == {"branch": "main"}


def test_kustomization_is_the_seeds_drone_service_prod():
    (ks,) = docs("kustomization-drone-service-prod.yaml")
    assert ks["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert ks["metadata"] == {"name": "drone-service-prod", "namespace": "flux-system", "annotations": MAY_RECONCILE}
    spec = ks["spec"]
    assert spec["targetNamespace"] == "productie" and spec["path"] == "./envs/prod/drone-service"
    assert spec["prune"] is True and spec["wait"] is True
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": "druppie-apps"}
    assert (Path(__file__).resolve().parents[2] / "examples" / "druppie-apps" / spec["path"]).is_dir()


def test_receiver_triggers_the_gitrepository():
    (rcv,) = docs("receiver.yaml")
    assert rcv["apiVersion"] == "notification.toolkit.fluxcd.io/v1" and rcv["kind"] == "Receiver"
    assert rcv["spec"]["type"] == "github" and rcv["spec"]["secretRef"]["name"]
    assert rcv["spec"]["resources"] == [
        {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "name": "druppie-apps"}
    ]


SA = {"kind": "ServiceAccount", "name": "druppie-flux-wait", "namespace": "ci"}
ALLOWED = {
    (group, resource, verb)
    for group, resource in (
        ("source.toolkit.fluxcd.io", "gitrepositories"),
        ("kustomize.toolkit.fluxcd.io", "kustomizations"),
    )
    for verb in ("get", "list", "watch", "patch")
}


def grants(role: dict) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) a Role grants: all combinations of every rule's lists."""
    return {
        (g, r, v)
        for rule in role["rules"]
        for g in rule.get("apiGroups", [])
        for r in rule.get("resources", [])
        for v in rule.get("verbs", [])
    }


def cluster_objects() -> list[dict]:
    return list(yaml.safe_load_all(CLUSTER_FLUX_WAIT.read_text()))


def check_least_privilege(objects: list[dict]) -> None:
    by_kind = {d["kind"]: d for d in objects}
    role = by_kind["ClusterRole"]
    assert all(set(rule) <= {"apiGroups", "resources", "verbs"} for rule in role["rules"]), (
        "no resourceNames/nonResourceURLs surprises"
    )
    assert grants(role) == ALLOWED
    assert set(by_kind) == {"ClusterRole", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def test_flux_wait_rbac_is_least_privilege():
    check_least_privilege(cluster_objects())


def test_the_grant_to_ci_is_one_rolebinding_in_flux_system_to_that_clusterrole():
    """Flux's setup binds the ClusterRole for `ci` only in flux-system; the task's rbac.yaml grants nothing."""
    (binding,) = docs("rbac-flux-reconcile-wait.yaml")
    assert binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] == "flux-system"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "druppie-flux-wait",
    }
    assert binding["subjects"] == [SA]
    task_rbac = list(yaml.safe_load_all((ROOT / "tasks/druppie-flux-reconcile-wait/0.1/rbac.yaml").read_text()))
    assert [(d["kind"], d["metadata"]) for d in task_rbac] == [("ServiceAccount", {"name": "druppie-flux-wait"})]


@pytest.mark.parametrize(
    "rule_index,field,extra",
    [
        (0, "resources", "secrets"),
        (1, "resources", "secrets"),
        (1, "apiGroups", ""),
        (0, "verbs", "delete"),
        (1, "verbs", "update"),
    ],
)
def test_an_extra_grant_in_any_rule_or_position_is_caught(rule_index, field, extra):
    """Appended, not first: a check of only apiGroups[0]/resources[0] would pass these."""
    objects = copy.deepcopy(cluster_objects())
    role = next(d for d in objects if d["kind"] == "ClusterRole")
    role["rules"][rule_index][field].append(extra)
    with pytest.raises(AssertionError):
        check_least_privilege(objects)


def test_an_extra_rule_is_caught():
    objects = copy.deepcopy(cluster_objects())
    next(d for d in objects if d["kind"] == "ClusterRole")["rules"].append(
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    )
    with pytest.raises(AssertionError):
        check_least_privilege(objects)


def test_admission_policy_limits_the_service_account_to_the_reconcile_annotation():
    by_kind = {d["kind"]: d for d in cluster_objects()}
    policy, binding = by_kind["ValidatingAdmissionPolicy"], by_kind["ValidatingAdmissionPolicyBinding"]
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    # Matches exactly what the ClusterRole lets it patch, and only a druppie-flux-wait ServiceAccount.
    assert {
        (g, r)
        for rule in spec["matchConstraints"]["resourceRules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    } == {(g, r) for g, r, _ in ALLOWED}
    assert all(rule["operations"] == ["UPDATE"] for rule in spec["matchConstraints"]["resourceRules"])
    (match,) = spec["matchConditions"]
    assert match["expression"] == (
        "request.userInfo.username.matches('^system:serviceaccount:[a-z0-9-]+:druppie-flux-wait$')"
    )
    # Which team may reconcile an object is the object's own annotation, which it may not change.
    assert {"name": "team", "expression": 'request.userInfo.username.split(":")[2]'} in spec["variables"]
    assert spec["validations"][0]["expression"] == "variables.team in variables.allowedTeams"
    allowed = next(v["expression"] for v in spec["variables"] if v["name"] == "allowedTeams")
    assert 'variables.oldAnnotations["ci.druppie.io/flux-wait-namespaces"]' in allowed and "object." not in allowed
    checked = " ".join(v["expression"] for v in spec["validations"])
    for field in (
        "object.spec",
        "metadata.labels",
        "metadata.finalizers",
        "metadata.ownerReferences",
        "variables.annotations",
        "variables.oldAnnotations",
    ):
        assert field in checked
    assert {"name": "request", "expression": '"reconcile.fluxcd.io/requestedAt"'} in spec["variables"]


def test_kustomize_entry_lists_every_file():
    (k,) = docs("kustomization.yaml")
    assert sorted(k["resources"]) == sorted(p.name for p in FLUX.glob("*.yaml") if p.name != "kustomization.yaml")
