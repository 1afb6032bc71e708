"""The environments test, acceptatie and prod: examples/druppie-apps holds one base per app and an
overlay per environment, flux/druppie-apps a Namespace, a tenant ServiceAccount and a Flux
Kustomization per app and environment. Rendered with the real kustomize."""

from __future__ import annotations

import shutil

import pytest
import yaml

from testbed.fluxapp import app_files
from tests.support import kustomize
from tests.support.paths import EXAMPLE_APPS, REPO_ROOT

FLUX = REPO_ROOT / "flux" / "druppie-apps"
IMAGE = "registry.example/druppie/drone-service"
# Environment -> namespace, as the seed names them.
NAMESPACES = {"test": "test", "acceptatie": "acceptatie", "prod": "productie"}
REPLICAS = {"test": 1, "acceptatie": 1, "prod": 2}


def flux_objects() -> list[dict]:
    return [d for p in sorted(FLUX.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def flux_kustomization(env: str) -> dict:
    (ks,) = yaml.safe_load_all((FLUX / f"kustomization-drone-service-{env}.yaml").read_text())
    return ks


def overlay(env: str) -> dict:
    return yaml.safe_load((EXAMPLE_APPS / "envs" / env / "drone-service" / "kustomization.yaml").read_text())


def render(folder) -> list[dict]:
    return [d for d in yaml.safe_load_all(kustomize.build(folder)) if d]


def test_the_environments_are_the_same_in_druppie_apps_and_in_flux():
    assert {p.name for p in (EXAMPLE_APPS / "envs").iterdir()} == set(NAMESPACES)
    shipped = {p.name.removeprefix("kustomization-drone-service-").removesuffix(".yaml")
               for p in FLUX.glob("kustomization-drone-service-*.yaml")}  # fmt: skip
    assert shipped == set(NAMESPACES)
    namespaces = {d["metadata"]["name"] for d in flux_objects() if d["kind"] == "Namespace"}
    assert namespaces == set(NAMESPACES.values())


@pytest.mark.parametrize("env", NAMESPACES)
def test_each_environment_renders_into_its_namespace_with_its_tag(env):
    objects = render(EXAMPLE_APPS / "envs" / env / "drone-service")
    assert sorted((d["kind"], d["metadata"]["name"]) for d in objects) == [
        ("Deployment", "drone-service"),
        ("Service", "drone-service"),
    ]
    # The overlay's namespace is the one Flux's targetNamespace puts it in (kubectl apply -k agrees).
    assert {d["metadata"]["namespace"] for d in objects} == {NAMESPACES[env]}
    assert flux_kustomization(env)["spec"]["targetNamespace"] == NAMESPACES[env]
    (deployment,) = (d for d in objects if d["kind"] == "Deployment")
    (entry,) = (e for e in overlay(env)["images"] if e["name"] == IMAGE)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:{entry['newTag']}"
    assert deployment["spec"]["replicas"] == REPLICAS[env]
    assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "druppie" for d in objects)


def test_the_tag_is_each_overlays_own_never_the_bases():
    """tag-commit edits the images entry it finds in --path: the base must hold none, or a tag set in
    one environment would reach the others."""
    base = yaml.safe_load((EXAMPLE_APPS / "apps" / "drone-service" / "kustomization.yaml").read_text())
    assert "images" not in base
    for env in NAMESPACES:
        assert overlay(env)["resources"] == ["../../../apps/drone-service"]
        assert [e["name"] for e in overlay(env)["images"]] == [IMAGE]


def test_three_tags_render_side_by_side(tmp_path):
    """Each environment at its own version, set as kustomize sets it: each renders only its own."""
    tree = shutil.copytree(EXAMPLE_APPS, tmp_path / "apps")
    tags = {"test": "1.3.0", "acceptatie": "1.2.0", "prod": "1.1.0"}
    for env, tag in tags.items():
        kustomize.edit_set_image(tree / "envs" / env / "drone-service", IMAGE, tag)
    for env, tag in tags.items():
        (deployment,) = (d for d in render(tree / "envs" / env / "drone-service") if d["kind"] == "Deployment")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:{tag}"


@pytest.mark.parametrize("env", NAMESPACES)
def test_each_flux_kustomization_applies_its_folder_as_its_own_tenant(env):
    ks = flux_kustomization(env)
    name = f"drone-service-{env}"
    assert ks["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1" and ks["kind"] == "Kustomization"
    assert ks["metadata"]["name"] == name and ks["metadata"]["namespace"] == "flux-system"
    # ci's druppie-flux-wait may reconcile it: the admission policy reads this annotation
    # (install/cluster/flux-wait.yaml), the ClusterRole names no objects.
    assert ks["metadata"]["annotations"] == {"ci.druppie.io/flux-wait-namespaces": "ci"}
    spec = ks["spec"]
    assert spec["path"] == f"./envs/{env}/drone-service"
    assert (EXAMPLE_APPS / spec["path"] / "kustomization.yaml").is_file()
    assert spec["serviceAccountName"] == name
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": "druppie-apps"}
    assert spec["prune"] is True and spec["wait"] is True
    # No environment waits for another: with dependsOn Flux applies nothing (no rollback, no
    # drift correction) until the dependency is Ready at the same revision (flux/README.md).
    assert "dependsOn" not in spec


@pytest.mark.parametrize("env", NAMESPACES)
def test_each_tenant_is_admin_of_its_namespace_and_nothing_else(env):
    name, objects = f"drone-service-{env}", flux_objects()
    (account,) = (d for d in objects if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == name)
    assert account["metadata"]["namespace"] == "flux-system" and account["automountServiceAccountToken"] is False
    subject = {"kind": "ServiceAccount", "name": name, "namespace": "flux-system"}
    bindings = [d for d in objects if d["kind"].endswith("Binding") and subject in d.get("subjects", [])]
    admin = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}
    assert [(b["kind"], b["metadata"]["namespace"], b["roleRef"]) for b in bindings] == [
        ("RoleBinding", NAMESPACES[env], admin)
    ]
    assert bindings[0]["subjects"] == [subject]


def test_a_second_teams_app_renders_from_its_own_base(tmp_path):
    """testbed's loop puts another team's app into the same druppie-apps (testbed.fluxapp.app_files):
    its own base and overlays, each naming its image; the platform's app keeps its own."""
    tree = shutil.copytree(EXAMPLE_APPS, tmp_path / "apps")
    images = {"drone-service": "10.0.0.1:5000/demo/drone-service", "dijk-sensor": "10.0.0.1:5000/demo/dijk-sensor"}
    for app, image in images.items():
        for path, text in app_files(app, image).items():
            (tree / path).parent.mkdir(parents=True, exist_ok=True)
            (tree / path).write_text(text)
    (tree / "apps" / "drone-service" / "service.yaml").unlink()  # the platform's base alone is broken
    with pytest.raises(kustomize.KustomizeError):
        render(tree / "envs" / "prod" / "drone-service")
    for env in NAMESPACES:
        objects = render(tree / "envs" / env / "dijk-sensor")
        (deployment,) = (d for d in objects if d["kind"] == "Deployment")
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"{images['dijk-sensor']}:1.0.4", env
        assert deployment["spec"]["replicas"] == REPLICAS[env]
