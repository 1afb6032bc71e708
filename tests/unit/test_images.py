"""The images' Containerfiles build from a clean clone: tools are compiled and pip-installed in build
stages, the final stage only copies their results (no Go, pip or compiler in an image), and every
version comes from one place (hack/toolchain.env, steps/requirements*). The Go toolchain's check
(hack/go_toolchain.py) is tested against the go command's own hashes and a fake module proxy."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hack import go_toolchain
from localcluster.toolchain import toolchain
from testbed.readme import bash_blocks
from tests.support.paths import REPO_ROOT

IMAGES = ("druppie-step", "druppie-scan", "druppie-build")
CONTAINERFILES = {name: REPO_ROOT / "images" / name / "Containerfile" for name in IMAGES}
# What the go stages build, each with its version in hack/toolchain.env.
GO_TOOLS = {"druppie-scan": ["gitleaks", "osv-scanner", "trivy"], "druppie-build": ["syft"]}
# The only packages a final stage may add (when its base lacks them): run-time tools, no compiler.
RUNTIME_PACKAGES = {"git", "openssh-client", "ca-certificates", "buildah", "containers-storage", "skopeo"}
# Where versions may be written: the pins themselves.
PIN_FILES = {"hack/toolchain.env", "steps/requirements.lock", "steps/requirements-scan.txt",
             "steps/requirements-test-tools.txt", "steps/requirements-dev.txt"}  # fmt: skip


@dataclass
class Stage:
    line: str  # the FROM line
    name: str | None
    instructions: list[str] = field(default_factory=list)  # continuation lines joined


def stages(path: Path) -> list[Stage]:
    result: list[Stage] = []
    current = ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") or (not raw.strip() and not current):
            continue
        current += raw.rstrip("\\").strip() + " " if raw.rstrip().endswith("\\") else raw.strip()
        if raw.rstrip().endswith("\\"):
            continue
        line, current = current, ""
        if line.startswith("FROM "):
            as_name = re.search(r"\s+AS\s+(\S+)$", line, flags=re.I)
            result.append(Stage(line, as_name.group(1) if as_name else None))
        elif result:
            result[-1].instructions.append(line)
    return result


@pytest.mark.parametrize("name", IMAGES)
def test_the_final_stage_only_copies_from_the_build_stages_and_runs_nothing(name):
    """No RUN in the final stage: a cross build (linux/arm64 on amd64) runs no code of the target
    platform, so it needs no emulation; what a base lacks comes from the `runtime` build stage."""
    *builders, final = stages(CONTAINERFILES[name])
    assert final.line == "FROM --platform=$TARGETPLATFORM ${BASE_IMAGE}" and final.name is None, final.line
    assert {b.name for b in builders} >= {"python", "runtime"}, "the program is pip-installed in a build stage"
    assert final.instructions[0] == "COPY --from=runtime /out/root/ /", final.instructions[0]
    for instruction in final.instructions:
        word = instruction.split()[0]
        assert word in {"COPY", "ENV", "USER", "ENTRYPOINT", "CMD", "LABEL", "WORKDIR"}, instruction
        if word == "COPY":
            args = shlex.split(instruction)[1:]
            stage = next((a.split("=", 1)[1] for a in args if a.startswith("--from=")), None)
            # From a build stage, or the image's own configuration files from its folder.
            assert stage in {b.name for b in builders} or args[0].startswith(f"images/{name}/"), instruction
        if word == "ENV":
            assert not re.search(r"\bGO(ROOT|PATH|CACHE)\b|PIP_", instruction), instruction


@pytest.mark.parametrize("name", IMAGES)
def test_the_runtime_stage_adds_only_run_time_packages_a_base_lacks(name):
    (runtime,) = [s for s in stages(CONTAINERFILES[name]) if s.name == "runtime"]
    (run,) = [i for i in runtime.instructions if i.startswith("RUN ")]
    assert not re.search(r"\b(pip|pip3|go|gcc|cc|make|curl|wget)\b|ensurepip|venv", run), run
    installed = set(" ".join(re.findall(r"missing=\"\$missing ([^\"]+)\"", run)).split())
    assert installed and installed <= RUNTIME_PACKAGES, installed - RUNTIME_PACKAGES
    # Only what is missing: each package behind a check of the base, then unpacked for the target.
    assert run.count(" || missing=") == len(re.findall(r"missing=\"\$missing", run))
    assert run.endswith('hack/image-runtime.sh /out "${TARGETARCH:-amd64}" $missing'), run


@pytest.mark.parametrize("name", IMAGES)
def test_build_stages_run_on_the_build_platform_for_the_target(name):
    """A cross build (linux/arm64 on amd64) runs no RUN of a build stage under emulation: they are
    FROM --platform=$BUILDPLATFORM and produce for TARGETARCH (GOOS/GOARCH, pip's --platform)."""
    *builders, _ = stages(CONTAINERFILES[name])
    for stage in builders:
        assert stage.line == f"FROM --platform=$BUILDPLATFORM ${{BASE_IMAGE}} AS {stage.name}", stage.line
        args = {i.split()[1].split("=")[0] for i in stage.instructions if i.startswith("ARG ")}
        runs = " ".join(i for i in stage.instructions if i.startswith("RUN "))
        assert "TARGETARCH" in args and "${TARGETARCH" in runs, stage.name
        if stage.name == "go":
            assert "TARGETOS" in args and 'GOOS="${TARGETOS' in runs and 'GOARCH="${TARGETARCH' in runs
            assert {"GOPROXY", "GOSUMDB"} <= args
            # The module and build caches outlive the build: rebuilds link, they do not compile again.
            assert "--mount=type=cache,target=/root/go/pkg/mod" in runs and "GOCACHE=/root/.cache/" in runs
        if stage.name == "python":
            assert "PIP_INDEX_URL" in args and "--mount=type=cache,target=/root/.cache/pip" in runs


@pytest.mark.parametrize("name", IMAGES)
def test_the_default_base_is_the_public_image_pinned_by_digest(name):
    text = CONTAINERFILES[name].read_text()
    assert re.search(r"^ARG BASE_IMAGE=docker\.io/library/python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}$", text, re.M)
    assert text.count("ARG BASE_IMAGE=") == 1


@pytest.mark.parametrize("name", GO_TOOLS)
def test_the_go_stage_builds_each_tool_at_its_toolchain_env_version(name):
    runs = " ".join(i for s in stages(CONTAINERFILES[name]) if s.name == "go" for i in s.instructions)
    assert runs.endswith("hack/go-tools.sh /out/bin " + " ".join(GO_TOOLS[name])), runs
    recipe = (REPO_ROOT / "hack" / "go-tools.sh").read_text()
    env = toolchain()
    for tool in GO_TOOLS[name]:
        var = tool.upper().replace("-", "_") + "_VERSION"
        assert var in env, var
        branch = re.search(rf"^\s+{re.escape(tool)}\) (.*?);;", recipe, flags=re.M | re.S)
        assert branch and (f"${var}" in branch.group(1) or f"${{{var}#v}}" in branch.group(1)), tool


def test_no_version_of_toolchain_env_or_the_requirements_is_written_a_second_time():
    """The versions the images are built at live in hack/toolchain.env and steps/requirements*; the
    Containerfiles, the build scripts and the READMEs say the variable, not the number."""
    env = toolchain()
    pinned = {k: v for k, v in env.items() if k in {"GITLEAKS_VERSION", "OSV_SCANNER_VERSION", "TRIVY_VERSION",
                                                    "SYFT_VERSION", "GO_TOOLCHAIN", "GO127_TOOLCHAIN"}}  # fmt: skip
    assert len(pinned) == 6
    needles = set(pinned.values()) | {v.removeprefix("v") for v in pinned.values()}
    needles |= {v for k, v in env.items() if k.startswith("GO_TOOLCHAIN_H1_")}
    for req in ("steps/requirements-scan.txt", "steps/requirements-test-tools.txt"):
        for line in (REPO_ROOT / req).read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                needles.add(line.strip())
    files = [*CONTAINERFILES.values(), *(REPO_ROOT / "images").glob("*/README.md")]
    files += [REPO_ROOT / "hack" / f for f in ("go-tools.sh", "go_toolchain.py", "image-python.sh", "images.sh",
                                               "cluster-build.sh")]  # fmt: skip
    for path in files:
        text = path.read_text()
        for needle in needles:
            assert not re.search(rf"(?<![\w.]){re.escape(needle)}(?![\w.])", text), f"{path}: {needle}"
    for path in CONTAINERFILES.values():
        assert not re.search(r"\bgo1\.\d+|==\d|@v\d", path.read_text()), path


def test_the_go_toolchain_is_pinned_for_both_architectures_and_new_enough_for_each_tool():
    env = toolchain()
    assert re.fullmatch(r"go1\.\d+\.\d+", env["GO_TOOLCHAIN"])
    for arch in ("AMD64", "ARM64"):
        assert re.fullmatch(r"h1:[A-Za-z0-9+/]{43}=", env[f"GO_TOOLCHAIN_H1_LINUX_{arch}"]), arch
    # Each tool's go.mod go line (where the module cache has it) against the Go that builds it.
    gomodcache = Path(os.environ.get("GOMODCACHE", Path.home() / "go" / "pkg" / "mod"))
    recipe = (REPO_ROOT / "hack" / "go-tools.sh").read_text()
    modules = {"gitleaks": "github.com/zricethezav/gitleaks/v8", "osv-scanner": "github.com/google/osv-scanner/v2",
               "trivy": "github.com/aquasecurity/trivy", "syft": "github.com/anchore/syft"}  # fmt: skip
    for tool, module in modules.items():
        branch = re.search(rf"^\s+{re.escape(tool)}\) (.*?);;", recipe, flags=re.M | re.S)
        assert branch, tool
        go = env["GO127_TOOLCHAIN"] if "GOTOOLCHAIN=$GO127_TOOLCHAIN" in branch.group(1) else env["GO_TOOLCHAIN"]
        version = env[tool.upper().replace("-", "_") + "_VERSION"]
        gomod = gomodcache / "cache" / "download" / module / "@v" / f"{version}.mod"
        if gomod.is_file():
            go_line = re.search(r"^go (\d+)\.(\d+)(?:\.(\d+))?", gomod.read_text(), flags=re.M)
            assert go_line, gomod
            needs = tuple(int(x or 0) for x in go_line.groups())
            assert needs <= tuple(int(x) for x in go.removeprefix("go").split(".")), f"{tool} needs {go_line.group(0)}"


def test_hash_zip_is_the_go_commands_go_sum_hash():
    """Against the hashes the go command wrote beside the zips it downloaded (.ziphash)."""
    download = Path(os.environ.get("GOMODCACHE", Path.home() / "go" / "pkg" / "mod")) / "cache" / "download"
    checked = 0
    for ziphash in (
        sorted(download.glob("golang.org/x/*/@v/*.ziphash"))[:3]
        + sorted(download.glob("golang.org/toolchain/@v/*.ziphash"))[:1]
    ):
        zip_path = ziphash.with_suffix(".zip")
        if zip_path.is_file():
            assert go_toolchain.hash_zip(zip_path) == ziphash.read_text().strip(), zip_path
            checked += 1
    if not checked:
        pytest.skip(f"no module zips in {download} to compare with")


def fake_proxy(tmp_path: Path, version: str, files: dict[str, bytes]) -> Path:
    """A GOPROXY folder serving golang.org/toolchain@<version> with these files."""
    at = tmp_path / "proxy" / "golang.org" / "toolchain" / "@v"
    at.mkdir(parents=True)
    with zipfile.ZipFile(at / f"{version}.zip", "w") as z:
        for name, data in files.items():
            z.writestr(f"golang.org/toolchain@{version}/{name}", data)
    return at / f"{version}.zip"


def test_fetch_unpacks_a_checked_toolchain_with_its_executables(tmp_path):
    version = go_toolchain.module_version("go1.99.1", "arm64")
    files = {
        "bin/go": b"#!/bin/sh\necho go\n",
        "pkg/tool/linux_arm64/compile": b"x",
        "src/fmt/print.go": b"package fmt",
    }
    zip_path = fake_proxy(tmp_path, version, files)
    env = {"GO_TOOLCHAIN": "go1.99.1", "GO_TOOLCHAIN_H1_LINUX_ARM64": go_toolchain.hash_zip(zip_path)}
    proxy = f"off,file://{tmp_path / 'proxy'}|direct"
    goroot = go_toolchain.fetch(tmp_path / "cache", "arm64", env, proxy)
    assert goroot == tmp_path / "cache" / "go1.99.1.linux-arm64"
    assert (goroot / "bin" / "go").read_bytes() == files["bin/go"]
    assert os.access(goroot / "bin" / "go", os.X_OK) and os.access(goroot / "pkg/tool/linux_arm64/compile", os.X_OK)
    assert not os.access(goroot / "src/fmt/print.go", os.X_OK)
    # A second call finds it: the proxy is not asked again.
    zip_path.unlink()
    assert go_toolchain.fetch(tmp_path / "cache", "arm64", env, proxy) == goroot


def test_fetch_refuses_a_toolchain_whose_hash_is_not_the_pinned_one(tmp_path):
    version = go_toolchain.module_version("go1.99.1", "amd64")
    fake_proxy(tmp_path, version, {"bin/go": b"not the real go"})
    env = {"GO_TOOLCHAIN": "go1.99.1", "GO_TOOLCHAIN_H1_LINUX_AMD64": "h1:" + "A" * 43 + "="}
    with pytest.raises(SystemExit, match=r"toolchain\.env pins h1:AAAA.*refused"):
        go_toolchain.fetch(tmp_path / "cache", "amd64", env, f"file://{tmp_path / 'proxy'}")
    assert not (tmp_path / "cache" / "go1.99.1.linux-amd64").exists()
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_proxy_is_the_first_url_of_goproxy():
    assert go_toolchain.proxy_url("https://proxy.golang.org,direct") == "https://proxy.golang.org"
    assert go_toolchain.proxy_url("direct|https://mirror.example/go/") == "https://mirror.example/go"
    with pytest.raises(SystemExit, match="names no proxy"):
        go_toolchain.proxy_url("direct")


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (its patterns: the last match wins)."""
    verdict = False
    for line in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        if re.fullmatch(rf"{regex}(/.*)?", path):
            verdict = not negate
    return verdict


def test_the_build_context_holds_what_the_stages_copy_and_no_venv_or_git():
    for path in (".venv/bin/python", ".git/HEAD", "tests/unit/test_images.py", "localcluster/cluster.py",
                 "steps/druppie_steps/__pycache__/cli.cpython-311.pyc", "steps/build/lib/x.py"):  # fmt: skip
        assert ignored(path), path
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    images_sh = (REPO_ROOT / "hack" / "images.sh").read_text()
    for name, containerfile in CONTAINERFILES.items():
        for stage in stages(containerfile):
            for instruction in stage.instructions:
                if instruction.startswith("COPY ") and "--from=" not in instruction:
                    for source in shlex.split(instruction)[1:-1]:
                        files = [f for f in tracked.stdout.splitlines() if f == source or f.startswith(source)]
                        assert files and not all(ignored(f) for f in files), (name, source)
                        assert source.endswith("/") or not ignored(source), (name, source)
                        # make images' content hash covers it, so a change rebuilds the image.
                        assert source.rstrip("/") in images_sh or source.startswith(f"images/{name}/"), source


def test_make_images_builds_the_containerfiles_from_the_repository_root():
    text = (REPO_ROOT / "hack" / "images.sh").read_text()
    assert '-f "images/druppie-$kind/Containerfile" -t "$name" .' in text
    for gone in ("stage_context", "stage_program", "cached_tool", "pip install", "pip download"):
        assert gone not in text, gone
    for kept in ("DIGEST_FILE", "smoke_test", "--digestfile", 'BASE_IMAGE="$base"', "GOPROXY", "PIP_INDEX_URL",
                 '--platform "linux/$arch"', '"TARGETPLATFORM=linux/$arch"', '"BUILDPLATFORM=linux/$NATIVE"',
                 "manifest push --all"):  # fmt: skip
        assert kept in text, kept


@pytest.mark.parametrize("name", IMAGES)
def test_each_image_readme_shows_its_build_from_the_repository_root(name):
    commands = [c for block in bash_blocks(REPO_ROOT / "images" / name / "README.md") for c in block]
    assert f"podman build -f images/{name}/Containerfile -t {name} ." in commands
    text = (REPO_ROOT / "images" / name / "README.md").read_text()
    assert ("stage" in text and "hack/toolchain.env" in text) or name == "druppie-step"


def run_script(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO_ROOT / "hack" / script), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})  # fmt: skip


@pytest.mark.parametrize(
    "platforms,said",
    [
        ("linux/s390x", "unknown platform 'linux/s390x' in PLATFORMS (linux/amd64, linux/arm64)"),
        ("linux/amd64 arm64", "unknown platform 'arm64' in PLATFORMS (linux/amd64, linux/arm64)"),
        ("linux/arm64 linux/arm64", "platform 'linux/arm64' twice in PLATFORMS"),
        (" ", "PLATFORMS is empty (linux/amd64, linux/arm64)"),
    ],
)
def test_make_images_refuses_a_bad_platforms_in_one_line_before_building(platforms, said):
    run = run_script("images.sh", env={"PLATFORMS": platforms, "REGISTRY": "127.0.0.1:9"})
    assert run.returncode == 2 and run.stdout == "", run
    assert len(run.stderr.splitlines()) == 1 and run.stderr.rstrip().endswith(said), run.stderr


def test_the_base_subcommand_makes_one_base():
    run = run_script("images.sh", "base", env={"PLATFORMS": "linux/amd64 linux/arm64"})
    assert run.returncode == 2 and "makes one base: PLATFORMS names 2" in run.stderr, run


def test_a_release_builds_every_platform_the_tasks_may_claim_and_the_slow_tier_checks_them():
    from hack import catalog, release
    from tests.support.platforms import MACHINES, PLATFORMS

    env = release.images_env("127.0.0.1:5000", "digests.txt")
    assert env["PLATFORMS"].split() == list(catalog.BUILT_PLATFORMS)
    assert env["REGISTRY"] == "127.0.0.1:5000" and env["DIGEST_FILE"] == "digests.txt"
    # What the Tasks may claim is what a release builds, and the slow tier checks each one's ELF files.
    assert set(catalog.BUILT_PLATFORMS) <= set(PLATFORMS) and set(PLATFORMS) == set(MACHINES)


def test_image_runtime_adds_nothing_to_a_base_that_lacks_nothing_and_refuses_an_unknown_arch(tmp_path):
    run = run_script("image-runtime.sh", str(tmp_path / "out"), "arm64")
    assert run.returncode == 0 and list((tmp_path / "out" / "root").iterdir()) == [], run
    run = run_script("image-runtime.sh", str(tmp_path / "out2"), "riscv64", "git")
    assert run.returncode == 2 and run.stderr == "image-runtime: no packages for TARGETARCH=riscv64 (amd64, arm64)\n"
    assert not (tmp_path / "out2").exists()


def test_unpacked_base_wants_an_empty_folder(tmp_path):
    (tmp_path / "left-over").write_text("x")
    run = run_script("unpacked-base.sh", "arm64", "python3", str(tmp_path))
    assert run.returncode == 2 and f"ROOTFS '{tmp_path}' is not an empty folder" in run.stderr, run


def test_deb_unpack_unpacks_a_package_and_records_it_as_dpkg_would(tmp_path):
    """A real .deb (dpkg-deb --build) into a root with a merged /usr: its files under usr/, its status
    entry with the conffile's md5sum, its file list; nothing of it runs (its postinst would fail)."""
    package = tmp_path / "pkg"
    (package / "DEBIAN").mkdir(parents=True)
    (package / "DEBIAN" / "control").write_text(
        "Package: druppie-demo\nVersion: 1.0\nArchitecture: arm64\nMulti-Arch: same\n"
        "Maintainer: x <x@example.org>\nDescription: demo\n"
    )
    (package / "DEBIAN" / "conffiles").write_text("/etc/demo.conf\n")
    (package / "DEBIAN" / "postinst").write_text("#!/bin/sh\nexit 1\n")
    (package / "DEBIAN" / "postinst").chmod(0o755)
    (package / "bin").mkdir()
    (package / "bin" / "demo").write_text("#!/bin/sh\n")
    (package / "etc").mkdir()
    (package / "etc" / "demo.conf").write_text("setting=1\n")
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(package), str(tmp_path / "demo.deb")],
                   check=True, capture_output=True)  # fmt: skip
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    run = run_script("deb-unpack.sh", str(root), "arm64", str(tmp_path / "demo.deb"))
    assert run.returncode == 0, run.stderr
    assert (root / "bin").is_symlink() and (root / "usr" / "bin" / "demo").is_file()
    status = (root / "var/lib/dpkg/status").read_text()
    md5 = subprocess.run(["md5sum", str(root / "etc/demo.conf")], capture_output=True, text=True).stdout.split()[0]
    assert status.startswith("Package: druppie-demo\nStatus: install ok installed\n"), status
    assert f"Conffiles:\n /etc/demo.conf {md5}\n" in status and status.endswith("\n\n"), status
    info = root / "var/lib/dpkg/info"
    assert "/bin/demo" in (info / "druppie-demo:arm64.list").read_text().splitlines()
    assert (info / "druppie-demo:arm64.conffiles").read_text() == "/etc/demo.conf\n"


def test_the_ca_bundle_of_an_unpacked_root_holds_every_certificate_the_package_ships(tmp_path):
    """Debian bookworm's update-ca-certificates has no --sysroot (usage, exit 0, no bundle): an unpacked
    base or runtime stage once got no CA bundle at all. hack/ca-bundle.sh makes it, as the postinst does."""
    share = tmp_path / "usr/share/ca-certificates/mozilla"
    share.mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (share / "First CA.crt").write_text("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----")  # no newline
    (share / "Second.crt").write_text("-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n")
    run = run_script("ca-bundle.sh", str(tmp_path))
    assert run.returncode == 0 and "ca-bundle: 2 certificates" in run.stderr, run.stderr
    assert (tmp_path / "etc/ca-certificates.conf").read_text() == "mozilla/First CA.crt\nmozilla/Second.crt\n"
    bundle = (tmp_path / "etc/ssl/certs/ca-certificates.crt").read_text()
    assert bundle == ("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n"
                      "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n")  # fmt: skip
    link = tmp_path / "etc/ssl/certs/First_CA.pem"
    assert os.readlink(link) == "/usr/share/ca-certificates/mozilla/First CA.crt"


def test_a_root_without_certificates_gets_no_empty_bundle(tmp_path):
    (tmp_path / "usr/share/ca-certificates").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    run = run_script("ca-bundle.sh", str(tmp_path))
    assert run.returncode == 2 and run.stderr.strip().endswith("ca-bundle: no certificate under " + str(
        tmp_path / "usr/share/ca-certificates")), run.stderr  # fmt: skip
    assert list((tmp_path / "etc/ssl/certs").iterdir()) == []  # nothing half-written
