"""The druppie-scan image built as its README says, from a clean clone with nothing staged: its go
stage fetches Go from the module proxy and compiles the scanners, its python stage pip-installs the
program and bandit; the tools in the image answer with the versions pinned in hack/toolchain.env and
steps/requirements-scan.txt, and the image holds no Go, pip or compiler.

Slow (tens of minutes with cold caches, a few with the go stage's caches warm): `make test-slow`,
not `make test`. This machine's own needs are added to the README's command, nothing else: podman's
storage and runtime and the hard ulimits (as hack/images.sh), the offline base instead of Docker Hub
(`hack/images.sh base`), the machine's CA bundle for its TLS-inspecting proxy, a tag of its own.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest

from localcluster.toolchain import toolchain
from testbed.readme import block_with
from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.slow

PODMAN = ["podman", "--storage-driver", "vfs", "--runtime", "/usr/sbin/runc"]
LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
README = REPO_ROOT / "images" / "druppie-scan" / "README.md"


def readme_commands() -> tuple[list[str], list[str]]:
    """The README's build and its look at the result."""
    build, look = block_with(README, "podman build")
    assert build == "podman build -f images/druppie-scan/Containerfile -t druppie-scan .", build
    assert look == "podman run --rm --entrypoint trivy druppie-scan --version", look
    return shlex.split(build), shlex.split(look)


@pytest.fixture
def image():
    tag = f"localhost/druppie-test/scan-{uuid.uuid4().hex[:12]}"
    yield tag
    subprocess.run([*PODMAN, "rmi", "--force", tag], capture_output=True)


def run_in(image: str, entrypoint: str, *args: str, user: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PODMAN, "run", "--rm", *LIMITS, "--network", "none", *(user or []), "--entrypoint",
                           entrypoint, image, *args], capture_output=True, text=True, timeout=120)  # fmt: skip


def says_version(output: str, version: str) -> bool:
    return bool(re.search(rf"(^|[^0-9.]){re.escape(version.removeprefix('v'))}([^0-9.]|$)", output))


def test_the_scan_image_builds_from_a_clean_clone_and_its_tools_say_their_pinned_versions(tmp_path, image):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    assert not (clone / ".venv").exists()
    base = subprocess.run([str(REPO_ROOT / "hack" / "images.sh"), "base"], capture_output=True, text=True, check=True)
    (_, build, *args), (_, run, *look) = readme_commands()
    args[args.index("-t") + 1] = image
    machine = [*LIMITS, "--layers=false", "--build-arg", f"BASE_IMAGE={base.stdout.strip()}"]
    if CA_BUNDLE.is_file():
        machine += ["--secret", f"id=ca-certificates,src={CA_BUNDLE}"]
    built = subprocess.run([*PODMAN, build, *machine, *args], cwd=clone, capture_output=True, text=True, timeout=3600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]

    env = toolchain()
    look[look.index("druppie-scan")] = image
    out = subprocess.run([*PODMAN, run, *LIMITS, *look], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and says_version(out.stdout, env["TRIVY_VERSION"]), out.stdout + out.stderr
    bandit = re.search(r"^bandit==(\S+)$", (REPO_ROOT / "steps" / "requirements-scan.txt").read_text(), re.M)
    assert bandit
    for tool, args_, version in [
        ("gitleaks", ["version"], env["GITLEAKS_VERSION"]),
        ("osv-scanner", ["--version"], env["OSV_SCANNER_VERSION"]),
        ("trivy", ["--version"], env["TRIVY_VERSION"]),
        ("bandit", ["--version"], bandit.group(1)),
    ]:
        out = run_in(image, tool, *args_)
        assert out.returncode == 0 and says_version(out.stdout + out.stderr, version), (tool, out.stdout, out.stderr)
    out = run_in(image, "druppie-step", "scan", "--help")
    assert out.returncode == 0 and "--scanners" in out.stdout, out.stderr

    # Nothing of the build stages but their results: no Go, no pip, no compiler, no caches.
    leftovers = "command -v go gofmt gcc cc pip pip3; ls -d /usr/local/go /root/go /root/.cache /out /src"
    out = run_in(image, "sh", "-c", leftovers, user=["--user", "0"])
    assert out.stdout == "" and out.stderr.count("No such file") == 5, out.stdout + out.stderr
    assert run_in(image, "python3", "-m", "pip", "--version").returncode != 0
    user = run_in(image, "id", "-u")
    assert user.stdout.strip() == "65532"
