"""This local cluster as a site: the settings a platform team adds around the catalog for its own
infrastructure, applied the same way by the e2e tier and `make demo`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from localcluster.cluster import LocalCluster
from localcluster.toolchain import ROOT

from .readme import yaml_blocks


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


# druppie-build's seccomp profile: the README's installer, through druppie-build README's overlay for
# a node whose kubelet root is not /var/lib/kubelet (this node's is in the cluster's state folder).
SECCOMP_INSTALL = "kubectl apply -k install/seccomp"
BUILD_README = ROOT / "tasks/druppie-build/0.1/README.md"
SECCOMP_URL = "https://github.com/waterschap/druppie-catalog//install/seccomp?ref=main"
README_KUBELET_SECCOMP = "/var/lib/k0s/kubelet/seccomp"


def seccomp_overlay(cluster: LocalCluster, folder: Path) -> Path:
    """druppie-build README's overlay, written into ``folder`` for this cluster's kubelet root."""
    (block,) = [b for b in yaml_blocks(BUILD_README) if SECCOMP_URL in b]
    folder.mkdir(parents=True, exist_ok=True)
    text = block.replace(SECCOMP_URL, os.path.relpath(ROOT / "install/seccomp", folder))
    (folder / "kustomization.yaml").write_text(
        text.replace(README_KUBELET_SECCOMP, str(cluster.kubelet_root / "seccomp"))
    )
    return folder


def site_command(cluster: LocalCluster, command: str, work: Path) -> str:
    """A README install command as this site runs it: the seccomp installer through the overlay."""
    if command == SECCOMP_INSTALL:
        return f"kubectl apply -k {seccomp_overlay(cluster, work / 'seccomp-overlay')}"
    return command


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


# The scan's advisory database: the tests' two real OSV advisories (tests/fixtures/osv-db), stamped
# now and pushed as the OCI artifact the pipeline's osv-db-ref names (no internet here for a real one).
OSV_DB_FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "osv-db"
OSV_DB_REPO = "druppie/osv-db"


def push_advisory_database(registry: str) -> str:
    """Push the fixture database to ``registry`` as ``druppie/osv-db:latest``; returns that ref."""
    ref = f"{registry}/{OSV_DB_REPO}:latest"
    with tempfile.TemporaryDirectory(prefix="druppie-osv-db-") as tmp:
        db = Path(tmp) / "osv-db"
        shutil.copytree(OSV_DB_FIXTURE, db)
        (db / "last-updated").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        subprocess.run([str(Path(sys.executable).parent / "druppie-step"), "osv-db-push", "--db", str(db),
                        "--ref", ref, "--no-tls-verify"], check=True, capture_output=True)  # fmt: skip
    return ref
