"""etcd: the API server's store, on loopback, without fsync (a throwaway cluster)."""

from __future__ import annotations

from .component import Component
from .context import Context
from .process import http_ok
from .toolchain import binaries


class Etcd(Component):
    name = "etcd"

    def missing(self) -> list[str]:
        return [] if binaries()["etcd"].is_file() else [str(binaries()["etcd"])]

    def start(self, ctx: Context) -> None:
        client, peer = ctx.port("etcd"), ctx.port("etcd-peer")
        ctx.spawn(self.name, [
            binaries()["etcd"], "--data-dir", ctx.component_dir("etcd") / "data", "--name", "druppie",
            "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"druppie=http://127.0.0.1:{peer}", "--unsafe-no-fsync", "--log-level", "warn",
        ])  # fmt: skip

    def ready(self, ctx: Context) -> None:
        ctx.wait_until(self.name, lambda: http_ok(f"http://127.0.0.1:{ctx.port('etcd')}/health"))
