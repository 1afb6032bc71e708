"""This local cluster as a site: the settings a platform team adds around the catalog for its own
infrastructure, applied the same way by the e2e tier and `make demo`."""

from __future__ import annotations

import json
import subprocess

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


# Where the example app's Containerfile finds its base (BASE_IMAGE build arg): docker.io cannot be
# reached here, so the offline bookworm + python3 that `make images` made is pushed to the registry.
BASE_REPO = "druppie/python:3.11-bookworm"


def offline_base() -> str:
    """The debootstrap base `make images` made (hack/images.sh keeps it in buildah's storage)."""
    out = subprocess.run(["buildah", "--storage-driver", "vfs", "images", "--format", "{{.Name}}:{{.Tag}}"],
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    found = next((i for i in out if "druppie/bookworm-python3:" in i), None)
    if found is None:
        raise RuntimeError("no offline base image: run make images (hack/images.sh) first")
    return found


def push_offline_base(registry: str) -> str:
    """Push the offline base to ``registry`` as BASE_REPO; returns the reference the builds name."""
    target = f"{registry}/{BASE_REPO}"
    subprocess.run(["buildah", "--storage-driver", "vfs", "push", "--quiet", "--tls-verify=false", offline_base(),
                    f"docker://{target}"], check=True)  # fmt: skip
    return target
