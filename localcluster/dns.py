"""Cluster DNS: CoreDNS from its Go module, run as every cluster runs it.

A Deployment in kube-system behind the Service ``kube-dns`` at the conventional 10.96.0.10, the
kubelet's ``clusterDNS``; the ``kubernetes`` plugin answers Service names (the EventListener calls
``tekton-triggers-core-interceptors.tekton-pipelines.svc``), everything else is forwarded to the
node's resolver. It listens on 1053 as user 65532 (no capability), the Service maps 53 to it.
"""

from __future__ import annotations

from pathlib import Path

from . import release
from .component import Component
from .context import CLUSTER_DNS_IP, CLUSTER_DOMAIN, Context
from .toolchain import cache_dir, toolchain

PLACEHOLDER = "ko://github.com/coredns/coredns"
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


class CoreDNS(Component):
    name = "coredns"
    prepare_needs = ("registry",)
    needs = ("kube-apiserver",)
    features = frozenset({"kubelet", "loop"})

    def missing(self) -> list[str]:
        return [] if binary().is_file() else [str(binary())]

    def prepare(self, ctx: Context) -> None:
        refs = release.publish(ctx, "coredns", {PLACEHOLDER: release.Binary(binary(), "/coredns")},
                               toolchain()["COREDNS_VERSION"])  # fmt: skip
        docs = release.resolve(manifests(PLACEHOLDER), refs)
        release.quick_probes(docs)
        release.save(ctx, self.name, docs)

    def start(self, ctx: Context) -> None:
        release.apply(ctx, self.name)

    def ready(self, ctx: Context) -> None:
        ctx.rollout("kube-system", "coredns")

    def stop(self, ctx: Context) -> None:
        """Its pod goes with the node."""
