"""The CI half on the real Tekton: clone, test, scan and build the example app, started with the
README's own `tkn` commands, one task at a time on a shared volume (local-path-provisioner).

Substitutions, as in test_tekton.py: github.com → the cluster's git server, and the registry
`registry.example` → the cluster registry's real address for the push (inside the cluster the
name `registry.example` exists only for containerd's pulls), with `tls-verify=false` (plain HTTP)
and the offline Debian base as BASE_IMAGE (docker.io cannot be reached here); the test task runs
with `offline=true` (no PyPI here: pytest comes from the image's wheelhouse).
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from druppie_steps.summary import MISSING_PROFILE
from hack.release import version
from localcluster.gitserver import seed_repo
from localcluster.process import http_request
from localcluster.toolchain import ROOT, spo_crd_dir
from testbed.apps import drone_app
from testbed.readme import block_with
from testbed.site import BASE_REPO, push_advisory_database, push_offline_base, site_command
from tests.support.ci_tasks import IMAGE, clone, start
from tests.support.e2e import ci_commands, wait_for

README = ROOT / "README.md"
PODMAN = ["podman", "--storage-driver", "vfs", "--runtime", "/usr/sbin/runc"]


@pytest.fixture(scope="module")
def ci(cluster, tekton, tmp_path_factory):
    """The app's repository (and its failing variants) on the cluster's git server, the offline
    base image in the cluster registry, and the catalog's NetworkPolicy for test and build pods
    with this site's allowance: the cluster registry, on the node's address."""
    for variant in (None, "failing-test", "planted-secret", "reaches-out"):
        name = "drone-service" + (f"-{variant}" if variant else "")
        source = drone_app(tmp_path_factory.mktemp(name) / "app", variant)
        if variant == "reaches-out":
            (source / "reach-targets.json").write_text(json.dumps(reach_targets(cluster)))
        seed_repo(cluster.git_root / f"{name}.git", source_dir=source)
    # The README's install applied the catalog's NetworkPolicy, the tekton fixture this site's
    # allowance for its registry (testbed/site.py).
    assert cluster.kubectl("get", "networkpolicy", "-n", "ci", "druppie-build-and-test-egress").returncode == 0
    push_offline_base(cluster.registry)
    push_advisory_database(cluster.registry)
    commands = ci_commands()
    tekton.run(commands["kubectl apply -n"])
    tekton.run(commands["kubectl create secret"])
    return commands


def reach_targets(cluster) -> dict[str, list]:
    """What a test pod must not reach: the API server (through its Service), another Service, the
    node's git server, and a pod (CoreDNS's, on a port that is not DNS)."""
    webhook = cluster.get_json("service", "-n", "tekton-pipelines", "tekton-pipelines-webhook")["spec"]["clusterIP"]
    git_port = int(cluster.git_url.split(":")[2].split("/")[0])
    return {
        "api-server": ["$KUBERNETES_SERVICE_HOST", 0],
        "tekton-webhook-service": [webhook, 443],
        "node-git-server": [cluster.host_ip, git_port],
        "node-api-server": [cluster.host_ip, api_port(cluster)],
    }


def api_port(cluster) -> int:
    return int(cluster.api_url.rsplit(":", 1)[1])


def test_clone_test_scan_build_the_example_app_as_the_readme_shows(tekton, cluster, ci):
    head = subprocess.run(
        ["git", "--git-dir", str(cluster.git_root / "drone-service.git"), "rev-parse", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    cloned = clone(tekton, cluster, ci)
    assert cloned["commit"] == head

    # No PyPI here: the app's only test dependency, pytest, comes from the image's wheelhouse.
    _, run, logs = start(tekton, cluster, ci["druppie-test"], extra=["-p", "offline=true"])
    results = tekton.results(run)
    assert results["passed"] == "4" and results["failed"] == "0", logs
    assert results["report"] == ".druppie/junit.xml"

    # The advisory database comes from the registry (osv-db-ref): the deps gate ran.
    _, run, logs = start(tekton, cluster, ci["druppie-scan"], extra=["-p", "tls-verify=false"])
    results = tekton.results(run)
    assert results["critical"] == "0" and results["high"] == "0", logs
    assert results["advisories"].startswith(f"checked: {cluster.registry}/druppie/osv-db@sha256:"), results
    assert results["report"] == ".druppie/scan.sarif"

    _, run, logs = start(
        tekton,
        cluster,
        ci["druppie-build"],
        extra=[
            "-p",
            "tls-verify=false",
            "-p",
            f"build-args=BASE_IMAGE={cluster.registry}/{BASE_REPO}",
            "-p",
            f"commit={head}",
        ],
    )
    results = tekton.results(run)
    image = f"{cluster.registry}/druppie/drone-service"
    assert results["IMAGE_URL"] == f"{image}:1.0.5"
    assert results["IMAGE_TAGS"] == f"1.0.5,{head[:7]}"
    served = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{image}:1.0.5"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert results["IMAGE_DIGEST"] == served
    assert "registry-credentials" not in logs and "not-a-real-token" not in logs

    # The build pod: root with exactly three added capabilities, never privileged, no API token.
    pod = cluster.get_json("pod", "-n", "ci", run["status"]["podName"])
    step = next(c for c in pod["spec"]["containers"] if c["name"] == "step-build")
    assert step["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["SETUID", "SETGID", "SETFCAP"]}
    assert not step["securityContext"].get("privileged")
    assert not any(
        "serviceaccount" in m["mountPath"] for c in pod["spec"]["containers"] for m in c.get("volumeMounts", [])
    )

    # The kubelet runs the built image, pulled by the digest the build reported, and it serves.
    ref = f"{IMAGE}@{results['IMAGE_DIGEST']}"
    cluster.kubectl(
        "run",
        "built-drone",
        "-n",
        "ci",
        f"--image={ref}",
        "--port=8080",
        "--restart=Never",
        "--overrides",
        json.dumps(
            {
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "built-drone",
                            "image": ref,
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        }
                    ],
                }
            }
        ),
    )
    ip = wait_for(
        "the built image to run",
        lambda: (
            (p := cluster.get_json("pod", "-n", "ci", "built-drone"))["status"].get("phase") == "Running"
            and p["status"].get("podIP")
        ),
        timeout=120,
    )
    body = wait_for("the app to answer", lambda: _get(f"http://{ip}:8080/"), timeout=60)
    assert json.loads(body)["service"] == "drone-service"
    cluster.kubectl("delete", "pod", "built-drone", "-n", "ci", "--wait=false")


def _get(url: str) -> str | None:
    try:
        with http_request(url, timeout=3) as response:
            return response.read().decode()
    except OSError:
        return None


def test_a_failing_test_fails_the_taskrun_with_the_tests_name(tekton, cluster, ci):
    clone(tekton, cluster, ci, "drone-service-failing-test")
    _, run, logs = start(tekton, cluster, ci["druppie-test"], extra=["-p", "offline=true"], check=False)
    assert run["status"]["conditions"][0]["status"] == "False"
    results = tekton.results(run)
    assert results["failed"] == "1", logs
    assert "test_the_whole_fleet_is_flying" in logs, logs


def test_a_planted_secret_fails_the_scan_with_gitleaks_finding_and_no_secret_shown(tekton, cluster, ci):
    clone(tekton, cluster, ci, "drone-service-planted-secret")
    _, run, logs = start(tekton, cluster, ci["druppie-scan"], extra=["-p", "tls-verify=false"], check=False)
    assert run["status"]["conditions"][0]["status"] == "False"
    assert int(tekton.results(run)["high"]) >= 1, logs
    assert "github-pat" in logs, logs
    planted = (ROOT / "tests/fixtures/drone-variants/planted-secret/drone_service/settings.py").read_text()
    secret = next(word.strip("'\"") for word in planted.split() if word.strip("'\"").startswith("ghp_"))
    assert secret not in logs


@pytest.mark.parametrize(
    "kind, steps", [("step", ["tag-commit", "flux-wait", "test", "clone"]), ("scan", ["scan"]), ("build", ["build"])]
)
def test_every_step_answers_help_inside_its_built_image(tekton, kind, steps):
    # The image the cluster runs (the tekton fixture pushed it), not whichever local tag is newest:
    # local storage also holds other versions and the arm64 images of `make release`.
    image = f"{tekton.cluster.registry}/waterschap/druppie-{kind}:{version()}"
    for step in steps:
        proc = subprocess.run(
            [
                *PODMAN,
                "run",
                "--tls-verify=false",
                "--pull=always",
                "--rm",
                "--network",
                "none",
                "--ulimit",
                "nofile=20000:20000",
                "--ulimit",
                "nproc=1000:1000",
                image,
                step,
                "--help",
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and f"Usage: druppie-step {step}" in proc.stdout, proc.stderr


def test_app_test_code_cannot_reach_into_the_cluster(tekton, cluster, ci):
    """Under the catalog's NetworkPolicy (the ci fixture applied it; kube-router enforces it, egress
    included), the app's own test code cannot connect to the API server, another Service or the
    node; the first test of this module showed the build still pushes to the allowed registry."""
    clone(tekton, cluster, ci, "drone-service-reaches-out")
    _, run, logs = start(tekton, cluster, ci["druppie-test"], extra=["-p", "offline=true"], check=False)
    results = tekton.results(run)
    assert run["status"]["conditions"][0]["reason"] == "Succeeded", logs
    targets = len(reach_targets(cluster))
    assert results["passed"] == str(4 + targets) and results["failed"] == "0", logs


@pytest.mark.exclusive  # takes the node's seccomp profile away: the other worker's builds would fail
def test_a_node_without_the_seccomp_profile_fails_the_build_clearly_and_the_installer_puts_it_there(
    tekton, cluster, ci, tmp_path
):
    """The node has the profile only because the README's install ran install/seccomp (the local
    cluster puts none there). Taken away, the build pod cannot start and Tekton fails the TaskRun
    with the runtime's message naming the profile; the README's two installer commands put it back,
    and the same build runs. The installer itself holds no capability and no API token."""
    profile = cluster.kubelet_root / "seccomp" / "druppie-build.json"
    measured = (ROOT / "tasks/druppie-build/0.1/seccomp/druppie-build.json").read_bytes()
    assert profile.read_bytes() == measured
    installer = [c for c in block_with(README, "kubectl create namespace ci") if "seccomp" in c]
    assert [c.split()[:3] for c in installer] == [["kubectl", "apply", "-k"], ["kubectl", "rollout", "status"]]
    pod = cluster.get_json("pods", "-n", "druppie-seccomp")["items"][0]["metadata"]["name"]
    status = cluster.kubectl("exec", "-n", "druppie-seccomp", pod, "--", "python3", "-c",
                             "print(open('/proc/self/status').read())").stdout  # fmt: skip
    assert "CapEff:\t0000000000000000" in status and "NoNewPrivs:\t1" in status, status
    token = cluster.kubectl("exec", "-n", "druppie-seccomp", pod, "--", "ls", "/var/run/secrets", check=False)
    assert token.returncode != 0, token.stdout

    cluster.kubectl("delete", "namespace", "druppie-seccomp", "--timeout=180s")
    profile.unlink()
    build = ["-p", "tls-verify=false", "-p", f"build-args=BASE_IMAGE={cluster.registry}/{BASE_REPO}"]
    try:
        clone(tekton, cluster, ci)
        _, run, _ = start(tekton, cluster, ci["druppie-build"], extra=build, check=False)
        condition = run["status"]["conditions"][0]
        assert condition["status"] == "False" and condition["reason"] == "PodCreationFailed", condition
        assert 'the step "build"' in condition["message"] and "druppie-build.json" in condition["message"], condition
        assert "no such file or directory" in condition["message"], condition
        # druppie-summary turns that message into the fix (tests/unit/test_summary.py has it verbatim).
        assert MISSING_PROFILE.search(condition["message"]), condition["message"]
    finally:
        for command in installer:
            tekton.run(site_command(cluster, command, tmp_path))
    assert profile.read_bytes() == measured
    _, run, logs = start(tekton, cluster, ci["druppie-build"], extra=build)
    assert tekton.results(run)["IMAGE_DIGEST"].startswith("sha256:"), logs


def test_the_security_profiles_operator_alternative_is_a_seccompprofile_its_crd_accepts(cluster, tmp_path):
    """SPO itself does not run here (its daemon is not built); its v1.0.0 CRD does: the API server
    validates install/seccomp-operator against it, strictly. The measured profile as it is (with
    defaultErrnoRet, which SPO's spec lacks) would be refused: that is why the copy drops it."""
    crds = spo_crd_dir()
    if not crds.is_dir():
        subprocess.run([str(ROOT / "hack/cluster-build.sh"), "spo-crds"], check=True, capture_output=True)
    cluster.kubectl("apply", "--server-side", "-f", str(crds))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))
    accepted = cluster.kubectl("apply", "-k", str(ROOT / "install/seccomp-operator"), "--dry-run=server", "-o", "json")
    item = json.loads(accepted.stdout)
    item = item["items"][0] if item.get("kind") == "List" else item
    measured = json.loads((ROOT / "tasks/druppie-build/0.1/seccomp/druppie-build.json").read_text())
    assert [r["names"] for r in item["spec"]["syscalls"]] == [r["names"] for r in measured["syscalls"]]
    shipped = yaml.safe_load((ROOT / "install/seccomp-operator/druppie-build.yaml").read_text())
    verbatim = {**shipped, "spec": {**shipped["spec"], "defaultErrnoRet": measured["defaultErrnoRet"]}}
    refused = cluster.kubectl("apply", "-f", "-", "--dry-run=server", input=json.dumps(verbatim), check=False)
    assert refused.returncode != 0 and 'unknown field "spec.defaultErrnoRet"' in refused.stderr, refused.stderr
