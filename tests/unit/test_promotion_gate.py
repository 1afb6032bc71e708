"""promotion-gate's decisions (build once, issue 18): when a Kustomization runs healthy what it applied
(on objects the real controllers produced, tests/fixtures/flux-status), which reference a folder
deploys, and one-line refusals of bad options before any call. The whole step against real Flux is
tests/e2e/test_otap_environments.py; its git read against a real git server is
tests/integration/test_promotion_gate.py."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from druppie_steps.cli import main
from druppie_steps.core.errors import StepError
from druppie_steps.flux.status import running_healthy
from druppie_steps.gitops.image_edit import deployed_reference
from tests.support.paths import EXAMPLE_APPS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flux-status"
IMAGE = "registry.example/druppie/drone-service"
DIGEST = "sha256:" + "ab" * 32


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def test_a_ready_kustomization_with_health_checks_runs_what_it_applied():
    ks = load("kustomization-ready")
    deployed = running_healthy(ks)
    assert deployed.revision == ks["status"]["lastAppliedRevision"]
    assert deployed.sha == "7c21f5dced9099ab6ab069f94d4c56d87612ecab"
    assert deployed.path == "envs/prod/drone-service"  # spec.path ./envs/prod/drone-service


@pytest.mark.parametrize(
    "fixture, said",
    [
        ("kustomization-health-check-failed", "is not healthy (Ready=False: HealthCheckFailed: "),
        ("kustomization-progressing-1", "is not healthy (Ready=Unknown: Progressing: "),
        ("kustomization-suspended", "is suspended: Flux corrects no drift there"),
        ("kustomization-build-failed", "is not healthy (Ready=False: BuildFailed: "),
    ],
)
def test_an_environment_that_is_not_running_healthy_is_refused_saying_why(fixture, said):
    with pytest.raises(ValueError, match=r"^Kustomization flux-system/") as err:
        running_healthy(load(fixture))
    assert said in str(err.value) and "\n" not in str(err.value), err.value


def edited(**changes: object) -> dict:
    ks = copy.deepcopy(load("kustomization-ready"))
    for path, value in changes.items():
        section, key = path.split("__")
        if value is None:
            ks[section].pop(key, None)
        else:
            ks[section][key] = value
    return ks


@pytest.mark.parametrize(
    "ks, said",
    [
        # Not recorded: the e2e Kustomizations all wait. Without it Ready is "applied", not "healthy".
        (edited(spec__wait=None), "has neither wait nor healthChecks"),
        # Not recorded: the controller writes observedGeneration within a second of a spec change.
        (edited(metadata__generation=2), "has not reconciled its current spec yet (generation 2, observed 1)"),
        # Ready=True for an older commit while a newer one is attempted: a moment the e2e cannot hold still.
        (
            edited(status__lastAttemptedRevision="main@sha1:" + "0" * 40),
            "is applying main@sha1:0000000000000000000000000000000000000000 over main@sha1:7c21f5dc",
        ),
        (edited(status__lastAppliedRevision=None), "reports no applied git revision"),
        (edited(status__lastAppliedRevision="latest@sha256:" + "ab" * 32 + "x"), "reports no applied git revision"),
        (edited(spec__path="./envs/../../etc"), "has spec.path './envs/../../etc': not a folder inside"),
        (edited(spec__path="./"), "has spec.path './': not a folder inside"),
    ],
)
def test_states_the_controllers_only_pass_through_are_refused_too(ks, said):
    with pytest.raises(ValueError) as err:
        running_healthy(ks)
    assert said in str(err.value), err.value


@pytest.fixture
def apps(tmp_path) -> Path:
    root = tmp_path / "apps"
    shutil.copytree(EXAMPLE_APPS, root)
    return root


def overlay(root: Path, env: str = "test") -> Path:
    return root / "envs" / env / "drone-service" / "kustomization.yaml"


def test_the_overlays_images_entry_is_what_runs(apps):
    path = overlay(apps)
    path.write_text(path.read_text().replace("newTag: 1.0.4", f"newTag: 1.1.7\n    digest: {DIGEST}"))
    ref, where = deployed_reference(apps, "envs/test/drone-service", IMAGE)
    assert (ref.tag, ref.digest) == ("1.1.7", DIGEST)
    assert where == ["envs/test/drone-service/kustomization.yaml images[name=registry.example/druppie/drone-service]"]


def test_without_an_entry_of_its_own_the_bases_image_field_is_what_runs(apps):
    path = overlay(apps)
    text = path.read_text()
    path.write_text(text[: text.index("images:")])
    ref, where = deployed_reference(apps, "envs/test/drone-service", IMAGE)
    assert (ref.tag, ref.digest) == ("1.0.4", None) and where == ["apps/drone-service/deployment.yaml"]


def test_plain_manifests_and_disagreeing_references(tmp_path):
    folder = tmp_path / "envs" / "test" / "app"
    folder.mkdir(parents=True)
    one = f"spec:\n  template:\n    spec:\n      containers:\n        - image: {IMAGE}:1.2.3@{DIGEST}\n"
    (folder / "a.yaml").write_text(one)
    ref, _ = deployed_reference(tmp_path, "envs/test/app", IMAGE)
    assert str(ref) == f"{IMAGE}:1.2.3@{DIGEST}"
    (folder / "b.yaml").write_text(one.replace("1.2.3", "1.2.4"))
    with pytest.raises(StepError, match=re.escape(f"sets {IMAGE} to 2 references (")):
        deployed_reference(tmp_path, "envs/test/app", IMAGE)
    with pytest.raises(StepError, match=re.escape("image 'registry.example/other' not found under 'envs/test/app'")):
        deployed_reference(tmp_path, "envs/test/app", "registry.example/other")


def test_a_folder_that_is_not_there_is_refused(apps):
    with pytest.raises(StepError, match=re.escape("'envs/nope/drone-service' is not a folder in the repository")):
        deployed_reference(apps, "envs/nope/drone-service", IMAGE)


GOOD = ["--kustomization", "drone-service-test", "--image", IMAGE, "--repo-url", "https://git.example/apps.git"]


@pytest.mark.parametrize(
    "flag, value, said",
    [
        ("--digest", "sha256:abc", "error: invalid --digest 'sha256:abc': must be sha256: and 64 lowercase hex"),
        ("--image", f"{IMAGE}:1.0", f"error: invalid --image '{IMAGE}:1.0': give the name only"),
        ("--repo-url", "ftp://x/y.git", "error: invalid --repo-url 'ftp://x/y.git'"),
        ("--timeout", "soon", 'error: --timeout: "soon" is not a duration'),
    ],
)
def test_a_bad_option_is_one_line_naming_it_before_any_call(flag, value, said, tmp_path, capsys):
    args = [*GOOD, flag, value, "--kubeconfig", str(tmp_path / "never-read"), "--results-dir", str(tmp_path / "r")]
    code = main(["promotion-gate", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(said) and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_credentials_over_plain_http_are_refused_before_any_call(tmp_path, capsys):
    auth = tmp_path / "auth"
    auth.mkdir()
    (auth / ".git-credentials").write_text("http://bot:secret@git.example\n")
    args = [*GOOD[:-1], "http://git.example/apps.git", "--basic-auth", str(auth), "--kubeconfig", str(tmp_path / "x")]
    code = main(["promotion-gate", *args])
    err = capsys.readouterr().err
    assert code == 2 and "http://" in err and "--allow-plain-http" in err and "secret" not in err, err


def test_the_gates_cluster_role_reads_flux_objects_by_name_and_nothing_else():
    import yaml

    (role,) = yaml.safe_load_all((EXAMPLE_APPS.parents[1] / "install/cluster/promotion-gate.yaml").read_text())
    assert role["kind"] == "ClusterRole" and role["metadata"]["name"] == "druppie-promotion-gate"
    assert sorted((r["apiGroups"], r["resources"], r["verbs"]) for r in role["rules"]) == [
        (["kustomize.toolkit.fluxcd.io"], ["kustomizations"], ["get"]),
        (["source.toolkit.fluxcd.io"], ["gitrepositories"], ["get"]),
    ]
