#!/usr/bin/env python3
"""The Go toolchain of the images' go stage, from the Go module proxy, checked before use.

    python3 hack/go_toolchain.py CACHE_DIR [ARCH]   prints the GOROOT it made (or found) in CACHE_DIR

Go publishes every release as the module ``golang.org/toolchain@v0.0.1-<version>.<os>-<arch>``
(the go command switches toolchains this way), so a build that reaches a module proxy (GOPROXY,
default https://proxy.golang.org; a mirror works as well) needs no other download site and no Go to
start from. The version and the go.sum hash (h1:, the checksum database's) per architecture are in
hack/toolchain.env beside this file; a zip whose hash differs is refused before anything of it is
unpacked. Standard library only: it runs on the image's base (python3 of Debian bookworm or
python:3.11-slim) before there is any Go. ARCH defaults to this machine's (amd64 or arm64): the go
stage runs on the build platform and cross-compiles for the target.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

TOOLCHAIN_ENV = Path(__file__).resolve().parent / "toolchain.env"
MODULE = "golang.org/toolchain"
MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def toolchain_env(path: Path = TOOLCHAIN_ENV) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def module_version(go_version: str, arch: str) -> str:
    """The toolchain module's version, e.g. v0.0.1-go1.27.3.linux-amd64."""
    return f"v0.0.1-{go_version}.linux-{arch}"


def hash_zip(path: Path) -> str:
    """The go.sum hash (h1:) of a module zip: golang.org/x/mod/sumdb/dirhash.HashZip."""
    summary = hashlib.sha256()
    with zipfile.ZipFile(path) as z:
        for name in sorted(info.filename for info in z.infolist() if not info.is_dir()):
            if "\n" in name:
                raise ValueError(f"{path}: file name with a newline: {name!r}")
            summary.update(f"{hashlib.sha256(z.read(name)).hexdigest()}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def proxy_url(goproxy: str) -> str:
    """The first proxy of a GOPROXY list (entries separated by , or |; direct and off are not proxies)."""
    for entry in goproxy.replace("|", ",").split(","):
        entry = entry.strip().rstrip("/")
        if entry.startswith(("https://", "http://", "file://")):
            return entry
    raise SystemExit(f"go_toolchain: GOPROXY={goproxy!r} names no proxy (https://...); the toolchain comes from one")


def extract(zip_path: Path, prefix: str, dest: Path) -> None:
    """Unpack the module's files below ``prefix`` into dest. Module zips keep no file modes: as the
    go command does for a toolchain it switches to, bin/ and pkg/tool/ become executable."""
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            if info.is_dir():
                continue
            if not info.filename.startswith(prefix) or ".." in Path(info.filename).parts:
                raise ValueError(f"{zip_path}: unexpected path {info.filename!r}")
            rel = info.filename[len(prefix) :]
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            parts = Path(rel).parts
            executable = parts[0] == "bin" or (len(parts) == 4 and parts[:2] == ("pkg", "tool"))
            target.chmod(0o755 if executable else 0o644)


def fetch(cache: Path, arch: str, env: dict[str, str], goproxy: str) -> Path:
    go_version = env["GO_TOOLCHAIN"]
    want = env.get(f"GO_TOOLCHAIN_H1_LINUX_{arch.upper()}")
    if not want:
        raise SystemExit(f"go_toolchain: no GO_TOOLCHAIN_H1_LINUX_{arch.upper()} in {TOOLCHAIN_ENV}")
    version = module_version(go_version, arch)
    goroot = cache / f"{go_version}.linux-{arch}"
    marker = goroot / ".druppie-h1"
    if marker.is_file() and marker.read_text().strip() == want:
        return goroot
    cache.mkdir(parents=True, exist_ok=True)
    url = f"{proxy_url(goproxy)}/{MODULE}/@v/{version}.zip"
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        zip_path = Path(tmp) / "toolchain.zip"
        print(f"go_toolchain: {url}", file=sys.stderr)
        # https:// or file:// from GOPROXY (proxy_url), as the go command allows; the hash decides.
        with urllib.request.urlopen(url, timeout=300) as response, open(zip_path, "wb") as out:  # noqa: S310
            shutil.copyfileobj(response, out)
        got = hash_zip(zip_path)
        if got != want:
            raise SystemExit(f"go_toolchain: {MODULE}@{version} has hash {got}, toolchain.env pins {want}: refused")
        unpacked = Path(tmp) / "go"
        extract(zip_path, f"{MODULE}@{version}/", unpacked)
        (unpacked / ".druppie-h1").write_text(want + "\n")
        shutil.rmtree(goroot, ignore_errors=True)
        os.rename(unpacked, goroot)  # whole or not at all, for a build beside this one
    return goroot


def main(argv: list[str]) -> int:
    if not 2 <= len(argv) <= 3:
        print(__doc__, file=sys.stderr)
        return 2
    arch = argv[2] if len(argv) == 3 else MACHINES.get(platform.machine(), platform.machine())
    goproxy = os.environ.get("GOPROXY") or "https://proxy.golang.org"
    print(fetch(Path(argv[1]), arch, toolchain_env(), goproxy))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
