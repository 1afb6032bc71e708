"""The CI/CD loop on the local cluster, set up as a platform team sets it up, for `make demo` and
the e2e tier: a push to the app's repository in Gitea → webhook → EventListener → druppie-ci-cd
PipelineRun (clone, test ‖ scan, build, tag-commit, flux-wait, summary) → new tag in druppie-apps
(also in Gitea) → Flux applies it → new pods serve.

What differs from a real install, and why (each is one line below):
- the registry is the cluster's plain-HTTP one: the pipeline gets `image-registry`,
  `tls-verify=false` and a `BASE_IMAGE` build arg (docker.io is unreachable), through a second
  TriggerBinding added to the EventListener, as the triggers README shows for site settings;
- druppie-apps in Gitea names the image by that registry (`newName:` in its kustomization);
- the git server is Gitea over plain http on the node's bridge (`allow-plain-http=true`);
- there is no package index: the tests install from the step image's wheelhouse (`offline=true`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from localcluster.cluster import LocalCluster
from localcluster.gitea_api import GiteaError
from localcluster.process import http_request, log
from localcluster.toolchain import ROOT, binaries, cache_dir, optional_binaries, toolchain

from .readme import block_with
from .site import BASE_REPO, apply_site_settings, push_advisory_database, push_offline_base, site_command
from .wait import wait_for

APP = "drone-service"
# The loop's own path in the shared registry: other e2e modules publish druppie/drone-service
# tags, and build refuses to move a version tag to another commit's image.
IMAGE_PATH = "demo"
OTHER_APP = "gemaal-monitor"  # a second team's app in webhook-gate's list
# The pipeline's git credentials, each a basic-auth Secret of the bot with a token of one kind.
CREDENTIALS = {f"{APP}-git-read": "read", "druppie-apps-read": "read", "druppie-apps-write": "write"}
BOT = "druppie-ci"  # the login tag-commit pushes with (the EventListener's `bot`)
NAMESPACE = "productie"
PODMAN = ["podman", "--storage-driver", "vfs", "--runtime", "/usr/sbin/runc"]


class Loop:
    def __init__(self, cluster: LocalCluster, say: Callable[[str], None] = log) -> None:
        self.cluster, self.say = cluster, say
        self.state = cluster.state_dir / "loop"
        self.gitea = cluster.gitea

    # ---- facts -------------------------------------------------------------------------------
    @property
    def image(self) -> str:
        return f"{self.cluster.registry}/{IMAGE_PATH}/{APP}"

    @property
    def webhook_secret(self) -> str:
        """The app repository's webhook secret."""
        return (self.state / "webhook-secret").read_text()

    @property
    def other_webhook_secret(self) -> str:
        """Another team's app's webhook secret (what an attacker with one team's secret holds)."""
        return (self.state / "other-webhook-secret").read_text()

    @property
    def installed(self) -> bool:
        return (self.state / "installed").is_file()

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)}

    def tool(self, name: str) -> str:
        return str({"kubectl": binaries()["kubectl"], "tkn": optional_binaries()["tkn"]}[name])

    def readme_command(self, command: str, cwd: Path = ROOT) -> None:
        """Run one command of a README as a user would (kubectl/tkn of the cache, our kubeconfig)."""
        import shlex

        words = shlex.split(command)
        proc = subprocess.run(
            [self.tool(words[0]), *words[1:]], cwd=cwd, env=self.env(), capture_output=True, text=True
        )
        # Run again (make demo after an interruption): what exists stays, as for a user.
        if proc.returncode != 0 and "already exists" not in proc.stderr.lower():
            raise RuntimeError(f"{command}: {proc.stderr.strip()}")

    # ---- install -----------------------------------------------------------------------------
    def install(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        step = time.monotonic()
        self.say("images: druppie-step, -scan and -build (make images) into the cluster registry")
        subprocess.run(
            [str(ROOT / "hack" / "images.sh")],
            check=True,
            env={**os.environ, "REGISTRY": self.cluster.registry},
            stdout=subprocess.DEVNULL,
        )
        push_offline_base(self.cluster.registry)
        push_advisory_database(self.cluster.registry)
        self.say(f"  images pushed in {time.monotonic() - step:.0f} s")

        self.say("catalog: README's install commands (namespace ci, tasks, pipelines, ServiceAccounts)")
        for command in block_with(ROOT / "README.md", "kubectl create namespace ci"):
            self.readme_command(site_command(self.cluster, command, self.state))
        apply_site_settings(self.cluster)  # the registry on the node's address, for build pods

        self.say("Gitea: repositories drone-service and druppie-apps, the CI bot's account and its two tokens")
        # Idempotent, so that a `make demo` interrupted during the install can simply run again.
        if not (self.state / "bot-write-token").is_file():
            password = secrets.token_hex(16)
            self.gitea.create_user(BOT, password)
            # Two tokens of the bot: one that may only read repositories (the clone, flux-wait),
            # one that may push (tag-commit's only).
            for kind in ("read", "write"):
                token = self.gitea.token_for(BOT, password, scopes=(f"{kind}:repository",))
                (self.state / f"bot-{kind}-token").write_text(token)
                os.chmod(self.state / f"bot-{kind}-token", 0o600)
        if not self._has_repo(APP):
            self.gitea.create_repo(APP, source_dir=ROOT / "examples" / APP)
        if not self._has_repo("druppie-apps"):
            with tempfile.TemporaryDirectory() as tmp:
                apps = Path(tmp) / "druppie-apps"
                subprocess.run(["cp", "-r", str(ROOT / "examples" / "druppie-apps"), str(apps)], check=True)
                kustomization = apps / "envs/prod/drone-service/kustomization.yaml"
                kustomization.write_text(
                    kustomization.read_text().replace(
                        "  - name: registry.example/druppie/drone-service\n",
                        "  - name: registry.example/druppie/drone-service\n"
                        f"    newName: {self.image}  # local registry\n",
                    )
                )
                self.gitea.create_repo("druppie-apps", source_dir=apps)
        self.gitea.add_collaborator("druppie-apps", BOT)

        self.say("Secrets: the bot's read and write credentials, registry credentials, the webhook secrets")
        self.cluster.kubectl("delete", "secret", "-n", "ci", "--ignore-not-found", *CREDENTIALS, "registry-credentials")
        for secret, kind in CREDENTIALS.items():
            token = (self.state / f"bot-{kind}-token").read_text()
            line = self.gitea.base_url.replace("://", f"://{BOT}:{token}@")
            self.cluster.kubectl("create", "secret", "generic", secret, "-n", "ci",
                                 f"--from-literal=.git-credentials={line}\n",
                                 "--from-literal=.gitconfig=[credential]\n\thelper = store\n")  # fmt: skip
        self.cluster.kubectl(
            "create",
            "secret",
            "docker-registry",
            "registry-credentials",
            "-n",
            "ci",
            f"--docker-server={self.cluster.registry}",
            "--docker-username=ci-bot",
            "--docker-password=unused-by-this-registry",
        )
        # The app repository's own webhook secret (webhook-gate has one per repository).
        (self.state / "webhook-secret").write_text(secrets.token_hex(32))
        os.chmod(self.state / "webhook-secret", 0o600)
        self.cluster.kubectl("delete", "secret", "-n", "ci", "--ignore-not-found", "druppie-webhook-secrets")
        (self.state / "other-webhook-secret").write_text(secrets.token_hex(32))
        self.cluster.kubectl("create", "secret", "generic", "druppie-webhook-secrets", "-n", "ci",
                             f"--from-literal={APP}={self.webhook_secret}",
                             f"--from-literal={OTHER_APP}={self.other_webhook_secret}")  # fmt: skip

        self.say("Triggers: the EventListener, with the local site settings as a second TriggerBinding")
        self.cluster.kubectl("apply", "-k", str(ROOT / "triggers" / "druppie-ci-cd"))
        # The list of allowed repositories, as the platform team writes it: this Gitea's app repository.
        # A second team's app (its own secret) and a repository whose name cannot be an app name
        # stand beside it, as in a platform's list.
        repositories = {
            "bot": BOT,
            "repositories": [
                {"repository": f"{self.gitea.admin}/{APP}", "forge": self.gitea.base_url, "app": APP, "secret": APP},
                {"repository": f"{self.gitea.admin}/{OTHER_APP}", "forge": self.gitea.base_url},
                {"repository": f"{self.gitea.admin}/Bad_Name", "forge": self.gitea.base_url},
            ],
        }
        gate_config = {"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "druppie-webhook-gate", "namespace": "ci"},
                       "data": {"repositories.yaml": yaml.safe_dump(repositories, sort_keys=False)}}  # fmt: skip
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(gate_config))
        local = {
            "apiVersion": "triggers.tekton.dev/v1beta1",
            "kind": "TriggerBinding",
            "metadata": {"name": "druppie-ci-cd-local", "namespace": "ci"},
            "spec": {
                "params": [
                    {"name": "image-registry", "value": f"{self.cluster.registry}/{IMAGE_PATH}"},
                    {"name": "gitops-repo-url", "value": self.gitea.clone_url("druppie-apps")},
                    {"name": "build-args", "value": f"BASE_IMAGE={self.cluster.registry}/{BASE_REPO}"},
                    {"name": "allow-plain-http", "value": "true"},
                    {"name": "tls-verify", "value": "false"},
                    {"name": "offline", "value": "true"},
                    {"name": "osv-db-ref", "value": f"{self.cluster.registry}/druppie/osv-db:latest"},
                ]
            },
        }
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(local))
        bindings = self.cluster.get_json("eventlistener", "-n", "ci", "druppie-ci-cd")["spec"]["triggers"][0][
            "bindings"
        ]
        if {"ref": "druppie-ci-cd-local"} not in bindings:
            self.cluster.kubectl(
                "patch",
                "eventlistener",
                "druppie-ci-cd",
                "-n",
                "ci",
                "--type",
                "json",
                "-p",
                json.dumps(
                    [{"op": "add", "path": "/spec/triggers/0/bindings/-", "value": {"ref": "druppie-ci-cd-local"}}]
                ),
            )

        self.say("Flux: GitRepository druppie-apps (Gitea) and Kustomization drone-service-prod")
        self.cluster.kubectl("create", "namespace", NAMESPACE, check=False)
        flux = ROOT / "flux" / "druppie-apps"
        repo = yaml.safe_load((flux / "gitrepository.yaml").read_text())
        repo["spec"].update(url=self.gitea.clone_url("druppie-apps"), interval="1m")
        ks = yaml.safe_load((flux / "kustomization-drone-service-prod.yaml").read_text())
        ks["spec"].update(retryInterval="10s")
        tenant = list(yaml.safe_load_all((flux / "tenant-drone-service-prod.yaml").read_text()))
        # Flux's grant to ci: its druppie-flux-wait may request reconciles in flux-system.
        grant = yaml.safe_load((flux / "rbac-flux-reconcile-wait.yaml").read_text())
        self.cluster.kubectl(
            "apply", "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [repo, ks, *tenant, grant]}),
        )  # fmt: skip

        self.say("first version: drone-service 1.0.4 built on this machine, so Flux has something to run")
        self.build_on_host("1.0.4")
        self.wait("Kustomization drone-service-prod Ready", self._kustomization_ready, 180)

        self.say("webhook: Gitea → the EventListener's Service")
        self.wait("the EventListener", lambda: self._deployment_available("ci", "el-druppie-ci-cd"), 180)
        self.wait("webhook-gate", lambda: self._deployment_available("ci", "druppie-webhook-gate"), 180)
        ip = self.cluster.get_json("service", "-n", "ci", "el-druppie-ci-cd")["spec"]["clusterIP"]
        for hook in self.gitea.hooks(APP):
            self.gitea.api("DELETE", f"/repos/druppie-admin/{APP}/hooks/{hook['id']}")
        self.gitea.add_webhook(APP, f"http://{ip}:8080", self.webhook_secret)
        (self.state / "installed").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def build_on_host(self, version: str) -> None:
        path = os.pathsep.join([str(cache_dir() / f"syft-{toolchain()['SYFT_VERSION']}"), os.environ["PATH"]])
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["cp", "-r", str(ROOT / "examples" / APP), f"{tmp}/app"], check=True)
            proc = subprocess.run(
                [
                    str(Path(sys.executable).parent / "druppie-step"),
                    "build",
                    "--source",
                    f"{tmp}/app",
                    "--output",  # the SBOM, beside the source (not into the caller's folder)
                    f"{tmp}/out",
                    "--image",
                    self.image,
                    "--version",
                    version,
                    "--no-tls-verify",
                    "--build-args",
                    f"BASE_IMAGE={self.cluster.registry}/{BASE_REPO}",
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "PATH": path},
            )
            if proc.returncode != 0:  # the step's own one-line error, not only its exit code
                raise RuntimeError(f"building {self.image}:{version} on this machine failed: {proc.stderr[-2000:]}")

    # ---- the loop ----------------------------------------------------------------------------
    def push_change(self, greeting: str, user: str | None = None, branch: str = "main") -> str:
        """A visible change to the app, pushed to Gitea (a real push event); returns the commit."""
        source = self.gitea.read_file(APP, "drone_service/app.py", ref=branch)
        changed = re.sub(r'^GREETING = ".*"$', f'GREETING = "{greeting}"', source, count=1, flags=re.M)
        return self.gitea.commit_file(
            APP, "drone_service/app.py", changed, f"Greeting: {greeting}", branch=branch, user=user
        )

    def pipelinerun_for(self, commit: str, timeout: float = 60) -> str:
        def find() -> str | None:
            for run in self.cluster.get_json("pipelineruns", "-n", "ci")["items"]:
                if any(p["name"] == "revision" and p["value"] == commit for p in run["spec"].get("params", [])):
                    return run["metadata"]["name"]
            return None

        return self.wait(f"a PipelineRun for {commit[:7]}", find, timeout)

    def finished(self, name: str, timeout: float = 900) -> dict:
        def done() -> dict | None:
            run = self.cluster.get_json("pipelinerun", "-n", "ci", name)
            return run if run.get("status", {}).get("completionTime") else None

        return self.wait(f"PipelineRun {name}", done, timeout)

    def service_says(self) -> str | None:
        ip = self.cluster.get_json("service", "-n", NAMESPACE, APP)["spec"]["clusterIP"]
        try:
            with http_request(f"http://{ip}/", timeout=3) as response:
                return json.loads(response.read())["message"]
        except (OSError, ValueError, KeyError):
            return None

    def deployed_image(self) -> str:
        return self.cluster.get_json("deployment", "-n", NAMESPACE, APP)["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]

    # ---- helpers -----------------------------------------------------------------------------
    def _has_repo(self, name: str) -> bool:
        try:
            self.gitea.repo(name)
            return True
        except GiteaError:
            return False

    def _kustomization_ready(self) -> bool:
        ks = self.cluster.get_json("kustomization", "-n", "flux-system", "drone-service-prod")
        return any(c["type"] == "Ready" and c["status"] == "True" for c in ks.get("status", {}).get("conditions", []))

    def _deployment_available(self, namespace: str, name: str) -> bool:
        proc = self.cluster.kubectl("get", "deployment", "-n", namespace, name, "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        status = json.loads(proc.stdout).get("status", {})
        return status.get("availableReplicas", 0) >= 1

    @staticmethod
    def wait(what: str, check: Callable[[], object], timeout: float, interval: float = 1.0) -> object:
        return wait_for(what, check, timeout, interval)
