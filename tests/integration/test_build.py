"""druppie-step build with the real buildah, a real registry (docker-registry) and the real syft.

The base image is a busybox pushed into the test registry, so nothing comes from the internet; the
app is the real example app. Every push is checked against what the registry serves (skopeo).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from localcluster.toolchain import cache_dir, toolchain
from testbed.apps import drone_app
from testbed.registry import push_busybox_base, start_registry
from tests.support.paths import STEP

IMAGE_REPO = "druppie/drone-service"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SYFT_DIR = cache_dir() / f"syft-{toolchain()['SYFT_VERSION']}"  # built by make setup (hack/cluster-build.sh syft)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    reg.base = push_busybox_base(reg)
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("auth-registry"), user="ci", password="s3cret-registry-pw")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """One buildah storage for the module (as a cache workspace would be), removed afterwards."""
    root = tmp_path_factory.mktemp("buildah")
    (root / "run").mkdir()
    yield root
    subprocess.run(
        ["buildah", "--storage-driver", "vfs", "--root", str(root / "cache/buildah-storage"), "rm", "--all"],
        capture_output=True,
    )
    subprocess.run(["umount", "-R", str(root)], capture_output=True)


def build(tmp_path: Path, storage: Path, *args: str, app: Path | None = None, env: dict | None = None):
    source = app or drone_app(tmp_path / "app")
    results = tmp_path / "results"
    path = os.pathsep.join([str(SYFT_DIR), os.environ["PATH"]])
    proc = subprocess.run(
        [
            str(STEP),
            "build",
            "--source",
            str(source),
            "--cache",
            str(storage / "cache"),
            "--results-dir",
            str(results),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "PATH": path,
            "CONTAINERS_STORAGE_CONF": "/dev/null",
            "XDG_RUNTIME_DIR": str(storage / "run"),
            **(env or {}),
        },
    )
    return proc, results, source


def skopeo_digest(ref: str, *extra: str) -> str:
    return subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", *extra, "--format", "{{.Digest}}", f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def tags_in(registry_host: str, repo: str) -> list[str]:
    proc = subprocess.run(
        ["skopeo", "list-tags", "--tls-verify=false", f"docker://{registry_host}/{repo}"],
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout)["Tags"] if proc.returncode == 0 else []


def test_build_pushes_by_version_and_commit_and_the_registry_serves_that_digest(registry, storage, tmp_path):
    image = f"{registry.host}/{IMAGE_REPO}"
    proc, results, source = build(
        tmp_path,
        storage,
        "--image",
        image,
        "--version",
        "1.0.5",
        "--commit",
        COMMIT,
        "--no-tls-verify",
        "--build-args",
        f"BASE_IMAGE={registry.base}",
    )
    assert proc.returncode == 0, proc.stderr
    got = {p.name: p.read_text() for p in results.iterdir()}
    assert set(got) == {"IMAGE_URL", "IMAGE_DIGEST", "IMAGE_TAGS", "sbom"}
    assert got["IMAGE_URL"] == f"{image}:1.0.5"
    assert got["IMAGE_TAGS"] == "1.0.5,0123456"
    # The digest handed over is the one the registry serves, for both tags.
    assert skopeo_digest(f"{image}:1.0.5") == got["IMAGE_DIGEST"] == skopeo_digest(f"{image}:0123456")
    # The image holds the app and runs as the Containerfile says.
    config = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--config", f"docker://{image}@{got['IMAGE_DIGEST']}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["python3", "-m", "drone_service"]
    # The SBOM is CycloneDX, of exactly the pushed digest, and lists busybox from the base.
    sbom = json.loads((source / got["sbom"]).read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert got["IMAGE_DIGEST"] in json.dumps(sbom["metadata"])
    assert "build: IMAGE_URL=" in proc.stdout


def test_run_instructions_work_with_chroot_isolation(registry, storage, tmp_path):
    image = f"{registry.host}/druppie/with-run"
    app = drone_app(tmp_path / "app", "run-instruction")
    proc, _, _ = build(
        tmp_path,
        storage,
        "--image",
        image,
        "--version",
        "2.0.0",
        "--no-tls-verify",
        "--build-args",
        f"BASE_IMAGE={registry.base}",
        "--sbom-format",
        "spdx-json",
        app=app,
    )
    assert proc.returncode == 0, proc.stderr
    assert (app / ".druppie/sbom.spdx.json").is_file()
    assert json.loads((app / ".druppie/sbom.spdx.json").read_text())["spdxVersion"].startswith("SPDX-")


def test_second_build_reuses_the_cached_layers(registry, storage, tmp_path):
    image = f"{registry.host}/{IMAGE_REPO}"
    args = ("--image", image, "--version", "1.0.6", "--no-tls-verify", "--build-args", f"BASE_IMAGE={registry.base}")
    first, _, _ = build(tmp_path / "a", storage, *args)
    second, _, _ = build(tmp_path / "b", storage, *args)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "Using cache" in second.stderr


def test_broken_containerfile_fails_with_buildahs_reason_and_pushes_nothing(registry, storage, tmp_path):
    app = drone_app(tmp_path / "app", "broken-containerfile")
    proc, results, _ = build(
        tmp_path,
        storage,
        "--image",
        f"{registry.host}/druppie/broken",
        "--version",
        "1.0.0",
        "--no-tls-verify",
        "--build-args",
        f"BASE_IMAGE={registry.base}",
        app=app,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: build of Containerfile failed:") and "drone_servic" in last
    assert "Traceback" not in proc.stderr
    assert tags_in(registry.host, "druppie/broken") == []
    assert not results.exists()


def test_unreachable_registry_is_reported_before_building(storage, tmp_path):
    proc, results, _ = build(
        tmp_path, storage, "--image", "127.0.0.1:9/druppie/x", "--version", "1.0.0", "--no-tls-verify"
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: registry 127.0.0.1:9 unreachable:")
    assert "building" not in proc.stderr and not results.exists()


def test_refused_credentials_are_reported_and_never_shown(registry, auth_registry, storage, tmp_path):
    wrong = auth_registry.auth_file(tmp_path / "wrong", password="not-the-password-123")
    proc, _, _ = build(
        tmp_path,
        storage,
        "--image",
        f"{auth_registry.host}/druppie/app",
        "--version",
        "1.0.0",
        "--no-tls-verify",
        "--dockerconfig",
        str(wrong.parent),
        "--build-args",
        f"BASE_IMAGE={registry.base}",
    )
    assert proc.returncode == 1
    assert f"error: registry {auth_registry.host} refused the credentials for user 'ci'" in proc.stderr
    assert "not-the-password-123" not in proc.stderr + proc.stdout
    missing = build(
        tmp_path / "none",
        storage,
        "--image",
        f"{auth_registry.host}/druppie/app",
        "--version",
        "1.0.0",
        "--no-tls-verify",
    )[0]
    assert "requires credentials: bind the dockerconfig workspace" in missing.stderr


def test_push_with_credentials_from_a_dockerconfigjson_secret(registry, auth_registry, storage, tmp_path):
    config = auth_registry.auth_file(tmp_path / "secret")
    (config.parent / ".dockerconfigjson").write_text(config.read_text())
    config.unlink()  # the layout of a kubernetes.io/dockerconfigjson Secret
    image = f"{auth_registry.host}/druppie/app"
    proc, results, _ = build(
        tmp_path,
        storage,
        "--image",
        image,
        "--version",
        "3.1.4",
        "--no-tls-verify",
        "--dockerconfig",
        str(config.parent),
        "--build-args",
        f"BASE_IMAGE={registry.base}",
    )
    assert proc.returncode == 0, proc.stderr
    digest = (results / "IMAGE_DIGEST").read_text()
    assert skopeo_digest(f"{image}:3.1.4", "--creds", "ci:s3cret-registry-pw") == digest
    assert "s3cret-registry-pw" not in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("--version", "latest"), "invalid --version 'latest'"),
        (("--version", "1.0.0", "--build-args", "no equals sign"), "invalid --build-args line 'no equals sign'"),
        (("--version", "1.0.0", "--containerfile", "Nope"), "invalid --containerfile 'Nope'"),
        (("--version", "1.0.0", "--commit", "xyz"), "invalid --commit 'xyz'"),
        (("--version", "1.0.0", "--context", "../.."), "invalid --context '../..'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(registry, storage, tmp_path, args, message):
    proc, results, _ = build(tmp_path, storage, "--image", f"{registry.host}/druppie/bad", *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {message}" + proc.stderr.split(message, 1)[1].rstrip()]
    assert not results.exists()
