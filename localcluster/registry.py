"""The cluster's container registry: Debian's docker-registry (distribution v2) on the host address,
where containerd, the build pods and the tools reach it. containerd pulls `registry.example/...`
and `ghcr.io/...` from it (see containerd.py), so the catalog's unmodified Task YAML and the
example apps run images built on this machine.
"""

from __future__ import annotations

import shutil

from .component import Component
from .context import Context
from .process import http_ok


class Registry(Component):
    name = "registry"
    needs = ("bridge",)

    def missing(self) -> list[str]:
        return [] if shutil.which("docker-registry") else ["docker-registry (Debian package)"]

    def start(self, ctx: Context) -> None:
        folder = ctx.component_dir("registry")
        config = folder / "config.yml"
        config.write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {ctx.registry}\nlog:\n  level: warn\n"
        )
        ctx.spawn(self.name, [shutil.which("docker-registry"), "serve", config])

    def ready(self, ctx: Context) -> None:
        ctx.wait_until(self.name, lambda: http_ok(f"http://{ctx.registry}/v2/"), interval=0.05)
