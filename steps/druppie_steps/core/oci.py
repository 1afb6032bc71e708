"""Push and pull an OCI artifact over the registry's distribution API (HTTP), in Python alone.

What skopeo does for the build image, without a binary: the scan image can pull the advisory
database with nothing but the step program. A reference is ``host[:port]/repository[:tag][@digest]``
(no tag and no digest: ``latest``); every blob and manifest is checked against its sha256 digest as
it arrives, a manifest pulled by digest must be exactly that one, and a push is checked against
what the registry then serves.

The login for the registry comes from a docker ``config.json`` (the Tasks' dockerconfig workspace,
a kubernetes.io/dockerconfigjson Secret): ``credHelpers[<registry>]``, else an ``auths`` entry
keyed by the registry (``host:port``, ``https://host/v2/``, Docker Hub's
``https://index.docker.io/v1/``) with ``auth`` or ``username``/``password``, else ``credsStore``;
a helper is asked as Docker asks it (``docker-credential-<name> get``, the server on stdin). The
registry's challenge decides how it is sent: HTTP Basic, or a Bearer token from its token service
(the login as Basic there, or anonymously). The secret is registered for redaction and sent only
to the registry and its token service, never to a redirect's other host.

HTTPS is verified (``ca_dir``: extra CA certificates, ``*.crt``); plain HTTP only with
``tls_verify=False``, for test registries.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import registry, tools
from .errors import InvalidInputError, StepError
from .redact import register_secret

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join(
    (
        MANIFEST_TYPE,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
CHUNK = 1 << 20
MAX_MANIFEST = 4 << 20  # the distribution spec's limit for a manifest
MAX_REDIRECTS = 5
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"  # Docker Hub's key in config.json and for helpers
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?::\d+)?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Reference:
    """``registry/repository:tag@digest``; ``host`` is where its API answers (Docker Hub's differs)."""

    registry: str  # containers/image's name: host[:port], docker.io for Docker Hub
    host: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def version(self) -> str:
        """What the manifest URL names: the digest when there is one, else the tag."""
        return self.digest or self.tag

    def with_tag(self, tag: str) -> Reference:
        return dataclasses.replace(self, tag=tag, digest="")

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_reference(text: str, flag: str) -> Reference:
    """``host[:port]/repo[:tag][@sha256:...]``; InvalidInputError naming ``flag`` and the value otherwise."""
    value = text.strip()
    rest, at, digest = value.partition("@")
    head, slash, last = rest.rpartition("/")
    name, colon, tag = last.partition(":")
    name = f"{head}{slash}{name}"

    def bad(why: str) -> InvalidInputError:
        return InvalidInputError(
            f"invalid {flag} {text!r}: {why}; use host[:port]/repository:tag, "
            f"e.g. registry.example/druppie/osv-db:latest"
        )

    if not value or not slash:
        raise bad("no registry and repository")
    if at and not _DIGEST.fullmatch(digest):
        raise bad(f"{digest!r} is not a sha256 digest (sha256: and 64 hex digits)")
    if colon and not _TAG.fullmatch(tag):
        raise bad(f"{tag!r} is not a tag")
    api, repository = registry.split_image(name)
    if not _HOST.fullmatch(api) or not _REPOSITORY.fullmatch(repository):
        raise bad("not a registry host and a lowercase repository path")
    return Reference(registry.registry_name(name), api, repository, tag or ("" if at else "latest"), digest)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256 digest, size) of a file, read in chunks."""
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            sha.update(chunk)
            size += len(chunk)
    return "sha256:" + sha.hexdigest(), size


# ---- the login ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    user: str
    secret: str = dataclasses.field(repr=False)


def _key_registry(key: str) -> str:
    """An ``auths`` key as a registry name: scheme and path dropped, Docker Hub's names as docker.io."""
    host = re.sub(r"^[a-z]+://", "", key.strip()).split("/", 1)[0]
    return registry.DOCKER_HUB if host in ("index.docker.io", registry.DOCKER_HUB_API, registry.DOCKER_HUB) else host


def login_for(reg: str, auth_file: str | None) -> Login | None:
    """The login a docker config.json holds for registry ``reg`` (containers/image's name), or None."""
    if not auth_file:
        return None
    try:
        config = json.loads(Path(auth_file).read_text())
    except (OSError, ValueError) as err:
        raise StepError(f"cannot read the registry auth file {auth_file}: {err}") from err
    if not isinstance(config, dict):
        return None
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(reg), str) and helpers[reg]:
        return _from_helper(helpers[reg], reg)
    auths = config.get("auths")
    for key, entry in auths.items() if isinstance(auths, dict) else []:
        if _key_registry(key) != reg or not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            raise StepError(
                f"the registry auth file's entry for {reg} holds an identity token, which druppie-step cannot "
                f"use; give a user name and password (or access token) instead"
            )
        if entry.get("auth"):
            try:
                user, _, secret = base64.b64decode(str(entry["auth"])).decode().partition(":")
            except ValueError as err:
                raise StepError(
                    f"the registry auth file's entry for {reg}: 'auth' is not base64 of user:password"
                ) from err
            return _login(user, secret)
        if entry.get("username"):
            return _login(str(entry["username"]), str(entry.get("password", "")))
    store = config.get("credsStore")
    return _from_helper(store, reg) if isinstance(store, str) and store else None


def _login(user: str, secret: str) -> Login:
    register_secret(secret)
    return Login(user, secret)


def _from_helper(helper: str, reg: str) -> Login | None:
    program = tools.require(
        f"docker-credential-{helper}", f"the registry auth file names the credential helper {helper!r} for {reg}"
    )
    server = DOCKER_HUB_SERVER if reg == registry.DOCKER_HUB else reg
    try:
        proc = subprocess.run([program, "get"], input=server.encode(), capture_output=True, timeout=30)
    except subprocess.TimeoutExpired as err:
        raise StepError(f"credential helper docker-credential-{helper} did not answer within 30s") from err
    if proc.returncode != 0:
        said = (proc.stdout + proc.stderr).decode(errors="replace").strip()
        if "credentials not found" in said.lower():
            return None
        raise StepError(f"credential helper docker-credential-{helper} failed for {reg}: {said.splitlines()[-1:]}")
    try:
        answer = json.loads(proc.stdout)
        user, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError) as err:
        raise StepError(f"credential helper docker-credential-{helper} gave no Username and Secret for {reg}") from err
    if user == "<token>":
        raise StepError(f"credential helper docker-credential-{helper} gave an identity token for {reg}, which "
                        f"druppie-step cannot use")  # fmt: skip
    return _login(user, secret)


# ---- the session ----------------------------------------------------------------------------


def _web_url(url: str, what: str) -> str:
    """``url`` if it is http(s): a registry's redirect or token realm may not lead to a file or elsewhere."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise StepError(f"the registry sent {what} to {url!r}, which is not an http(s) URL")
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by hand: the registry's Authorization must not go to another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Session:
    """Requests to one repository of one registry, authenticated as its challenge asks."""

    ref: Reference
    auth_file: str | None = None
    tls_verify: bool = True
    ca_dir: str | None = None
    push: bool = False  # ask for push rights too
    deadline: float = float("inf")  # time.monotonic() by which everything must be done
    scheme: str = ""
    _authorization: str = ""
    _login: Login | None = None
    _login_read: bool = False

    def __post_init__(self) -> None:
        context = registry.ssl_context(self.tls_verify, self.ca_dir)
        self._opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPSHandler(context=context))

    # -- plumbing --

    def _timeout(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StepError(f"registry {self.ref.host}: not done within --timeout")
        return min(60.0, left)

    def _url(self, path: str) -> str:
        if not self.scheme:
            self.scheme, _ = registry.ping(self.ref.host, self.tls_verify, self.ca_dir)
        return f"{self.scheme}://{self.ref.host}/v2/{self.ref.repository}/{path}"

    def login(self) -> Login | None:
        if not self._login_read:
            self._login, self._login_read = login_for(self.ref.registry, self.auth_file), True
        return self._login

    def request(
        self,
        method: str,
        path: str,
        what: str,
        data: bytes | IO[bytes] | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        """The open response of ``method`` on ``path`` (relative to the repository, or a full URL), whose
        status is one of ``ok``; 401 is answered once by authenticating, redirects are followed."""
        url = path if "://" in path else self._url(path)
        start = data.tell() if data is not None and not isinstance(data, bytes) else 0
        authenticated = False
        for _ in range(MAX_REDIRECTS + 2):
            request = urllib.request.Request(  # noqa: S310 - _web_url: http(s) only
                _web_url(url, what), data=data, method=method, headers=dict(headers or {})
            )
            same_host = urllib.parse.urlsplit(url).netloc == self.ref.host
            if self._authorization and same_host:
                request.add_header("Authorization", self._authorization)
            try:
                response = self._opener.open(request, timeout=self._timeout())
            except urllib.error.HTTPError as err:
                err.close()
                if err.code == 401 and same_host and not authenticated:
                    self._authenticate(err.headers.get("WWW-Authenticate", ""))
                    authenticated = True
                elif err.code in (301, 302, 303, 307, 308) and err.headers.get("Location"):
                    url = urllib.parse.urljoin(url, err.headers["Location"])
                    method = "GET" if err.code == 303 else method
                else:
                    raise self._refusal(err.code, method, what) from err
                if data is not None and not isinstance(data, bytes):
                    data.seek(start)
                continue
            except (urllib.error.URLError, OSError) as err:
                raise StepError(f"registry {self.ref.host} unreachable: {getattr(err, 'reason', err)}") from err
            if response.status not in ok:
                response.close()
                raise self._refusal(response.status, method, what)
            return response
        raise StepError(f"registry {self.ref.host}: too many redirects for {what}")

    def _refusal(self, code: int, method: str, what: str) -> StepError:
        host, login = self.ref.host, self.login()
        if code == 401:
            if login is None:
                return StepError(
                    f"registry {host} requires credentials for {self.ref.name}: bind the dockerconfig workspace "
                    f"(a Secret of type kubernetes.io/dockerconfigjson) with an entry for {self.ref.registry}"
                )
            return StepError(f"registry {host} refused the credentials for user {login.user!r} on {self.ref.name}")
        if code == 403:
            right = "push to" if self.push else "pull from"
            return StepError(f"registry {host} denied {self.ref.name}: the login may not {right} it")
        if code == 404:
            return registry.NoSuchTagError(f"registry {host} has no {what}")
        return StepError(f"registry {host} answered HTTP {code} to {method} {what}")

    def _authenticate(self, challenge: str) -> None:
        scheme, _, rest = challenge.strip().partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(rest))
        login = self.login()
        if scheme.lower() == "basic":
            if login is None:
                raise self._refusal(401, "", "")
            token = base64.b64encode(f"{login.user}:{login.secret}".encode()).decode()
            register_secret(token)
            self._authorization = f"Basic {token}"
            return
        if scheme.lower() != "bearer" or not params.get("realm"):
            raise StepError(f"registry {self.ref.host} asks for an authentication druppie-step does not know: {scheme}")
        query = {"scope": f"repository:{self.ref.repository}:{'pull,push' if self.push else 'pull'}"}
        if params.get("service"):
            query["service"] = params["service"]
        realm = params["realm"]
        url = f"{realm}{'&' if '?' in realm else '?'}{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(_web_url(url, "its token service"))  # noqa: S310 - http(s) only
        if login is not None:
            basic = base64.b64encode(f"{login.user}:{login.secret}".encode()).decode()
            register_secret(basic)
            request.add_header("Authorization", f"Basic {basic}")
        try:
            with self._opener.open(request, timeout=self._timeout()) as response:
                answer = json.loads(response.read(1 << 20))
        except urllib.error.HTTPError as err:
            err.close()
            raise self._refusal(401 if err.code in (401, 403) else err.code, "GET", f"a token from {realm}") from err
        except (urllib.error.URLError, OSError) as err:
            raise StepError(f"token service {realm} unreachable: {getattr(err, 'reason', err)}") from err
        except ValueError as err:
            raise StepError(f"token service {realm} answered no JSON") from err
        found = (answer.get("token") or answer.get("access_token")) if isinstance(answer, dict) else None
        if not isinstance(found, str) or not found:
            raise StepError(f"token service {realm} gave no token")
        register_secret(found)
        self._authorization = f"Bearer {found}"

    # -- what the distribution API offers --

    def manifest(self, ref: Reference | None = None) -> tuple[bytes, str]:
        """The manifest's exact bytes and digest, checked against the reference's digest and the registry's
        Docker-Content-Digest."""
        ref = ref or self.ref
        with self.request("GET", f"manifests/{ref.version}", str(ref), headers={"Accept": ACCEPT}) as response:
            data = response.read(MAX_MANIFEST + 1)
            said = response.headers.get("Docker-Content-Digest", "")
        if len(data) > MAX_MANIFEST:
            raise StepError(f"the manifest of {ref} is larger than {MAX_MANIFEST >> 20} MiB")
        digest = sha256_digest(data)
        if ref.digest and digest != ref.digest:
            raise StepError(f"registry {self.ref.host} served a manifest for {ref} whose digest is {digest}")
        if said and said != digest:
            raise StepError(f"registry {self.ref.host} says {ref} is {said}, but its manifest's digest is {digest}")
        return data, digest

    def blob(self, descriptor: dict[str, Any], dest: IO[bytes], max_size: int) -> None:
        """Write the blob ``descriptor`` names into ``dest``, checking its size and sha256 digest."""
        digest, size = str(descriptor.get("digest", "")), descriptor.get("size")
        if not _DIGEST.fullmatch(digest) or not isinstance(size, int) or not 0 <= size <= max_size:
            raise StepError(f"{self.ref} names a blob without a sha256 digest and a size up to {max_size} bytes")
        sha, got = hashlib.sha256(), 0
        with self.request("GET", f"blobs/{digest}", f"blob {digest} of {self.ref.name}") as response:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                got += len(chunk)
                if got > size:
                    break
                sha.update(chunk)
                dest.write(chunk)
                self._timeout()
        if got != size or "sha256:" + sha.hexdigest() != digest:
            raise StepError(
                f"blob {digest} of {self.ref.name} arrived corrupt ({got} bytes, expected {size}, or another "
                f"digest); nothing of it is used"
            )

    def has_blob(self, digest: str) -> bool:
        try:
            self.request("HEAD", f"blobs/{digest}", f"blob {digest}").close()
        except registry.NoSuchTagError:
            return False
        return True

    def push_blob(self, path: Path, digest: str, size: int) -> None:
        """Upload a blob in one PUT (the monolithic upload every registry takes), unless it is there."""
        if self.has_blob(digest):
            return
        with self.request("POST", "blobs/uploads/", f"an upload to {self.ref.name}", b"", ok=(202,)) as response:
            location = response.headers.get("Location", "")
        if not location:
            raise StepError(f"registry {self.ref.host} started an upload without a Location")
        url = urllib.parse.urljoin(self._url("blobs/uploads/"), location)
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        with path.open("rb") as f:
            self.request("PUT", url, f"blob {digest}", f, headers, ok=(201,)).close()

    def push_manifest(self, tag: str, manifest: bytes) -> str:
        """PUT the manifest under ``tag``; the digest the registry then serves for it, which must be ours."""
        digest = sha256_digest(manifest)
        target = self.ref.with_tag(tag)
        with self.request(
            "PUT", f"manifests/{tag}", str(target), manifest, {"Content-Type": MANIFEST_TYPE}, ok=(201,)
        ) as response:
            said = response.headers.get("Docker-Content-Digest", "")
        if said and said != digest:
            raise StepError(f"registry {self.ref.host} stored {target} as {said}, not as the pushed {digest}")
        _, served = self.manifest(target)
        if served != digest:
            raise StepError(f"registry {self.ref.host} serves {target} as {served}, not as the pushed {digest}")
        return digest


def descriptors(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The config and the layers of an image manifest."""
    if isinstance(manifest.get("config"), dict):
        yield manifest["config"]
    for layer in manifest.get("layers") or []:
        if isinstance(layer, dict):
            yield layer
