"""A minimal real container image (a static `pause`-like binary) as an OCI layout, pushed to a
registry over the distribution API or written as an OCI archive for `ctr images import`.

The e2e cluster's kubelet runs it for the pause sandbox and as the app image, so pods really
start in runc without any image from the internet.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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
class Image:
    layer: bytes
    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return _digest(self.manifest)


def build_pause_binary(dest: Path) -> Path:
    source = dest.with_suffix(".c")
    source.write_text(PAUSE_C)
    subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(dest), str(source)], check=True, capture_output=True)
    return dest


def build_image(binary: Path, entrypoint: str = "/pause") -> Image:
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as tar:
        info = tar.gettarinfo(str(binary), arcname=entrypoint.lstrip("/"))
        info.uid = info.gid = 0
        info.mtime = 0
        with binary.open("rb") as f:
            tar.addfile(info, f)
    layer = layer_buf.getvalue()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": [entrypoint]},
                         "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]}}, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer),
                    "size": len(layer)}]}, sort_keys=True).encode()
    return Image(layer, config, manifest)


def write_oci_archive(image: Image, name: str, out: Path) -> Path:
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": MANIFEST_TYPE, "digest": image.digest, "size": len(image.manifest),
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}}]}).encode()
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
        head = urllib.request.Request(f"{base}/blobs/{_digest(blob)}", method="HEAD")
        try:
            urllib.request.urlopen(head, timeout=10)
            continue  # already there
        except urllib.error.HTTPError:
            pass
        start = urllib.request.urlopen(urllib.request.Request(f"{base}/blobs/uploads/", method="POST", data=b""),
                                       timeout=10)
        location = start.headers["Location"]
        location = location if location.startswith("http") else f"http://{registry}{location}"
        sep = "&" if "?" in location else "?"
        urllib.request.urlopen(urllib.request.Request(f"{location}{sep}digest={_digest(blob)}", data=blob,
                                                      method="PUT",
                                                      headers={"Content-Type": "application/octet-stream"}),
                               timeout=30)
    urllib.request.urlopen(urllib.request.Request(f"{base}/manifests/{tag}", data=image.manifest, method="PUT",
                                                  headers={"Content-Type": MANIFEST_TYPE}), timeout=10)
    return image.digest
