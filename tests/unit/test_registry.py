"""core/registry.py without a registry: image names to registries, and the auth file containers/image reads."""

import json
from pathlib import Path

import pytest

from druppie_steps.core.errors import StepError
from druppie_steps.core.registry import containers_auth_file, registry_name, split_image


@pytest.mark.parametrize(
    "image,registry,api,repo",
    [
        ("registry.example/druppie/app", "registry.example", "registry.example", "druppie/app"),
        ("127.0.0.1:5000/druppie/app", "127.0.0.1:5000", "127.0.0.1:5000", "druppie/app"),
        ("localhost/app", "localhost", "localhost", "app"),
        ("busybox", "docker.io", "registry-1.docker.io", "library/busybox"),
        ("waterschap/app", "docker.io", "registry-1.docker.io", "waterschap/app"),
        ("docker.io/library/busybox", "docker.io", "registry-1.docker.io", "library/busybox"),
        ("docker.io/busybox", "docker.io", "registry-1.docker.io", "library/busybox"),
        ("index.docker.io/waterschap/app", "docker.io", "registry-1.docker.io", "waterschap/app"),
    ],
)
def test_image_names_to_registries(image, registry, api, repo):
    assert registry_name(image) == registry
    assert split_image(image) == (api, repo)


def write(tmp_path: Path, content: object) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(content))
    return str(path)


def test_the_workspace_file_is_read_as_it_is_when_containers_image_reads_it_as_docker_does(tmp_path):
    for content in (
        {"auths": {"r.example": {"auth": "eDp5"}}},
        {"credHelpers": {"r.example": "ecr-login"}, "credsStore": "desktop"},  # its own helper wins
    ):
        given = write(tmp_path, content)
        with containers_auth_file(given, "r.example") as auth:
            assert auth == given


def test_a_creds_store_becomes_the_registrys_cred_helper_in_a_private_copy(tmp_path):
    content = {"auths": {"r.example": {}}, "credsStore": "pass", "credHelpers": {"other.example": "gcr"}}
    given = write(tmp_path, content)
    with containers_auth_file(given, "r.example") as auth:
        assert auth != given and (Path(auth).stat().st_mode & 0o777) == 0o600
        assert json.loads(Path(auth).read_text()) == {
            **content,
            "credHelpers": {"other.example": "gcr", "r.example": "pass"},
        }
    assert not Path(auth).exists() and json.loads(Path(given).read_text()) == content


def test_no_file_is_an_empty_one_never_the_users_own(tmp_path):
    with containers_auth_file(None, "r.example") as auth:
        assert json.loads(Path(auth).read_text()) == {}


def test_an_unreadable_file_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with (
        pytest.raises(StepError, match=r"^cannot read the registry auth file .*config.json"),
        containers_auth_file(str(tmp_path / "config.json"), "r.example"),
    ):
        pass
