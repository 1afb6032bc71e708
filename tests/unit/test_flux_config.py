"""The shipped Flux setup says what the seed says (names, intervals, path, prune, wait) and no more RBAC than needed.

The admission policy's CEL is exercised on the real API server in tests/e2e/test_flux_wait.py."""

import copy
from pathlib import Path

import pytest
import yaml

FLUX = Path(__file__).resolve().parents[2] / "flux" / "druppie-apps"


def docs(name):
    return list(yaml.safe_load_all((FLUX / name).read_text()))


def test_gitrepository_follows_main_every_minute():
    (repo,) = docs("gitrepository.yaml")
    assert repo["apiVersion"] == "source.toolkit.fluxcd.io/v1" and repo["kind"] == "GitRepository"
    assert repo["metadata"] == {"name": "druppie-apps", "namespace": "flux-system"}
    assert repo["spec"]["interval"] == "1m" and repo["spec"]["ref"] == {"branch": "main"}


def test_kustomization_is_the_seeds_drone_service_prod():
    (ks,) = docs("kustomization-drone-service-prod.yaml")
    assert ks["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert ks["metadata"] == {"name": "drone-service-prod", "namespace": "flux-system"}
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


def check_least_privilege(objects: list[dict]) -> None:
    by_kind = {d["kind"]: d for d in objects}
    role = by_kind["Role"]
    assert role["metadata"]["namespace"] == "flux-system"
    assert all(set(rule) <= {"apiGroups", "resources", "verbs"} for rule in role["rules"]), (
        "no resourceNames/nonResourceURLs surprises"
    )
    assert grants(role) == ALLOWED
    assert by_kind["RoleBinding"]["subjects"] == [SA]
    assert by_kind["RoleBinding"]["roleRef"]["name"] == role["metadata"]["name"]
    assert set(by_kind) == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }


def test_flux_wait_rbac_is_least_privilege():
    check_least_privilege(docs("rbac-flux-reconcile-wait.yaml"))


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
    objects = copy.deepcopy(docs("rbac-flux-reconcile-wait.yaml"))
    role = next(d for d in objects if d["kind"] == "Role")
    role["rules"][rule_index][field].append(extra)
    with pytest.raises(AssertionError):
        check_least_privilege(objects)


def test_an_extra_rule_is_caught():
    objects = copy.deepcopy(docs("rbac-flux-reconcile-wait.yaml"))
    next(d for d in objects if d["kind"] == "Role")["rules"].append(
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    )
    with pytest.raises(AssertionError):
        check_least_privilege(objects)


def test_admission_policy_limits_the_service_account_to_the_reconcile_annotation():
    by_kind = {d["kind"]: d for d in docs("rbac-flux-reconcile-wait.yaml")}
    policy, binding = by_kind["ValidatingAdmissionPolicy"], by_kind["ValidatingAdmissionPolicyBinding"]
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    # Matches exactly what the Role lets it patch, and only this ServiceAccount.
    assert {
        (g, r)
        for rule in spec["matchConstraints"]["resourceRules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    } == {(g, r) for g, r, _ in ALLOWED}
    assert all(rule["operations"] == ["UPDATE"] for rule in spec["matchConstraints"]["resourceRules"])
    (match,) = spec["matchConditions"]
    assert match["expression"] == f'request.userInfo.username == "system:serviceaccount:{SA["namespace"]}:{SA["name"]}"'
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


def test_flux_rbac_is_the_tasks_rbac():
    task_rbac = FLUX.parents[1] / "tasks" / "druppie-flux-reconcile-wait" / "0.1" / "rbac.yaml"
    assert (FLUX / "rbac-flux-reconcile-wait.yaml").read_text() == task_rbac.read_text()
