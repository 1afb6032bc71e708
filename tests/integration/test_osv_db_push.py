"""druppie-step osv-db-push and the pull behind scan --osv-db-ref, against real registries (Debian's
docker-registry on loopback, open and with htpasswd auth) and, for what a registry of this machine
cannot show, a small hand-made one: a Bearer token service, a blob served by a redirect to
another host (which must not get the registry's token), and a registry that serves other bytes
than the digest it was asked for. OSV's bucket is a local HTTP server serving the fixture
database as PyPI/all.zip."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from druppie_steps.core import oci, registry
from druppie_steps.core.errors import StepError
from druppie_steps.scanners import osv, osv_artifact
from hack import catalog
from testbed.registry import start_registry

OSV_DB = catalog.ROOT / "tests" / "fixtures" / "osv-db"
USER, PASSWORD = "refresh", "Push-Only-Pw-2718"


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("auth-registry"), user=USER, password=PASSWORD)
    yield reg
    reg.stop()


def fixture_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((OSV_DB / "PyPI").glob("*.json")):
            archive.write(path, path.name)
    return buffer.getvalue()


@contextmanager
def serving(routes: dict[str, tuple[int, dict[str, str], bytes]], seen: list | None = None) -> Iterator[str]:
    """An HTTP server on loopback answering GET/HEAD/POST/PUT of ``routes`` (path -> status, headers,
    body); every request's (method, path, Authorization) goes into ``seen``. Yields host:port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            path = self.path.split("?")[0]
            if seen is not None:
                seen.append((self.command, path, self.headers.get("Authorization", "")))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            route = routes.get(path)
            if callable(route):
                route = route(self)
            status, headers, body = route or (404, {}, b'{"errors": [{"code": "NAME_UNKNOWN"}]}')
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = _answer  # noqa: N815

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def pulled_files(ref: str, tmp_path: Path, auth_file: str | None = None) -> tuple[osv_artifact.Pulled, dict]:
    session = oci.Session(oci.parse_reference(ref, "--ref"), auth_file, tls_verify=False)
    (tmp_path / "pull").mkdir()
    pulled = osv_artifact.pull(session, tmp_path / "pull")
    return pulled, {
        p.relative_to(pulled.folder).as_posix(): p.read_bytes() for p in pulled.folder.rglob("*") if p.is_file()
    }


# ---- --download -----------------------------------------------------------------------------------


def test_download_checks_stamps_and_pushes_what_osv_publishes(run_step, open_registry, tmp_path):
    zipped = fixture_zip()
    seen: list = []
    with serving({"/PyPI/all.zip": (200, {}, zipped)}, seen) as osv_host:
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        ref = f"{open_registry.host}/druppie/osv-db:latest"
        run = run_step("osv-db-push", "--download", "PyPI", "--osv-url", f"http://{osv_host}", "--ref", ref,
                       "--no-tls-verify")  # fmt: skip
    assert run.returncode == 0, run.output
    assert seen == [("GET", "/PyPI/all.zip", "")]
    updated = osv.parse_time(run.results["updated"])
    assert updated is not None and before <= updated <= dt.datetime.now(dt.UTC)
    tag = osv_artifact.dated_tag(updated)
    assert run.results == {
        "ref": ref,
        "digest": run.results["digest"],
        "dated-ref": f"{open_registry.host}/druppie/osv-db:{tag}",
        "updated": run.results["updated"],
        "ecosystems": "PyPI",
    }
    assert run.stdout.startswith(f"osv-db-push: ref={ref} digest=sha256:")
    pulled, files = pulled_files(run.results["dated-ref"], tmp_path)
    assert pulled.digest == run.results["digest"]
    assert files == {"PyPI/all.zip": zipped, "last-updated": f"{run.results['updated']}\n".encode()}
    assert pulled.claimed == {f"its {osv_artifact.UPDATED} annotation": updated, "its config": updated}


@pytest.mark.parametrize(
    "route,why",
    [
        (
            (200, {}, b"PK\x03\x04 not really a zip"),
            "is not a sound zip archive (File is not a zip file); nothing pushed",
        ),
        ((404, {}, b"NoSuchKey"), "HTTP 404"),
    ],
)
def test_a_failed_download_pushes_nothing(run_step, open_registry, tmp_path, route, why):
    ref = f"{open_registry.host}/druppie/failed-refresh:latest"
    with serving({"/PyPI/all.zip": route}) as osv_host:
        run = run_step("osv-db-push", "--download", "PyPI,npm", "--osv-url", f"http://{osv_host}", "--ref", ref,
                       "--no-tls-verify")  # fmt: skip
    assert run.returncode == 1 and run.results == {}, run.output
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"http://{osv_host}/PyPI/all.zip" in last and why in last, last
    with pytest.raises(registry.NoSuchTagError):
        oci.Session(oci.parse_reference(ref, "--ref"), tls_verify=False).manifest()


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "give exactly one of --db (a database folder) and --download (ecosystems)"),
        (["--db", "x", "--download", "PyPI"], "give exactly one of --db"),
        (["--download", "PyPI", "--osv-url", "file:///etc"], "invalid --osv-url 'file:///etc': an http(s) URL"),
        (["--db", str(OSV_DB), "--ref", f"r.example/o@sha256:{'a' * 64}"], "a push names a tag, not a digest"),
        (["--db", "/nowhere"], "invalid --db '/nowhere': not a folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_step, args, message):
    ref = [] if "--ref" in args else ["--ref", "r.example/druppie/osv-db:latest"]
    run = run_step("osv-db-push", *args, *ref)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.output
    assert message in run.stderr


def test_a_database_dated_in_the_future_is_not_pushed(run_step, open_registry, tmp_path):
    db = tmp_path / "db"
    (db / "PyPI").mkdir(parents=True)
    (db / "PyPI" / "a.json").write_text('{"id": "X", "modified": "2020-01-01T00:00:00Z"}')
    (db / "last-updated").write_text("2099-01-01T00:00:00Z\n")
    run = run_step(
        "osv-db-push", "--db", str(db), "--ref", f"{open_registry.host}/druppie/future:latest", "--no-tls-verify"
    )
    assert run.returncode == 2 and "dated 2099-01-01T00:00Z (from last-updated), in the future" in run.stderr


# ---- logins -----------------------------------------------------------------------------------------


def test_a_registry_with_a_login_takes_the_dockerconfig_and_names_what_is_wrong(run_step, auth_registry, tmp_path):
    ref = f"{auth_registry.host}/druppie/osv-db:latest"
    anonymous = run_step("osv-db-push", "--db", str(OSV_DB), "--ref", ref, "--no-tls-verify")
    assert anonymous.returncode == 1
    assert anonymous.stderr.strip().splitlines()[-1] == (
        f"error: registry {auth_registry.host} requires credentials for {auth_registry.host}/druppie/osv-db: "
        f"bind the dockerconfig workspace (a Secret of type kubernetes.io/dockerconfigjson) with an entry for "
        f"{auth_registry.host}"
    )
    wrong = auth_registry.auth_file(tmp_path / "wrong", password="not-the-password-99")
    refused = run_step("osv-db-push", "--db", str(OSV_DB), "--ref", ref, "--no-tls-verify", "--dockerconfig",
                       str(wrong.parent))  # fmt: skip
    assert refused.returncode == 1 and "not-the-password-99" not in refused.output
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: registry {auth_registry.host} refused the credentials for user '{USER}' on "
        f"{auth_registry.host}/druppie/osv-db"
    )
    right = auth_registry.auth_file(tmp_path / "right")
    run = run_step("osv-db-push", "--db", str(OSV_DB), "--ref", ref, "--no-tls-verify", "--dockerconfig",
                   str(right.parent), "--no-dated-tag")  # fmt: skip
    assert run.returncode == 0 and run.results["dated-ref"] == "" and PASSWORD not in run.output, run.output
    pulled, files = pulled_files(ref, tmp_path, str(right))
    assert pulled.digest == run.results["digest"] and sorted(files) == [
        "PyPI/GHSA-8q59-q68h-6hv4.json",
        "PyPI/GHSA-9wx4-h78v-vm56.json",
        "README.md",  # the folder as it is
    ]


# ---- what docker-registry cannot show: a hand-made registry ---------------------------------------


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def artifact(db: Path, work: Path) -> tuple[bytes, bytes, bytes]:
    """(manifest, config, layer) as osv-db-push makes them."""
    layer = osv_artifact.pack(db, work / "layer.tar").read_bytes()
    config = json.dumps({"updated": "2026-11-26T06:17:00Z"}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": oci.MANIFEST_TYPE,
        "config": {"mediaType": osv_artifact.CONFIG_TYPE, "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": osv_artifact.LAYER_TYPE, "digest": digest_of(layer), "size": len(layer)}],
    }).encode()  # fmt: skip
    return manifest, config, layer


def test_a_bearer_token_is_fetched_and_a_redirected_blob_gets_no_credentials(tmp_path):
    """As GHCR, Harbor or Docker Hub answer: 401 with a Bearer challenge, a token service that takes
    the login, and blobs served by a redirect to storage elsewhere, which must not see the token."""
    db = tmp_path / "db"
    (db / "PyPI").mkdir(parents=True)
    (db / "PyPI" / "a.json").write_text('{"id": "X", "modified": "2026-11-26T06:17:00Z"}')
    manifest, config, layer = artifact(db, tmp_path)
    seen: list = []
    token = "tok-" + "9" * 20
    with serving({f"/blobs/{digest_of(layer)}": (200, {}, layer)}, seen) as storage:

        def guarded(body: bytes, redirect: bool = False):
            def answer(handler):
                if handler.headers.get("Authorization") != f"Bearer {token}":
                    here = "{}:{}".format(*handler.server.server_address)
                    challenge = f'Bearer realm="http://{here}/token",service="reg",scope="x"'
                    return 401, {"WWW-Authenticate": challenge}, b""
                if redirect:
                    return 307, {"Location": f"http://{storage}/blobs/{digest_of(layer)}"}, b""
                return 200, {"Docker-Content-Digest": digest_of(body)}, body

            return answer

        def token_service(handler):
            ok = handler.headers.get("Authorization") == "Basic " + base64.b64encode(b"ci:Reg-Pw-1").decode()
            assert "scope=repository%3Adruppie%2Fosv-db%3Apull" in handler.path and "service=reg" in handler.path
            return (200, {}, json.dumps({"token": token}).encode()) if ok else (401, {}, b"")

        routes = {
            "/v2/": (401, {"WWW-Authenticate": 'Bearer realm="x"'}, b""),
            "/token": token_service,
            "/v2/druppie/osv-db/manifests/latest": guarded(manifest),
            f"/v2/druppie/osv-db/blobs/{digest_of(config)}": guarded(config),
            f"/v2/druppie/osv-db/blobs/{digest_of(layer)}": guarded(layer, redirect=True),
        }
        with serving(routes, seen) as host:
            auth = tmp_path / "config.json"
            auth.write_text(json.dumps({"auths": {host: {"username": "ci", "password": "Reg-Pw-1"}}}))
            session = oci.Session(oci.parse_reference(f"{host}/druppie/osv-db:latest", "--ref"), str(auth), False)
            (tmp_path / "pull").mkdir()
            pulled = osv_artifact.pull(session, tmp_path / "pull")
            assert pulled.digest == digest_of(manifest)
            assert (pulled.folder / "PyPI" / "a.json").is_file()
            token_requests = [s for s in seen if s[1] == "/token"]
            assert len(token_requests) == 1 and token_requests[0][2].startswith("Basic ")
            [at_storage] = [s for s in seen if s[1].startswith("/blobs/")]
            assert at_storage == ("GET", f"/blobs/{digest_of(layer)}", "")  # no token for the other host

            auth.write_text(json.dumps({"auths": {host: {"username": "ci", "password": "wrong-pw-7"}}}))
            again = oci.Session(oci.parse_reference(f"{host}/druppie/osv-db:latest", "--ref"), str(auth), False)
            with pytest.raises(StepError, match=f"^registry {host} refused the credentials for user 'ci'"):
                again.manifest()


def test_bytes_that_are_not_what_was_asked_for_are_refused(tmp_path):
    db = tmp_path / "db"
    (db / "PyPI").mkdir(parents=True)
    (db / "PyPI" / "a.json").write_text('{"id": "X", "modified": "2026-11-26T06:17:00Z"}')
    manifest, config, layer = artifact(db, tmp_path)
    tampered = layer.replace(b'"X"', b'"Y"')
    pinned = "sha256:" + "1" * 64
    routes = {
        "/v2/": (200, {}, b"{}"),
        "/v2/druppie/osv-db/manifests/latest": (200, {}, manifest),
        f"/v2/druppie/osv-db/manifests/{pinned}": (200, {}, manifest),
        "/v2/druppie/osv-db/manifests/lying": (200, {"Docker-Content-Digest": pinned}, manifest),
        f"/v2/druppie/osv-db/blobs/{digest_of(config)}": (200, {}, config),
        f"/v2/druppie/osv-db/blobs/{digest_of(layer)}": (200, {}, tampered),
    }
    with serving(routes) as host:
        for ref, message in (
            (f"{host}/druppie/osv-db@{pinned}", f"served a manifest for {host}/druppie/osv-db@{pinned} whose digest is "
                                                 f"{digest_of(manifest)}"),
            (f"{host}/druppie/osv-db:lying", f"says {host}/druppie/osv-db:lying is {pinned}, but its manifest"),
            (f"{host}/druppie/osv-db:latest", f"blob {digest_of(layer)} of {host}/druppie/osv-db arrived corrupt"),
        ):  # fmt: skip
            session = oci.Session(oci.parse_reference(ref, "--ref"), tls_verify=False)
            dest = tmp_path / f"pull-{len(list(tmp_path.iterdir()))}"
            dest.mkdir()
            with pytest.raises(StepError, match=re.escape(message)):
                osv_artifact.pull(session, dest)
            assert not (dest / "db").exists()  # nothing of it unpacked
