"""kube-apiserver: the cluster's API, with its certificates, the admin's kubeconfig and token.

It listens on the cluster's host address: loopback with kwok, the node bridge's gateway with a
kubelet, so pods reach it through the `kubernetes` Service (kube-proxy) as in any cluster; its
self-signed certificate names that address and the Service IP. The admin token is random per
cluster, in 0600 files only (``kubeconfig`` and ``apiserver/tokens.csv``): nothing in the source
or a process argument opens this cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess

from .component import Component
from .context import SERVICE_CIDR, Context
from .process import http_ok
from .toolchain import binaries

SA_ISSUER = "https://kubernetes.default.svc"


def admin_token(ctx: Context) -> str:
    """The cluster's admin token (system:masters), from its 0600 file."""
    return (ctx.component_dir("apiserver") / "admin-token").read_text().strip()


def _write_private(path: os.PathLike[str], text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class ApiServer(Component):
    name = "kube-apiserver"
    needs = ("etcd", "bridge")

    def missing(self) -> list[str]:
        return [] if binaries()["kube-apiserver"].is_file() else [str(binaries()["kube-apiserver"])]

    def start(self, ctx: Context) -> None:
        folder = ctx.component_dir("apiserver")
        if not (folder / "sa.key").exists():  # the service-account signing key, kept across restarts
            subprocess.run(
                ["openssl", "genrsa", "-out", str(folder / "sa.key"), "2048"], check=True, capture_output=True
            )
            subprocess.run(["openssl", "rsa", "-in", str(folder / "sa.key"), "-pubout", "-out", str(folder / "sa.pub")],
                           check=True, capture_output=True)  # fmt: skip
        if not (folder / "admin-token").exists():
            token = secrets.token_urlsafe(32)
            _write_private(folder / "admin-token", token + "\n")
            _write_private(folder / "tokens.csv", f'{token},admin,admin,"system:masters"\n')
        ctx.spawn(self.name, [
            binaries()["kube-apiserver"], "--etcd-servers", f"http://127.0.0.1:{ctx.port('etcd')}",
            "--bind-address", ctx.host_ip, "--advertise-address", ctx.host_ip, "--secure-port", ctx.port("apiserver"),
            "--cert-dir", folder / "certs", "--token-auth-file", folder / "tokens.csv",
            "--authorization-mode", "Node,RBAC", "--service-cluster-ip-range", SERVICE_CIDR,
            "--service-account-issuer", SA_ISSUER, "--service-account-key-file", folder / "sa.pub",
            "--service-account-signing-key-file", folder / "sa.key", "--api-audiences", SA_ISSUER,
            "--allow-privileged", "--kubelet-preferred-address-types", "InternalIP",
            "--enable-priority-and-fairness=false", "--profiling=false",
        ])  # fmt: skip

    def ready(self, ctx: Context) -> None:
        token = admin_token(ctx)
        ctx.wait_until(self.name, lambda: http_ok(f"{ctx.api_url}/readyz", token=token), timeout=90, interval=0.1)
        self._write_kubeconfig(ctx, token)

    @staticmethod
    def _write_kubeconfig(ctx: Context, token: str) -> None:
        ca = ctx.component_dir("apiserver") / "certs" / "apiserver.crt"
        _write_private(ctx.kubeconfig, json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "druppie",
            "clusters": [{"name": "druppie", "cluster": {"server": ctx.api_url, "certificate-authority": str(ca)}}],
            "users": [{"name": "admin", "user": {"token": token}}],
            "contexts": [{"name": "druppie", "context": {"cluster": "druppie", "user": "admin"}}],
        }, indent=2))  # fmt: skip


def root_ca(ctx: Context) -> str:
    """The API server's certificate file (self-signed: it is its own CA)."""
    return str(ctx.component_dir("apiserver") / "certs" / "apiserver.crt")


def signing_key(ctx: Context) -> str:
    return str(ctx.component_dir("apiserver") / "sa.key")
