"""Ask a container registry (OCI distribution API) what digest it serves for a tag.

The build step checks what it hands over: after the push, the registry itself must serve the
digest buildah reported. A few dozen lines of HTTP instead of one more tool in the image; the
credentials come from the same docker config file buildah used, and never reach a log.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .errors import StepError

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def split_image(image: str) -> tuple[str, str]:
    """``host[:port]/path`` as (registry host, repository); Docker Hub names as docker.io's."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repo = first, rest
    else:
        host, repo = "registry-1.docker.io", image if rest else f"library/{image}"
    return ("registry-1.docker.io" if host == "docker.io" else host), repo


def credentials_for(host: str, auth_file: str | None) -> tuple[str, str] | None:
    """(user, password) for ``host`` from a docker config.json (``auths``), or None."""
    if not auth_file or not Path(auth_file).is_file():
        return None
    try:
        auths = json.loads(Path(auth_file).read_text()).get("auths", {})
    except (OSError, ValueError, AttributeError):
        return None
    for key, entry in auths.items():
        if re.sub(r"^https?://", "", key).split("/")[0] in (host, "docker.io" if "docker.io" in host else host):
            if entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return user, password
            if entry.get("username"):
                return entry["username"], entry.get("password", "")
    return None


def _request(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> urllib.request.Request:
    """A request for an http(s) URL, nothing else: a registry's challenge must not make us open a file."""
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise StepError(f"the registry pointed to {url!r}, which is not an http(s) URL")
    return urllib.request.Request(url, method=method, headers=headers or {})  # noqa: S310 - http(s), checked above


def _open(request: urllib.request.Request, timeout: float, context: ssl.SSLContext | None) -> http.client.HTTPResponse:
    response: http.client.HTTPResponse = urllib.request.urlopen(  # noqa: S310 - made by _request: http(s) only
        request, timeout=timeout, context=context
    )
    return response


def _basic(creds: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


def _bearer_token(challenge: str, creds: tuple[str, str] | None, context: ssl.SSLContext | None) -> str:
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    query = urllib.parse.urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
    request = _request(f"{params.get('realm', '')}?{query}")
    if creds:
        request.add_header("Authorization", _basic(creds))
    with _open(request, 30, context) as response:
        body = json.load(response)
    return "Bearer " + (body.get("token") or body.get("access_token") or "")


def served_digest(image: str, tag: str, auth_file: str | None = None, tls_verify: bool = True) -> str:
    """The ``Docker-Content-Digest`` the registry serves for ``image:tag``; StepError when none."""
    host, repo = split_image(image)
    creds = credentials_for(host, auth_file)
    context = None if tls_verify else ssl._create_unverified_context()  # noqa: S323 - the user said --tls-verify=false
    schemes = ["https"] if tls_verify else ["https", "http"]
    last_error = ""
    for scheme in schemes:
        url = f"{scheme}://{host}/v2/{repo}/manifests/{tag}"
        authorization = None
        for _ in range(2):  # the second round answers a 401 challenge
            request = _request(url, method="HEAD", headers={"Accept": MANIFEST_TYPES})
            if authorization:
                request.add_header("Authorization", authorization)
            try:
                with _open(request, 30, context) as response:
                    digest = response.headers.get("Docker-Content-Digest", "")
                    if not digest:
                        raise StepError(f"registry {host} served no digest for {image}:{tag}")
                    return digest
            except urllib.error.HTTPError as err:
                challenge = err.headers.get("WWW-Authenticate", "")
                if err.code == 401 and authorization is None and challenge.lower().startswith("bearer"):
                    authorization = _bearer_token(challenge, creds, context)
                    continue
                if err.code == 401 and authorization is None and creds:
                    authorization = _basic(creds)
                    continue
                raise StepError(f"registry {host} answered HTTP {err.code} for {image}:{tag}") from err
            except (urllib.error.URLError, OSError) as err:
                last_error = str(getattr(err, "reason", err))
                break
    raise StepError(f"registry {host} unreachable: {last_error}")


def check_access(image: str, auth_file: str | None = None, tls_verify: bool = True) -> str:
    """Before a long build: the registry answers and takes our credentials. Returns the URL scheme.

    StepError naming the registry when it is unreachable, wants credentials we lack, or refuses ours.
    """
    host, repo = split_image(image)
    creds = credentials_for(host, auth_file)
    context = None if tls_verify else ssl._create_unverified_context()  # noqa: S323 - the user said --tls-verify=false
    last_error = ""
    for scheme in ["https"] if tls_verify else ["https", "http"]:
        try:
            _open(_request(f"{scheme}://{host}/v2/"), 20, context).close()
            return scheme
        except urllib.error.HTTPError as err:
            if err.code != 401:
                raise StepError(
                    f"registry {host} answered HTTP {err.code} on /v2/ (not a container registry?)"
                ) from err
            challenge = err.headers.get("WWW-Authenticate", "")
        except (urllib.error.URLError, OSError) as err:
            last_error = str(getattr(err, "reason", err))
            continue
        if not creds:
            raise StepError(
                f"registry {host} requires credentials: bind the dockerconfig workspace "
                f"(a Secret of type kubernetes.io/dockerconfigjson) with an entry for {host}"
            )
        try:
            if challenge.lower().startswith("bearer"):
                scoped = re.sub(r'scope="[^"]*"', "", challenge) + f',scope="repository:{repo}:pull,push"'
                authorization = _bearer_token(scoped, creds, context)
            else:
                authorization = _basic(creds)
            request = _request(f"{scheme}://{host}/v2/", headers={"Authorization": authorization})
            _open(request, 20, context).close()
            return scheme
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):
                raise StepError(
                    f"registry {host} refused the credentials for user {creds[0]!r} "
                    f"(HTTP {err.code}); check the dockerconfig workspace"
                ) from err
            raise StepError(f"registry {host} answered HTTP {err.code} when logging in") from err
    raise StepError(f"registry {host} unreachable: {last_error}")
