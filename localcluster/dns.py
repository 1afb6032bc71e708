"""Cluster DNS: CoreDNS from its Go module, run as every cluster runs it.

A Deployment in kube-system behind the Service ``kube-dns`` at the conventional 10.96.0.10, the
kubelet's ``clusterDNS``; the ``kubernetes`` plugin answers Service names (the EventListener calls
``tekton-triggers-core-interceptors.tekton-pipelines.svc``), everything else is forwarded to the
node's resolver. It listens on 1053 as user 65532 (no capability), the Service maps 53 to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .ociimage import File, build_layered, push
from .toolchain import cache_dir, toolchain

if TYPE_CHECKING:
    from .cluster import LocalCluster

CLUSTER_DNS_IP = "10.96.0.10"  # inside controlplane.SERVICE_CIDR, as kubeadm chooses it
CLUSTER_DOMAIN = "cluster.local"
MIRROR = "registry.example"
COREFILE = f""".:1053 {{
    errors
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
    cache 30
    loop
}}
"""


def binary() -> Path:
    return cache_dir() / f"coredns-{toolchain()['COREDNS_VERSION']}" / "coredns"


def missing() -> list[str]:
    return [] if binary().is_file() else [str(binary())]


def manifests(image: str) -> list[dict]:
    labels = {"k8s-app": "kube-dns"}
    meta = {"name": "coredns", "namespace": "kube-system"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREFILE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"containerPort": 1053, "protocol": "UDP", "name": "dns"},
                                    {"containerPort": 1053, "protocol": "TCP", "name": "dns-tcp"},
                                ],
                                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "selector": labels,
                "clusterIP": CLUSTER_DNS_IP,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 1053, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 1053, "protocol": "TCP"},
                ],
            },
        },
    ]


def install(cluster: LocalCluster) -> None:
    import yaml

    version = toolchain()["COREDNS_VERSION"]
    image = build_layered([File("/coredns", binary())], ["/coredns"], user="65532")
    ref = f"{MIRROR}/coredns/coredns@{push(image, cluster.registry, 'coredns/coredns', version)}"
    out = cluster.state_dir / "coredns.yaml"
    out.write_text(yaml.safe_dump_all(manifests(ref), sort_keys=False))
    cluster.kubectl("apply", "-f", str(out))
    cluster.kubectl("rollout", "status", "-n", "kube-system", "deployment/coredns", "--timeout=120s")
