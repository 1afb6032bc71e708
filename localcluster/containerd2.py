"""containerd v2 with runc v1.5.3 as the node's runtime (DRUPPIE_CONTAINERD=2): a node that runs
pods with ``hostUsers: false`` in user namespaces of their own, as containerd >= 2.0 and runc >= 1.2
do (idmapped mounts for volumes and the image's layers). Debian's containerd 1.6 ignores
``hostUsers: false`` and runs such a pod in the host's user namespace.

Built from their Go modules by hack/cluster-build.sh userns. The same node otherwise: mirrors,
CNI, the pause image and the state folder are containerd.py's; only the binaries and the config
(version 3: the CRI plugin is split into images and runtime) differ.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .containerd import CNI_BIN_DIR, PAUSE_IMAGE, Containerd, socket
from .context import Context
from .toolchain import containerd2_dir, runc2_binary


class Containerd2(Containerd):
    features = frozenset({"kubelet", "containerd2"})
    unless = frozenset()

    def missing(self) -> list[str]:
        built = [containerd2_dir() / name for name in ("containerd", "containerd-shim-runc-v2", "ctr")]
        lacking = [str(path) for path in (*built, runc2_binary()) if not path.is_file()]
        return lacking + [m for m in super().missing() if m not in ("containerd", "ctr", "runc")]

    def start(self, ctx: Context) -> None:
        traversable(ctx.component_dir("containerd") / "state")
        super().start(ctx)

    def binary(self) -> str:
        return str(containerd2_dir() / "containerd")

    def env(self) -> dict[str, str]:
        return {"PATH": f"{containerd2_dir()}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}

    def config(self, ctx: Context) -> str:
        d = ctx.component_dir("containerd")
        return f"""version = 3
root = "{d / "root"}"
state = "{d / "state"}"
[grpc]
  address = "{socket(ctx)}"
[plugins.'io.containerd.cri.v1.images']
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "{d / "certs.d"}"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{CNI_BIN_DIR}"]
    conf_dir = "{d / "cni" / "net.d"}"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "{runc2_binary()}"
"""


def traversable(folder: Path) -> list[Path]:
    """Give every folder from ``/`` down to ``folder`` search permission for others (o+x: enter, not
    list), as /run/containerd has on a real node; returns the folders changed.

    A pod with ``hostUsers: false`` runs as host IDs of its own block, and runc, from inside that user
    namespace, must reach the rootfs under containerd's state folder; through a 0700 folder (pytest's
    /tmp/pytest-of-root, a state folder made with mkdtemp) it gets EACCES: "error preparing rootfs:
    remount-propagation dst=<state>/.../rootfs, flags=MS_PRIVATE: permission denied".
    """
    folder.mkdir(parents=True, exist_ok=True)
    changed = []
    for path in (folder, *folder.parents):
        mode = path.stat().st_mode
        if not mode & stat.S_IXOTH:
            path.chmod(mode | stat.S_IXOTH)
            changed.append(path)
    return changed
