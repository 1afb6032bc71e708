"""Container registries for tests: Debian's docker-registry on loopback, open or with htpasswd auth,
and a tiny base image (busybox) pushed into them so builds need nothing from the internet."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from localcluster.ociimage import File, build_layered, push
from localcluster.process import http_request

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "cat", "ls", "touch", "mkdir", "id", "true", "env")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    host: str
    process: subprocess.Popen
    user: str = ""
    password: str = ""

    def auth_file(self, directory: Path, password: str | None = None) -> Path:
        """A docker config.json for this registry (``password`` overrides the right one)."""
        token = base64.b64encode(f"{self.user}:{self.password if password is None else password}".encode()).decode()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "config.json"
        path.write_text(json.dumps({"auths": {self.host: {"auth": token}}}))
        return path

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_registry(root: Path, user: str = "", password: str = "") -> Registry:
    port = free_port()
    auth = ""
    if user:
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (root / "htpasswd").write_text(f"{user}:{hashed}\n")
        auth = f"auth:\n  htpasswd:\n    realm: druppie-test\n    path: {root / 'htpasswd'}\n"
    config = root / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: warn\n{auth}"
    )
    process = subprocess.Popen(
        [shutil.which("docker-registry") or "docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            http_request(f"http://127.0.0.1:{port}/v2/", timeout=2).close()
            break
        except urllib.error.HTTPError:
            break  # 401: up, and asking for credentials
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError("docker-registry did not start")
    return Registry(f"127.0.0.1:{port}", process, user, password)


def push_busybox_base(registry: Registry, repository: str = "base/busybox", tag: str = "1") -> str:
    """A one-layer busybox image as a build base; returns its reference by tag."""
    image = build_layered(
        [File("/bin/busybox", BUSYBOX)] + [File(f"/bin/{a}", link="busybox") for a in APPLETS],
        ["/bin/sh"],
        env=["PATH=/bin"],
    )
    push(image, registry.host, repository, tag)
    return f"{registry.host}/{repository}:{tag}"
