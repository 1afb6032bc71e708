"""druppie-step build with the real buildah, a real registry (docker-registry) and the real syft.

The base image is a busybox pushed into the test registry, so nothing comes from the internet; the
app is the real example app, as a git checkout of one commit (as druppie-git-clone leaves it).
Every push is checked against what the registry serves (skopeo).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from localcluster.toolchain import cache_dir, toolchain
from testbed.apps import drone_app
from testbed.registry import start_registry
from tests.support.checkout import COMMITTER_DATE, commit_all
from tests.support.paths import STEP
from tests.support.readonly import can_mount_read_only, read_only
from tests.support.trees import changes, snapshot

IMAGE_REPO = "druppie/drone-service"
SYFT_DIR = cache_dir() / f"syft-{toolchain()['SYFT_VERSION']}"  # built by make setup (hack/cluster-build.sh syft)


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


def checkout(dest: Path, variant: str | None = None) -> Path:
    """The example app (or a variant) as a git checkout of one commit."""
    app = drone_app(dest, variant)
    commit_all(app)
    return app


def head(app: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(app), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def build(
    tmp_path: Path,
    storage: Path,
    *args: str,
    app: Path | None = None,
    env: dict | None = None,
    wrap: list[str] | None = None,
):
    """Run the step; (process, results folder, source). The SBOM goes to <tmp_path>/out."""
    source = app or checkout(tmp_path / "app")
    results = tmp_path / "results"
    path = os.pathsep.join([str(SYFT_DIR), os.environ["PATH"]])
    argv = [
        str(STEP),
        "build",
        "--source",
        str(source),
        "--cache",
        str(storage / "cache"),
        "--output",
        str(tmp_path / "out"),
        "--results-dir",
        str(results),
        *args,
    ]
    proc = subprocess.run(
        (wrap or []) + argv,
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
    app = checkout(tmp_path / "app")
    commit = head(app)
    proc, results, source = build(
        tmp_path,
        storage,
        "--image",
        image,
        "--version",
        "1.0.5",
        "--commit",
        commit,
        "--no-tls-verify",
        "--build-args",
        f"BASE_IMAGE={registry.base}",
        app=app,
    )
    assert proc.returncode == 0, proc.stderr
    got = {p.name: p.read_text() for p in results.iterdir()}
    assert set(got) == {"IMAGE_URL", "IMAGE_DIGEST", "IMAGE_TAGS", "sbom"}
    assert got["IMAGE_URL"] == f"{image}:1.0.5"
    assert got["IMAGE_TAGS"] == f"1.0.5,{commit[:7]}"
    # The digest handed over is the one the registry serves, for both tags.
    assert skopeo_digest(f"{image}:1.0.5") == got["IMAGE_DIGEST"] == skopeo_digest(f"{image}:{commit[:7]}")
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
    # Every timestamp is the commit's date, and RUN steps could read it as SOURCE_DATE_EPOCH.
    assert config["created"] == "2026-01-01T00:00:00Z"
    assert f"timestamps {COMMITTER_DATE} (the commit's date)" in proc.stderr
    # The SBOM is CycloneDX, of exactly the pushed digest, and lists busybox from the base; it is
    # written to --output, not into the source.
    assert got["sbom"] == ".druppie/sbom.cdx.json" and not (source / ".druppie").exists()
    sbom = json.loads((tmp_path / "out" / got["sbom"]).read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert got["IMAGE_DIGEST"] in json.dumps(sbom["metadata"])
    assert "build: IMAGE_URL=" in proc.stdout


def test_run_instructions_work_with_chroot_isolation(registry, storage, tmp_path):
    image = f"{registry.host}/druppie/with-run"
    app = checkout(tmp_path / "app", "run-instruction")
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
    sbom = tmp_path / "out" / ".druppie/sbom.spdx.json"
    assert json.loads(sbom.read_text())["spdxVersion"].startswith("SPDX-")


def test_second_build_reuses_the_cached_layers(registry, storage, tmp_path):
    image = f"{registry.host}/{IMAGE_REPO}"
    args = ("--image", image, "--no-tls-verify", "--build-args", f"BASE_IMAGE={registry.base}")
    first, _, _ = build(tmp_path / "a", storage, *args, "--version", "1.0.6")
    # The next commit (a README change) builds again, on the layers of the first.
    app = checkout(tmp_path / "b" / "app")
    (app / "README.md").write_text("next\n")
    commit_all(app, "next", COMMITTER_DATE + 60)
    second, _, _ = build(tmp_path / "b", storage, *args, "--version", "1.0.7", app=app)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "Using cache" in second.stderr


def test_broken_containerfile_fails_with_buildahs_reason_and_pushes_nothing(registry, storage, tmp_path):
    app = checkout(tmp_path / "app", "broken-containerfile")
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


def test_a_failing_run_instruction_is_named_with_its_exit_status(registry, storage, tmp_path):
    """The step's one-line error for an app's failing RUN names the instruction and its exit status
    (buildah's "Error: building at STEP ...": exit status 3), and nothing is pushed."""
    app = drone_app(tmp_path / "app")
    (app / "Containerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo checking the fleet && exit 3\n")
    commit_all(app)
    args = ["--image", f"{registry.host}/druppie/failing-run", "--version", "1.0.0", "--no-tls-verify",
            "--build-args", f"BASE_IMAGE={registry.base}"]  # fmt: skip
    proc, _, _ = build(tmp_path, storage, *args, app=app)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: build of Containerfile failed:"), last
    assert "Unable to determine exit status" not in last, proc.stderr[-2000:]
    assert "RUN echo checking the fleet && exit 3" in last and "exit status 3" in last, proc.stderr[-2000:]
    assert tags_in(registry.host, "druppie/failing-run") == []


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
        (
            ("--version", "1.0.0", "--containerfile", "../../../etc/passwd"),
            "invalid --containerfile '../../../etc/passwd': leads outside the build context",
        ),
        (("--version", "1.0.0", "--source-date-epoch", "yesterday"), "invalid --source-date-epoch 'yesterday'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(registry, storage, tmp_path, args, message):
    proc, results, _ = build(tmp_path, storage, "--image", f"{registry.host}/druppie/bad", *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {message}" + proc.stderr.split(message, 1)[1].rstrip()]
    assert not results.exists()


# --- exactly the commit ------------------------------------------------------------------------


def test_a_modified_or_untracked_file_stops_the_build_before_it_starts(registry, storage, tmp_path):
    app = checkout(tmp_path / "app")
    (app / "drone_service" / "app.py").write_text("# changed after the commit\n")
    (app / "drone_service" / "planted.py").write_text("print('not in the commit')\n")
    (app / "notes").mkdir()
    (app / "notes" / "a.txt").write_text("x")
    proc, results, _ = build(
        tmp_path, storage, "--image", f"{registry.host}/druppie/dirty", "--version", "1.0.0", "--no-tls-verify", app=app
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: --source {app} is not exactly commit {head(app)[:12]}: 3 modified or untracked path(s): "
        "M drone_service/app.py, ?? drone_service/planted.py, ?? notes/a.txt; not building it"
    )
    assert "checking registry access" not in proc.stderr and "STEP 1" not in proc.stderr and not results.exists()
    assert tags_in(registry.host, "druppie/dirty") == []


def test_a_checkout_at_another_commit_is_not_built(registry, storage, tmp_path):
    app = checkout(tmp_path / "app")
    other = "f" * 40
    proc, results, _ = build(
        tmp_path, storage, "--image", f"{registry.host}/druppie/other", "--version", "1.0.0", "--commit", other, app=app
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: --source {app} is at commit {head(app)[:12]}, not --commit {other}; not building it"
    )
    assert not results.exists()


def test_a_commit_needs_a_git_checkout(registry, storage, tmp_path):
    app = drone_app(tmp_path / "app")
    proc, _, _ = build(
        tmp_path, storage, "--image", f"{registry.host}/druppie/x", "--version", "1.0.0", "--commit", "abcdef1", app=app
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: --source {app} is not a git checkout (git: "
    ) and proc.stderr.strip().endswith("cannot check that it is --commit abcdef1")


@pytest.mark.parametrize("name", ["Containerfile", "Dockerfile"])
def test_a_containerfile_that_leads_outside_the_context_is_refused(registry, storage, tmp_path, name):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "Containerfile").write_text("FROM scratch\n")
    app = drone_app(tmp_path / "app")
    (app / "Containerfile").unlink()
    (app / name).symlink_to(outside / "Containerfile")
    commit_all(app)
    proc, results, _ = build(
        tmp_path,
        storage,
        "--image",
        f"{registry.host}/druppie/escape",
        "--version",
        "1.0.0",
        "--no-tls-verify",
        app=app,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: invalid {name} in {app}: a symlink that leads outside the build context "
        f"(to {outside / 'Containerfile'})"
    ]
    proc, _, _ = build(
        tmp_path / "named",
        storage,
        *("--image", f"{registry.host}/druppie/escape", "--version", "1.0.0", "--containerfile", name),
        app=app,
    )
    assert proc.returncode == 2 and "error: invalid --containerfile" in proc.stderr
    assert "leads outside the build context" in proc.stderr and not results.exists()


# --- built once, never a moved tag -------------------------------------------------------------


@pytest.mark.skipif(not can_mount_read_only(), reason="needs unshare -m (root) for a read-only source")
def test_a_rerun_of_the_commit_hands_over_the_same_digest_without_building(registry, storage, tmp_path):
    """A re-delivered webhook: same commit, same version; the registry's digest is handed over as it
    is, nothing is built or pushed, no tag moves. The source is read-only (as the Task mounts it)."""
    image = f"{registry.host}/druppie/rerun"
    app = checkout(tmp_path / "app")
    args = ("--image", image, "--version", "1.4.0", "--no-tls-verify", "--build-args", f"BASE_IMAGE={registry.base}")
    first, results, _ = build(tmp_path / "a", storage, *args, app=app)
    assert first.returncode == 0, first.stderr
    digest = (results / "IMAGE_DIGEST").read_text()
    before = snapshot(app)
    again, results, _ = build(tmp_path / "b", storage, *args, app=app, wrap=read_only(app, []))
    assert again.returncode == 0, again.stderr
    assert f"{image}:1.4.0 and {image}:{head(app)[:7]} are already at {digest}" in again.stderr
    assert "STEP 1" not in again.stderr and "pushing" not in again.stderr
    assert {p.name: p.read_text() for p in results.iterdir()} == {
        "IMAGE_URL": f"{image}:1.4.0",
        "IMAGE_DIGEST": digest,
        "IMAGE_TAGS": f"1.4.0,{head(app)[:7]}",
        "sbom": ".druppie/sbom.cdx.json",
    }
    assert skopeo_digest(f"{image}:1.4.0") == digest and changes(before, snapshot(app)) == []


def test_a_version_tag_of_another_commit_is_never_moved(registry, storage, tmp_path):
    """Two commits in one committer second share a version: the second is built and pushed under its
    commit tag only; the version tag stays at the first's digest and the step fails."""
    image = f"{registry.host}/druppie/same-version"
    args = ("--image", image, "--version", "2.0.0", "--no-tls-verify", "--build-args", f"BASE_IMAGE={registry.base}")
    first, results, _ = build(tmp_path / "a", storage, *args)
    assert first.returncode == 0, first.stderr
    digest = (results / "IMAGE_DIGEST").read_text()
    app = checkout(tmp_path / "b" / "app")
    (app / "drone_service" / "extra.py").write_text("ANSWER = 42\n")
    sha = commit_all(app, "second commit, same second")
    second, results, _ = build(tmp_path / "b", storage, *args, app=app)
    assert second.returncode == 1
    new = skopeo_digest(f"{image}:{sha[:7]}")
    assert new != digest
    assert second.stderr.strip().splitlines()[-1] == (
        f"error: registry already has {image}:2.0.0 at {digest}, but this commit builds {new} "
        f"(pushed as {image}:{sha[:7]} only): not moving {image}:2.0.0; a new commit needs a new version"
    )
    assert skopeo_digest(f"{image}:2.0.0") == digest and not results.exists()
    # And a re-run of the second commit stops before building: its tags disagree.
    third, _, _ = build(tmp_path / "c", storage, *args, app=app)
    assert third.returncode == 1 and "STEP 1" not in third.stderr
    assert third.stderr.strip().splitlines()[-1] == (
        f"error: registry has {image}:2.0.0 at {digest} but {image}:{sha[:7]} at {new}: version 2.0.0 was "
        "built from another commit; not moving it (a new commit needs a new version)"
    )
    assert skopeo_digest(f"{image}:2.0.0") == digest


def test_one_commit_built_twice_from_scratch_is_one_digest(registry, tmp_path):
    """Reproducible: two checkouts of one commit (files with other mtimes), two cold buildah storages,
    two repositories (so the second is built, not reused): the same digest."""
    digests = []
    for name in ("one", "two"):
        cold = tmp_path / name / "storage"
        (cold / "run").mkdir(parents=True)
        app = checkout(tmp_path / name / "app")
        if name == "two":
            for path in app.rglob("*"):
                if ".git" not in path.parts:
                    os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
        try:
            proc, results, _ = build(
                tmp_path / name,
                cold,
                *("--image", f"{registry.host}/druppie/repro-{name}", "--version", "1.0.0", "--no-tls-verify"),
                *("--build-args", f"BASE_IMAGE={registry.base}"),
                app=app,
                # The second from a read-only source, as the Task mounts it.
                wrap=read_only(app, []) if name == "two" and can_mount_read_only() else None,
            )
            assert proc.returncode == 0, proc.stderr
            assert "Using cache" not in proc.stderr
            digests.append((results / "IMAGE_DIGEST").read_text())
        finally:
            subprocess.run(
                ["buildah", "--storage-driver", "vfs", "--root", str(cold / "cache/buildah-storage"), "rm", "--all"],
                capture_output=True,
            )
    assert digests[0] == digests[1], digests
