"""The shipped Flux setup says what the seed says (names, intervals, path, prune, wait) and no more RBAC than needed."""

from pathlib import Path

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
    assert rcv["spec"]["resources"] == [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                                         "name": "druppie-apps"}]


def test_flux_wait_rbac_is_least_privilege():
    objects = {d["kind"]: d for d in docs("rbac-flux-reconcile-wait.yaml")}
    role = objects["Role"]
    assert role["metadata"]["namespace"] == "flux-system"
    rules = {(r["apiGroups"][0], r["resources"][0]): sorted(r["verbs"]) for r in role["rules"]}
    assert rules == {("source.toolkit.fluxcd.io", "gitrepositories"): ["get", "list", "patch", "watch"],
                     ("kustomize.toolkit.fluxcd.io", "kustomizations"): ["get", "list", "patch", "watch"]}
    binding = objects["RoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "druppie-flux-wait", "namespace": "ci"}]


def test_kustomize_entry_lists_every_file():
    (k,) = docs("kustomization.yaml")
    assert sorted(k["resources"]) == sorted(p.name for p in FLUX.glob("*.yaml") if p.name != "kustomization.yaml")


def test_flux_rbac_is_the_tasks_rbac():
    task_rbac = FLUX.parents[1] / "tasks" / "druppie-flux-reconcile-wait" / "0.1" / "rbac.yaml"
    assert (FLUX / "rbac-flux-reconcile-wait.yaml").read_text() == task_rbac.read_text()
