"""osv-db-push: publish the OSV advisory database as an OCI artifact, for ``scan --osv-db-ref``.

Takes a database folder (``--db``: ``<Ecosystem>/all.zip`` or ``<Ecosystem>/*.json``, with a
``last-updated`` stamp or dated by its newest advisory), or downloads one (``--download PyPI,npm,Go``:
each ecosystem's ``all.zip`` from OSV's bucket, checked as a zip archive, then ``last-updated`` =
when the download began), and pushes it to ``--ref`` and to a tag of the database's own time
(``20261126T0617Z``, with ``--dated-tag``), over the registry's HTTP API (core/oci.py). The
artifact's format and why its age is the database's own time: scanners/osv_artifact.py.

    druppie-step osv-db-push --download PyPI,npm,Go --ref registry.example/druppie/osv-db:latest \\
        --dockerconfig /secrets/registry

The catalog runs it as a CronJob (tasks/druppie-scan/0.1/samples/osv-db-refresh.yaml), the one
pod that may reach OSV; a failed download pushes nothing, so the scans keep the previous database
and, once it is older than their --max-db-age, fail.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import click

from .core import log
from .core.errors import InvalidInputError, StepError
from .core.options import DURATION, Duration, flag_option, option, results_dir_option, workspace_option
from .core.registry import auth_file_from
from .core.results import summary_line, write_results

OSV_URL = "https://osv-vulnerabilities.storage.googleapis.com"
_ECOSYSTEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_ -]*")


def parse_ecosystems(value: str) -> list[str]:
    """``PyPI,npm Go``: comma- or space-separated OSV ecosystem names, each at most once."""
    names = [n for n in re.split(r"[,\s]+", value.strip()) if n]
    bad = [n for n in names if not _ECOSYSTEM.fullmatch(n) or n in (".", "..")]
    if not names or bad:
        raise InvalidInputError(
            f"invalid --download {value!r}: {'bad ecosystem name ' + repr(bad[0]) if bad else 'empty'}; "
            f"use OSV ecosystem names such as PyPI,npm,Go"
        )
    return list(dict.fromkeys(names))


def fetch_ecosystems(ecosystems: list[str], base_url: str, dest: Path, deadline: float) -> None:
    """Each ecosystem's all.zip into ``dest/<Ecosystem>/all.zip``, checked; then ``last-updated``."""
    from .scanners import osv, osv_artifact

    started = dt.datetime.now(dt.UTC)
    for eco in ecosystems:
        url = f"{base_url.rstrip('/')}/{urllib.parse.quote(eco)}/all.zip"
        target = dest / eco / "all.zip"
        target.parent.mkdir(parents=True)
        log.progress(f"downloading {url}")
        try:
            request = urllib.request.Request(url)  # noqa: S310 - --osv-url is checked to be http(s)
            with urllib.request.urlopen(request, timeout=60) as response, target.open("wb") as out:  # noqa: S310
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    if time.monotonic() > deadline:
                        raise StepError(f"downloading {url}: not done within --timeout")
        except urllib.error.HTTPError as err:
            raise StepError(f"cannot download {url}: HTTP {err.code} {err.reason}") from err
        except (urllib.error.URLError, OSError) as err:
            raise StepError(f"cannot download {url}: {getattr(err, 'reason', err)}") from err
        try:
            with zipfile.ZipFile(target) as archive:
                if not archive.namelist() or archive.testzip() is not None:
                    raise zipfile.BadZipFile("empty, or a member fails its CRC")
        except zipfile.BadZipFile as err:
            raise StepError(f"{url} is not a sound zip archive ({err}); nothing pushed") from err
        log.info(f"{eco}: {target.stat().st_size} bytes")
    (dest / osv.STAMP).write_text(osv_artifact.iso(started) + "\n")


@click.command("osv-db-push")
@option("--db", default="", help="The advisory database folder to push (<Ecosystem>/all.zip or <Ecosystem>/*.json).")
@option(
    "--download",
    default="",
    help="Instead of --db: download these ecosystems' all.zip from --osv-url (e.g. PyPI,npm,Go) and push them, "
    "stamped with the time the download began.",
)
@option("--osv-url", default=OSV_URL, help="Where --download finds <Ecosystem>/all.zip.")
@option("--ref", required=True, help="Where to push, e.g. registry.example/druppie/osv-db:latest.")
@flag_option("--dated-tag", default=True, help="Also tag it with the database's own time, e.g. 20261126T0617Z.")
@flag_option("--tls-verify", default=True, help="Verify the registry's TLS certificate (off: test registries).")
@workspace_option("--dockerconfig", "dockerconfig_dir", "Folder with config.json or .dockerconfigjson for the registry")
@workspace_option("--ca-certs", "ca_dir", "Folder with extra CA certificates (*.crt) for the registry")
@option(
    "--timeout",
    type=DURATION,
    default="30m",
    help="Deadline for the whole job, download and push, e.g. 30m.",
)
@results_dir_option
def osv_db_push(
    db: str,
    download: str,
    osv_url: str,
    ref: str,
    dated_tag: bool,
    tls_verify: bool,
    dockerconfig_dir: str,
    ca_dir: str,
    timeout: Duration,
    results_dir: str | None,
) -> None:
    """Push the OSV advisory database (a folder, or downloaded from OSV) as an OCI artifact."""
    from .core import oci
    from .scanners import osv, osv_artifact

    deadline = time.monotonic() + timeout.seconds
    target = oci.parse_reference(ref, "--ref")
    if target.digest:
        raise InvalidInputError(f"invalid --ref {ref!r}: a push names a tag, not a digest")
    if bool(db) == bool(download):
        raise InvalidInputError("give exactly one of --db (a database folder) and --download (ecosystems)")
    ecosystems = parse_ecosystems(download) if download else []
    if download and urllib.parse.urlsplit(osv_url).scheme not in ("http", "https"):
        raise InvalidInputError(f"invalid --osv-url {osv_url!r}: an http(s) URL")
    auth_file = auth_file_from(dockerconfig_dir)
    if ca_dir and not any(Path(ca_dir).glob("*.crt")):
        raise InvalidInputError(f"invalid --ca-certs {ca_dir!r}: holds no *.crt file")
    session = oci.Session(target, auth_file, tls_verify, ca_dir or None, push=True, deadline=deadline)
    with tempfile.TemporaryDirectory(prefix="druppie-osv-db-") as tmp:
        work = Path(tmp)
        folder = Path(db) if db else work / "osv-db"
        if ecosystems:
            fetch_ecosystems(ecosystems, osv_url, folder, deadline)
        (work / "push").mkdir()
        now = dt.datetime.now(dt.UTC)
        found = osv.find_db(folder, f"--db {db!r}" if db else "the download")
        updated = osv.db_updated(found, now)
        tags = [target.tag] + ([osv_artifact.dated_tag(updated)] if dated_tag else [])
        tags = list(dict.fromkeys(tags))
        log.progress(f"pushing {found.names}, updated {osv_artifact.iso(updated)} (from {found.age_from}), "
                     f"to {target.name} as {', '.join(tags)}")  # fmt: skip
        digest = osv_artifact.push(session, found, updated, tags, work / "push", now)
    results = {
        "ref": str(target),
        "digest": digest,
        "dated-ref": str(target.with_tag(tags[-1])) if dated_tag else "",
        "updated": osv_artifact.iso(updated),
        "ecosystems": ",".join(sorted(found.ecosystems)),
    }
    write_results(results_dir, results)
    click.echo(summary_line("osv-db-push", results))
