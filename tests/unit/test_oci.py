"""core/oci.py and scanners/osv_artifact.py without a registry: references, logins from a docker
config.json, and the database's layer (reproducible, and unpacked only inside its folder)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest

from druppie_steps.core import oci
from druppie_steps.core.errors import InvalidInputError, StepError
from druppie_steps.core.redact import redact
from druppie_steps.osv_db_push import parse_ecosystems
from druppie_steps.scanners import osv, osv_artifact

ROOT = Path(__file__).resolve().parents[2]
OSV_DB = ROOT / "tests" / "fixtures" / "osv-db"
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "text,expected",
    [
        ("registry.example/druppie/osv-db:latest", ("registry.example", "registry.example", "druppie/osv-db",
                                                    "latest", "")),
        ("127.0.0.1:5000/druppie/osv-db", ("127.0.0.1:5000", "127.0.0.1:5000", "druppie/osv-db", "latest", "")),
        (f"localhost/osv-db@{DIGEST}", ("localhost", "localhost", "osv-db", "", DIGEST)),
        (f"r.example/a/b:1.0@{DIGEST}", ("r.example", "r.example", "a/b", "1.0", DIGEST)),
        ("waterschap/osv-db:2026", ("docker.io", "registry-1.docker.io", "waterschap/osv-db", "2026", "")),
    ],
)  # fmt: skip
def test_references(text, expected):
    ref = oci.parse_reference(text, "--osv-db-ref")
    assert (ref.registry, ref.host, ref.repository, ref.tag, ref.digest) == expected
    assert ref.version == (expected[4] or expected[3])


def test_a_reference_prints_as_given_and_retags():
    ref = oci.parse_reference(f"r.example/druppie/osv-db:latest@{DIGEST}", "--ref")
    assert str(ref) == f"r.example/druppie/osv-db:latest@{DIGEST}"
    assert str(ref.with_tag("20261126T0617Z")) == "r.example/druppie/osv-db:20261126T0617Z"


@pytest.mark.parametrize(
    "text,why",
    [
        ("", "no registry and repository"),
        ("osv-db", "no registry and repository"),
        ("r.example/Druppie/osv-db", "not a registry host and a lowercase repository path"),
        ("r.example/druppie/osv-db:la test", "'la test' is not a tag"),
        ("r.example/druppie/osv-db@sha256:abc", "'sha256:abc' is not a sha256 digest"),
        ("r_x!/druppie/osv-db", "not a registry host"),
    ],
)
def test_bad_references_are_one_line_naming_the_flag(text, why):
    with pytest.raises(InvalidInputError) as err:
        oci.parse_reference(text, "--osv-db-ref")
    assert str(err.value).startswith(f"invalid --osv-db-ref {text!r}: {why}") and "\n" not in str(err.value)
    assert err.value.exit_code == 2


def auth_file(tmp_path: Path, content: dict) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(content))
    return str(path)


def basic(user: str, secret: str) -> str:
    return base64.b64encode(f"{user}:{secret}".encode()).decode()


@pytest.mark.parametrize(
    "key", ["r.example:5000", "https://r.example:5000", "https://r.example:5000/v2/", "http://r.example:5000/v1/"]
)
def test_a_login_is_found_under_each_form_of_its_key_and_is_redacted(tmp_path, key):
    path = auth_file(
        tmp_path, {"auths": {"other.example": {"auth": basic("x", "y")}, key: {"auth": basic("ci", "pw-4711")}}}
    )
    login = oci.login_for("r.example:5000", path)
    assert login == oci.Login("ci", "pw-4711") and "pw-4711" not in repr(login)
    assert redact("token pw-4711") == "token ***"


def test_docker_hub_logins_and_username_password_entries(tmp_path):
    path = auth_file(tmp_path, {"auths": {"https://index.docker.io/v1/": {"username": "hub", "password": "hub-pw-1"}}})
    assert oci.login_for("docker.io", path) == oci.Login("hub", "hub-pw-1")
    assert oci.login_for("r.example", path) is None
    assert oci.login_for("r.example", None) is None


def test_an_identity_token_is_refused_by_name(tmp_path):
    path = auth_file(tmp_path, {"auths": {"r.example": {"identitytoken": "eyJ-refresh"}}})
    with pytest.raises(StepError, match=r"entry for r\.example holds an identity token"):
        oci.login_for("r.example", path)


def helper(tmp_path: Path, monkeypatch, name: str, answer: str, code: int = 0) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    log = tmp_path / f"{name}.log"
    script = folder / f"docker-credential-{name}"
    script.write_text(f"#!/bin/sh\nread -r server\necho \"$1 $server\" >> {log}\nprintf '%s' '{answer}'\nexit {code}\n")
    script.chmod(0o700)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return log


def test_cred_helpers_come_first_then_auths_then_the_store(tmp_path, monkeypatch):
    own = helper(tmp_path, monkeypatch, "own", '{"Username": "h", "Secret": "helper-pw-1"}')
    store = helper(tmp_path, monkeypatch, "store", '{"Username": "s", "Secret": "store-pw-1"}')
    content = {
        "auths": {"r.example": {"auth": basic("a", "auths-pw-1")}, "s.example": {}},
        "credHelpers": {"r.example": "own"},
        "credsStore": "store",
    }
    path = auth_file(tmp_path, content)
    assert oci.login_for("r.example", path) == oci.Login("h", "helper-pw-1")
    assert own.read_text() == "get r.example\n"
    assert oci.login_for("s.example", path) == oci.Login("s", "store-pw-1")  # an empty entry: the store
    assert oci.login_for("docker.io", path) == oci.Login("s", "store-pw-1")
    assert store.read_text() == "get s.example\nget https://index.docker.io/v1/\n"


def test_a_helper_without_credentials_means_anonymous_and_a_missing_helper_is_named(tmp_path, monkeypatch):
    helper(tmp_path, monkeypatch, "empty", "credentials not found in native keychain", code=1)
    assert oci.login_for("r.example", auth_file(tmp_path, {"credsStore": "empty"})) is None
    with pytest.raises(StepError, match="docker-credential-absent not found on PATH"):
        oci.login_for("r.example", auth_file(tmp_path, {"credHelpers": {"r.example": "absent"}}))


# ---- the layer ----------------------------------------------------------------------------------


def stamped(tmp_path: Path, when: str = "2026-11-26T06:17:00Z") -> Path:
    db = tmp_path / "db"
    (db / "PyPI").mkdir(parents=True)
    for path in (OSV_DB / "PyPI").glob("*.json"):
        (db / "PyPI" / path.name).write_bytes(path.read_bytes())
    (db / "last-updated").write_text(when + "\n")
    (db / "PyPI" / ".all.zip.part").write_text("a refresh's partial download")
    return db


def test_the_layer_is_reproducible_and_holds_the_database_only(tmp_path):
    db = stamped(tmp_path)
    first = osv_artifact.pack(db, tmp_path / "a.tar")
    os.utime(db / "last-updated", (1, 1))  # times and owners do not count
    second = osv_artifact.pack(db, tmp_path / "b.tar")
    assert oci.file_digest(first) == oci.file_digest(second)
    with tarfile.open(first) as tar:
        members = [(m.name, m.mode, m.mtime, m.uid) for m in tar]
    assert members == [
        ("PyPI", 0o755, 0, 0),
        ("PyPI/GHSA-8q59-q68h-6hv4.json", 0o644, 0, 0),
        ("PyPI/GHSA-9wx4-h78v-vm56.json", 0o644, 0, 0),
        ("last-updated", 0o644, 0, 0),
    ]
    osv_artifact.unpack(first, tmp_path / "out", "the test artifact")
    pulled = osv.find_db(tmp_path / "out")
    assert osv.db_updated(pulled) == dt.datetime(2026, 11, 26, 6, 17, tzinfo=dt.UTC)
    assert (tmp_path / "out" / "PyPI" / "GHSA-8q59-q68h-6hv4.json").read_bytes() == (
        OSV_DB / "PyPI" / "GHSA-8q59-q68h-6hv4.json"
    ).read_bytes()


def test_a_link_in_the_database_is_not_packed(tmp_path):
    db = stamped(tmp_path)
    (db / "PyPI" / "link.json").symlink_to(db / "last-updated")
    with pytest.raises(StepError, match=r"link\.json is a link or a special file"):
        osv_artifact.pack(db, tmp_path / "a.tar")


def layer_with(tmp_path: Path, *members: tarfile.TarInfo) -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "evil,message",
    [
        (member("../outside"), "holds the name '../outside', which leads outside its folder"),
        (member("/etc/passwd"), "holds the name '/etc/passwd', which leads outside its folder"),
        (member("PyPI/x.json", tarfile.SYMTYPE, "/etc/passwd"), "holds 'PyPI/x.json', which is not a regular file"),
        (member("PyPI/h.json", tarfile.LNKTYPE, "last-updated"), "holds 'PyPI/h.json', which is not a regular file"),
    ],
)
def test_unpacking_writes_nothing_outside_its_folder(tmp_path, evil, message):
    layer = layer_with(tmp_path, member("last-updated"), evil)
    with pytest.raises(StepError, match="^" + re.escape(f"r.example/o:1 {message}")):
        osv_artifact.unpack(layer, tmp_path / "out" / "db", "r.example/o:1")
    assert not (tmp_path / "outside").exists()
    assert sorted(p.name for p in (tmp_path / "out" / "db").rglob("*")) == ["last-updated"]


def test_a_twice_named_file_is_refused(tmp_path):
    layer = layer_with(tmp_path, member("last-updated"), member("last-updated"))
    with pytest.raises(StepError, match="its layer is not a readable tar of the database"):
        osv_artifact.unpack(layer, tmp_path / "db", "r.example/o:1")


def test_the_dated_tag_is_the_databases_own_time():
    when = dt.datetime(2026, 11, 26, 7, 17, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert osv_artifact.dated_tag(when) == "20261126T0617Z"
    assert osv_artifact.iso(when) == "2026-11-26T06:17:00Z"


def test_a_database_dated_in_the_future_is_refused(tmp_path):
    """A stamp ahead of the clock would never grow old: a stale database that always looks fresh."""
    now = dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.UTC)
    db = osv.find_db(stamped(tmp_path, "2026-11-26T06:59:00Z"))
    assert osv.db_updated(db, now) == dt.datetime(2026, 11, 26, 6, 59, tzinfo=dt.UTC)  # within the hour of skew
    (tmp_path / "db" / "last-updated").write_text("2099-01-01T00:00:00Z\n")
    with pytest.raises(InvalidInputError, match=r"dated 2099-01-01T00:00Z \(from last-updated\), in the future"):
        osv.db_updated(db, now)


@pytest.mark.parametrize(
    "value,expected",
    [("PyPI,npm,Go", ["PyPI", "npm", "Go"]), ("PyPI npm  PyPI", ["PyPI", "npm"]), ("Debian:12", ["Debian:12"])],
)
def test_ecosystems_to_download(value, expected):
    assert parse_ecosystems(value) == expected


@pytest.mark.parametrize("value", ["", " , ", "../etc", "PyPI,a/b"])
def test_bad_ecosystems_are_one_line(value):
    with pytest.raises(InvalidInputError, match=rf"^invalid --download {value!r}: "):
        parse_ecosystems(value)
