"""The node's bridge: created before anything starts, with the gateway address the bridge CNI
plugin would give it, so the API server, git server, registry and forge can listen on that address.
Pods reach them through it, and nothing listens on an address outside this machine.

Forwarding is switched on while a local cluster's bridge exists (pods reach each other through
Services); the machine's own value is kept once, outside any cluster, and put back when the last
local cluster's bridge goes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .component import Component
from .context import Context
from .toolchain import cache_dir

BRIDGE_PREFIX = "druppie"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def used_subnet_indexes() -> set[int]:
    """The 10.244.<i>.0/24 subnets that bridges of running local clusters hold."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    used = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[1].startswith(BRIDGE_PREFIX) and fields[3].startswith("10.244."):
            used.add(int(fields[3].split(".")[2]))
    return used


class Bridge(Component):
    name = "bridge"
    features = frozenset({"kubelet"})

    def missing(self) -> list[str]:
        return [] if Path("/usr/lib/cni/bridge").is_file() else ["containernetworking-plugins (Debian package)"]

    def start(self, ctx: Context) -> None:
        for args in (
            ["link", "add", "name", ctx.bridge, "type", "bridge"],
            ["addr", "add", f"{ctx.host_ip}/24", "dev", ctx.bridge],
            ["link", "set", ctx.bridge, "up"],
        ):
            subprocess.run(["ip", *args], check=True, capture_output=True)  # fmt: skip
        saved = cache_dir() / "ip_forward.orig"
        if not saved.exists():
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(IP_FORWARD.read_text().strip())
        IP_FORWARD.write_text("1")

    def stop(self, ctx: Context) -> None:
        subprocess.run(["ip", "link", "delete", ctx.bridge], check=False, capture_output=True)
        saved = cache_dir() / "ip_forward.orig"
        if saved.exists() and not used_subnet_indexes():
            IP_FORWARD.write_text(saved.read_text())
            saved.unlink()
