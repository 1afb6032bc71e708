"""This local cluster as a site: the settings a platform team adds around the catalog for its own
infrastructure, applied the same way by the e2e tier and `make demo`."""

from __future__ import annotations

import json

from localcluster.cluster import LocalCluster


def registry_allowance(cluster: LocalCluster, namespace: str = "ci") -> dict:
    """The catalog's NetworkPolicy lets test and build pods reach public addresses only; this
    site's registry is on a private one (the node's), so a second policy names exactly it."""
    host, port = cluster.registry.split(":")
    selector = {"key": "tekton.dev/task", "operator": "In", "values": ["druppie-test", "druppie-build"]}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "druppie-build-and-test-registry", "namespace": namespace},
            "spec": {"podSelector": {"matchExpressions": [selector]}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": f"{host}/32"}}],
                                 "ports": [{"port": int(port), "protocol": "TCP"}]}]}}  # fmt: skip


def apply_site_settings(cluster: LocalCluster, namespace: str = "ci") -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(registry_allowance(cluster, namespace)))
