"""containerd (Debian's) with runc: the node's container runtime, its own socket and state folder.

Its CRI plugin pulls `registry.example/...` and `ghcr.io/...` from the cluster registry (so the
catalog's unmodified Task YAML and the example apps run images built on this machine), and the
registry's own address over plain HTTP (what build pods push to and the loop's manifests name).
``restrict_oom_score_adj``: root here lacks CAP_SYS_RESOURCE, so the sandbox's default
oom_score_adj of -998 made runc fail ("can't get final child's PID from pipe: EOF"). Pods get a
network namespace on the node bridge from the bridge CNI plugin.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .component import Component
from .context import Context
from .ociimage import Image, build_image, build_pause_binary, push, write_oci_archive

PAUSE_IMAGE = "druppie.local/pause:1"
MIRRORED_REGISTRY = "registry.example"  # the registry named in examples/druppie-apps
# Hosts containerd pulls from the cluster registry instead: the examples' registry, and the one the
# catalog's Task YAML names (ghcr.io/waterschap/druppie-step), so the shipped YAML runs unmodified.
MIRRORED_REGISTRIES = (MIRRORED_REGISTRY, "ghcr.io")
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins


def socket(ctx: Context) -> Path:
    return ctx.component_dir("containerd") / "containerd.sock"


def ctr(ctx: Context, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ctr", "--address", str(socket(ctx)), "-n", "k8s.io", *args],
                          capture_output=True, text=True, check=check)  # fmt: skip


def pause_image(ctx: Context) -> Image:
    """The sandbox image: a static binary that waits for a signal (compiled once per cluster)."""
    binary = ctx.component_dir("containerd") / "pause"
    return build_image(binary if binary.is_file() else build_pause_binary(binary))


def publish_image(ctx: Context, reference: str) -> str:
    """Push a real image (the pause binary) as ``registry.example/<repo>:<tag>``, for Deployments
    that only need to run (the example app's manifests before the pipeline built the app)."""
    host, _, rest = reference.partition("/")
    repository, _, tag = rest.rpartition(":")
    if host != MIRRORED_REGISTRY or not repository:
        raise ValueError(f"can only publish {MIRRORED_REGISTRY}/<repo>:<tag>, not {reference!r}")
    return push(pause_image(ctx), ctx.registry, repository, tag)


class Containerd(Component):
    name = "containerd"
    needs = ("bridge",)
    features = frozenset({"kubelet"})
    unless = frozenset({"containerd2"})  # that node runs containerd v2 (containerd2.py) instead

    def missing(self) -> list[str]:
        return [tool for tool in ("containerd", "ctr", "runc", "gcc") if not shutil.which(tool)]

    def start(self, ctx: Context) -> None:
        d = ctx.component_dir("containerd")
        for sub in ("cni/net.d", "cni/ipam", *[f"certs.d/{host}" for host in (*MIRRORED_REGISTRIES, ctx.registry)]):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "containerd.toml").write_text(self.config(ctx))
        for host in (*MIRRORED_REGISTRIES, ctx.registry):
            (d / "certs.d" / host / "hosts.toml").write_text(
                f'server = "http://{ctx.registry}"\n'
                f'[host."http://{ctx.registry}"]\n  capabilities = ["pull", "resolve"]\n'
            )
        (d / "cni" / "net.d" / "10-druppie.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "druppie", "plugins": [
                {"type": "bridge", "bridge": ctx.bridge, "isGateway": True, "isDefaultGateway": True, "ipMasq": False,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": ctx.pod_subnet}]],
                          "dataDir": str(d / "cni" / "ipam")}},
                {"type": "loopback"}]}))  # fmt: skip
        ctx.spawn(self.name, [self.binary(), "--config", d / "containerd.toml"], env=self.env())

    def binary(self) -> str:
        return "containerd"

    def env(self) -> dict[str, str]:
        """What containerd's environment adds (its shims are found on PATH)."""
        return {}

    def config(self, ctx: Context) -> str:
        d = ctx.component_dir("containerd")
        return f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"
[grpc]
  address = "{socket(ctx)}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{d / "cni" / "net.d"}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d / "certs.d"}"
"""

    def ready(self, ctx: Context) -> None:
        ctx.wait_until(self.name, lambda: socket(ctx).exists() and ctr(ctx, "version", check=False).returncode == 0)
        archive = write_oci_archive(pause_image(ctx), PAUSE_IMAGE, ctx.component_dir("containerd") / "pause.tar")
        ctr(ctx, "images", "import", str(archive))

    def stop(self, ctx: Context) -> None:
        """Stop containerd, then kill what it left (shims, containers) and unmount its folders."""
        ctx.stop(self.name)
        subprocess.run(["pkill", "-KILL", "-f", f"containerd-shim-runc-v2 .*-address {socket(ctx)}"], check=False)
        folder = str(ctx.component_dir("containerd"))
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(folder)), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
