"""Ask a container registry whether it takes our login and what digest it serves for a tag.

The build step checks what it hands over: after the push, the registry itself must serve the
digest buildah reported. Which login applies to a registry is containers/image's own lookup, the
one buildah uses, through ``skopeo`` (``auths`` by host or URL, Docker Hub's
``https://index.docker.io/v1/`` key and docker.io's other names, ``credHelpers``); no hand
matching of config.json keys here. Docker's ``credsStore`` is the one form containers/image does
not read (containers/image#111): ``containers_auth_file`` hands it over as the ``credHelpers``
entry of the registry at hand, as Docker itself would use it. The credentials stay in the auth
file and the helpers: never on a command line, in a log or in an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from . import tools
from .errors import InvalidInputError, StepError

DOCKER_HUB = "docker.io"  # containers/image's name of Docker Hub; its API is at registry-1.docker.io
DOCKER_HUB_API = "registry-1.docker.io"
SKOPEO_HINT = "the druppie-build image carries it; locally, install skopeo (apt-get install skopeo)"
UNREACHABLE = re.compile(
    r"connection refused|no such host|i/o timeout|network is unreachable|timeout|"
    r"server gave HTTP response to HTTPS client|tls: |x509: ",
    re.I,
)
REFUSED = re.compile(r"unauthorized|authentication required|denied|forbidden|invalid username/password", re.I)


class NoSuchTagError(StepError):
    """The registry answered, and has no manifest for that tag (served_digest)."""


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


def registry_name(image: str) -> str:
    """The registry of ``image`` as containers/image names it: ``host[:port]``, ``docker.io`` for Docker Hub."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return DOCKER_HUB if first in ("index.docker.io", DOCKER_HUB_API) else first
    return DOCKER_HUB


def split_image(image: str) -> tuple[str, str]:
    """``host[:port]/path`` as (the registry's API host, repository); Docker Hub names as docker.io's."""
    name = registry_name(image)
    repo = (
        image.partition("/")[2] if name != DOCKER_HUB or image.startswith(("docker.io/", "index.docker.io/")) else image
    )
    if name == DOCKER_HUB and "/" not in repo:
        repo = f"library/{repo}"
    return (DOCKER_HUB_API if name == DOCKER_HUB else name), repo


@contextlib.contextmanager
def containers_auth_file(auth_file: str | None, registry: str) -> Iterator[str]:
    """The auth file for containers/image (skopeo, buildah) to read for ``registry``.

    The workspace's own file when containers/image reads it as Docker would. An empty one when
    there is none (so no default location of the user is read). A private copy, removed
    afterwards, when it names a ``credsStore`` that would apply to ``registry``: Docker asks that
    store for every registry without its own ``credHelpers`` entry, containers/image ignores it,
    so the copy gets ``credHelpers[registry] = <store>``.
    """
    config: dict[str, object] = {}
    if auth_file:
        try:
            loaded = json.loads(Path(auth_file).read_text())
        except (OSError, ValueError) as err:
            raise StepError(f"cannot read the registry auth file {auth_file}: {err}") from err
        config = loaded if isinstance(loaded, dict) else {}
    store = config.get("credsStore")
    listed = config.get("credHelpers")
    helpers: dict[str, object] = dict(listed) if isinstance(listed, dict) else {}
    translate = isinstance(store, str) and bool(store) and registry not in helpers
    if auth_file and not translate:
        yield auth_file
        return
    if translate:
        config["credHelpers"] = {**helpers, registry: store}
    with tempfile.TemporaryDirectory(prefix="druppie-auth-") as tmp:
        path = Path(tmp) / "auth.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(config))
        yield str(path)


def _skopeo(args: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run skopeo (no prompt: stdin is empty); its output as bytes, for the manifest's exact digest."""
    skopeo = tools.require("skopeo", SKOPEO_HINT)
    try:
        return subprocess.run([skopeo, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise StepError(f"skopeo {args[0]} did not answer within {timeout:.0f}s") from err


def _said(proc: subprocess.CompletedProcess[bytes]) -> str:
    """skopeo's reason, one line: the ``msg`` of its fatal log line, else its last line."""
    text = proc.stderr.decode(errors="replace")
    messages = re.findall(r'msg="((?:[^"\\]|\\.)*)"', text)
    if messages:
        return " ".join(messages[-1].replace('\\"', '"').split())
    lines = [line.strip() for line in (text + proc.stdout.decode(errors="replace")).splitlines() if line.strip()]
    return (lines or ["no output"])[-1]


def _transport_flags(tls_verify: bool, cert_dir: str | None) -> list[str]:
    return [f"--tls-verify={str(tls_verify).lower()}"] + (["--cert-dir", cert_dir] if cert_dir else [])


def login_user(image: str, auth_file: str | None, timeout: float = 30) -> str | None:
    """The user name of the login containers/image finds for ``image``'s registry, or None.

    Offline (``skopeo login --get-login`` reads the auth file and runs the credential helper
    only); the password is never read here.
    """
    registry = registry_name(image)
    with containers_auth_file(auth_file, registry) as auth:
        proc = _skopeo(["login", "--get-login", "--authfile", auth, registry], timeout)
    if proc.returncode != 0:
        if "not logged into" in _said(proc):
            return None
        raise StepError(f"cannot read the login for {registry} from the auth file: {_said(proc)}")
    return proc.stdout.decode(errors="replace").strip() or None


def ssl_context(tls_verify: bool, cert_dir: str | None) -> ssl.SSLContext | None:
    if not tls_verify:
        return ssl._create_unverified_context()  # noqa: S323 - the user said --tls-verify=false
    if not cert_dir:
        return None
    context = ssl.create_default_context()
    for cert in sorted(Path(cert_dir).glob("*.crt")):
        context.load_verify_locations(cafile=str(cert))
    return context


def ping(host: str, tls_verify: bool, cert_dir: str | None) -> tuple[str, bool]:
    """GET /v2/ without credentials: (the scheme that answered, whether it asks for credentials)."""
    context = ssl_context(tls_verify, cert_dir)
    last_error = ""
    for scheme in ["https"] if tls_verify else ["https", "http"]:
        url = f"{scheme}://{host}/v2/"
        request = urllib.request.Request(url)  # noqa: S310 - an http(s) URL we made
        try:
            urllib.request.urlopen(request, timeout=20, context=context).close()  # noqa: S310 - http(s) only
            return scheme, False
        except urllib.error.HTTPError as err:
            if err.code != 401:
                raise StepError(
                    f"registry {host} answered HTTP {err.code} on /v2/ (not a container registry?)"
                ) from err
            return scheme, True
        except (urllib.error.URLError, OSError) as err:
            last_error = str(getattr(err, "reason", err))
    raise StepError(f"registry {host} unreachable: {last_error}")


def check_access(image: str, auth_file: str | None = None, tls_verify: bool = True, cert_dir: str | None = None) -> str:
    """Before a long build: the registry answers and takes our login. Returns the URL scheme.

    StepError naming the registry when it is unreachable, wants credentials we lack, or refuses ours.
    """
    host, _ = split_image(image)
    registry = registry_name(image)
    scheme, wants_login = ping(host, tls_verify, cert_dir)
    if not wants_login:
        return scheme
    user = login_user(image, auth_file)
    if user is None:
        raise StepError(
            f"registry {host} requires credentials: bind the dockerconfig workspace "
            f"(a Secret of type kubernetes.io/dockerconfigjson) with an entry for {registry}"
        )
    with containers_auth_file(auth_file, registry) as auth:
        # With a login already in the file, `skopeo login` checks it against the registry and
        # changes nothing; were it refused, it would ask for another on the (empty) stdin.
        proc = _skopeo(["login", "--authfile", auth, *_transport_flags(tls_verify, cert_dir), registry], 60)
    if proc.returncode == 0:
        return scheme
    said = _said(proc)
    if b"Existing credentials are invalid" in proc.stdout or REFUSED.search(said):
        raise StepError(f"registry {host} refused the credentials for user {user!r}; check the dockerconfig workspace")
    if UNREACHABLE.search(said):
        raise StepError(f"registry {host} unreachable: {said}")
    raise StepError(f"registry {host}: cannot check the login of {user!r}: {said}")


def served_digest(
    image: str, tag: str, auth_file: str | None = None, tls_verify: bool = True, cert_dir: str | None = None
) -> str:
    """The digest of the manifest the registry serves for ``image:tag`` (what its Docker-Content-Digest
    says: sha256 of the exact bytes); NoSuchTagError when it has no such tag, StepError otherwise."""
    host, _ = split_image(image)
    registry = registry_name(image)
    with containers_auth_file(auth_file, registry) as auth:
        proc = _skopeo(
            [
                "inspect",
                "--raw",
                "--authfile",
                auth,
                *_transport_flags(tls_verify, cert_dir),
                f"docker://{image}:{tag}",
            ],
            60,
        )
    if proc.returncode == 0 and proc.stdout:
        return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()
    said = _said(proc)
    if re.search(r"manifest unknown|not found", said, re.I):
        raise NoSuchTagError(f"registry {host} has no {image}:{tag}: {said}")
    if REFUSED.search(said):
        raise StepError(f"registry {host} refused to show {image}:{tag}: {said}")
    if UNREACHABLE.search(said):
        raise StepError(f"registry {host} unreachable: {said}")
    raise StepError(f"registry {host} served no digest for {image}:{tag}: {said}")
