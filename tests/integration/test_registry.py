"""The registry client (core/registry.py) against a real registry with htpasswd auth (Debian's
docker-registry on loopback), with each form of docker config.json that containers/image reads:
``auths`` keyed by host:port, ``credHelpers`` and ``credsStore`` pointing at a real credential
helper (the docker-credential-<name> protocol: ``get`` reads the server on stdin, prints
{"Username", "Secret"}), and Docker Hub's ``https://index.docker.io/v1/`` key, read offline.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from druppie_steps.core import registry as client
from druppie_steps.core.errors import StepError
from localcluster.ociimage import File, build_layered, write_oci_archive
from testbed.registry import start_registry

USER, PASSWORD = "ci", "S3cret-Registry-Pw-4711"
HELPER = "druppietest"
REPO, TAG = "druppie/app", "1.0.0"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("auth-registry"), user=USER, password=PASSWORD)
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def pushed(registry, tmp_path_factory) -> str:
    """druppie/app:1.0.0 pushed into the registry (skopeo copy with an auth file); its digest."""
    tmp = tmp_path_factory.mktemp("push")
    (tmp / "hello.txt").write_text("hello\n")
    archive = write_oci_archive(
        build_layered([File("/hello.txt", tmp / "hello.txt")], ["/hello.txt"]), "app", tmp / "a"
    )
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--dest-tls-verify=false",
            "--dest-authfile",
            str(registry.auth_file(tmp / "auth")),
            "--digestfile",
            str(tmp / "digest"),
            f"oci-archive:{archive}",
            f"docker://{registry.host}/{REPO}:{TAG}",
        ],
        check=True,
        capture_output=True,
    )
    return (tmp / "digest").read_text().strip()


@pytest.fixture
def helper(tmp_path, monkeypatch, registry) -> Path:
    """docker-credential-druppietest on PATH, knowing the registry's login; returns the log of its calls."""
    folder, log = tmp_path / "bin", tmp_path / "helper.log"
    folder.mkdir()
    script = folder / f"docker-credential-{HELPER}"
    script.write_text(
        "#!/bin/sh\n"
        "read -r server\n"
        f'echo "$1 $server" >> {log}\n'
        f'if [ "$1" = get ] && [ "$server" = "{registry.host}" ]; then\n'
        f'  printf \'{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}\' "$server"\n'
        "else\n"
        '  echo "credentials not found in native keychain"; exit 1\n'
        "fi\n"
    )
    script.chmod(0o700)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return log


def config(tmp_path: Path, content: dict) -> str:
    path = tmp_path / "dockerconfig" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(content))
    return str(path)


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def forms(host: str) -> dict[str, dict]:
    return {
        "auths by host:port": {"auths": {host: {"auth": basic(USER, PASSWORD)}}},
        "auths with a URL key": {"auths": {f"https://{host}/v2/": {"auth": basic(USER, PASSWORD)}}},
        "credHelpers": {"auths": {}, "credHelpers": {host: HELPER}},
        "credsStore": {"auths": {host: {}}, "credsStore": HELPER},  # as `docker login` leaves it
    }


@pytest.mark.parametrize("form", ["auths by host:port", "auths with a URL key", "credHelpers", "credsStore"])
def test_each_form_of_login_is_found_and_works_against_the_registry(registry, pushed, helper, tmp_path, form):
    auth = config(tmp_path, forms(registry.host)[form])
    image = f"{registry.host}/{REPO}"
    assert client.login_user(image, auth) == USER
    assert client.check_access(image, auth, tls_verify=False) == "http"
    assert client.served_digest(image, TAG, auth, tls_verify=False) == pushed
    if form in ("credHelpers", "credsStore"):
        assert f"get {registry.host}" in helper.read_text()  # the helper protocol, for that server
    assert Path(auth).read_text() == json.dumps(forms(registry.host)[form])  # the workspace is only read


def test_refused_credentials_name_the_user_and_never_the_password(registry, pushed, tmp_path):
    wrong = "not-the-password-123"
    auth = config(tmp_path, {"auths": {registry.host: {"auth": basic(USER, wrong)}}})
    with pytest.raises(StepError) as err:
        client.check_access(f"{registry.host}/{REPO}", auth, tls_verify=False)
    assert str(err.value).startswith(f"registry {registry.host} refused the credentials for user '{USER}'")
    assert wrong not in str(err.value)
    with pytest.raises(StepError, match=rf"^registry {registry.host} refused .*{REPO}:{TAG}"):
        client.served_digest(f"{registry.host}/{REPO}", TAG, auth, tls_verify=False)


@pytest.mark.parametrize("content", [None, {"auths": {"other.example:5000": {"auth": basic(USER, PASSWORD)}}}])
def test_no_login_for_the_registry_is_reported_before_anything_else(registry, tmp_path, content):
    auth = config(tmp_path, content) if content else None
    assert client.login_user(f"{registry.host}/{REPO}", auth) is None
    with pytest.raises(StepError, match=rf"^registry {registry.host} requires credentials: bind the dockerconfig"):
        client.check_access(f"{registry.host}/{REPO}", auth, tls_verify=False)


def test_a_tag_the_registry_lacks_is_named(registry, pushed, tmp_path):
    auth = config(tmp_path, forms(registry.host)["auths by host:port"])
    with pytest.raises(client.NoSuchTagError, match=rf"^registry {registry.host} has no {registry.host}/{REPO}:9.9.9"):
        client.served_digest(f"{registry.host}/{REPO}", "9.9.9", auth, tls_verify=False)


@pytest.mark.parametrize(
    "key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "https://registry-1.docker.io"]
)
@pytest.mark.parametrize("image", ["busybox", "library/busybox", "docker.io/library/busybox", "index.docker.io/x/y"])
def test_docker_hub_logins_are_found_offline(tmp_path, key, image):
    """`docker login` writes Docker Hub's login under https://index.docker.io/v1/; the old hand matching
    looked for registry-1.docker.io and missed it. Read with `skopeo login --get-login`: no network."""
    auth = config(tmp_path, {"auths": {key: {"auth": basic("hub-user", PASSWORD)}}})
    assert client.login_user(image, auth) == "hub-user"


def test_secrets_never_reach_a_command_line_or_the_output(registry, pushed, helper, tmp_path, monkeypatch, capfd):
    seen: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(args, *a, **kw):
        seen.append([str(x) for x in args])
        return real_run(args, *a, **kw)

    monkeypatch.setattr(client.subprocess, "run", recording_run)
    for form in forms(registry.host).values():
        auth = config(tmp_path, form)
        client.check_access(f"{registry.host}/{REPO}", auth, tls_verify=False)
        client.served_digest(f"{registry.host}/{REPO}", TAG, auth, tls_verify=False)
    assert seen and all(args[0].endswith("skopeo") for args in seen)
    secrets = (PASSWORD, basic(USER, PASSWORD))
    assert not [args for args in seen if any(s in " ".join(args) for s in secrets)]
    out = capfd.readouterr()
    assert not [s for s in secrets if s in out.out + out.err]
