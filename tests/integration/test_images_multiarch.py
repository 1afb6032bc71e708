"""The catalog's images for linux/amd64 and linux/arm64, built on this amd64 machine without emulation
and pushed as one manifest list per image, as `make release` does (for hack/catalog.py's
BUILT_PLATFORMS, which tests/unit/test_images.py keeps within PLATFORMS here).

`hack/images.sh` with PLATFORMS="linux/amd64 linux/arm64" pushes to the test's registry (images it
built before with the same inputs are taken as they are: cold, the arm64 builds take tens of minutes,
most of it compiling trivy; `make test-slow`). Then, from what the registry serves: each list names
exactly linux/amd64 and linux/arm64, and every ELF file of each instance's layers is of its machine
(e_machine 183, aarch64, for arm64; 62, x86-64, for amd64), with the programs the steps call among
them. Nothing of the arm64 images can run here (no binfmt/qemu): the ELF headers are what is checked.
The public base's path (a base without git, whose `runtime` stage adds the target's) is built from
bases made by the arm64 bases' recipe (hack/unpacked-base.sh: unpacked, no maintainer script run),
for amd64, where the result runs, and for arm64.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT
from tests.support.platforms import MACHINES, PLATFORMS

pytestmark = pytest.mark.slow

PODMAN = ["podman", "--storage-driver", "vfs", "--runtime", "/usr/sbin/runc"]
BUILDAH = ["buildah", "--storage-driver", "vfs"]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"]
KINDS = ("step", "scan", "build")
# Programs each image must carry (so an image missing its tools cannot pass for having no wrong ELF).
PROGRAMS = {
    "step": ["usr/bin/python3.11", "usr/bin/git", "usr/bin/ssh"],
    "scan": ["usr/bin/python3.11", "usr/bin/git", "usr/local/bin/trivy", "usr/local/bin/gitleaks",
             "usr/local/bin/osv-scanner"],
    "build": ["usr/bin/python3.11", "usr/bin/buildah", "usr/bin/skopeo", "usr/local/bin/syft"],
}  # fmt: skip


def version() -> str:
    text = (REPO_ROOT / "steps" / "pyproject.toml").read_text()
    return next(line.split('"')[1] for line in text.splitlines() if line.startswith("version = "))


def elf_machines(layers: list[Path]) -> dict[str, int]:
    """{path: e_machine} of every ELF file of the image whose layers (in order) these are, whiteouts applied."""
    files: dict[str, int | None] = {}
    for layer in layers:
        with tarfile.open(layer, "r|*") as tar:
            for member in tar:
                path = member.name.removeprefix("./")
                parent, _, base = path.rpartition("/")
                if base == ".wh..wh..opq":
                    files = {p: m for p, m in files.items() if not p.startswith(f"{parent}/")}
                    continue
                if base.startswith(".wh."):
                    gone = f"{parent}/{base[4:]}" if parent else base[4:]
                    files = {p: m for p, m in files.items() if p != gone and not p.startswith(f"{gone}/")}
                    continue
                machine = None
                if member.isfile():
                    head = tar.extractfile(member).read(20)  # type: ignore[union-attr]
                    if head[:4] == b"\x7fELF" and len(head) == 20:
                        machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
                files[path] = machine
    return {p: m for p, m in files.items() if m is not None}


def copy_instance(ref: str, target: Path) -> tuple[dict, list[Path]]:
    """The config and the layers (in order) of one image from the registry (skopeo copy to an OCI layout)."""
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{target}:x"],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    index = json.loads((target / "index.json").read_text())
    blobs = target / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_text())
    return config, [blobs / layer["digest"].split(":")[1] for layer in manifest["layers"]]


def test_both_platforms_are_one_manifest_list_per_image_and_every_elf_file_is_of_its_platform(registry, tmp_path):
    digest_file = tmp_path / "digests"
    env = {**os.environ, "REGISTRY": registry.host, "PLATFORMS": " ".join(PLATFORMS),
           "DIGEST_FILE": str(digest_file)}  # fmt: skip
    built = subprocess.run([str(REPO_ROOT / "hack" / "images.sh")], env=env, capture_output=True, text=True,
                           timeout=5400)  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    digests = dict(line.split() for line in digest_file.read_text().splitlines())
    assert set(digests) == {f"ghcr.io/waterschap/druppie-{kind}" for kind in KINDS}, digests

    for kind in KINDS:
        repo = f"{registry.host}/waterschap/druppie-{kind}"
        raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{repo}:{version()}"],
                             capture_output=True, check=True).stdout  # fmt: skip
        listed = json.loads(raw)
        platforms = sorted(f"{m['platform']['os']}/{m['platform']['architecture']}" for m in listed["manifests"])
        assert platforms == ["linux/amd64", "linux/arm64"], (kind, platforms)
        # The digest recorded for the release is the list's, and a pull by it gets the list.
        by_digest = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                                    f"docker://{repo}@{digests[f'ghcr.io/waterschap/druppie-{kind}']}"],
                                   capture_output=True, check=True).stdout  # fmt: skip
        assert by_digest == raw

        for entry in listed["manifests"]:
            platform = f"{entry['platform']['os']}/{entry['platform']['architecture']}"
            config, layers = copy_instance(f"{repo}@{entry['digest']}", tmp_path / f"{kind}-{platform[6:]}")
            assert f"{config['os']}/{config['architecture']}" == platform, (kind, platform)
            machines = elf_machines(layers)
            wrong = {p: m for p, m in machines.items() if m != MACHINES[platform]}
            assert not wrong, (kind, platform, dict(list(wrong.items())[:10]), f"{len(wrong)} of {len(machines)}")
            missing = [p for p in PROGRAMS[kind] if p not in machines]
            assert not missing, (kind, platform, missing)
            assert len(machines) > 50, (kind, platform, len(machines))  # libraries too, not only the programs
            for layer in layers:
                layer.unlink()  # hundreds of MB each: disk is tight


def import_rootfs(rootfs: Path, arch: str, name: str) -> None:
    rootfs.chmod(0o755)
    tarball = rootfs.with_suffix(".tar")
    subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], check=True)
    subprocess.run(["rm", "-rf", str(rootfs)], check=True)
    variant = ["--variant", "v8"] if arch == "arm64" else []
    subprocess.run([*PODMAN, "import", "--quiet", "--arch", arch, "--os", "linux", *variant, "--change",
                    "ENV PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin", str(tarball), name], check=True,
                   capture_output=True)  # fmt: skip
    tarball.unlink()


def elf_machines_of_local_image(image: str) -> dict[str, int]:
    """{path: e_machine} of every ELF file of a local image (buildah mount; no code of it runs)."""
    container = subprocess.run([*BUILDAH, "from", "--pull=false", image], capture_output=True, text=True, check=True)
    name = container.stdout.strip()
    try:
        mount = Path(
            subprocess.run([*BUILDAH, "mount", name], capture_output=True, text=True, check=True).stdout.strip()
        )
        found = {}
        for path in mount.rglob("*"):
            if path.is_file() and not path.is_symlink():
                with path.open("rb") as f:
                    head = f.read(20)
                if head[:4] == b"\x7fELF" and len(head) == 20:
                    found[str(path.relative_to(mount))] = int.from_bytes(head[18:20], "little")
        return found
    finally:
        subprocess.run([*BUILDAH, "rm", name], capture_output=True)


def test_a_base_without_git_gets_the_target_platforms_git_and_ssh_from_the_runtime_stage(tmp_path):
    """The public base's path (python:3.11-slim lacks git and ssh), with bases like it made here by
    hack/unpacked-base.sh (python3, no git, no ssh; for amd64 and arm64, one manifest list): the
    `runtime` build stage unpacks the target's git and openssh-client on the build platform and the
    final stage copies them. amd64: they run (and so does the unpacked base, which no maintainer script
    configured); arm64: built without emulation, every ELF file aarch64, git and ssh among them."""
    tag = uuid.uuid4().hex[:12]
    bases = {arch: f"localhost/druppie-test/nogit-{arch}-{tag}" for arch in ("amd64", "arm64")}
    base_list, images = f"localhost/druppie-test/nogit-list-{tag}", {}
    try:
        unpacking = {}
        for arch in bases:
            (tmp_path / arch).mkdir()
            command = [str(REPO_ROOT / "hack" / "unpacked-base.sh"), arch, "python3,python3-venv,ca-certificates"]
            unpacking[arch] = subprocess.Popen([*command, str(tmp_path / arch)])
        for arch, process in unpacking.items():
            assert process.wait(timeout=1800) == 0, arch
            assert not (tmp_path / arch / "usr/bin/git").exists() and (tmp_path / arch / "usr/bin/python3").exists()
            import_rootfs(tmp_path / arch, arch, bases[arch])
        subprocess.run([*BUILDAH, "manifest", "create", base_list], check=True, capture_output=True)
        for arch in bases:
            subprocess.run([*BUILDAH, "manifest", "add", base_list, f"containers-storage:{bases[arch]}"], check=True,
                           capture_output=True)  # fmt: skip
        secret = ["--secret", f"id=ca-certificates,src={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []
        for arch, platform in (("amd64", []), ("arm64", ["--platform", "linux/arm64", "--build-arg",
                                                         "BUILDPLATFORM=linux/amd64", "--build-arg",
                                                         "TARGETPLATFORM=linux/arm64"])):  # fmt: skip
            images[arch] = f"localhost/druppie-test/step-nogit-{arch}-{tag}"
            base = bases[arch] if arch == "amd64" else base_list
            built = subprocess.run([*BUILDAH, "bud", "--isolation", "chroot", *LIMITS, "--layers=false", *platform,
                                    "--build-arg", f"BASE_IMAGE={base}", *secret, "-f",
                                    "images/druppie-step/Containerfile", "-t", images[arch], "."],
                                   cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)  # fmt: skip
            assert built.returncode == 0, built.stderr[-3000:]
            assert f"image-runtime: adding git openssh-client for {arch}" in built.stdout + built.stderr

        script = (
            "set -e; git --version; ssh -V 2>&1; druppie-step --version; git init -q /tmp/r && echo init ok;"
            ' python3 -c \'import ssl; n = ssl.create_default_context().cert_store_stats()["x509_ca"];'
            ' assert n > 100, n; print("ssl ok")\';'
            " dpkg-query -W -f '${Package} ${Status}\\n' git openssh-client python3"
        )
        run = subprocess.run([*PODMAN, "run", "--rm", *LIMITS, "--network", "none", "--entrypoint", "sh",
                              images["amd64"], "-c", script], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        for said in ("git version 2.", "OpenSSH_", "druppie-step, version", "init ok", "ssl ok",
                     "git install ok installed", "openssh-client install ok installed"):  # fmt: skip
            assert said in run.stdout, (said, run.stdout)

        machines = elf_machines_of_local_image(images["arm64"])
        wrong = {p: m for p, m in machines.items() if m != 183}
        assert not wrong and len(machines) > 50, (dict(list(wrong.items())[:10]), len(machines))
        assert {"usr/bin/git", "usr/bin/ssh", "usr/bin/python3.11"} <= set(machines), sorted(machines)[:20]
    finally:
        for image in images.values():
            subprocess.run([*PODMAN, "rmi", "--force", image], capture_output=True)
        subprocess.run([*BUILDAH, "manifest", "rm", base_list], capture_output=True)
        for image in bases.values():
            subprocess.run([*PODMAN, "rmi", "--force", image], capture_output=True)
