"""Every sample under tasks/*/*/samples and pipelines/*/*/samples, applied and run on the local
cluster's real Tekton, or (where it cannot run here) admitted by Tekton's webhook with the reason
written in its own header.

How each sample runs here is one entry of SAMPLE_RUNS; a sample without one fails its test, so a
new sample gets a decision. Every sample's header has a "Local cluster:" note, and the entry does
what that note says, with these substitutions (SUBSTITUTIONS, SECRET_FILL; as in test_tekton.py
and test_ci_tasks.py):

- **git**: ``https://github.com/waterschap/`` -> the cluster's git server, plain http on the bridge
  address. Each sample gets its own folder of repositories there
  (``http://<host_ip>:<port>/samples/<task>/<sample>/<repo>.git``), seeded as its note says, so no
  two samples push to the same repository. A sample that binds a basic-auth Secret goes through a
  second door to the same folders that demands exactly those credentials (a GitServer with basic
  auth, serving the cluster's git root), so the credentials are really used; it runs with
  ``allow-plain-http=true``.
- **Secret placeholders**: ``https://ci-bot:<token>@github.com`` and ``[credential
  "https://github.com"]`` -> that door's address and a real token; no ``<...>`` may remain.
- **registry** (the build push only): ``registry.example/druppie/`` -> ``<cluster.registry>/druppie/``
  (inside the cluster the name registry.example exists only for containerd's pulls), with
  ``tls-verify=false`` (plain http) and ``build-args=BASE_IMAGE=<the offline Debian base in that
  registry>`` (docker.io cannot be reached here).
- **no index**: pods reach no PyPI, so the test task runs with ``offline=true`` (pytest and
  pytest-cov come from the step image's wheelhouse); where a sample does not expose that param it
  is injected into the Pipeline's test task.
- **Flux**: Flux's GitRepository ``druppie-apps`` and Kustomization ``drone-service-prod`` from
  flux/druppie-apps, as shipped, pointed at the sample's druppie-apps, in a Flux namespace of the
  sample's own (``flux-<sample>``, the Pipelines' ``flux-namespace`` param, flux-wait's ``namespace``)
  and deploying into a namespace of its own (``productie-<sample>``): the samples that wait for Flux
  run side by side, and beside the loop's own drone-service-prod (flux_home). Their annotation lists
  the samples' namespace, whose druppie-flux-wait gets the README's grant in each Flux namespace. Their
  druppie-apps deploy drone-service as registry.example/samples/drone-service (kustomize's
  newName; the module on the other worker builds the README's drone-service:1.0.5, which a stand-in
  image must not take), and its 1.0.4 and 1.0.5 are published to the cluster registry.
- **push name** (druppie-ci-cd, which derives the pushed and the deployed image from one
  ``image-registry``): its druppie-apps names the image by the registry address the build pushes
  to, and kustomize's ``newName`` maps that to registry.example, the name containerd pulls.

- **namespace**: ``ci`` -> ``samples``, a namespace of their own, installed as README "Another team"
  says (the catalog without the trigger), so the samples run beside the modules that use ``ci``.

Runs are created with ``kubectl create -n samples`` (they use generateName), all at once by a
module fixture, and each sample's test waits for its own run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from localcluster.gitserver import COMMIT_ENV, GitServer, run, seed_repo
from localcluster.toolchain import ROOT
from testbed.apps import drone_app
from testbed.fluxapp import EXAMPLE_APPS, FluxApp, environments, load_flux, tenant
from testbed.loop import succeeded
from testbed.readme import block_with
from testbed.site import BASE_REPO, apply_site_settings, push_advisory_database, push_offline_base, site_command
from tests.support.e2e import README, Tekton, ci_commands, platform_commands, push_step_images, wait_for
from tests.support.install import team_overlay

SAMPLES = sorted(ROOT.glob("tasks/*/*/samples/*.yaml")) + sorted(ROOT.glob("pipelines/*/*/samples/*.yaml"))
RUN_TIMEOUT = 300  # seconds for one run to finish once its test waits for it
USER, TOKEN = "ci-bot", "tkn-samples-" + uuid.uuid4().hex
IMAGE = "registry.example/druppie/drone-service"  # the name druppie-apps deploys
DEPLOYED = "registry.example/samples/drone-service"  # what the samples' druppie-apps deploy it as (_seed_apps)
RUN_KINDS = ("PipelineRun", "TaskRun")
NAMESPACE = "samples"  # the samples' own team namespace (README "Another team")

# The text substitutions, by rule name. {git} is the sample's URL prefix on the git server (the
# door with basic auth when it binds credentials), {registry} the cluster registry's host:port.
SUBSTITUTIONS = {
    "git": {"https://github.com/waterschap/": "{git}"},
    "registry": {"registry.example/druppie/": "{registry}/druppie/"},
}
# The placeholders of a basic-auth Secret (.git-credentials, .gitconfig), filled for the door
# with basic auth ({auth} = its host:port).
SECRET_FILL = {
    "https://ci-bot:<token>@github.com": "http://{user}:{token}@{auth}",
    # The second door knows one login: the read-only credential of the samples uses it too.
    "https://ci-bot:<read-token>@github.com": "http://{user}:{token}@{auth}",
    '"https://github.com"': '"http://{auth}"',
}
BASE_IMAGE_ARG = "BASE_IMAGE={registry}/" + BASE_REPO
# A version no other e2e module builds: build refuses to put a version tag on another commit's image.
BUILD_SAMPLE_VERSION = "3.0.1"
# The ci-cd sample's versions (<prefix>.<depth>): test_flux_wait publishes drone-service:1.1.x.
CI_CD_VERSION_PREFIX = "3.1"


# ---- how each sample runs ---------------------------------------------------------------------
@dataclass(frozen=True)
class SampleRun:
    """One sample's handling on the local cluster (see the module docstring for the rules)."""

    check: Callable[[Ctx, Started], None] | None = None  # the expected outcome, after Succeeded
    admission_only: str = ""  # why it cannot run here; this text must be in the sample's header
    credentials: bool = False  # git through the door with basic auth (the sample binds a Secret)
    repos: dict[str, str] = field(default_factory=dict)  # repository -> its seed (SEEDS)
    registry: bool = False  # the registry rule (the build pushes to the cluster registry)
    params: dict[str, str] = field(default_factory=dict)  # added to / overriding the run's params
    task_params: dict[str, dict[str, str]] = field(default_factory=dict)  # Pipeline task -> params
    drop_workspaces: tuple[str, ...] = ()  # run workspace bindings left out
    flux: bool = False  # waits for Flux's drone-service-prod: gets a Flux namespace of its own (flux_home)
    runs: Callable[[list[dict], str], list[dict]] | None = None  # runs made here for a sample that has none
    # "module.py::test": the e2e test that runs it, on cluster objects this module cannot make cheaply
    # (several Flux environments); its header names that module, and here it is admitted only.
    run_by: str = ""


# ---- the checks (each after the run Succeeded) -----------------------------------------------
def check_build(ctx: Ctx, s: Started) -> None:
    head = ctx.rev(s, "drone-service")
    image = f"{ctx.cluster.registry}/druppie/drone-service"
    results = ctx.results(s.run)
    assert results["IMAGE_URL"] == f"{image}:{BUILD_SAMPLE_VERSION}"
    assert ctx.task_results(s.run, "build")["IMAGE_TAGS"] == f"{BUILD_SAMPLE_VERSION},{head[:7]}"
    assert results["IMAGE_DIGEST"] == ctx.digest(f"{image}:{BUILD_SAMPLE_VERSION}")
    # Pushed; not compared by digest: another sample's build of the same commit pushes this tag too.
    assert ctx.digest(f"{image}:{head[:7]}").startswith("sha256:")


def check_clone(ctx: Ctx, s: Started) -> None:
    results = ctx.results(s.run)
    assert results["commit"] == ctx.rev(s, "drone-service")
    assert results["url"] == f"{s.git}drone-service.git"


def check_provenance(ctx: Ctx, s: Started) -> None:
    tagged = ctx.rev(s, "drone-service", "v1.0.5^{commit}")
    assert tagged != ctx.rev(s, "drone-service"), "the seed puts a commit on main after the tag"
    assert ctx.results(s.run) == {"CHAINS-GIT_URL": f"{s.git}drone-service.git", "CHAINS-GIT_COMMIT": tagged}


def check_source_pvc(ctx: Ctx, s: Started) -> None:
    claim = next(d for d in s.docs if d["kind"] == "PersistentVolumeClaim")["metadata"]["name"]
    assert ctx.cluster.get_json("pvc", "-n", NAMESPACE, claim)["status"]["phase"] == "Bound"
    assert ctx.results(s.run)["commit"] == ctx.rev(s, "drone-service")


def check_scan(ctx: Ctx, s: Started) -> None:
    results = ctx.results(s.run)
    assert (results["high"], results["critical"], results["suppressions"]) == ("0", "0", ""), results
    assert results["advisories"].startswith("checked: "), results  # pulled by osv-db-ref, not skipped


def check_test_after_clone(ctx: Ctx, s: Started) -> None:
    results = ctx.results(s.run)
    assert results["tests-passed"] == "4", s.logs(ctx)
    assert float(results["coverage"]) >= 80


def check_test_offline(ctx: Ctx, s: Started) -> None:
    assert ctx.results(s.run) == {"passed": "4", "report": "examples/drone-service/.druppie/junit.xml"}
    assert "installing into a fresh virtual environment, offline from" in s.logs(ctx), s.logs(ctx)


def check_summary(ctx: Ctx, s: Started) -> None:
    results = ctx.results(s.run)
    assert results["status"] == "Succeeded", results
    assert results["summary"].startswith("Succeeded"), results
    assert ctx.task_results(s.run, "test")["passed"] == "4"


def check_tag_commit(ctx: Ctx, s: Started) -> None:
    head = ctx.rev(s, "druppie-apps")
    assert ctx.results(s.run) == {"revision": f"main@sha1:{head}"}
    tag_commit = ctx.task_results(s.run, "tag-commit")
    assert tag_commit["changed"] == "true" and tag_commit["previous-tag"] == "1.0.4"
    assert "newTag: 1.0.5" in ctx.read(s, "druppie-apps", "envs/prod/drone-service/kustomization.yaml")


def check_promote_and_wait(ctx: Ctx, s: Started) -> None:
    head = ctx.rev(s, "druppie-apps")
    tag_commit = ctx.task_results(s.run, "tag-commit")
    assert tag_commit["changed"] == "true" and tag_commit["revision"] == f"main@sha1:{head}"
    assert ctx.task_results(s.run, "flux-wait")["applied-revision"] == f"main@sha1:{head}"
    _check_flux_applied(ctx, s, head)


def check_promote_pipeline(ctx: Ctx, s: Started) -> None:
    head = ctx.rev(s, "druppie-apps")
    assert ctx.results(s.run) == {"commit": head, "applied-revision": f"main@sha1:{head}", "pull-request-url": ""}
    _check_flux_applied(ctx, s, head)


def _check_flux_applied(ctx: Ctx, s: Started, head: str) -> None:
    """Its own Flux objects applied the pushed commit and deploy 1.0.5."""
    assert "newTag: 1.0.5" in ctx.read(s, "druppie-apps", "envs/prod/drone-service/kustomization.yaml")
    app = s.flux
    assert app.ks()["status"]["lastAppliedRevision"] == f"main@sha1:{head}"
    assert app.image() == f"{DEPLOYED}:1.0.5"


def check_ci_cd(ctx: Ctx, s: Started) -> None:
    results = ctx.results(s.run)
    assert results["status"] == "Succeeded", results
    assert results["CHAINS-GIT_COMMIT"] == ctx.rev(s, "drone-service")
    image, _, version = results["IMAGE_URL"].rpartition(":")
    # The version is <version-prefix>.<the commit's depth on main>.
    assert image == f"{ctx.cluster.registry}/druppie/drone-service"
    assert re.fullmatch(re.escape(CI_CD_VERSION_PREFIX) + r"\.\d+", version), version
    assert results["IMAGE_DIGEST"] == ctx.digest(results["IMAGE_URL"])
    head = ctx.rev(s, "druppie-apps")
    assert results["GITOPS_COMMIT"] == head and results["APPLIED_REVISION"] == f"main@sha1:{head}"
    kustomization = ctx.read(s, "druppie-apps", "envs/prod/drone-service/kustomization.yaml")
    assert f"newTag: {version}" in kustomization and f"digest: {results['IMAGE_DIGEST']}" in kustomization


def clone_into_claim(docs: list[dict], git: str) -> list[dict]:
    """The claim as README "Run with tkn" uses it: druppie-git-clone checks drone-service out into it."""
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")["metadata"]["name"]
    return [
        {
            "apiVersion": "tekton.dev/v1",
            "kind": "TaskRun",
            "metadata": {"generateName": "source-pvc-clone-"},
            "spec": {
                "serviceAccountName": "druppie-git-clone",
                "taskRef": {"name": "druppie-git-clone"},
                "params": [{"name": "url", "value": f"{git}drone-service.git"}],
                "workspaces": [{"name": "output", "persistentVolumeClaim": {"claimName": claim}}],
            },
        }
    ]


NO_SSH = "it has no SSH git server"
CI_CD = "pipelines/druppie-ci-cd/0.1/samples/ci-cd-drone-service.yaml"

SAMPLE_RUNS: dict[str, SampleRun] = {
    "tasks/druppie-build/0.1/samples/build-after-clone.yaml": SampleRun(
        check_build,
        repos={"drone-service": "app"},
        registry=True,
        params={"tls-verify": "false", "build-args": BASE_IMAGE_ARG, "version": BUILD_SAMPLE_VERSION},
    ),
    "tasks/druppie-commit-status/0.1/samples/report-statuses.yaml": SampleRun(
        admission_only="its git server has no commit status API"
    ),
    "tasks/druppie-flux-reconcile-wait/0.1/samples/promote-and-wait.yaml": SampleRun(
        check_promote_and_wait,
        credentials=True,
        repos={"druppie-apps": "apps"},
        params={"allow-plain-http": "true"},
        task_params={"flux-wait": {"namespace": "{flux_namespace}"}},
        flux=True,
    ),
    "tasks/druppie-promotion-gate/0.1/samples/promote-test-to-acceptatie.yaml": SampleRun(
        run_by="test_otap_environments.py::test_build_once_the_sample_promotes_to_acceptatie_exactly_the_digest_test_runs"
    ),
    "tasks/druppie-git-clone/0.1/samples/clone-commit-with-ssh.yaml": SampleRun(admission_only=NO_SSH),
    "tasks/druppie-git-clone/0.1/samples/clone-with-basic-auth.yaml": SampleRun(
        check_clone, credentials=True, repos={"drone-service": "app"}, params={"allow-plain-http": "true"}
    ),
    "tasks/druppie-git-clone/0.1/samples/pipeline-with-provenance.yaml": SampleRun(
        check_provenance, credentials=True, repos={"drone-service": "app-tagged"}, params={"allow-plain-http": "true"}
    ),
    "tasks/druppie-git-clone/0.1/samples/source-pvc.yaml": SampleRun(
        check_source_pvc, repos={"drone-service": "app"}, runs=clone_into_claim
    ),
    "tasks/druppie-scan/0.1/samples/osv-db-refresh.yaml": SampleRun(admission_only="not runnable there (no internet"),
    "tasks/druppie-scan/0.1/samples/scan-after-clone.yaml": SampleRun(
        check_scan, repos={"drone-service": "app"}, registry=True, params={"tls-verify": "false"}
    ),
    "tasks/druppie-summary/0.1/samples/test-with-summary.yaml": SampleRun(
        check_summary,
        repos={"drone-service": "app"},
        params={"allow-plain-http": "true"},
        task_params={"test": {"offline": "true"}},
    ),
    "tasks/druppie-tag-commit/0.1/samples/promote-with-basic-auth.yaml": SampleRun(
        check_tag_commit, credentials=True, repos={"druppie-apps": "apps"}, params={"allow-plain-http": "true"}
    ),
    "tasks/druppie-tag-commit/0.1/samples/promote-with-ssh.yaml": SampleRun(admission_only=NO_SSH),
    "tasks/druppie-test/0.1/samples/test-after-clone.yaml": SampleRun(
        check_test_after_clone, repos={"drone-service": "app"}, task_params={"test": {"offline": "true"}}
    ),
    "tasks/druppie-test/0.1/samples/test-offline.yaml": SampleRun(
        check_test_offline, repos={"druppie-catalog": "catalog"}
    ),
    # The whole loop. Its druppie-apps names the image by the address the build pushes to, mapped
    # by kustomize's newName to registry.example (what containerd pulls): tag-commit finds the
    # image it is given, the kubelet pulls the pushed digest.
    CI_CD: SampleRun(
        check_ci_cd,
        credentials=True,
        repos={"drone-service": "app", "druppie-apps": "apps-push-name"},
        params={
            "allow-plain-http": "true",
            "tls-verify": "false",
            "offline": "true",
            "build-args": BASE_IMAGE_ARG,
            "image-registry": "{registry}/druppie",
            "version-prefix": CI_CD_VERSION_PREFIX,
            "gitops-repo-url": "{git}druppie-apps.git",
            "osv-db-ref": "{registry}/druppie/osv-db:latest",
            "flux-namespace": "{flux_namespace}",
        },
        flux=True,
    ),
    "pipelines/druppie-promote/0.1/samples/promote-drone-service.yaml": SampleRun(
        check_promote_pipeline,
        credentials=True,
        repos={"druppie-apps": "apps"},
        params={"allow-plain-http": "true", "flux-namespace": "{flux_namespace}"},
        flux=True,
    ),
}


# ---- seeds: what a sample's repositories hold ----------------------------------------------------
def _seed_app(bare: Path, tmp: Path, registry: str) -> None:
    seed_repo(bare, source_dir=drone_app(tmp / "app"))


def _seed_app_tagged(bare: Path, tmp: Path, registry: str) -> None:
    """drone-service with the tag v1.0.5, and one more commit on main after it."""
    _seed_app(bare, tmp, registry)
    work = tmp / "work"
    run("git", "clone", "--quiet", str(bare), str(work))
    run("git", "tag", "-a", "v1.0.5", "-m", "drone-service 1.0.5", cwd=work, env=COMMIT_ENV)
    (work / "CHANGES.md").write_text("Unreleased: work after 1.0.5\n")
    run("git", "add", "CHANGES.md", cwd=work)
    run("git", "commit", "--quiet", "-m", "after 1.0.5", cwd=work, env=COMMIT_ENV)
    run("git", "push", "--quiet", "origin", "main", "v1.0.5", cwd=work)


def _seed_catalog(bare: Path, tmp: Path, registry: str) -> None:
    """The catalog's repository as far as test-offline reads it: examples/drone-service."""
    drone_app(tmp / "catalog" / "examples" / "drone-service")
    seed_repo(bare, source_dir=tmp / "catalog")


def _seed_apps(bare: Path, tmp: Path, registry: str) -> None:
    """druppie-apps as shipped, but deploying drone-service as DEPLOYED (kustomize's newName): the
    samples' stand-in images must not take a version tag another module builds (the README's 1.0.5)."""
    edits = [(f"envs/{env}/drone-service/kustomization.yaml", f"  - name: {IMAGE}\n",
              f"  - name: {IMAGE}\n    newName: {DEPLOYED}\n") for env in environments()]  # fmt: skip
    _seed_edited_apps(bare, tmp, edits)


def _seed_apps_push_name(bare: Path, tmp: Path, registry: str) -> None:
    """druppie-apps naming drone-service by the registry address builds push to, which kustomize
    maps (newName) to registry.example, the name containerd pulls from that same registry."""
    pushed = f"{registry}/druppie/drone-service"
    edits = [("apps/drone-service/deployment.yaml", f"image: {IMAGE}:1.0.4", f"image: {pushed}:1.0.4")]
    edits += [(f"envs/{env}/drone-service/kustomization.yaml", f"  - name: {IMAGE}\n",
               f"  - name: {pushed}\n    newName: {IMAGE}\n") for env in environments()]  # fmt: skip
    _seed_edited_apps(bare, tmp, edits)


def _seed_edited_apps(bare: Path, tmp: Path, edits: list[tuple[str, str, str]]) -> None:
    shutil.copytree(EXAMPLE_APPS, tmp / "apps")
    for name, old, new in edits:
        text = (tmp / "apps" / name).read_text()
        assert old in text, f"examples/druppie-apps changed: no {old!r} in {name}"
        (tmp / "apps" / name).write_text(text.replace(old, new))
    seed_repo(bare, source_dir=tmp / "apps")


SEEDS = {
    "app": _seed_app,
    "app-tagged": _seed_app_tagged,
    "catalog": _seed_catalog,
    "apps": _seed_apps,
    "apps-push-name": _seed_apps_push_name,
}


# ---- the module's state --------------------------------------------------------------------------
@dataclass
class Started:
    """One runnable sample: its repositories' URL prefix, its objects, and the run made from them."""

    rel: str
    entry: SampleRun
    slug: str
    git: str  # URL prefix of its repositories, ending in /
    docs: list[dict] = field(default_factory=list)
    kind: str = ""
    name: str = ""
    error: str = ""
    flux: FluxApp | None = None  # its own Flux objects (flux_home), for a sample that waits for Flux
    run: dict | None = None
    _logs: str | None = None

    def logs(self, ctx: Ctx) -> str:
        if self._logs is None:
            self._logs = ctx.tekton.tkn(self.kind.lower(), "logs", self.name, "-n", NAMESPACE, check=False).stdout
        return self._logs


def flux_home(cluster, s: Started, git_prefix: str) -> FluxApp:
    """Flux's druppie-apps and drone-service-prod from flux/druppie-apps, pointed at the sample's
    druppie-apps, in a Flux namespace of its own, deploying into a namespace of its own; listed for
    the samples' druppie-flux-wait, which gets the README's grant there."""
    stem = Path(s.rel).stem
    app = FluxApp(cluster, "druppie-apps", f"productie-{stem}", "drone-service-prod", flux_namespace=f"flux-{stem}")
    repo = load_flux("gitrepository.yaml")
    ks = load_flux("kustomization-drone-service-prod.yaml")
    assert (repo["metadata"]["name"], ks["metadata"]["name"]) == (app.name, app.kustomization), (
        "flux/druppie-apps changed its names"
    )
    for doc in (repo, ks):
        doc["metadata"]["namespace"] = app.flux_namespace
        doc["metadata"].setdefault("annotations", {})["ci.druppie.io/flux-wait-namespaces"] = NAMESPACE
    repo["spec"].update(url=f"{git_prefix}{s.slug}/druppie-apps.git", interval="1m")
    ks["spec"].update(targetNamespace=app.namespace, interval="1m", retryInterval="5s")
    for namespace in (app.flux_namespace, app.namespace):
        cluster.kubectl("create", "namespace", namespace, check=False)
    (grant,) = [c for c in block_with(README, "kubectl create namespace team-dijken") if "druppie-flux-wait" in c]
    Tekton(cluster, ROOT).run(
        grant.replace("-n flux-system", f"-n {app.flux_namespace}").replace("team-dijken", NAMESPACE)
    )
    items = [repo, ks, *tenant(app.namespace, ks["spec"]["serviceAccountName"], flux_namespace=app.flux_namespace)]
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return app


@dataclass
class Ctx:
    cluster: object
    tekton: object
    auth: GitServer
    tmp: Path

    @property
    def anonymous(self) -> str:
        return self.cluster.git_repo_url("x").removesuffix("x.git")

    @property
    def authority(self) -> str:
        return self.auth.base_url.removeprefix("http://")

    def bare(self, s: Started, repo: str) -> Path:
        return self.cluster.git_root / s.slug / f"{repo}.git"

    def rev(self, s: Started, repo: str, ref: str = "main") -> str:
        return run("git", "--git-dir", str(self.bare(s, repo)), "rev-parse", ref).stdout.strip()

    def read(self, s: Started, repo: str, path: str) -> str:
        return run("git", "--git-dir", str(self.bare(s, repo)), "show", f"main:{path}").stdout

    def finished(self, s: Started, what: str = "") -> dict:
        def done():
            obj = self.cluster.get_json(f"{s.kind.lower()}s.tekton.dev", "-n", NAMESPACE, s.name)
            return obj if obj.get("status", {}).get("completionTime") else None

        return wait_for(what or f"{s.kind} {s.name} ({s.rel}) to finish", done, timeout=RUN_TIMEOUT, interval=2)

    @staticmethod
    def results(obj: dict) -> dict[str, str]:
        return {r["name"]: r["value"] for r in obj.get("status", {}).get("results", [])}

    def task_results(self, pipelinerun: dict, task: str) -> dict[str, str]:
        ref = next(c for c in pipelinerun["status"].get("childReferences", []) if c["pipelineTaskName"] == task)
        return self.results(self.cluster.get_json("taskruns.tekton.dev", "-n", NAMESPACE, ref["name"]))

    def digest(self, ref: str) -> str:
        return subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{ref}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    # -- turning a sample into objects --
    def fill_secret(self, doc: dict) -> dict:
        for key, value in doc.get("stringData", {}).items():
            for old, new in SECRET_FILL.items():
                value = value.replace(old, new.format(user=USER, token=TOKEN, auth=self.authority))
            if re.search(r"<[^<>\n]+>", value):
                raise ValueError(f"Secret {doc['metadata']['name']}: a placeholder is left in {key}: {value!r}")
            doc["stringData"][key] = value
        return doc

    def objects(self, sample: Path, s: Started) -> list[dict]:
        """The sample's documents after the substitutions and injections its entry asks for."""
        entry, text = s.entry, sample.read_text()
        values = {"git": s.git, "registry": self.cluster.registry}
        if s.flux is not None:
            values["flux_namespace"] = s.flux.flux_namespace
        for rule in ("git", "registry") if entry.registry else ("git",):
            for old, new in SUBSTITUTIONS[rule].items():
                text = text.replace(old, new.format(**values))
        docs = [in_namespace(d) for d in yaml.safe_load_all(text) if d]
        docs += entry.runs(docs, s.git) if entry.runs else []
        for doc in docs:
            if doc["kind"] == "Secret":
                self.fill_secret(doc)
        runs = [d for d in docs if d["kind"] in RUN_KINDS]
        if len(runs) != 1:
            raise ValueError(f"expected one PipelineRun or TaskRun, found {len(runs)}")
        spec = runs[0]["spec"]
        for name, value in entry.params.items():
            set_param(spec.setdefault("params", []), name, value.format(**values))
        spec["workspaces"] = [w for w in spec.get("workspaces", []) if w["name"] not in entry.drop_workspaces]
        for task, params in entry.task_params.items():
            target = next(
                (
                    t
                    for d in docs
                    if d["kind"] == "Pipeline"
                    for t in d["spec"].get("tasks", []) + d["spec"].get("finally", [])
                    if t["name"] == task
                ),
                None,
            )
            if target is None:
                raise LookupError(f"no Pipeline task {task!r} in the sample for task_params")
            for name, value in params.items():
                set_param(target.setdefault("params", []), name, value.format(**values))
        return docs

    def start(self, sample: Path, s: Started) -> None:
        """Apply the sample's other objects, then create its run."""
        s.docs = self.objects(sample, s)
        for doc in s.docs:
            if doc["kind"] not in RUN_KINDS:
                self.cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(doc))
        (run_doc,) = [d for d in s.docs if d["kind"] in RUN_KINDS]
        proc = self.cluster.kubectl(
            "create", "-n", NAMESPACE, "-o", "name", "-f", "-", input=json.dumps(run_doc), check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl create {run_doc['kind']}: {proc.stderr.strip()}")
        s.kind, s.name = run_doc["kind"], proc.stdout.strip().rsplit("/", 1)[1]


def in_namespace(doc: dict) -> dict:
    """The namespace rule: a sample's object in the samples' namespace, wherever the sample put it."""
    if "namespace" in doc.get("metadata", {}):
        doc["metadata"]["namespace"] = NAMESPACE
    return doc


def set_param(params: list[dict], name: str, value: str) -> None:
    """Add the param ``name`` to a Tekton params list, or override its value."""
    for param in params:
        if param["name"] == name:
            param["value"] = value
            return
    params.append({"name": name, "value": value})


def header(sample: Path) -> str:
    """The sample's leading comment, as one line of words."""
    lines = []
    for line in sample.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(" ".join(lines).split())


def rel(sample: Path) -> str:
    return str(sample.relative_to(ROOT))


@pytest.fixture(scope="module")
def samples_team(cluster, tmp_path_factory) -> Tekton:
    """The catalog in the samples' namespace, as README "Another team" installs it (after the
    platform's once-per-cluster commands, which another module may have run already)."""
    if not cluster.with_tekton:
        pytest.skip("this cluster runs without Tekton (kwok node side or DRUPPIE_TEKTON=0)")
    work = tmp_path_factory.mktemp("samples-team")
    push_step_images(cluster)
    tekton = Tekton(cluster, ROOT)  # README's commands run in the checkout
    for command in platform_commands():
        tekton.run(site_command(cluster, command, work))
    (work / NAMESPACE).mkdir()
    (work / NAMESPACE / "kustomization.yaml").write_text(team_overlay(NAMESPACE, work / NAMESPACE, trigger=False))
    for command in block_with(README, "kubectl create namespace team-dijken"):
        Tekton(cluster, work).run(command.replace("team-dijken", NAMESPACE))  # its overlay's folder is in work
    apply_site_settings(cluster, NAMESPACE)
    return tekton


@pytest.fixture(scope="module")
def samples(request, cluster, samples_team, tmp_path_factory):
    """Seed each selected sample's repositories, give each Flux sample its Flux objects, apply its
    objects and create its run, all at once; returns {sample: Started}."""
    ours = [
        item
        for item in request.session.items
        if getattr(getattr(item, "module", None), "__name__", "") == __name__ and hasattr(item, "callspec")
    ]
    selected = [p for p in SAMPLES if any(item.callspec.params.get("sample") == p for item in ours)] or SAMPLES
    runnable = {
        rel(p): p
        for p in SAMPLES
        if rel(p) in SAMPLE_RUNS and not (SAMPLE_RUNS[rel(p)].admission_only or SAMPLE_RUNS[rel(p)].run_by)
    }
    # The second door: the same repositories as the cluster's git server, with basic auth.
    auth = GitServer(cluster.git_root, credentials=(USER, TOKEN), host=cluster.host_ip).start()
    ctx = Ctx(cluster, samples_team, auth, tmp_path_factory.mktemp("samples"))
    # What every sample may need: the offline base image for builds, the images druppie-apps
    # deploys, the registry Secret of the README, and every sample's basic-auth Secret, filled in
    # (a sample may bind the Secret another one defines).
    push_offline_base(cluster.registry)
    push_advisory_database(cluster.registry)
    for image in (f"{IMAGE}:1.0.4", f"{DEPLOYED}:1.0.4", f"{DEPLOYED}:1.0.5"):
        cluster.publish_image(image)
    samples_team.run(ci_commands()["kubectl create secret"].replace(" -n ci ", f" -n {NAMESPACE} "))
    for path in runnable.values():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Secret":
                try:
                    doc = ctx.fill_secret(doc)
                except ValueError:
                    continue  # that sample's own start reports it
                cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(in_namespace(doc)))

    started: dict[str, Started] = {}
    chosen = [rel(p) for p in selected if rel(p) in runnable]
    for r in chosen:
        entry = SAMPLE_RUNS[r]
        slug = f"samples/{Path(r).parts[1]}/{Path(r).stem}"
        prefix = f"http://{ctx.authority}/" if entry.credentials else ctx.anonymous
        s = started[r] = Started(r, entry, slug, f"{prefix}{slug}/")
        try:
            for repo, seed in entry.repos.items():
                with tempfile.TemporaryDirectory(dir=ctx.tmp) as tmp:
                    SEEDS[seed](ctx.bare(s, repo), Path(tmp), cluster.registry)
            if entry.flux:
                s.flux = flux_home(cluster, s, ctx.anonymous)
            ctx.start(runnable[r], s)
        except Exception as err:  # noqa: BLE001 - reported by that sample's test, the others go on
            s.error = f"{type(err).__name__}: {err}"
    yield ctx, started
    auth.stop()
    # Their pods request CPU on the one node: stop Flux from keeping them, then remove them.
    for s in started.values():
        if s.flux is not None:
            cluster.kubectl("patch", "-n", s.flux.flux_namespace, "kustomization", s.flux.kustomization,
                            "--type=merge", "-p", '{"spec":{"suspend":true}}', check=False)  # fmt: skip
            cluster.kubectl("delete", "namespace", s.flux.namespace, "--wait=false", check=False)


@pytest.mark.parametrize("sample", SAMPLES, ids=rel)
def test_sample(sample, samples):
    """The sample applied and run as its header's "Local cluster:" note says (SAMPLE_RUNS), or, where
    it cannot run here, admitted by Tekton's webhook with the reason in that header."""
    entry = SAMPLE_RUNS.get(rel(sample))
    if entry is None:
        pytest.fail(
            f"add {rel(sample)} to SAMPLE_RUNS in {Path(__file__).name}: how it runs on the local "
            "cluster (or why it cannot, in its header) and what its run must produce"
        )
    ctx, started = samples
    if entry.run_by:
        module, _, test = entry.run_by.partition("::")
        assert f"Local cluster: run by tests/e2e/{module}" in header(sample), rel(sample)
        assert f"\ndef {test}(" in (Path(__file__).parent / module).read_text(), entry.run_by
    if entry.admission_only or entry.run_by:
        assert "Local cluster:" in header(sample) and entry.admission_only in header(sample), (
            f"{rel(sample)}'s header must say why it cannot run here: {entry.admission_only!r}"
        )
        for doc in [d for d in yaml.safe_load_all(sample.read_text()) if d]:
            # create, not apply: the runs use generateName, as a user starting them would.
            proc = ctx.cluster.kubectl(
                "create",
                "--dry-run=server",
                "-n",
                NAMESPACE,
                "-f",
                "-",
                input=json.dumps(in_namespace(doc)),
                check=False,
            )
            if doc["apiVersion"].startswith("tekton.dev/"):
                assert proc.returncode == 0 and "(server dry run)" in proc.stdout, proc.stderr
            else:  # a Secret another sample made is fine; anything else is not
                assert proc.returncode == 0 or "AlreadyExists" in proc.stderr, proc.stderr
        return

    s = started[rel(sample)]
    if s.error:
        pytest.fail(f"{rel(sample)} was not started: {s.error}")
    if s.run is None:
        s.run = ctx.finished(s)
    condition = s.run["status"]["conditions"][0]
    assert succeeded(s.run), (
        f"{s.kind} {s.name}: {condition.get('reason')}: {condition.get('message')}\n{s.logs(ctx)[-4000:]}"
    )
    if entry.credentials:
        assert TOKEN not in s.logs(ctx) and TOKEN not in json.dumps(s.run)
    entry.check(ctx, s)


def test_sample_runs_names_only_existing_samples():
    """A renamed or deleted sample must take its entry along."""
    assert set(SAMPLE_RUNS) <= {rel(p) for p in SAMPLES}, set(SAMPLE_RUNS) - {rel(p) for p in SAMPLES}
    for name, entry in SAMPLE_RUNS.items():
        ways = [bool(entry.admission_only), bool(entry.check), bool(entry.run_by)]
        assert ways.count(True) == 1, f"{name}: one of a check, admission_only or run_by"
        assert set(entry.repos.values()) <= set(SEEDS), name
