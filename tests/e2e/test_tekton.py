"""The catalog on a real Tekton Pipelines in the local cluster, installed and started as README.md says.

The commands come from README.md's own bash blocks (testbed/readme.py). Two substitutions
stand for what differs here: the GitOps repository is the cluster's git server instead of
github.com (reached over plain http inside the cluster, hence `allow-plain-http=true`), and
`kubectl`/`tkn` are the cache's binaries pointed at the cluster's kubeconfig.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import uuid

import pytest
import yaml

from localcluster.gitserver import GitServer
from localcluster.process import http_ok
from localcluster.toolchain import ROOT
from testbed.fluxapp import EXAMPLE_APPS, make_flux_app
from testbed.readme import block_with
from tests.support.e2e import README, Tekton, started, wait_for

GITHUB_APPS = "https://github.com/waterschap/druppie-apps.git"
IMAGE = "registry.example/druppie/drone-service"
USER, TOKEN = "ci-bot", "tkn-e2e-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def auth_git(cluster, tekton, tmp_path_factory):
    """A git server that demands basic auth, where the pods reach it (the node's bridge address)."""
    server = GitServer(tmp_path_factory.mktemp("auth-git"), credentials=(USER, TOKEN), host=cluster.host_ip).start()
    secret_dir = tmp_path_factory.mktemp("secret")
    (secret_dir / ".git-credentials").write_text(
        f"http://{USER}:{TOKEN}@{cluster.host_ip}:{server.base_url.rsplit(':', 1)[1]}\n"
    )
    (secret_dir / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    # The README's two Secrets of druppie-apps; this server knows one login, so the read one is the same.
    (secret_dir / "read").mkdir()
    (secret_dir / "read" / ".git-credentials").write_text((secret_dir / ".git-credentials").read_text())
    create_secrets = block_with(README, "kubectl create secret generic druppie-apps-write")
    for command in create_secrets:
        Tekton(cluster, secret_dir).run(command)
    yield server
    server.stop()


def test_tag_commit_taskrun_pushes_from_a_pod_with_basic_auth(tekton, auth_git):
    repo = auth_git.create_repo("druppie-apps", source_dir=EXAMPLE_APPS)
    (start,) = block_with(README, "tkn task start druppie-tag-commit")
    out = tekton.run(start, ["-p", "allow-plain-http=true"], {GITHUB_APPS: repo}).stdout
    run = tekton.taskrun(started(out, "TaskRun"))
    assert run["status"]["conditions"][0]["reason"] == "Succeeded", out
    results = tekton.results(run)
    head = auth_git.log("druppie-apps", fmt="%H")[0]
    # A direct push opens no pull request: pull-request-url is empty.
    assert results == {"commit": head, "revision": f"main@sha1:{head}", "changed": "true", "previous-tag": "1.0.4",
                       "deployed": "true", "reason": f"deployed 1.0.5 (was 1.0.4) in {head[:12]}",
                       "pull-request-url": ""}  # fmt: skip
    assert "newTag: 1.0.5" in auth_git.read_file("druppie-apps", "envs/prod/drone-service/kustomization.yaml")
    assert TOKEN not in out and TOKEN not in json.dumps(run)
    # Its ServiceAccount gets no API token in the pod: tag-commit needs no Kubernetes API.
    pod = tekton.cluster.get_json("pod", "-n", "ci", run["status"]["podName"])
    mounts = [m["mountPath"] for c in pod["spec"]["containers"] for m in c.get("volumeMounts", [])]
    assert not any("serviceaccount" in m for m in mounts), mounts


def test_tag_commit_with_bad_params_fails_with_the_steps_message_and_pushes_nothing(tekton, auth_git):
    auth_git.create_repo("bad-params", source_dir=EXAMPLE_APPS)
    before = auth_git.log("bad-params", fmt="%H")
    (start,) = block_with(README, "tkn task start druppie-tag-commit")
    out = tekton.run(
        start,
        ["-p", "allow-plain-http=true"],
        {GITHUB_APPS: auth_git.url("bad-params"), "tag=1.0.5": "tag=not-a-version"},
        check=False,
    )
    name = started(out.stdout, "TaskRun")
    run = tekton.taskrun(name)
    assert run["status"]["conditions"][0]["status"] == "False"
    logs = tekton.tkn("taskrun", "logs", name, "-n", "ci").stdout
    assert "invalid --tag 'not-a-version': must be a semantic version" in logs, logs
    assert auth_git.log("bad-params", fmt="%H") == before


def test_webhook_rejects_a_task_with_an_undeclared_param(tekton):
    task = {
        "apiVersion": "tekton.dev/v1",
        "kind": "Task",
        "metadata": {"name": "undeclared", "namespace": "ci"},
        "spec": {
            "steps": [
                {
                    "name": "s",
                    "image": "ghcr.io/waterschap/druppie-step:0.1.0",
                    "command": ["druppie-step"],
                    "env": [{"name": "X", "value": "$(params.nope)"}],
                }
            ]
        },
    }
    proc = tekton.cluster.kubectl("apply", "-f", "-", input=json.dumps(task), check=False)
    assert proc.returncode != 0
    assert 'admission webhook "validation.webhook.pipeline.tekton.dev" denied the request' in proc.stderr
    assert "non-existent variable" in proc.stderr and "params.nope" in proc.stderr


def test_promote_pipelinerun_deploys_the_new_image(tekton, cluster, auth_git):
    app = make_flux_app(cluster, "promote-apps", "promote", "promote-drone-service", "1m", "1m")
    app.wait_ready()
    cluster.publish_image(f"{IMAGE}:1.0.6")
    _, run = _promote(tekton, app, "1.0.6")
    assert run["status"]["conditions"][0]["reason"] == "Succeeded", run["status"]["conditions"]
    results = {r["name"]: r["value"] for r in run["status"]["results"]}
    head = subprocess.run(
        ["git", "--git-dir", str(cluster.git_root / "promote-apps.git"), "rev-parse", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert results == {"commit": head, "applied-revision": f"main@sha1:{head}", "pull-request-url": ""}  # mode push
    assert app.image() == f"{IMAGE}:1.0.6"
    wait_for(
        "the new pod to run 1.0.6",
        lambda: any(
            p["spec"]["containers"][0]["image"] == f"{IMAGE}:1.0.6" and p["status"].get("phase") == "Running"
            for p in cluster.get_json("pods", "-n", app.namespace)["items"]
        ),
    )


def _promote(tekton, app, tag: str) -> tuple[str, dict]:
    start = next(
        c
        for c in block_with(README, "tkn pipeline start druppie-promote", without="rollback-reason")
        if c.startswith("tkn pipeline start")
    )
    out = tekton.run(
        start,
        ["-p", "allow-plain-http=true", "-p", "timeout=90s"],
        {
            GITHUB_APPS: app.repo_url,
            "tag=1.0.5": f"tag={tag}",
            "kustomization=drone-service-prod": f"kustomization={app.kustomization}",
        },
        check=False,
    ).stdout
    name = started(out, "PipelineRun")
    return name, tekton.finished("pipelinerun", name)


def test_broken_manifest_fails_the_pipelinerun_with_fluxs_reason(tekton, cluster, auth_git, tmp_path):
    app = make_flux_app(cluster, "broken-apps", "broken", "broken-drone-service", "1m", "1m")
    app.wait_ready()
    work = tmp_path / "clone"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "clone", "--quiet", app.repo_url, str(work)], check=True)
    (work / "apps/drone-service/deployment.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\nspec: [\n")
    subprocess.run([*git, "-C", str(work), "commit", "--quiet", "-am", "break it"], check=True)
    subprocess.run([*git, "-C", str(work), "push", "--quiet", "origin", "main"], check=True)

    name, run = _promote(tekton, app, "1.0.7")
    assert run["status"]["conditions"][0]["status"] == "False"
    logs = tekton.tkn("pipelinerun", "logs", name, "-n", "ci").stdout
    assert "BuildFailed" in logs and "deployment.yaml" in logs, logs
    assert app.image() == f"{IMAGE}:1.0.4"  # the running app is untouched


def test_flux_wait_taskrun_under_its_service_account(tekton, cluster):
    app = make_flux_app(cluster, "wait-apps", "wait", "wait-drone-service", "1m", "1m")
    ready = app.wait_ready()
    revision = ready["status"]["lastAppliedRevision"]
    out = tekton.tkn(
        "task",
        "start",
        "druppie-flux-reconcile-wait",
        "-n",
        "ci",
        "--serviceaccount",
        "druppie-flux-wait",
        "--use-param-defaults",
        "--skip-optional-workspace",
        "-p",
        f"kustomization={app.kustomization}",
        "-p",
        f"revision={revision}",
        "--showlog",
    ).stdout
    run = tekton.taskrun(started(out, "TaskRun"))
    assert run["status"]["conditions"][0]["reason"] == "Succeeded", out
    assert tekton.results(run)["applied-revision"] == revision
    assert f"applied {revision} and Ready" in out


def test_released_task_pins_the_step_image_by_digest_and_runs(tekton, cluster, auth_git, tmp_path):
    """`make release` as a user runs it, into a copy of catalog.yaml: the pinned digest is the one
    the registry serves, and the released Task runs that exact image."""
    import shutil
    import sys

    catalog = tmp_path / "catalog.yaml"
    shutil.copy(ROOT / "catalog.yaml", catalog)
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "hack" / "release.py"),
            "--registry",
            cluster.registry,
            "--catalog",
            str(catalog),
            "--dist",
            str(tmp_path / "dist"),
        ],
        check=True,
        capture_output=True,
    )
    images = {e["name"]: e for e in yaml.safe_load(catalog.read_text())["images"]}
    assert set(images) == {f"ghcr.io/waterschap/druppie-{kind}" for kind in ("step", "scan", "build")}
    entry = images["ghcr.io/waterschap/druppie-step"]
    released = yaml.safe_load((tmp_path / "dist/tasks/druppie-tag-commit/0.1/druppie-tag-commit.yaml").read_text())
    image = released["spec"]["steps"][0]["image"]
    assert image == f"ghcr.io/waterschap/druppie-step:{entry['version']}@{entry['digest']}"
    for name, pinned in images.items():
        served = subprocess.run(
            [
                "skopeo",
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Digest}}",
                f"docker://{cluster.registry}/{name.split('/', 1)[1]}:{pinned['version']}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert served == pinned["digest"], name

    released["metadata"]["name"] = "druppie-tag-commit-released"  # beside the installed one
    cluster.kubectl("apply", "-n", "ci", "-f", "-", input=json.dumps(released))
    repo = auth_git.create_repo("released-apps", source_dir=EXAMPLE_APPS)
    (start,) = block_with(README, "tkn task start druppie-tag-commit")
    out = tekton.run(
        start,
        ["-p", "allow-plain-http=true"],
        {GITHUB_APPS: repo, "start druppie-tag-commit": "start druppie-tag-commit-released"},
    ).stdout
    run = tekton.taskrun(started(out, "TaskRun"))
    assert run["status"]["conditions"][0]["reason"] == "Succeeded", out
    pod = cluster.get_json("pod", "-n", "ci", run["status"]["podName"])
    step = next(c for c in pod["status"]["containerStatuses"] if c["name"] == "step-tag-commit")
    # The release pins a manifest list (amd64 and arm64); the node may name the image it runs by the
    # list's digest or by the digest of the list's amd64 manifest (the same image, pushed before).
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{cluster.registry}/waterschap/druppie-step@{entry['digest']}"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    amd64 = {m["digest"] for m in json.loads(raw)["manifests"] if m["platform"]["architecture"] == "amd64"}
    assert len(amd64) == 1, raw
    assert step["imageID"].rpartition("@")[2] in {entry["digest"], *amd64}, (step["imageID"], raw)


def test_a_script_step_runs_in_a_namespace_that_enforces_pod_security_restricted(cluster):
    """Tekton writes a `script:` into the pod with its shell image (the place-scripts init
    container). Tekton's default shell image runs as a non-root user; so must the local one, or
    every Task with a script fails here with CreateContainerConfigError ("container has
    runAsNonRoot and image will run as root")."""
    if not cluster.with_tekton:
        pytest.skip("this cluster runs without Tekton (kwok node side or DRUPPIE_TEKTON=0)")
    namespace = f"restricted-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    restricted = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                  "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip
    run = {
        "apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": {"name": "script", "namespace": namespace},
        "spec": {"taskSpec": {
            "results": [{"name": "greeting"}],
            "stepTemplate": {"securityContext": restricted},
            "steps": [{"name": "greet", "image": "registry.example/druppie/busybox:nonroot",
                       "script": '#!/bin/sh\nset -e\nprintf "hallo from uid %s" "$(id -u)" '
                                 '> "$(results.greeting.path)"\n'}],
        }},
    }  # fmt: skip
    try:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(run))

        def finished() -> dict | None:
            tr = cluster.get_json("taskrun", "-n", namespace, "script")
            return tr if tr.get("status", {}).get("completionTime") else None

        done = wait_for("the TaskRun with a script step", finished, timeout=120, interval=1)
        condition = done["status"]["conditions"][0]
        assert condition["reason"] == "Succeeded", condition
        assert {r["name"]: r["value"] for r in done["status"]["results"]} == {"greeting": "hallo from uid 65532"}
        pod = cluster.get_json("pod", "-n", namespace, done["status"]["podName"])
        place_scripts = next(c for c in pod["spec"]["initContainers"] if c["name"] == "place-scripts")
        assert place_scripts["image"].startswith("registry.example/druppie/busybox@sha256:")
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_the_local_clusters_admin_token_is_its_own_random_secret_in_private_files(cluster):
    """The cluster's system:masters token (issue 15: once a constant in the source, on an address pods
    reach) is random per cluster, kept in 0600 files only; the old constant opens nothing."""
    folder = cluster.state_dir / "apiserver"
    token = (folder / "admin-token").read_text().strip()
    assert len(token) >= 40 and token not in (ROOT / "localcluster/apiserver.py").read_text()
    for path in (folder / "admin-token", folder / "tokens.csv", cluster.kubeconfig):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert http_ok(f"{cluster.api_url}/api", token=token)
    with pytest.raises(urllib.error.HTTPError) as refused:
        http_ok(f"{cluster.api_url}/api", token="druppie-local-admin-token")
    assert refused.value.code == 401
