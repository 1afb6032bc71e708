"""install/openshift: the SecurityContextConstraints of druppie-build, checked offline against the SCC
schema of OpenShift's own API (the CRD in github.com/openshift/api, security/v1/zz_generated.crd-manifests,
at OPENSHIFT_API_VERSION; hack/cluster-build.sh openshift-crds copies it into the cache, and this test
runs that when it is missing), and against the Task: the SCC allows exactly what the build step asks
for. No OpenShift cluster runs here: that OpenShift admits a TaskRun's pod with it is not tested.

The check is stricter than the API server: a field the schema does not know fails here (the server
would drop it silently), and a `null` passes only where the schema says nullable.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from localcluster.toolchain import ROOT, cache_dir, toolchain

OPENSHIFT = ROOT / "install/openshift"
TASK = ROOT / "tasks/druppie-build/0.1/druppie-build.yaml"
CRD_NAME = "0000_03_config-operator_01_securitycontextconstraints.crd.yaml"


def crd_path() -> Path:
    path = cache_dir() / f"openshift-crds-{toolchain()['OPENSHIFT_API_VERSION']}" / "crds" / CRD_NAME
    if not path.is_file():
        subprocess.run([str(ROOT / "hack/cluster-build.sh"), "openshift-crds"], check=True, capture_output=True)
    return path


def json_schema(node: dict) -> dict:
    """An OpenAPI v3 schema of a CRD as JSON Schema: `nullable` becomes a null type, an object with
    properties takes no other field (unless it preserves unknown fields), Kubernetes' extensions go."""
    out: dict = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "format"):
            continue
        if key == "properties":
            out[key] = {name: json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = json_schema(value)
        else:
            out[key] = value
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    if node.get("nullable"):
        kind = out.get("type")
        if kind:
            out["type"] = [kind, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


@pytest.fixture(scope="module")
def schema() -> dict:
    crd = yaml.safe_load(crd_path().read_text())
    assert crd["spec"]["names"]["kind"] == "SecurityContextConstraints"
    (version,) = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
    found = json_schema(version["schema"]["openAPIV3Schema"])
    found["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: the API server's, not the CRD's
    found["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/{version['name']}"}
    found["properties"]["kind"] = {"const": "SecurityContextConstraints"}
    return found


def sccs() -> list[dict]:
    return [
        doc
        for path in sorted(OPENSHIFT.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "SecurityContextConstraints"
    ]


def build_step() -> dict:
    (step,) = yaml.safe_load(TASK.read_text())["spec"]["steps"]
    return step


def test_the_scc_is_valid_by_openshifts_schema(schema):
    assert [s["metadata"]["name"] for s in sccs()] == ["druppie-build"]
    for scc in sccs():
        jsonschema.validate(scc, schema)


def test_the_schema_check_catches_a_typo_and_a_wrong_type(schema):
    """The check has teeth: a misspelt field and a string where the schema wants a list fail."""
    (scc,) = sccs()
    with pytest.raises(jsonschema.ValidationError, match="allowedCapabilites"):
        jsonschema.validate({**scc, "allowedCapabilites": ["SETUID"]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**scc, "allowedCapabilities": "SETUID"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**scc, "userNamespaceLevel": "Sometimes"}, schema)


def test_the_scc_allows_exactly_what_the_build_step_asks_for():
    (scc,) = sccs()
    context = build_step()["securityContext"]
    assert scc["requiredDropCapabilities"] == context["capabilities"]["drop"] == ["ALL"]
    assert scc["allowedCapabilities"] == context["capabilities"]["add"]
    assert scc["defaultAddCapabilities"] is None
    assert scc["runAsUser"] == {"type": "MustRunAs", "uid": context["runAsUser"]}
    assert scc["allowPrivilegeEscalation"] is context["allowPrivilegeEscalation"] is False
    profile = context["seccompProfile"]
    assert profile["type"] == "Localhost"
    assert scc["seccompProfiles"][0] == f"localhost/{profile['localhostProfile']}"
    assert set(scc["seccompProfiles"]) <= {f"localhost/{profile['localhostProfile']}", "runtime/default"}


def test_the_scc_grants_no_host_access_and_no_privileged_mode():
    (scc,) = sccs()
    assert scc["allowPrivilegedContainer"] is False
    for field in ("allowHostDirVolumePlugin", "allowHostIPC", "allowHostNetwork", "allowHostPID", "allowHostPorts"):
        assert scc[field] is False, field
    assert "hostPath" not in scc["volumes"] and "*" not in scc["volumes"]
    assert scc["users"] == [] and scc["groups"] == []  # granted by RBAC (use), to druppie-build only


def test_only_druppie_builds_service_account_may_use_it():
    role = yaml.safe_load((OPENSHIFT / "role.yaml").read_text())
    assert role["rules"] == [
        {
            "apiGroups": ["security.openshift.io"],
            "resources": ["securitycontextconstraints"],
            "resourceNames": ["druppie-build"],
            "verbs": ["use"],
        }
    ]
    binding = yaml.safe_load((OPENSHIFT / "team/role-binding.yaml").read_text())
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "druppie-build"}]
