"""The cluster's container registry: Debian's docker-registry (distribution v2) on the node's bridge
address (loopback without a kubelet node), where containerd, the build pods and the tools reach it.

containerd pulls `registry.example/...` and `ghcr.io/...` from it (see node.MIRRORED_REGISTRIES),
so the catalog's unmodified Task YAML and the example apps run images built on this machine.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from .process import http_ok

if TYPE_CHECKING:
    from .cluster import LocalCluster


def start(cluster: LocalCluster) -> None:
    config = cluster.state_dir / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {cluster.state_dir / 'registry'}\n"
        f"  delete:\n    enabled: true\n"
        f"http:\n  addr: {cluster.registry}\nlog:\n  level: warn\n"
    )
    cluster.spawn("registry", [shutil.which("docker-registry"), "serve", config])
    cluster.wait_until("registry", lambda: http_ok(f"http://{cluster.registry}/v2/"))
