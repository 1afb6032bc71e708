"""The OSV advisory database as an OCI artifact in a registry: what ``osv-db-push`` writes and
``scan --osv-db-ref`` reads, so that a run needs no second volume for it.

One OCI image manifest (``artifactType`` application/vnd.druppie.osv-db.v1):

- its config (``application/vnd.druppie.osv-db.config.v1+json``): the database's own time
  (``updated``), where that came from (``updatedFrom``: its last-updated stamp or its newest
  advisory) and its ecosystems;
- one layer (``application/vnd.oci.image.layer.v1.tar``): the database folder as a tar of regular
  files and folders only, sorted, owner 0 and time 0, so the same database is the same blob (the
  registry keeps it once) and unpacking it cannot write outside its folder; names starting with a
  dot (a refresh's partial downloads) are left out;
- annotations: ``org.opencontainers.image.created`` (when it was pushed) and
  ``io.druppie.osv-db.updated`` (the database's own time, as in the config).

**Its age is the database's own time**, read from the pulled content exactly as from a volume
(``last-updated``, else the newest advisory), and never the push time: pushing or copying an old
database again does not make it young. Where the config or the annotation claims an older time
than the content, the older one counts; a claim can make a database look older, never fresher.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..core import oci
from ..core.errors import StepError
from . import osv

ARTIFACT_TYPE = "application/vnd.druppie.osv-db.v1"
CONFIG_TYPE = "application/vnd.druppie.osv-db.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CREATED = "org.opencontainers.image.created"
UPDATED = "io.druppie.osv-db.updated"
TITLE = "org.opencontainers.image.title"
MAX_CONFIG = 1 << 20
MAX_LAYER = 32 << 30  # OSV's every ecosystem is a few GiB; a bound, not a budget
PUSH_HINT = "push one with druppie-step osv-db-push (the druppie-scan README, samples/osv-db-refresh.yaml)"


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dated_tag(updated: dt.datetime) -> str:
    """The tag of one refresh, from the database's own time: 20261126T0617Z."""
    return updated.astimezone(dt.UTC).strftime("%Y%m%dT%H%MZ")


# ---- the layer ------------------------------------------------------------------------------


def pack(folder: Path, dest: Path) -> Path:
    """``folder`` as a reproducible tar at ``dest``: folders and regular files, no links, no dot-names."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk(folder):
            rel = path.relative_to(folder).as_posix()
            info = tarfile.TarInfo(rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, path.stat().st_size
                with path.open("rb") as f:
                    tar.addfile(info, f)
    return dest


def _walk(folder: Path) -> list[Path]:
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink() or not (path.is_dir() or path.is_file()):
            raise StepError(f"{path} is a link or a special file; the database is packed from regular files only")
        found.append(path)
        if path.is_dir():
            found += _walk(path)
    return found


def unpack(layer: Path, dest: Path, what: str) -> None:
    """Unpack the tar ``layer`` into ``dest``: regular files and folders only, every name inside."""
    dest.mkdir(parents=True)
    try:
        with tarfile.open(layer, "r:") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not parts or member.name.startswith("/") or ".." in parts or any("\0" in p for p in parts):
                    raise StepError(f"{what} holds the name {member.name!r}, which leads outside its folder")
                target = dest.joinpath(*parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is None:
                        raise StepError(f"{what}: cannot read {member.name!r}")
                    with target.open("xb") as out:
                        while chunk := source.read(oci.CHUNK):
                            out.write(chunk)
                else:
                    raise StepError(f"{what} holds {member.name!r}, which is not a regular file or folder")
    except (tarfile.TarError, FileExistsError, OSError) as err:
        raise StepError(f"{what}: its layer is not a readable tar of the database: {err}") from err


# ---- push -----------------------------------------------------------------------------------


def push(
    session: oci.Session, db: osv.AdvisoryDB, updated: dt.datetime, tags: list[str], work: Path, now: dt.datetime
) -> str:
    """Push the database ``db`` (dated ``updated``) under every tag of ``tags``; the manifest's digest."""
    layer = pack(db.source, work / "osv-db.tar")
    layer_digest, layer_size = oci.file_digest(layer)
    config = json.dumps(
        {"updated": iso(updated), "updatedFrom": db.age_from, "ecosystems": sorted(db.ecosystems)},
        sort_keys=True,
    ).encode()
    config_path = work / "config.json"
    config_path.write_bytes(config)
    session.push_blob(layer, layer_digest, layer_size)
    session.push_blob(config_path, oci.sha256_digest(config), len(config))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": oci.MANIFEST_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": oci.sha256_digest(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": LAYER_TYPE,
                    "digest": layer_digest,
                    "size": layer_size,
                    "annotations": {TITLE: "osv-db.tar"},
                }
            ],
            "annotations": {CREATED: iso(now), UPDATED: iso(updated), TITLE: "OSV advisory database"},
        },
        indent=2,
    ).encode()
    digests = {session.push_manifest(tag, manifest) for tag in tags}
    [digest] = digests
    return digest


# ---- pull -----------------------------------------------------------------------------------


@dataclass
class Pulled:
    """A database pulled from a registry: its folder, the manifest's digest and what it claims."""

    folder: Path
    ref: oci.Reference
    digest: str
    claimed: dict[str, dt.datetime]  # where -> the time it claims for the database

    @property
    def pinned(self) -> str:
        """The reference by digest: exactly what was scanned against."""
        return f"{self.ref.name}@{self.digest}"


def pull(session: oci.Session, dest: Path) -> Pulled:
    """Pull ``session.ref`` into ``dest/db``, every blob checked against its digest."""
    ref = session.ref
    data, digest = session.manifest()
    try:
        manifest = json.loads(data)
    except ValueError as err:
        raise StepError(f"the manifest of {ref} is not JSON") from err
    if not isinstance(manifest, dict):
        raise StepError(f"the manifest of {ref} is not an object")
    config, layers = manifest.get("config"), manifest.get("layers")
    config = config if isinstance(config, dict) else {}
    kind = config.get("mediaType")
    if manifest.get("mediaType", oci.MANIFEST_TYPE) != oci.MANIFEST_TYPE or kind != CONFIG_TYPE:
        raise StepError(
            f"{ref} is not an OSV advisory database (its manifest is {manifest.get('mediaType')!r} with a config "
            f"of {kind!r}, not {CONFIG_TYPE}); {PUSH_HINT}"
        )
    if not (isinstance(layers, list) and len(layers) == 1 and isinstance(layers[0], dict)) or (
        layers[0].get("mediaType") != LAYER_TYPE
    ):
        raise StepError(f"{ref} is not an OSV advisory database: it should have one {LAYER_TYPE} layer; {PUSH_HINT}")
    buffer = io.BytesIO()
    session.blob(config, buffer, MAX_CONFIG)
    try:
        meta: Any = json.loads(buffer.getvalue())
    except ValueError as err:
        raise StepError(f"the config of {ref} is not JSON") from err
    tar = dest / "osv-db.tar"
    with tar.open("wb") as out:
        session.blob(layers[0], out, MAX_LAYER)
    unpack(tar, dest / "db", str(ref))
    tar.unlink()
    claimed = {}
    annotations = manifest.get("annotations")
    for where, value in (
        (f"its {UPDATED} annotation", annotations.get(UPDATED) if isinstance(annotations, dict) else None),
        ("its config", meta.get("updated") if isinstance(meta, dict) else None),
    ):
        when = osv.parse_time(value) if isinstance(value, str) else None
        if when is not None:
            claimed[where] = when
    return Pulled(dest / "db", ref, digest, claimed)
