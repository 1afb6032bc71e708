"""The one install path (README "Install into a cluster"): `kubectl apply -k .` and
`kubectl apply -k triggers/druppie-ci-cd` into a team's namespace, `install/cluster` once per
cluster. Rendered by the real kustomize; that the API server accepts them and the two teams stay
apart is the e2e tier's (tests/e2e/test_teams.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from hack import catalog
from tests.support import kustomize
from tests.support.install import team_overlay

ROOT = catalog.ROOT
TEAM_BASES = (ROOT, ROOT / "triggers/druppie-ci-cd")
CLUSTER = ROOT / "install/cluster"
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _render(folder: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(kustomize.build(folder)) if d]


def subjects(objects: list[dict]) -> list[dict]:
    return [s for d in objects for s in d.get("subjects", [])]


@pytest.mark.parametrize("base", TEAM_BASES, ids=lambda p: str(p.relative_to(ROOT)) or ".")
def test_no_file_of_a_team_base_names_a_namespace(base):
    """The namespace is the kustomization's alone: a file that names one would stay there for every team."""
    for name in yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]:
        for doc in _docs(base / name):
            assert "namespace" not in doc["metadata"], f"{name}: {doc['kind']} {doc['metadata']['name']}"
            assert all("namespace" not in s for s in doc.get("subjects", [])), f"{name}: {doc['metadata']['name']}"
            assert doc["kind"] not in CLUSTER_SCOPED, f"{name}: {doc['kind']} belongs in install/cluster"


def test_the_catalog_base_holds_every_task_and_pipeline_with_its_service_accounts():
    listed = {ROOT / r for r in yaml.safe_load((ROOT / "kustomization.yaml").read_text())["resources"]}
    assert {path for _, path, _ in catalog.resources()} | set(ROOT.glob("tasks/*/*/rbac.yaml")) <= listed
    assert ROOT / "policies/networkpolicies.yaml" in listed
    rendered = _render(ROOT)
    service_accounts = {d["metadata"]["name"] for d in rendered if d["kind"] == "ServiceAccount"}
    task_accounts = {
        t.get("serviceAccountName")
        for d in rendered
        if d["kind"] == "Pipeline"
        for t in d["spec"].get("taskRunTemplate", {}).get("taskRunSpecs", [])
    }
    assert task_accounts <= service_accounts
    assert len(service_accounts) == 9


@pytest.mark.parametrize("base", TEAM_BASES, ids=lambda p: str(p.relative_to(ROOT)) or ".")
def test_alone_each_base_installs_into_ci(base):
    rendered = _render(base)
    assert {d["metadata"]["namespace"] for d in rendered} == {"ci"}
    assert {s["namespace"] for s in subjects(rendered) if s["kind"] == "ServiceAccount"} == {"ci"}


def test_the_readme_overlay_moves_everything_and_every_service_account_subject(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(team_overlay("team-dijken", tmp_path))
    rendered = _render(tmp_path)
    base = _render(ROOT) + _render(ROOT / "triggers/druppie-ci-cd")
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in base
    )
    assert {d["metadata"]["namespace"] for d in rendered} == {"team-dijken"}
    assert {s["namespace"] for s in subjects(rendered)} == {"team-dijken"}
    assert "namespace: ci\n" not in yaml.safe_dump_all(rendered)


def test_a_plain_namespace_field_would_leave_the_subjects_behind(tmp_path):
    """Why the README's overlay uses the NamespaceTransformer: kustomize's `namespace:` keeps `ci`."""
    here = os.path.relpath(ROOT, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(f"namespace: team-dijken\nresources: [{here}]\n")
    assert {s["namespace"] for s in subjects(_render(tmp_path))} == {"ci"}


def test_install_cluster_is_cluster_scoped_only_and_grants_no_team_anything():
    rendered = _render(CLUSTER)
    assert {d["kind"] for d in rendered} <= CLUSTER_SCOPED
    assert {d["kind"] for d in rendered if d["kind"].endswith("Binding")} == {"ValidatingAdmissionPolicyBinding"}
    assert {d["metadata"]["name"] for d in rendered if d["kind"] == "ClusterRole"} == {
        "druppie-flux-wait",
        "druppie-promotion-gate",
        "druppie-triggers-cluster-read",
    }
