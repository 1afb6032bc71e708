"""Small real container images built without a container engine: FROM-scratch layers of a few
files (static binaries, symlinks), pushed to a registry over the distribution API or written as
an OCI archive for `ctr images import`.

The local cluster's own images are made this way: the pause sandbox, Tekton's controller,
webhook and the binaries it injects into TaskRun pods (each at Tekton's fixed path
``/ko-app/<name>``), and the busybox shell image for ``script:`` steps.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path

from .process import http_request

PAUSE_C = r"""
#include <signal.h>
#include <unistd.h>
static void bye(int s) { (void)s; _exit(0); }
int main(void) { signal(SIGTERM, bye); signal(SIGINT, bye); for (;;) pause(); }
"""
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class File:
    """One entry of a layer: a regular file from ``source``, or a symlink to ``link``."""

    path: str
    source: Path | None = None
    link: str = ""
    mode: int = 0o755


@dataclass
class Image:
    layer: bytes
    config: bytes
    manifest: bytes
    files: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return _digest(self.manifest)


def with_libraries(programs: list[Path]) -> list[File]:
    """Dynamically linked ``programs`` of this machine with the shared libraries ``ldd`` names, each
    at the path the loader looks for it (a symlinked library is copied as the file it points to)."""
    files: dict[str, File] = {}
    for program in programs:
        files[str(program)] = File(str(program), program)
        out = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            # "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
            words = line.split()
            path = words[2] if "=>" in words and len(words) > 3 else words[0]
            if path.startswith("/"):
                files.setdefault(path, File(path, Path(path).resolve()))
    return list(files.values())


def build_pause_binary(dest: Path) -> Path:
    source = dest.with_suffix(".c")
    source.write_text(PAUSE_C)
    subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(dest), str(source)], check=True, capture_output=True)
    return dest


def build_image(binary: Path, entrypoint: str = "/pause", user: str = "") -> Image:
    """An image of one static binary at ``entrypoint``."""
    return build_layered([File(entrypoint, binary)], [entrypoint], user=user)


def build_layered(files: list[File], entrypoint: list[str], user: str = "", env: list[str] | None = None) -> Image:
    """A one-layer image of ``files``; reproducible (fixed owner and mtime), so equal inputs give equal digests."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as tar:
        dirs: set[str] = set()
        for entry in files:
            parts = entry.path.strip("/").split("/")
            for i in range(1, len(parts)):  # parent folders first, world-readable
                folder = "/".join(parts[:i])
                if folder not in dirs:
                    dirs.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.mode, info.mtime = entry.mode, 0
            if entry.link:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            else:
                data = entry.source.read_bytes() if entry.source else b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    layer = layer_buf.getvalue()
    cfg: dict = {"Entrypoint": entrypoint}
    if user:
        cfg["User"] = user
    if env:
        cfg["Env"] = env
    # One history entry per layer: buildah (--layers) refuses a base whose history and layers disagree.
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": cfg,
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "localcluster.ociimage"}],
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer), "size": len(layer)}
            ],
        },
        sort_keys=True,
    ).encode()
    return Image(layer, config, manifest, [f.path for f in files])


def write_oci_archive(image: Image, name: str, out: Path) -> Path:
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": MANIFEST_TYPE,
                    "digest": image.digest,
                    "size": len(image.manifest),
                    "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
                }
            ],
        }
    ).encode()
    with tarfile.open(out, "w") as tar:

        def add(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", index)
        for blob in (image.layer, image.config, image.manifest):
            add(f"blobs/sha256/{_digest(blob)[7:]}", blob)
    return out


def push(image: Image, registry: str, repository: str, tag: str) -> str:
    """Push to a distribution (v2) registry over plain HTTP; returns the manifest digest."""
    base = f"http://{registry}/v2/{repository}"
    for blob in (image.layer, image.config):
        try:
            with http_request(f"{base}/blobs/{_digest(blob)}", method="HEAD"):
                continue  # already there
        except urllib.error.HTTPError:
            pass
        with http_request(f"{base}/blobs/uploads/", method="POST", data=b"") as start:
            location = start.headers["Location"]
        location = location if location.startswith("http") else f"http://{registry}{location}"
        sep = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream"}
        with http_request(f"{location}{sep}digest={_digest(blob)}", "PUT", blob, headers, timeout=120):
            pass
    with http_request(f"{base}/manifests/{tag}", "PUT", image.manifest, {"Content-Type": MANIFEST_TYPE}):
        pass
    return image.digest


BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
# The applets a shell image needs for `script:` steps, Tekton's place-scripts init container and
# local-path-provisioner's helper pods.
SHELL_APPLETS = (
    "sh",
    "cat",
    "chmod",
    "touch",
    "cp",
    "mkdir",
    "ls",
    "echo",
    "printf",
    "env",
    "rm",
    "mv",
    "test",
    "[",
    "id",
)


def busybox_image(user: str = "") -> Image:
    """A shell image of Debian's static busybox; ``user`` "65532" makes it non-root, like the
    chainguard busybox Tekton uses by default (so `script:` steps pass Pod Security "restricted")."""
    files = [File("/bin/busybox", BUSYBOX)] + [File(f"/bin/{a}", link="busybox") for a in SHELL_APPLETS]
    return build_layered(files, ["/bin/sh"], user=user, env=["PATH=/bin"])
