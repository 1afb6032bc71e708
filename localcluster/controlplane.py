"""The control plane: etcd, kube-apiserver, kube-controller-manager and kube-scheduler.

The API server listens on the cluster's host address: loopback with kwok, the node bridge's
gateway with a kubelet, so pods reach it through the `kubernetes` Service (kube-proxy) as in any
cluster, and its self-signed certificate names that address and the Service IP.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import TYPE_CHECKING

from .process import http_ok, kill, log
from .toolchain import binaries, crd_dirs

if TYPE_CHECKING:
    from .cluster import LocalCluster

ADMIN_TOKEN = "druppie-local-admin-token"  # a throwaway cluster reachable from this machine only
SERVICE_CIDR = "10.96.0.0/16"


def make_certs(cluster: LocalCluster) -> None:
    pki = cluster.state_dir / "pki"
    pki.mkdir(exist_ok=True)
    if not (pki / "sa.key").exists():
        subprocess.run(["openssl", "genrsa", "-out", str(pki / "sa.key"), "2048"], check=True, capture_output=True)
        subprocess.run(
            ["openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")],
            check=True,
            capture_output=True,
        )
    (pki / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin,"system:masters"\n')


def start(cluster: LocalCluster) -> None:
    b, p, d = binaries(), cluster.ports, cluster.state_dir
    cluster.spawn(
        "etcd",
        [
            b["etcd"],
            "--data-dir",
            d / "etcd",
            "--name",
            "druppie",
            "--listen-client-urls",
            f"http://127.0.0.1:{p['etcd']}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{p['etcd']}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{p['etcd-peer']}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{p['etcd-peer']}",
            "--initial-cluster",
            f"druppie=http://127.0.0.1:{p['etcd-peer']}",
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
        ],
    )
    cluster.wait_until("etcd", lambda: http_ok(f"http://127.0.0.1:{p['etcd']}/health"))
    log("etcd ready")
    start_apiserver(cluster)
    write_kubeconfig(cluster)
    cluster.spawn(
        "kube-controller-manager",
        [
            b["kube-controller-manager"],
            "--kubeconfig",
            cluster.kubeconfig,
            "--leader-elect=false",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            p["kcm"],
            "--use-service-account-credentials",
            "--service-account-private-key-file",
            d / "pki" / "sa.key",
            "--root-ca-file",
            d / "apiserver-certs" / "apiserver.crt",
            "--controllers",
            "*,-nodeipam,-cloud-node-lifecycle,-route,-service",
            "--concurrent-deployment-syncs",
            "10",
            "--v",
            "1",
        ],
    )
    cluster.spawn(
        "kube-scheduler",
        [
            b["kube-scheduler"],
            "--kubeconfig",
            cluster.kubeconfig,
            "--leader-elect=false",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            p["scheduler"],
        ],
    )


def start_apiserver(cluster: LocalCluster) -> None:
    """(Re)start kube-apiserver on its port; the e2e tests restart it to test resuming watches."""
    b, p, d = binaries(), cluster.ports, cluster.state_dir
    cluster.spawn(
        "kube-apiserver",
        [
            b["kube-apiserver"],
            "--etcd-servers",
            f"http://127.0.0.1:{p['etcd']}",
            "--bind-address",
            cluster.host_ip,
            "--advertise-address",
            cluster.host_ip,
            "--secure-port",
            p["apiserver"],
            "--cert-dir",
            d / "apiserver-certs",
            "--token-auth-file",
            d / "pki" / "tokens.csv",
            "--authorization-mode",
            "Node,RBAC",
            "--service-cluster-ip-range",
            SERVICE_CIDR,
            "--service-account-issuer",
            "https://kubernetes.default.svc",
            "--service-account-key-file",
            d / "pki" / "sa.pub",
            "--service-account-signing-key-file",
            d / "pki" / "sa.key",
            "--api-audiences",
            "https://kubernetes.default.svc",
            "--allow-privileged",
            "--kubelet-preferred-address-types",
            "InternalIP",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
        ],
    )
    cluster.wait_until("kube-apiserver", lambda: http_ok(f"{cluster.api_url}/readyz", token=ADMIN_TOKEN), timeout=90)
    log("kube-apiserver ready")


def stop_apiserver(cluster: LocalCluster) -> None:
    kill(cluster.pids.pop("kube-apiserver", 0))
    cluster.save()


def write_kubeconfig(cluster: LocalCluster) -> None:
    ca = cluster.state_dir / "apiserver-certs" / "apiserver.crt"
    cluster.kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "druppie",
                "clusters": [
                    {"name": "druppie", "cluster": {"server": cluster.api_url, "certificate-authority": str(ca)}}
                ],
                "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
                "contexts": [{"name": "druppie", "context": {"cluster": "druppie", "user": "admin"}}],
            },
            indent=2,
        )
    )
    os.chmod(cluster.kubeconfig, 0o600)


def apply_base_objects(cluster: LocalCluster) -> None:
    for ns in ("flux-system", "productie"):
        cluster.kubectl("create", "namespace", ns, check=False)
    for d in crd_dirs():
        cluster.kubectl("apply", "--server-side", "-f", str(d))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    log("namespaces and Flux CRDs established")
