"""Push every Task and Pipeline of the catalog as a Tekton bundle and record the digests (`make bundles`).

Each Task and Pipeline of catalog.yaml becomes a bundle of exactly that one object, pushed with
`tkn bundle push` to ``<registry>/waterschap/druppie-catalog/<name>:<version>`` (version: the folder, 0.1),
Tasks first:

- a Task as released: each of the catalog's images pinned by the digest catalog.yaml records
  (its images block, written by `make release`), ``ghcr.io/waterschap/druppie-step:0.1.0@sha256:...``;
- a Pipeline with each taskRef to a catalog Task turned into a bundles-resolver reference to that
  Task's bundle by digest (``resolver: bundles``, params bundle, name, kind), so resolving the
  Pipeline alone fixes every Task it runs.

Every digest is the one the registry serves (asked again after the push and checked against what
tkn reported). They are recorded in catalog.yaml between ``# BEGIN bundles`` and ``# END bundles``,
written only once every push succeeded. Bundles are reproducible: their created time is fixed
(1970-01-01, tkn's default), so the same files give the same digests and a second run changes nothing.

The rewrites are textual, so the released files keep their comments and layout; each is checked
by parsing it again (the only difference to the source: the pinned images, the taskRefs).
`hack/release.py --tag` uses the same functions for the release commit (and adds a tag per release).

    hack/bundles.py [--registry HOST[:PORT][/PATH]] [--catalog catalog.yaml]

The registry: --registry, else REGISTRY, else the running local cluster's (as hack/images.sh).
tkn: TKN, else the cache's (hack/cluster-build.sh tkn), else tkn on PATH. Logins: tkn and skopeo read
~/.docker/config.json and podman's auth.json.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from hack.catalog import BUNDLES_BEGIN, BUNDLES_END  # noqa: E402 - after the path is set
from localcluster.toolchain import optional_binaries  # noqa: E402

# Beside the images (<registry>/waterschap/druppie-step): one REGISTRY (e.g. ghcr.io) for both.
REPOSITORY = "waterschap/druppie-catalog"  # bundles live at <registry>/waterschap/druppie-catalog/<name>
IMAGES_BEGIN, IMAGES_END = "# BEGIN images: written by `make release`", "# END images"
CTIME = "1970-01-01T00:00:00Z"  # tkn's default, given explicitly: SOURCE_DATE_EPOCH must not change a digest
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
KINDS = (("tasks", "task"), ("pipelines", "pipeline"))  # catalog.yaml key, bundle kind; Tasks first


class BundleError(Exception):
    """A one-line reason why nothing (more) is pushed or written; the scripts' main prints it, exit 1."""


@dataclass(frozen=True)
class Entry:
    """One Task or Pipeline of catalog.yaml."""

    kind: str  # "task" or "pipeline", as the bundle's layer annotation says it
    name: str
    version: str
    path: str  # relative to the repository root


@dataclass(frozen=True)
class Bundle:
    """A pushed bundle: ``repository:tag`` and the digest the registry serves."""

    kind: str
    name: str
    version: str
    bundle: str
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.bundle}@{self.digest}"


# ---- catalog.yaml ------------------------------------------------------------------------------


def entries(catalog_text: str) -> list[Entry]:
    """Every Task, then every Pipeline catalog.yaml lists, in its order."""
    index = yaml.safe_load(catalog_text) or {}
    return [Entry(kind, e["name"], str(e["version"]), e["path"]) for key, kind in KINDS for e in index.get(key) or []]


def recorded_images(catalog_text: str) -> dict[str, tuple[str, str]]:
    """{image name: (version, digest)} from catalog.yaml's images block."""
    index = yaml.safe_load(catalog_text) or {}
    return {e["name"]: (str(e["version"]), e["digest"]) for e in index.get("images") or []}


def replace_block(text: str, begin: str, end: str, block: str, after: str | None = None) -> str:
    """``text`` with the lines from ``begin`` to ``end`` replaced by ``block`` (which carries both
    markers); without them, ``block`` goes right after the ``after`` marker's line, else at the end."""
    if begin in text:
        if end not in text[text.index(begin) :]:
            raise BundleError(f"catalog.yaml: {begin!r} without {end!r}")
        stop = text.index(end, text.index(begin)) + len(end)
        return text[: text.index(begin)] + block.rstrip("\n") + text[stop:]
    if after and after in text:
        stop = text.index("\n", text.index(after)) + 1 if "\n" in text[text.index(after) :] else len(text)
        return text[:stop] + ("" if text[:stop].endswith("\n") else "\n") + block + text[stop:]
    return text + ("" if text.endswith("\n") or not text else "\n") + block


def images_block(digests: dict[str, str], version: str, names: Iterable[str]) -> str:
    body = "".join(f"  - name: {n}\n    version: {version}\n    digest: {digests[n]}\n" for n in names)
    return f"{IMAGES_BEGIN}\nimages:\n{body}{IMAGES_END}\n"


def bundles_block(bundles: Iterable[Bundle]) -> str:
    body = "".join(
        f'  - name: {b.name}\n    kind: {b.kind}\n    version: "{b.version}"\n'
        f"    bundle: {b.bundle}\n    digest: {b.digest}\n"
        for b in bundles
    )
    return f"{BUNDLES_BEGIN}\nbundles:\n{body}{BUNDLES_END}\n"


def record(catalog_text: str, bundles: Iterable[Bundle]) -> str:
    """catalog.yaml with its bundles block (after the images block) holding exactly ``bundles``."""
    return replace_block(catalog_text, BUNDLES_BEGIN, BUNDLES_END, bundles_block(bundles), after=IMAGES_END)


# ---- the released text of a Task and of a Pipeline ---------------------------------------------


def pin_images(text: str, images: dict[str, tuple[str, str]], where: str) -> str:
    """The Task ``text`` with every ``image: <catalog image>:<version>`` pinned by the recorded digest."""
    used: set[str] = set()

    def pin(match: re.Match[str]) -> str:
        name, tag = match["name"], match["tag"]
        if name not in images:
            return match[0]
        version, digest = images[name]
        if tag != version:
            raise BundleError(
                f"{where}: uses {name}:{tag}, catalog.yaml's images record {version}: run `make release` first"
            )
        used.add(name)
        return f"{match['head']}{name}:{tag}@{digest}"

    pinned = re.sub(r"(?m)^(?P<head>[ \t-]*image:[ \t]+)(?P<name>[^\s:@]+):(?P<tag>[^\s@]+)$", pin, text)
    if not used:
        raise BundleError(f"{where}: uses none of the images catalog.yaml records ({', '.join(images) or 'none'})")

    def expected(doc: dict) -> dict:
        for step in _steps(doc):
            image = str(step.get("image", ""))
            name, _, tag = image.partition(":")
            if name in images and "@" not in tag:
                step["image"] = f"{image}@{images[name][1]}"
        return doc

    _same_but(text, pinned, expected, where)
    return pinned


def _steps(doc: dict) -> list[dict]:
    spec = doc.get("spec") or {}
    return [
        *spec.get("steps", []),
        *spec.get("sidecars", []),
        *([spec["stepTemplate"]] if "stepTemplate" in spec else []),
    ]


def bundle_task_ref(ref: str, task: str) -> dict:
    """A Pipeline task's taskRef to the bundle ``ref`` (repository:tag@digest) holding the Task ``task``."""
    return {
        "resolver": "bundles",
        "params": [
            {"name": "bundle", "value": ref},
            {"name": "name", "value": task},
            {"name": "kind", "value": "task"},
        ],
    }


_TASK_REF = re.compile(r"(?m)^(?P<indent>[ ]*)taskRef:[ ]*\n(?P<body>(?:(?P=indent)[ ]+\S[^\n]*\n)+)")


def bundle_refs(text: str, refs: dict[str, str], where: str) -> str:
    """The Pipeline ``text`` with each ``taskRef: {name: <task>}`` (block style, optionally ``kind:
    Task``) turned into a bundles-resolver reference to ``refs[<task>]``; every other byte stays."""

    def rewrite(match: re.Match[str]) -> str:
        fields = {
            key.strip(): value.strip() for key, _, value in (line.partition(":") for line in match["body"].splitlines())
        }
        name = fields.get("name", "").strip("'\"")
        if set(fields) - {"name", "kind"} or fields.get("kind", "Task").strip("'\"") != "Task" or not name:
            raise BundleError(f"{where}: a taskRef other than by name to a Task: {match[0].strip()!r}")
        if name not in refs:
            raise BundleError(f"{where}: taskRef to {name!r}, which is no Task of catalog.yaml")
        inner = " " * (len(match["body"]) - len(match["body"].lstrip(" ")))  # as the taskRef's own lines
        return (
            f"{match['indent']}taskRef:\n{inner}resolver: bundles\n{inner}params:\n"
            f"{inner}  - name: bundle\n{inner}    value: {refs[name]}\n"
            f"{inner}  - name: name\n{inner}    value: {name}\n"
            f"{inner}  - name: kind\n{inner}    value: task\n"
        )

    rewritten = _TASK_REF.sub(rewrite, text)

    def expected(doc: dict) -> dict:
        for pipeline_task in [*doc["spec"].get("tasks", []), *doc["spec"].get("finally", [])]:
            ref = pipeline_task.get("taskRef")
            if ref is not None:
                if "name" not in ref:
                    raise BundleError(f"{where}: task {pipeline_task.get('name')!r}: a taskRef without a name")
                pipeline_task["taskRef"] = bundle_task_ref(refs.get(ref["name"], "?"), ref["name"])
        return doc

    _same_but(text, rewritten, expected, where)
    return rewritten


def _same_but(before: str, after: str, change: Callable[[dict], dict], where: str) -> None:
    """The text rewrite did exactly what ``change`` does to the parsed document, nothing else."""
    if yaml.safe_load(after) != change(yaml.safe_load(before)):
        raise BundleError(f"{where}: could not rewrite it in place (an unusual layout?); nothing pushed")


def released(entries_: list[Entry], read: Callable[[str], str], images: dict[str, tuple[str, str]]) -> dict[str, str]:
    """{path: released text} of every Task (images pinned); Pipelines need the Tasks' bundles first."""
    return {e.path: pin_images(read(e.path), images, e.path) for e in entries_ if e.kind == "task"}


# ---- the registry ------------------------------------------------------------------------------


def repository(registry: str, name: str) -> str:
    return f"{registry.rstrip('/')}/{REPOSITORY}/{name}"


def plain_http(registry: str) -> bool:
    """Whether the registry is one go-containerregistry (tkn, Tekton's resolvers) talks plain HTTP
    to without being told: localhost, loopback and private (RFC 1918) addresses."""
    host = registry.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or (address.version == 4 and address.is_private)


def served_digest(target: str) -> str:
    """The digest of the manifest the registry serves for ``target`` (repository:tag)."""
    tls = ["--tls-verify=false"] if plain_http(target) else []
    run = subprocess.run(
        ["skopeo", "inspect", *tls, "--format", "{{.Digest}}", f"docker://{target}"],
        capture_output=True,
        text=True,
    )
    digest = run.stdout.strip()
    if run.returncode != 0 or not DIGEST.fullmatch(digest):
        raise BundleError(f"{target}: the registry serves no manifest: {_last_line(run.stderr)}")
    return digest


def _last_line(text: str) -> str:
    """The first line that says what went wrong (tkn's "Error: ..."), else the last one."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and "experimental" not in line]
    return next((line for line in lines if line.startswith("Error")), lines[-1] if lines else "(no output)")


def push(tkn: Path, target: str, text: str) -> str:
    """Push ``text`` (one Tekton object) as the bundle ``target``; the digest the registry serves."""
    with tempfile.TemporaryDirectory(prefix="druppie-bundle-") as folder:
        source = Path(folder) / "object.yaml"
        source.write_text(text)
        run = subprocess.run(
            [str(tkn), "bundle", "push", target, "-f", str(source), "--ctime", CTIME],
            capture_output=True,
            text=True,
        )
    pushed = re.search(r"Pushed Tekton Bundle to \S+@(sha256:[0-9a-f]{64})", run.stdout)
    if run.returncode != 0 or not pushed:
        raise BundleError(f"tkn bundle push {target} failed: {_last_line(run.stderr + chr(10) + run.stdout)}")
    served = served_digest(target)
    if served != pushed[1]:
        raise BundleError(f"{target}: tkn pushed {pushed[1]}, the registry serves {served}")
    return served


def push_catalog(
    registry: str,
    catalog_text: str,
    read: Callable[[str], str],
    images: dict[str, tuple[str, str]] | None = None,
    tags: Iterable[str] = (),
    tkn: Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[Bundle], dict[str, str]]:
    """Push every Task (pinned by ``images``, default: catalog.yaml's) and then every Pipeline (taskRefs
    by bundle digest) of ``catalog_text``, reading files with ``read(path)``; each under its folder
    version and each of ``tags`` too (the same digest). The bundles and {path: the text pushed}."""
    tkn = tkn or tkn_binary()
    listed = entries(catalog_text)
    images = recorded_images(catalog_text) if images is None else images
    if not images:
        raise BundleError("catalog.yaml records no images (its images block): run `make release` first")
    texts = released(listed, read, images)
    bundles: list[Bundle] = []
    for entry in listed:
        if entry.kind == "pipeline":
            refs = {b.name: b.ref for b in bundles if b.kind == "task"}
            texts[entry.path] = bundle_refs(read(entry.path), refs, entry.path)
        name = (yaml.safe_load(texts[entry.path]).get("metadata") or {}).get("name")
        if name != entry.name:
            raise BundleError(f"{entry.path}: metadata.name {name!r} is not catalog.yaml's {entry.name!r}")
        target = f"{repository(registry, entry.name)}:{entry.version}"
        digest = push(tkn, target, texts[entry.path])
        for tag in tags:
            again = push(tkn, f"{repository(registry, entry.name)}:{tag}", texts[entry.path])
            if again != digest:
                raise BundleError(f"{target}: the same object pushed as :{tag} got {again}, not {digest}")
        bundles.append(Bundle(entry.kind, entry.name, entry.version, target, digest))
        log(f"bundles: {entry.kind} {target}@{digest}" + "".join(f" (also :{t})" for t in tags))
    return bundles, texts


# ---- where things are --------------------------------------------------------------------------


def default_registry() -> str | None:
    """REGISTRY, else the running local cluster's registry (as hack/images.sh picks it)."""
    if os.environ.get("REGISTRY"):
        return os.environ["REGISTRY"]
    from localcluster.cluster import LocalCluster, default_state_dir

    state = default_state_dir()
    if LocalCluster.exists(state):
        cluster = LocalCluster.load(state)
        if cluster.running("registry"):
            return cluster.registry
    return None


def tkn_binary() -> Path:
    for candidate in (os.environ.get("TKN"), optional_binaries()["tkn"], shutil.which("tkn")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise BundleError("no tkn: build it with `hack/cluster-build.sh tkn` or set TKN=/path/to/tkn")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="push here (default: REGISTRY, else the local cluster's registry)")
    parser.add_argument(
        "--catalog", type=Path, default=ROOT / "catalog.yaml", help="the index and images to use; the bundles go there"
    )
    args = parser.parse_args(argv)
    registry = args.registry or default_registry()
    try:
        if not registry:
            raise BundleError("no registry: pass --registry HOST:PORT, set REGISTRY, or start the local cluster")
        catalog_text = args.catalog.read_text()
        bundles, _ = push_catalog(registry, catalog_text, lambda path: (ROOT / path).read_text())
    except BundleError as error:
        raise SystemExit(f"bundles: {error}") from None
    args.catalog.write_text(record(catalog_text, bundles))
    print(f"bundles: {len(bundles)} pushed to {repository(registry, '*')}, digests recorded in {args.catalog}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
