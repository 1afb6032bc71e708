"""build: build the app's Containerfile with buildah, push it, check the digest, write its SBOM.

Order matters for the user: everything that can be checked before a long build is checked first
(inputs, the Containerfile, the registry and its credentials), so a typo costs seconds. After the
push the registry is asked which digest it serves for each tag; only when that is the digest
buildah pushed are IMAGE_URL and IMAGE_DIGEST written. The SBOM describes that exact digest.

What it hands over is exactly the commit, once:

- **The tree is the commit.** In a git checkout, ``git status`` must show no modified or
  untracked file (ignored ones aside) and HEAD must be ``--commit`` when given; the Containerfile
  must not lead outside the context (a symlink, ``..``).
- **Built once.** When the registry already serves the version tag and the commit tag at one
  digest, that digest is handed over without building or pushing (a re-delivered webhook, a
  re-run). An existing tag is never moved: a version tag at another digest than this commit's
  build fails the step.
- **Reproducibly.** ``--timestamp`` is the commit's committer date (``--source-date-epoch``), so
  the same commit built from scratch twice gives one digest (as far as the Containerfile allows:
  see the Task's README); ``SOURCE_DATE_EPOCH`` is also a build arg.
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
    output_folder,
    output_option,
    results_dir_option,
    source_folder,
    source_option,
    timeout_option,
    workspace_option,
)
from .core.registry import NoSuchTagError, auth_file_from, check_access, served_digest
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
    """The Containerfile: ``name`` in the context, else Containerfile, else Dockerfile; never one that
    leads outside the context (``..``, an absolute path, a symlink to elsewhere)."""
    if name:
        path = (context / name).resolve()
        if not path.is_relative_to(context):
            raise InvalidInputError(
                f"invalid --containerfile {name!r}: leads outside the build context {context} (to {path})"
            )
        if not path.is_file():
            raise InvalidInputError(f"invalid --containerfile {name!r}: no such file in {context}")
        return path
    for candidate in CONTAINERFILE_NAMES:
        # A symlink counts even when its target is missing here: it is refused, never skipped for the next name.
        if (context / candidate).is_file() or (context / candidate).is_symlink():
            path = (context / candidate).resolve()
            if not path.is_relative_to(context):
                raise InvalidInputError(
                    f"invalid {candidate} in {context}: a symlink that leads outside the build context (to {path})"
                )
            if not path.is_file():
                raise InvalidInputError(f"invalid {candidate} in {context}: a symlink to {path}, which is not a file")
            return path
    raise InvalidInputError(f"no Containerfile or Dockerfile in {context} (set --containerfile)")


def validate_commit(commit: str) -> str:
    commit = commit.strip().lower()
    if commit and not re.fullmatch(r"[0-9a-f]{7,64}", commit):
        raise InvalidInputError(f"invalid --commit {commit!r}: a hex commit sha")
    return commit


def git(source: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """git in the checkout, whoever owns it, with nothing in its config able to run a program
    (an fsmonitor hook)."""
    return subprocess.run(
        ["git", "-c", "safe.directory=*", "-c", "core.fsmonitor=false", "-C", str(source), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


MAX_LISTED_PATHS = 5


def check_exact_commit(source: Path, commit: str) -> str:
    """HEAD of the checkout at ``source`` ("" when it is no git checkout), after checking that the
    tree is exactly that commit: no modified or untracked file (ignored files aside), and HEAD is
    ``commit`` when one is given. StepError with the first few offending paths otherwise."""
    head = git(source, "rev-parse", "--verify", "HEAD^{commit}")
    if head.returncode != 0:
        if commit:
            raise StepError(
                f"--source {source} is not a git checkout (git: {last_error_line(head.stderr)}): "
                f"cannot check that it is --commit {commit}"
            )
        log.warn(f"--source {source} is not a git checkout: building the folder as it is, unchecked")
        return ""
    sha = head.stdout.strip()
    if commit and not sha.startswith(commit):
        raise StepError(f"--source {source} is at commit {sha[:12]}, not --commit {commit}; not building it")
    status = git(source, "status", "--porcelain", "--untracked-files=all", "--ignored=no")
    if status.returncode != 0:
        raise StepError(f"git status in --source {source} failed: {last_error_line(status.stderr)}")
    dirty = [line for line in status.stdout.splitlines() if line.strip()]
    if dirty:
        listed = ", ".join(line.strip() for line in dirty[:MAX_LISTED_PATHS])
        more = f" and {len(dirty) - MAX_LISTED_PATHS} more" if len(dirty) > MAX_LISTED_PATHS else ""
        raise StepError(
            f"--source {source} is not exactly commit {sha[:12]}: {len(dirty)} modified or untracked "
            f"path(s): {listed}{more}; not building it"
        )
    return sha


def source_date_epoch_of(value: str, source: Path, head: str) -> int | None:
    """--source-date-epoch (seconds), else the committer date of HEAD; None outside a git checkout."""
    if value.strip():
        if not re.fullmatch(r"\d{1,12}", value.strip()):
            raise InvalidInputError(
                f"invalid --source-date-epoch {value!r}: seconds since 1970-01-01 UTC, e.g. 1767225600"
            )
        return int(value.strip())
    if not head:
        return None
    proc = git(source, "log", "-1", "--format=%ct", head)
    if proc.returncode != 0 or not proc.stdout.strip().isdigit():
        raise StepError(f"cannot read the committer date of {head[:12]}: {last_error_line(proc.stderr)}")
    return int(proc.stdout.strip())


def tag_digest(
    image: str, tag: str, auth_file: str | None, tls_verify: bool, cert_dir: str | None = None
) -> str | None:
    """The digest the registry serves for ``image:tag``, or None when it has no such tag."""
    try:
        return served_digest(image, tag, auth_file, tls_verify, cert_dir)
    except NoSuchTagError:
        return None


def already_built(
    image: str, version: str, sha: str, auth_file: str | None, tls_verify: bool, cert_dir: str | None = None
) -> tuple[str | None, str | None]:
    """(digest of the version tag, digest of the commit tag), each None when the registry lacks it.

    StepError when both exist at different digests: the version belongs to another build, and
    this step never moves a tag."""
    at_version = tag_digest(image, version, auth_file, tls_verify, cert_dir)
    at_commit = tag_digest(image, sha, auth_file, tls_verify, cert_dir) if sha else None
    if at_version and at_commit and at_version != at_commit:
        raise StepError(
            f"registry has {image}:{version} at {at_version} but {image}:{sha} at {at_commit}: "
            f"version {version} was built from another commit; not moving it (a new commit needs a new version)"
        )
    return at_version, at_commit


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
    help="Containerfile relative to the context (default: Containerfile, else Dockerfile); never outside it.",
)
@option("--image", required=True, help="Image name to push, without tag, e.g. registry.example/druppie/drone-service.")
@option("--version", "version", required=True, help="Semantic version of this build; becomes the image tag.")
@option(
    "--commit",
    default="",
    help="The commit to build: HEAD of --source must be it, with no modified or untracked file; its first "
    "7 digits become a second tag (default: the checkout's HEAD).",
)
@option(
    "--source-date-epoch",
    default="",
    envvar=["DRUPPIE_SOURCE_DATE_EPOCH", "SOURCE_DATE_EPOCH"],
    help="Seconds since the epoch for every timestamp in the image (buildah --timestamp), also passed as "
    "build arg SOURCE_DATE_EPOCH (default: the committer date of HEAD in --source).",
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
@output_option
@option(
    "--sbom",
    "sbom_path",
    default="",
    help="Where to write the SBOM, relative to --output (default .druppie/sbom.<format>).",
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
    source_date_epoch: str,
    build_args: str,
    tls_verify: bool,
    http_proxy: str,
    https_proxy: str,
    no_proxy: str,
    isolation: str,
    sbom_format: str,
    output: str,
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
    commit = validate_commit(commit)
    args = parse_build_args(build_args)
    auth_file = auth_file_from(dockerconfig_dir)
    if ca_dir and not any(Path(ca_dir).glob("*.crt")):
        raise InvalidInputError(f"invalid --ca-certs {ca_dir!r}: holds no *.crt file")
    out = output_folder(output)
    sbom = out / (sbom_path or f".druppie/sbom.{SBOM_FORMATS[sbom_format]}")
    head = check_exact_commit(root, commit)
    epoch = source_date_epoch_of(source_date_epoch, root, head)
    sha = (commit or head)[:7]
    tags = [version] + ([sha] if sha and sha != version else [])

    env = dict(os.environ, BUILDAH_ISOLATION=isolation, STORAGE_DRIVER=os.environ.get("STORAGE_DRIVER", "vfs"))
    proxies = {"HTTP_PROXY": http_proxy, "HTTPS_PROXY": https_proxy, "NO_PROXY": no_proxy}
    for key, value in proxies.items():
        if value:
            env[key] = env[key.lower()] = value
            args += [f"{key}={value}", f"{key.lower()}={value}"]
    if epoch is not None and not any(a.startswith("SOURCE_DATE_EPOCH=") for a in args):
        args.append(f"SOURCE_DATE_EPOCH={epoch}")
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
    check_access(image, auth_file, tls_verify, ca_dir or None)
    at_version, at_commit = already_built(image, version, sha, auth_file, tls_verify, ca_dir or None)
    if at_version and at_version == at_commit:
        log.progress(
            f"{image}:{version} and {image}:{sha} are already at {at_version}: this commit was built and "
            "pushed before; handing that digest over without building"
        )
        digest = at_version
    elif at_version and not sha:
        raise StepError(
            f"registry already has {image}:{version} (at {at_version}) and there is no commit to tell whether "
            "it is this build; not moving it"
        )
    else:
        # What to push, in order: a tag that exists stays where it is. The commit's own tag goes
        # first when the version tag exists, so the new digest can be compared before anything moves.
        if at_version:
            log.info(f"{image}:{version} exists (at {at_version}) without {image}:{sha}: building to compare")
        digest, tags = _build_and_push(
            image,
            version,
            sha,
            at_version,
            at_commit,
            context,
            root,
            containerfile_path,
            args,
            epoch,
            buildah,
            registry_flags,
            env,
            deadline,
        )
    # Check what we hand over: every tag must serve the one digest.
    for tag in tags:
        served = served_digest(image, tag, auth_file, tls_verify, ca_dir or None)
        if served != digest:
            raise StepError(f"registry serves {served} for {image}:{tag}, but {digest} was pushed; not handing it over")
    log.progress(f"{image}@{digest} is {', '.join(f'{image}:{t}' for t in tags)}")

    write_sbom(image, digest, sbom, sbom_format, auth_file, tls_verify, env, deadline)
    results = {
        "IMAGE_URL": f"{image}:{version}",
        "IMAGE_DIGEST": digest,
        "IMAGE_TAGS": ",".join(tags),
        "sbom": _shown(sbom, out),
    }
    write_results(results_dir, results)
    click.echo(summary_line("build", results))


def _shown(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def _build_and_push(
    image: str,
    version: str,
    sha: str,
    at_version: str | None,
    at_commit: str | None,
    context: Path,
    root: Path,
    containerfile_path: Path,
    args: list[str],
    epoch: int | None,
    buildah: list[str],
    registry_flags: list[str],
    env: dict[str, str],
    deadline: Deadline,
) -> tuple[str, list[str]]:
    """Build, then push tag by tag without moving one that exists; the digest and the tags at it."""
    log.progress(
        f"building {containerfile_path.relative_to(root)} in {context.relative_to(root) or '.'} as {image}:{version}"
        + (f", timestamps {epoch} (the commit's date)" if epoch is not None else ", timestamps now (not reproducible)")
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
            *(["--timestamp", str(epoch)] if epoch is not None else []),
            *registry_flags,
            *[a for arg in args for a in ("--build-arg", arg)],
            str(context),
        ]
        run_buildah(cmd, env, deadline, f"build of {containerfile_path.name}", stream=True)
        image_id = iidfile.read_text().strip()

        existing = {version: at_version, sha: at_commit}
        order = [sha, version] if at_version and sha else [version] + ([sha] if sha and sha != version else [])
        digest = ""
        tags: list[str] = []
        for tag in order:
            if existing.get(tag):
                if existing[tag] == digest:
                    tags.append(tag)
                elif tag == sha and digest:
                    log.warn(
                        f"{image}:{sha} already exists at {existing[tag]} from an earlier build of this commit, "
                        f"not at {digest} (the build is not reproducible?): leaving it there"
                    )
                continue
            pushed = _push(image, tag, image_id, buildah, registry_flags, env, deadline, Path(tmp))
            if digest and pushed != digest:
                raise StepError(f"buildah pushed {image}:{tag} as {pushed} but {image}:{order[0]} as {digest}")
            digest = pushed
            tags.append(tag)
            if tag == sha and at_version and at_version != digest:
                raise StepError(
                    f"registry already has {image}:{version} at {at_version}, but this commit builds {digest} "
                    f"(pushed as {image}:{sha} only): not moving {image}:{version}; a new commit needs a new version"
                )
    return digest, [t for t in [version, sha] if t in tags]


def _push(
    image: str,
    tag: str,
    image_id: str,
    buildah: list[str],
    registry_flags: list[str],
    env: dict[str, str],
    deadline: Deadline,
    tmp: Path,
) -> str:
    digest_file = tmp / f"digest-{tag}"
    log.progress(f"pushing {image}:{tag}")
    try:
        run_buildah(
            [*buildah, "push", "--digestfile", str(digest_file), *registry_flags, image_id, f"docker://{image}:{tag}"],
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
    return digest_file.read_text().strip()


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
