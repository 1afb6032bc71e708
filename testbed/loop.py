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

Another team joins the same Gitea, bot and druppie-apps with its own ``Team``: once its catalog
and trigger are in its namespace (README "Another team"), ``install_team()`` adds its app's
repository and folder, its Secrets, webhook-gate list, GitRepository, Kustomization and webhook.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from localcluster.cluster import LocalCluster
from localcluster.gitea_api import GiteaError
from localcluster.process import http_request, log
from localcluster.toolchain import ROOT, binaries, cache_dir, optional_binaries, toolchain

from .fluxapp import app_files
from .readme import block_with
from .site import BASE_REPO, apply_site_settings, push_advisory_database, push_offline_base, site_command
from .wait import wait_for

APP = "drone-service"
# The loop's own path in the shared registry: other e2e modules publish druppie/drone-service
# tags, and build refuses to move a version tag to another commit's image.
IMAGE_PATH = "demo"
OTHER_APP = "gemaal-monitor"  # a second team's app in webhook-gate's list
BOT = "druppie-ci"  # the login tag-commit pushes with (the EventListener's `bot`)
# The account whose token writes the apps' commit statuses and is used for nothing else (Gitea has no
# status-only scope: druppie-commit-status README).
STATUS_BOT = "druppie-status"
NAMESPACE = "productie"
# The second person of the four-eyes principle: may write druppie-apps, approves and merges prod pull
# requests (Gitea refuses an author's approval of their own pull request).
REVIEWER = "druppie-reviewer"
PODMAN = ["podman", "--storage-driver", "vfs", "--runtime", "/usr/sbin/runc"]
_DRUPPIE_APPS_COMMITS = threading.Lock()


def succeeded(run: dict) -> bool:
    """Whether a PipelineRun (or TaskRun) succeeded: its Succeeded condition is True. Tekton's reason
    is then "Succeeded", or "Completed" when a when-expression skipped a task (druppie-ci-cd's OTAP
    tasks with acceptatie-mode and prod-mode "off")."""
    conditions = run.get("status", {}).get("conditions") or [{}]
    return conditions[0].get("status") == "True" and conditions[0].get("reason") in ("Succeeded", "Completed")


@dataclass(frozen=True)
class Team:
    """Who runs a loop: the namespace its catalog and EventListener run in, its app (a repository
    in Gitea; in the shared druppie-apps a base apps/<app> and an overlay envs/<env>/<app> per
    environment) and the namespace Flux deploys its prod overlay into, through the team's own
    GitRepository and Kustomization."""

    namespace: str = "ci"
    app: str = APP
    target: str = NAMESPACE
    gitrepository: str = "druppie-apps"
    # The platform's own list also holds a second team's app and a name that cannot be an app's
    # (the e2e tier's refused deliveries use them).
    decoys: bool = False

    @property
    def kustomization(self) -> str:
        return f"{self.app}-prod"

    @property
    def credentials(self) -> dict[str, str]:
        """The pipeline's git credential Secrets and the kind of the bot's token in each."""
        return {f"{self.app}-git-read": "read", "druppie-apps-read": "read", "druppie-apps-write": "write"}


# The platform's own loop in namespace ci, as the README installs it and `make demo` shows it.
PLATFORM = Team(decoys=True)
# The pipeline's git credentials, each a basic-auth Secret of the bot with a token of one kind.
CREDENTIALS = PLATFORM.credentials


class Loop:
    def __init__(self, cluster: LocalCluster, say: Callable[[str], None] = log, team: Team = PLATFORM) -> None:
        self.cluster, self.say, self.team = cluster, say, team
        self.state = cluster.state_dir / "loop"  # the shared part: the bot's tokens, "installed"
        self.team_state = self.state if team == PLATFORM else self.state / team.namespace
        self.gitea = cluster.gitea

    # ---- facts -------------------------------------------------------------------------------
    @property
    def image(self) -> str:
        return f"{self.cluster.registry}/{IMAGE_PATH}/{self.team.app}"

    @property
    def webhook_secret(self) -> str:
        """The app repository's webhook secret."""
        return (self.team_state / "webhook-secret").read_text()

    @property
    def other_webhook_secret(self) -> str:
        """Another team's app's webhook secret (what an attacker with one team's secret holds)."""
        return (self.team_state / "other-webhook-secret").read_text()

    @property
    def apps_webhook_secret(self) -> str:
        """druppie-apps' webhook secret (webhook-gate's gitops entry)."""
        return (self.state / "apps-webhook-secret").read_text()

    @property
    def installed(self) -> bool:
        return (self.team_state / "installed").is_file()

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
        """The platform's loop: the shared parts, the catalog in ci by the README's commands, the team ci."""
        if self.team != PLATFORM:
            raise ValueError(f"install() sets up the platform's loop in ci; a team ({self.team.namespace}) joins it "
                             "with install_team() once its catalog is installed")  # fmt: skip
        self.install_shared()
        self.say("catalog: README's install commands (namespace ci, tasks, pipelines, ServiceAccounts)")
        for command in block_with(ROOT / "README.md", "kubectl create namespace ci"):
            self.readme_command(site_command(self.cluster, command, self.state))
        apply_site_settings(self.cluster)  # the registry on the node's address, for build pods
        self.install_team()

    def install_shared(self) -> None:
        """What every team's loop shares: the images, the CI bot and its tokens, druppie-apps."""
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

        self.say("Gitea: the CI bot's account and its two tokens, the repository druppie-apps")
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
        if not (self.state / "status-bot-token").is_file():
            password = secrets.token_hex(16)
            self.gitea.create_user(STATUS_BOT, password)
            token = self.gitea.token_for(STATUS_BOT, password, scopes=("write:repository",))
            (self.state / "status-bot-token").write_text(token)
            os.chmod(self.state / "status-bot-token", 0o600)
        if not self._has_repo("druppie-apps"):
            with tempfile.TemporaryDirectory() as tmp:
                apps = Path(tmp) / "druppie-apps"
                subprocess.run(["cp", "-r", str(ROOT / "examples" / "druppie-apps"), str(apps)], check=True)
                # Every environment's overlay names the image in the local registry.
                for path, text in app_files(APP, f"{self.cluster.registry}/{IMAGE_PATH}/{APP}").items():
                    (apps / path).write_text(text)
                self.gitea.create_repo("druppie-apps", source_dir=apps)
        self.gitea.add_collaborator("druppie-apps", BOT)

    def install_team(self) -> None:
        """One team's loop, once its catalog and trigger are installed in its namespace: the app's
        repository and folder in druppie-apps, the Secrets, webhook-gate's list, the site settings,
        its GitRepository, Kustomization and tenant in Flux, a first version and Gitea's webhook."""
        team, ns = self.team, self.team.namespace
        self.team_state.mkdir(parents=True, exist_ok=True)
        if not self._has_repo(team.app):
            self.gitea.create_repo(team.app, source_dir=ROOT / "examples" / APP)
        self.gitea.add_collaborator(team.app, STATUS_BOT)  # statuses need write access to the repository
        # The app's folders, as its team adds them to druppie-apps: the example app's base and
        # overlays under its own name. One team's commits at a time: Gitea's contents API refuses a
        # commit on a moved branch.
        with _DRUPPIE_APPS_COMMITS:
            if team.app != APP:
                for path, text in app_files(team.app, self.image).items():
                    if not self._has_file("druppie-apps", path):
                        self.gitea.commit_file("druppie-apps", path, text, f"{team.app}: {path}")

        self.say(f"Secrets in {ns}: the bot's read and write credentials, registry credentials, the webhook secrets")
        self.cluster.kubectl("delete", "secret", "-n", ns, "--ignore-not-found", *team.credentials,
                             "registry-credentials", f"{team.app}-commit-status")  # fmt: skip
        self.cluster.kubectl("create", "secret", "generic", f"{team.app}-commit-status", "-n", ns,
                             f"--from-file=token={self.state / 'status-bot-token'}")  # fmt: skip
        for secret, kind in team.credentials.items():
            token = (self.state / f"bot-{kind}-token").read_text()
            line = self.gitea.base_url.replace("://", f"://{BOT}:{token}@")
            self.cluster.kubectl("create", "secret", "generic", secret, "-n", ns,
                                 f"--from-literal=.git-credentials={line}\n",
                                 "--from-literal=.gitconfig=[credential]\n\thelper = store\n")  # fmt: skip
        self.cluster.kubectl(
            "create",
            "secret",
            "docker-registry",
            "registry-credentials",
            "-n",
            ns,
            f"--docker-server={self.cluster.registry}",
            "--docker-username=ci-bot",
            "--docker-password=unused-by-this-registry",
        )
        # The app repository's own webhook secret (webhook-gate has one per repository).
        (self.team_state / "webhook-secret").write_text(secrets.token_hex(32))
        os.chmod(self.team_state / "webhook-secret", 0o600)
        (self.team_state / "other-webhook-secret").write_text(secrets.token_hex(32))
        if not (self.state / "apps-webhook-secret").is_file():  # druppie-apps' own, for druppie-prod-deploy
            (self.state / "apps-webhook-secret").write_text(secrets.token_hex(32))
            os.chmod(self.state / "apps-webhook-secret", 0o600)
        self.cluster.kubectl("delete", "secret", "-n", ns, "--ignore-not-found", "druppie-webhook-secrets")
        self.cluster.kubectl("create", "secret", "generic", "druppie-webhook-secrets", "-n", ns,
                             f"--from-literal={team.app}={self.webhook_secret}",
                             f"--from-literal={OTHER_APP}={self.other_webhook_secret}",
                             f"--from-literal=druppie-apps={self.apps_webhook_secret}")  # fmt: skip

        self.say(f"Triggers in {ns}: webhook-gate's list, the local site settings as a second TriggerBinding")
        if team == PLATFORM:
            self.cluster.kubectl("apply", "-k", str(ROOT / "triggers" / "druppie-ci-cd"))
        # The list of allowed repositories, as the platform team writes it: this Gitea's app repository.
        forge = self.gitea.base_url
        # Its admin is trusted: their pull requests from forks run at once, their /ok-to-test starts others'.
        listed = [{"repository": f"{self.gitea.admin}/{team.app}", "forge": forge, "app": team.app, "secret": team.app,
                   "trusted": [self.gitea.admin]}]  # fmt: skip
        if team.decoys:
            # A second team's app (its own secret) and a repository whose name cannot be an app
            # name stand beside it, as in a platform's list.
            listed += [{"repository": f"{self.gitea.admin}/{OTHER_APP}", "forge": forge},
                       {"repository": f"{self.gitea.admin}/Bad_Name", "forge": forge}]  # fmt: skip
        gate_config = {"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "druppie-webhook-gate", "namespace": ns},
                       "data": {"repositories.yaml": yaml.safe_dump({
                           "bot": BOT, "repositories": listed,
                           # druppie-apps, whose merged prod pull requests start druppie-prod-deploy
                           "gitops": {"repository": f"{self.gitea.admin}/druppie-apps", "forge": forge}},
                           sort_keys=False)}}  # fmt: skip
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(gate_config))
        self.set_otap(False)
        # The same site settings for druppie-prod-deploy, the run after a merged prod pull request.
        prod_local = {
            "apiVersion": "triggers.tekton.dev/v1beta1",
            "kind": "TriggerBinding",
            "metadata": {"name": "druppie-prod-deploy-local", "namespace": ns},
            "spec": {
                "params": [
                    {"name": "image-registry", "value": f"{self.cluster.registry}/{IMAGE_PATH}"},
                    {"name": "gitops-repo-url", "value": self.gitea.clone_url("druppie-apps")},
                    {"name": "allow-plain-http", "value": "true"},
                    {"name": "forge", "value": "gitea"},
                ]
            },
        }
        # And for druppie-pr-check, a pull request's checks (no registry but the advisory database's).
        pr_local = {
            "apiVersion": "triggers.tekton.dev/v1beta1",
            "kind": "TriggerBinding",
            "metadata": {"name": "druppie-pr-check-local", "namespace": ns},
            "spec": {
                "params": [
                    {"name": "allow-plain-http", "value": "true"},
                    {"name": "tls-verify", "value": "false"},
                    {"name": "offline", "value": "true"},
                    {"name": "osv-db-ref", "value": f"{self.cluster.registry}/druppie/osv-db:latest"},
                ]
            },
        }
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(prod_local))
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(pr_local))
        for listener in ("druppie-ci-cd", "druppie-prod-deploy"):
            triggers = self.cluster.get_json("eventlistener", "-n", ns, listener)["spec"]["triggers"]
            add = []
            for i, trigger in enumerate(triggers):
                binding = {"ref": f"{trigger['template']['ref']}-local"}
                if binding not in trigger["bindings"]:
                    add.append({"op": "add", "path": f"/spec/triggers/{i}/bindings/-", "value": binding})
            if add:
                self.cluster.kubectl("patch", "eventlistener", listener, "-n", ns, "--type", "json",
                                     "-p", json.dumps(add))  # fmt: skip

        self.say(f"Flux: GitRepository {team.gitrepository} (Gitea) and Kustomization {team.kustomization}")
        self.cluster.kubectl("create", "namespace", team.target, check=False)
        flux_objects = {"apiVersion": "v1", "kind": "List", "items": self._flux_objects()}
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(flux_objects))

        if team == PLATFORM:
            self.say("first version: drone-service 1.0.4 built on this machine, so Flux has something to run")
            self.build_on_host("1.0.4")
        else:  # the same first version, under the team's app name (the registry mounts its blobs)
            platform_image = f"{self.cluster.registry}/{IMAGE_PATH}/{APP}:1.0.4"
            subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                            f"docker://{platform_image}", f"docker://{self.image}:1.0.4"],
                           check=True, capture_output=True)  # fmt: skip
        self.wait(f"Kustomization {team.kustomization} Ready", self._kustomization_ready, 180)

        self.say(f"webhook: Gitea's {team.app} → the EventListener's Service in {ns}")
        self.wait(f"the EventListener in {ns}", lambda: self._deployment_available(ns, "el-druppie-ci-cd"), 180)
        self.wait(f"webhook-gate in {ns}", lambda: self._deployment_available(ns, "druppie-webhook-gate"), 180)
        ip = self.cluster.get_json("service", "-n", ns, "el-druppie-ci-cd")["spec"]["clusterIP"]
        for hook in self.gitea.hooks(team.app):
            self.gitea.api("DELETE", f"/repos/{self.gitea.admin}/{team.app}/hooks/{hook['id']}")
        # Pushes, pull requests and their comments (/ok-to-test): Gitea sends a pull request's comments
        # as issue_comment deliveries, subscribed to as pull_request_comment.
        self.gitea.add_webhook(team.app, f"http://{ip}:8080", self.webhook_secret,
                               events=("push", "pull_request", "issue_comment", "pull_request_comment"))  # fmt: skip
        if team == PLATFORM:  # druppie-apps' pull requests → druppie-prod-deploy (its merged prod ones run)
            self.wait("the EventListener druppie-prod-deploy",
                      lambda: self._deployment_available(ns, "el-druppie-prod-deploy"), 180)  # fmt: skip
            ip = self.cluster.get_json("service", "-n", ns, "el-druppie-prod-deploy")["spec"]["clusterIP"]
            for hook in self.gitea.hooks("druppie-apps"):
                self.gitea.api("DELETE", f"/repos/{self.gitea.admin}/druppie-apps/hooks/{hook['id']}")
            self.gitea.add_webhook("druppie-apps", f"http://{ip}:8080", self.apps_webhook_secret,
                                   events=("pull_request",))  # fmt: skip
        (self.team_state / "installed").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def set_otap(self, on: bool) -> None:
        """The site's settings for the push trigger (the second binding of druppie-ci-cd): this
        cluster's registry, Gitea and advisory database, and either the catalog's default, OTAP
        (test, acceptatie, a prod pull request), or a push straight to prod, as a site without
        environments sets it (the e2e tier's loop tests, each about one stage). The EventListener
        reads bindings per delivery, so the next push follows it."""
        params = {
            "image-registry": f"{self.cluster.registry}/{IMAGE_PATH}",
            "gitops-repo-url": self.gitea.clone_url("druppie-apps"),
            "build-args": f"BASE_IMAGE={self.cluster.registry}/{BASE_REPO}",
            "allow-plain-http": "true",
            "tls-verify": "false",
            "offline": "true",
            "osv-db-ref": f"{self.cluster.registry}/druppie/osv-db:latest",
            "forge": "gitea",  # the prod pull request's forge (auto means github.com only)
        }
        if not on:
            params |= {"environment": "prod", "acceptatie-mode": "off", "prod-mode": "off"}
        local = {
            "apiVersion": "triggers.tekton.dev/v1beta1",
            "kind": "TriggerBinding",
            "metadata": {"name": "druppie-ci-cd-local", "namespace": self.team.namespace},
            "spec": {"params": [{"name": k, "value": v} for k, v in params.items()]},
        }
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(local))

    def _flux_objects(self) -> list[dict]:
        """flux/'s GitRepository, Kustomization and tenant, for this team (unchanged but for the
        Gitea URL and shorter intervals for the platform's): names, path, target namespace and
        whose flux-wait may reconcile them."""
        team = self.team
        flux = ROOT / "flux" / "druppie-apps"
        repo = yaml.safe_load((flux / "gitrepository.yaml").read_text())
        repo["metadata"]["name"] = team.gitrepository
        repo["spec"].update(url=self.gitea.clone_url("druppie-apps"), interval="1m")
        ks = yaml.safe_load((flux / "kustomization-drone-service-prod.yaml").read_text())
        ks["metadata"]["name"] = team.kustomization
        ks["spec"].update(retryInterval="10s", targetNamespace=team.target, serviceAccountName=team.kustomization,
                          path=f"./envs/prod/{team.app}")  # fmt: skip
        ks["spec"]["sourceRef"]["name"] = team.gitrepository
        for obj in (repo, ks):
            obj["metadata"].setdefault("annotations", {})["ci.druppie.io/flux-wait-namespaces"] = team.namespace
        sa, binding = yaml.safe_load_all((flux / "tenant-drone-service-prod.yaml").read_text())
        sa["metadata"]["name"] = team.kustomization
        binding["metadata"].update(name=f"flux-{team.kustomization}", namespace=team.target)
        binding["subjects"][0]["name"] = team.kustomization
        objects = [repo, ks, sa, binding]
        if team == PLATFORM:  # OTAP: the shipped test and acceptatie too, as flux/druppie-apps has them
            for env in ("test", "acceptatie"):
                namespace = yaml.safe_load((flux / f"namespace-{env}.yaml").read_text())
                env_ks = yaml.safe_load((flux / f"kustomization-{APP}-{env}.yaml").read_text())
                env_ks["spec"].update(retryInterval="10s")
                objects += [namespace, env_ks, *yaml.safe_load_all((flux / f"tenant-{APP}-{env}.yaml").read_text())]
        if team == PLATFORM:  # Flux's grants to ci: its druppie-flux-wait may request reconciles in
            # flux-system, its druppie-promotion-gate may read the Flux objects there
            for grant in ("rbac-flux-reconcile-wait.yaml", "rbac-promotion-gate.yaml"):
                objects.append(yaml.safe_load((flux / grant).read_text()))
        return objects

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
        app = self.team.app
        source = self.gitea.read_file(app, "drone_service/app.py", ref=branch)
        changed = re.sub(r'^GREETING = ".*"$', f'GREETING = "{greeting}"', source, count=1, flags=re.M)
        return self.gitea.commit_file(
            app, "drone_service/app.py", changed, f"Greeting: {greeting}", branch=branch, user=user
        )

    def pipelinerun_for(self, commit: str, timeout: float = 60) -> str:
        def find() -> str | None:
            for run in self.cluster.get_json("pipelineruns", "-n", self.team.namespace)["items"]:
                if any(p["name"] == "revision" and p["value"] == commit for p in run["spec"].get("params", [])):
                    return run["metadata"]["name"]
            return None

        return self.wait(f"a PipelineRun for {commit[:7]}", find, timeout)

    def finished(self, name: str, timeout: float = 900) -> dict:
        def done() -> dict | None:
            run = self.cluster.get_json("pipelinerun", "-n", self.team.namespace, name)
            return run if run.get("status", {}).get("completionTime") else None

        return self.wait(f"PipelineRun {name}", done, timeout)

    def failures(self, name: str) -> dict[str, str]:
        """What went wrong in PipelineRun ``name``: {pipeline task: its TaskRun's reason and message},
        for the assertion message (a pod that could not start says why only here)."""
        items = self.cluster.get_json("taskruns", "-n", self.team.namespace, "-l", f"tekton.dev/pipelineRun={name}")
        failed = {}
        for taskrun in items["items"]:
            condition = taskrun.get("status", {}).get("conditions", [{}])[0]
            if condition.get("status") == "False":
                task = taskrun["metadata"]["labels"]["tekton.dev/pipelineTask"]
                failed[task] = f"{condition.get('reason')}: {condition.get('message', '')[:600]}"
        return failed

    def service_says(self, namespace: str | None = None) -> str | None:
        """What the app's Service answers in ``namespace`` (default: the team's prod namespace)."""
        ip = self.cluster.get_json("service", "-n", namespace or self.team.target, APP)["spec"]["clusterIP"]
        try:
            with http_request(f"http://{ip}/", timeout=3) as response:
                return json.loads(response.read())["message"]
        except (OSError, ValueError, KeyError):
            return None

    def commit_statuses(self, commit: str) -> dict[str, tuple[str, str]]:
        """The app commit's newest status per context on Gitea: {context: (state, description)}."""
        combined = self.gitea.api("GET", f"/repos/{self.gitea.admin}/{self.team.app}/commits/{commit}/status")
        return {s["context"]: (s["status"], s["description"]) for s in combined["statuses"] or []}

    def deployed_image(self) -> str:
        deployment = self.cluster.get_json("deployment", "-n", self.team.target, APP)
        return deployment["spec"]["template"]["spec"]["containers"][0]["image"]

    def reviewer_token(self) -> str:
        """REVIEWER's token (write:repository), made once per cluster."""
        path = self.state / "reviewer-token"
        if not path.is_file():
            password = secrets.token_hex(16)
            self.gitea.create_user(REVIEWER, password)
            self.gitea.add_collaborator("druppie-apps", REVIEWER)
            path.write_text(self.gitea.token_for(REVIEWER, password, scopes=("write:repository",)))
            os.chmod(path, 0o600)
        return path.read_text()

    def approve_and_merge(self, number: int) -> str:
        """REVIEWER approves druppie-apps' pull request ``number`` and merges it; returns the merge commit."""
        pull = f"/repos/{self.gitea.admin}/druppie-apps/pulls/{number}"
        token = self.reviewer_token()
        self.gitea.api("POST", f"{pull}/reviews", {"event": "APPROVED", "body": "acceptatie checked"}, token=token)
        self.gitea.api("POST", f"{pull}/merge", {"Do": "merge"}, token=token)
        merged = self.gitea.api("GET", pull)
        if not merged["merged"]:
            raise RuntimeError(f"druppie-apps pull request {number} was not merged: {merged.get('state')}")
        return merged["merge_commit_sha"]

    # ---- helpers -----------------------------------------------------------------------------
    def _has_repo(self, name: str) -> bool:
        try:
            self.gitea.repo(name)
            return True
        except GiteaError:
            return False

    def _has_file(self, repo: str, path: str) -> bool:
        try:
            self.gitea.read_file(repo, path)
            return True
        except GiteaError:
            return False

    def _kustomization_ready(self) -> bool:
        ks = self.cluster.get_json("kustomization", "-n", "flux-system", self.team.kustomization)
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
