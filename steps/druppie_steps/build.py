"""build: build the app's Containerfile with buildah, push it, check the digest, write its SBOM.

Order matters for the user: everything that can be checked before a long build is checked first
(inputs, the Containerfile, the registry and its credentials), so a typo costs seconds. After the
push the registry is asked which digest it serves for each tag; only when that is the digest
buildah pushed are IMAGE_URL and IMAGE_DIGEST written. The SBOM describes that exact digest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from .core import log, tools
from .core.errors import InvalidInputError, StepError
from .core.options import (
    Duration,
    flag_option,
    option,
    results_dir_option,
    source_folder,
    source_option,
    timeout_option,
    workspace_option,
)
from .core.registry import check_access, served_digest
from .core.results import summary_line, write_results
from .core.workspace import shared_dir
from .gitops.imageref import validate_image_name, validate_tag

CONTAINERFILE_NAMES = ("Containerfile", "Dockerfile")
BUILD_ARG_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SBOM_FORMATS = {"cyclonedx-json": "cdx.json", "spdx-json": "spdx.json"}
# buildah's messages for a registry that is not there or refuses us, turned into one clear line.
UNREACHABLE = re.compile(
    r"connection refused|no such host|i/o timeout|network is unreachable|"
    r"server gave HTTP response to HTTPS client|tls: |x509: ",
    re.I,
)
# Where the programs are: the image, and a developer's machine (buildah from the distribution).
HINTS = {
    "buildah": "the druppie-build image carries it; locally, install buildah (apt-get install buildah)",
    "syft": "the druppie-build image carries it; locally, make setup links it into .venv/bin",
}
REFUSED = re.compile(r"unauthorized|authentication required|denied|403 forbidden", re.I)


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, what: str) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise StepError(f"timed out before {what} (raise --timeout)")
        return remaining


def parse_build_args(text: str) -> list[str]:
    """``KEY=VALUE`` per line (a value may hold spaces and '='); blank lines and # comments skipped."""
    args = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not BUILD_ARG_RE.match(line.strip()):
            raise InvalidInputError(f"invalid --build-args line {line.strip()!r}: use KEY=VALUE, one per line")
        args.append(line.strip())
    return args


def find_containerfile(context: Path, name: str) -> Path:
    if name:
        path = (context / name).resolve()
        if not path.is_file():
            raise InvalidInputError(f"invalid --containerfile {name!r}: no such file in {context}")
        return path
    for candidate in CONTAINERFILE_NAMES:
        if (context / candidate).is_file():
            return context / candidate
    raise InvalidInputError(f"no Containerfile or Dockerfile in {context} (set --containerfile)")


def short_commit(source: Path, commit: str) -> str:
    """The commit's first 7 hex digits: from --commit, else from the checkout, else empty."""
    if commit:
        if not re.fullmatch(r"[0-9a-f]{7,64}", commit):
            raise InvalidInputError(f"invalid --commit {commit!r}: a hex commit sha")
        return commit[:7]
    proc = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return proc.stdout.strip()[:7] if proc.returncode == 0 else ""


def auth_file_from(dockerconfig_dir: str) -> str | None:
    """config.json or .dockerconfigjson (a kubernetes.io/dockerconfigjson Secret) in the workspace."""
    if not dockerconfig_dir:
        return None
    for name in ("config.json", ".dockerconfigjson"):
        path = Path(dockerconfig_dir) / name
        if path.is_file():
            try:
                json.loads(path.read_text())
            except ValueError as err:
                raise InvalidInputError(f"invalid dockerconfig {path}: not JSON ({err.args[0]})") from err
            return str(path)
    raise InvalidInputError(f"invalid --dockerconfig {dockerconfig_dir!r}: holds no config.json or .dockerconfigjson")


def last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\berror\b|failed|unable", line, re.I)]
    return (errors or lines or ["(no output)"])[-1]


def run_buildah(cmd: list[str], env: dict[str, str], deadline: Deadline, what: str, stream: bool = False) -> str:
    """Run buildah; its output goes to the log (stderr; stdout is for the summary) when ``stream``
    (the build), else is kept for the error message."""
    try:
        proc = subprocess.run(
            cmd,
            env=env,
            text=True,
            timeout=deadline.left(what),
            stdout=sys.stderr if stream else subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except subprocess.TimeoutExpired as err:
        raise StepError(f"timed out during {what} (raise --timeout)") from err
    except FileNotFoundError as err:
        raise StepError(f"{cmd[0]} not found: {HINTS['buildah']}") from err
    if stream and proc.stderr:
        log.info(proc.stderr.rstrip())
    if proc.returncode != 0:
        detail = last_error_line(proc.stderr or "")
        raise StepError(f"{what} failed: {detail}")
    return proc.stdout or ""


@click.command("build")
@source_option
@option("--context", "context_dir", default=".", help="Build context, relative to --source.")
@option(
    "--containerfile",
    default="",
    help="Containerfile relative to the context (default: Containerfile, else Dockerfile).",
)
@option("--image", required=True, help="Image name to push, without tag, e.g. registry.example/druppie/drone-service.")
@option("--version", "version", required=True, help="Semantic version of this build; becomes the image tag.")
@option(
    "--commit",
    default="",
    help="Source commit sha; its first 7 digits become a second tag (default: the checkout's HEAD).",
)
@option("--build-args", default="", help="Build arguments, KEY=VALUE, one per line.")
@flag_option(
    "--tls-verify",
    default=True,
    help="Verify the registry's TLS certificate (off: test registries, plain HTTP).",
)
@option("--http-proxy", default="", help="Proxy for pulls, pushes and RUN instructions (also passed as build arg).")
@option("--https-proxy", default="", help="HTTPS proxy, as --http-proxy.")
@option("--no-proxy", default="", help="Hosts that bypass the proxy, comma-separated.")
@option(
    "--isolation",
    type=click.Choice(["chroot", "oci", "rootless"]),
    default="chroot",
    help="How RUN instructions are isolated; chroot needs no user namespace or privileged mode.",
)
@option("--sbom-format", type=click.Choice(sorted(SBOM_FORMATS)), default="cyclonedx-json", help="SBOM format (syft).")
@option(
    "--sbom",
    "sbom_path",
    default="",
    help="Where to write the SBOM, relative to --source (default .druppie/sbom.<format>).",
)
@timeout_option("30m")
@workspace_option("--dockerconfig", "dockerconfig_dir", "Folder with config.json or .dockerconfigjson for the registry")
@workspace_option("--ca-certs", "ca_dir", "Folder with extra CA certificates (*.crt) for the registry")
@workspace_option("--cache", "cache_dir", "Folder that keeps buildah's storage (base images, layers) between builds")
@results_dir_option
def build(
    source: str,
    context_dir: str,
    containerfile: str,
    image: str,
    version: str,
    commit: str,
    build_args: str,
    tls_verify: bool,
    http_proxy: str,
    https_proxy: str,
    no_proxy: str,
    isolation: str,
    sbom_format: str,
    sbom_path: str,
    timeout: Duration,
    dockerconfig_dir: str,
    ca_dir: str,
    cache_dir: str,
    results_dir: str | None,
) -> None:
    """Build the app's image with buildah, push it by version and commit tags, write its SBOM."""
    deadline = Deadline(timeout.seconds)
    image = validate_image_name(image)
    version = validate_tag(version, "--version")
    root = source_folder(source).resolve()
    context = (root / context_dir).resolve()
    if not context.is_dir() or not context.is_relative_to(root):
        raise InvalidInputError(f"invalid --context {context_dir!r}: no such folder inside --source")
    containerfile_path = find_containerfile(context, containerfile)
    args = parse_build_args(build_args)
    auth_file = auth_file_from(dockerconfig_dir)
    if ca_dir and not any(Path(ca_dir).glob("*.crt")):
        raise InvalidInputError(f"invalid --ca-certs {ca_dir!r}: holds no *.crt file")
    sbom = root / (sbom_path or f".druppie/sbom.{SBOM_FORMATS[sbom_format]}")
    sha = short_commit(root, commit)
    tags = [version] + ([sha] if sha and sha != version else [])

    env = dict(os.environ, BUILDAH_ISOLATION=isolation, STORAGE_DRIVER=os.environ.get("STORAGE_DRIVER", "vfs"))
    proxies = {"HTTP_PROXY": http_proxy, "HTTPS_PROXY": https_proxy, "NO_PROXY": no_proxy}
    for key, value in proxies.items():
        if value:
            env[key] = env[key.lower()] = value
            args += [f"{key}={value}", f"{key.lower()}={value}"]
    if ca_dir:
        env["SSL_CERT_DIR"] = ca_dir
    buildah = [tools.require("buildah", HINTS["buildah"]), "--storage-driver", env["STORAGE_DRIVER"]]
    if cache_dir:  # layers of earlier builds make this one fast (`--layers`)
        buildah += ["--root", str(Path(cache_dir) / "buildah-storage")]
    registry_flags = (
        [f"--tls-verify={str(tls_verify).lower()}"]
        + (["--authfile", auth_file] if auth_file else [])
        + (["--cert-dir", ca_dir] if ca_dir else [])
    )

    log.progress(f"checking registry access for {image}")
    check_access(image, auth_file, tls_verify)

    log.progress(
        f"building {containerfile_path.relative_to(root)} in {context.relative_to(root) or '.'} as {image}:{version}"
    )
    with tempfile.TemporaryDirectory(prefix="druppie-build-") as tmp:
        iidfile = Path(tmp) / "iid"
        cmd = [
            *buildah,
            "bud",
            "--layers",
            "--iidfile",
            str(iidfile),
            "-f",
            str(containerfile_path),
            *registry_flags,
            *[a for arg in args for a in ("--build-arg", arg)],
            *[a for tag in tags for a in ("-t", f"{image}:{tag}")],
            str(context),
        ]
        run_buildah(cmd, env, deadline, f"build of {containerfile_path.name}", stream=True)
        image_id = iidfile.read_text().strip()

        pushed: dict[str, str] = {}
        for tag in tags:
            digest_file = Path(tmp) / f"digest-{tag}"
            log.progress(f"pushing {image}:{tag}")
            try:
                run_buildah(
                    [
                        *buildah,
                        "push",
                        "--digestfile",
                        str(digest_file),
                        *registry_flags,
                        image_id,
                        f"docker://{image}:{tag}",
                    ],
                    env,
                    deadline,
                    f"push of {image}:{tag}",
                )
            except StepError as err:
                host = image.split("/")[0]
                if REFUSED.search(str(err)):
                    raise StepError(f"registry {host} refused the push of {image}:{tag}: {err}") from err
                if UNREACHABLE.search(str(err)):
                    raise StepError(f"registry {host} unreachable during the push: {err}") from err
                raise
            pushed[tag] = digest_file.read_text().strip()

    digest = pushed[version]
    # Check what we hand over: every tag must serve the one digest buildah pushed.
    for tag in tags:
        served = served_digest(image, tag, auth_file, tls_verify)
        if served != digest or pushed[tag] != digest:
            raise StepError(f"registry serves {served} for {image}:{tag}, but {digest} was pushed; not handing it over")
    log.progress(f"pushed {image}@{digest} as {', '.join(tags)}")

    write_sbom(image, digest, sbom, sbom_format, auth_file, tls_verify, env, deadline)
    results = {
        "IMAGE_URL": f"{image}:{version}",
        "IMAGE_DIGEST": digest,
        "IMAGE_TAGS": ",".join(tags),
        "sbom": str(sbom.relative_to(root)),
    }
    write_results(results_dir, results)
    click.echo(summary_line("build", results))


def write_sbom(
    image: str,
    digest: str,
    target: Path,
    sbom_format: str,
    auth_file: str | None,
    tls_verify: bool,
    env: dict[str, str],
    deadline: Deadline,
) -> None:
    """syft reads the pushed image from the registry by digest, so the SBOM is of exactly that image."""
    log.progress(f"writing the SBOM ({sbom_format}) of {image}@{digest}")
    with tempfile.TemporaryDirectory(prefix="druppie-sbom-") as tmp:
        syft_env = dict(env, SYFT_CHECK_FOR_APP_UPDATE="false", SYFT_CACHE_DIR=f"{tmp}/cache", XDG_CACHE_HOME=tmp)
        if not tls_verify:
            syft_env |= {"SYFT_REGISTRY_INSECURE_SKIP_TLS_VERIFY": "true", "SYFT_REGISTRY_INSECURE_USE_HTTP": "true"}
        if auth_file:
            os.makedirs(f"{tmp}/docker", exist_ok=True)
            shutil.copy(auth_file, f"{tmp}/docker/config.json")
            syft_env["DOCKER_CONFIG"] = f"{tmp}/docker"
        shared_dir(target.parent)
        staged = target.with_name(f".{target.name}.tmp")
        syft = tools.require("syft", HINTS["syft"])
        try:
            proc = subprocess.run(
                [syft, "scan", f"registry:{image}@{digest}", "-o", f"{sbom_format}={staged}"],
                env=syft_env,
                capture_output=True,
                text=True,
                timeout=deadline.left("the SBOM"),
            )
        except FileNotFoundError as err:
            raise StepError(f"{syft} not found: {HINTS['syft']}") from err
        except subprocess.TimeoutExpired as err:
            raise StepError("timed out writing the SBOM (raise --timeout)") from err
        if proc.returncode != 0 or not staged.is_file():
            raise StepError(
                f"SBOM of {image}@{digest} failed (syft exit {proc.returncode}): {last_error_line(proc.stderr)}"
            )
        json.loads(staged.read_text())  # a truncated file is not an SBOM
        os.replace(staged, target)
