"""An OpenSSH server on loopback serving the GitServer's bare repos over ``ssh://``.

Real sshd, real keys, real host-key checking: what a Tekton ssh-directory workspace meets.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SshGitServer:
    def __init__(self, repos_root: Path) -> None:
        self.repos_root = repos_root
        self._tmp = tempfile.TemporaryDirectory(prefix="druppie-sshd-")
        self.dir = Path(self._tmp.name)
        self.port = free_port()
        self.user = getpass.getuser()
        self._proc: subprocess.Popen | None = None

    def start(self) -> SshGitServer:
        d = self.dir
        for name in ("host", "client"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(d / name)], check=True)
        (d / "authorized_keys").write_text((d / "client.pub").read_text())
        os.chmod(d / "authorized_keys", 0o600)
        (d / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nPidFile {d / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nLogLevel ERROR\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on
        self._proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("sshd did not start")

    def stop(self) -> None:
        if self._proc:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        self._tmp.cleanup()

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.repos_root}/{name}.git"

    def workspace(self, target: Path, known_hosts: bool = True) -> Path:
        """An ssh-directory workspace as a Secret would mount it: key, known_hosts (world-readable)."""
        target.mkdir(parents=True, exist_ok=True)
        (target / "id_ed25519").write_text((self.dir / "client").read_text())
        (target / "id_ed25519.pub").write_text((self.dir / "client.pub").read_text())
        if known_hosts:
            host_key = " ".join((self.dir / "host.pub").read_text().split()[:2])
            (target / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_key}\n")
        for f in target.iterdir():
            f.chmod(0o644)  # Secret volumes default to 0644; the step must cope
        return target
