"""An isolated Flux app on the local cluster: a copy of druppie-apps on the cluster's git server,
its own namespace, GitRepository and Kustomization, from the shipped flux/ manifests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import yaml

from localcluster.cluster import LocalCluster
from localcluster.gitserver import seed_repo
from localcluster.toolchain import ROOT

from .wait import wait_for

FLUX_DIR = ROOT / "flux" / "druppie-apps"
EXAMPLE_APPS = ROOT / "examples" / "druppie-apps"
EXAMPLE_APP = "drone-service"  # the app examples/druppie-apps deploys
EXAMPLE_IMAGE = "registry.example/druppie/drone-service"


def load_flux(name: str) -> dict:
    return yaml.safe_load((FLUX_DIR / name).read_text())


def environments() -> dict[str, str]:
    """The environments flux/ ships for the example app, each with its target namespace."""
    shipped = sorted(FLUX_DIR.glob(f"kustomization-{EXAMPLE_APP}-*.yaml"))
    return {p.stem.removeprefix(f"kustomization-{EXAMPLE_APP}-"): load_flux(p.name)["spec"]["targetNamespace"]
            for p in shipped}  # fmt: skip


def _replace_once(text: str, old: str, new: str, where: str) -> str:
    if old not in text:
        raise ValueError(f"examples/druppie-apps changed: no {old.strip()!r} in {where}")
    return text.replace(old, new, 1)


def local_image(kustomization: str, image: str) -> str:
    """An overlay's images entry naming ``image`` (``newName:``, e.g. in a local registry)."""
    entry = f"  - name: {EXAMPLE_IMAGE}\n"
    return _replace_once(kustomization, entry, f"{entry}    newName: {image}  # local registry\n", "an overlay")


def app_files(app: str = EXAMPLE_APP, image: str | None = None) -> dict[str, str]:
    """The example app's part of druppie-apps, as a team adds its app ``app``: its base apps/<app>/ and
    an overlay envs/<env>/<app>/ per environment; with ``image``, each overlay names it (newName)."""
    files = {f"apps/{app}/{p.name}": p.read_text() for p in sorted((EXAMPLE_APPS / "apps" / EXAMPLE_APP).iterdir())}
    for env in sorted(p.name for p in (EXAMPLE_APPS / "envs").iterdir()):
        text = (EXAMPLE_APPS / "envs" / env / EXAMPLE_APP / "kustomization.yaml").read_text()
        text = _replace_once(text, f"  - ../../../apps/{EXAMPLE_APP}\n", f"  - ../../../apps/{app}\n", env)
        files[f"envs/{env}/{app}/kustomization.yaml"] = local_image(text, image) if image else text
    return files


def condition(obj: dict, kind: str) -> dict:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


@dataclass
class FluxApp:
    """A druppie-apps copy with its own GitRepository, Kustomization and target namespace."""

    cluster: LocalCluster
    name: str
    namespace: str
    kustomization: str
    flux_namespace: str = "flux-system"  # where its GitRepository and Kustomization live

    @property
    def repo_url(self) -> str:
        return self.cluster.git_repo_url(self.name)

    def ks(self) -> dict:
        return self.cluster.get_json("kustomization", "-n", self.flux_namespace, self.kustomization)

    def gitrepo(self) -> dict:
        return self.cluster.get_json("gitrepository", "-n", self.flux_namespace, self.name)

    def deployment(self) -> dict:
        return self.cluster.get_json("deployment", "-n", self.namespace, "drone-service")

    def image(self) -> str:
        return self.deployment()["spec"]["template"]["spec"]["containers"][0]["image"]

    def request_reconcile(self) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S") + f".{time.time_ns() % 10**9:09d}Z"
        patch = json.dumps({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}})
        self.cluster.kubectl("annotate", "--overwrite", "-n", self.flux_namespace, "gitrepository", self.name,
                             f"reconcile.fluxcd.io/requestedAt={stamp}")  # fmt: skip
        self.cluster.kubectl("patch", "-n", self.flux_namespace, "kustomization", self.kustomization, "--type=merge",
                             "-p", patch)  # fmt: skip

    def wait_ready(self, revision: str | None = None, timeout: float = 90) -> dict:
        def ready() -> dict | None:
            ks = self.ks()
            cond = condition(ks, "Ready")
            applied = ks.get("status", {}).get("lastAppliedRevision", "")
            ok = cond.get("status") == "True" and bool(applied) and (revision is None or applied.endswith(revision))
            return ks if ok else None

        return wait_for(f"Kustomization {self.kustomization} Ready at {revision or 'any revision'}", ready, timeout)


def make_flux_app(cluster: LocalCluster, name: str, namespace: str, kustomization: str, git_interval: str,
                  ks_interval: str) -> FluxApp:  # fmt: skip
    """Apply the shipped flux/ manifests, pointed at the local git server, with shorter intervals."""
    app = FluxApp(cluster, name, namespace, kustomization)
    cluster.publish_image("registry.example/druppie/drone-service:1.0.4")  # the tag the example deploys
    seed_repo(cluster.git_root / f"{name}.git", source_dir=EXAMPLE_APPS)
    cluster.kubectl("create", "namespace", namespace, check=False)
    repo = load_flux("gitrepository.yaml")
    repo["metadata"]["name"] = name
    repo["spec"].update(url=app.repo_url, interval=git_interval)
    ks = load_flux("kustomization-drone-service-prod.yaml")
    ks["metadata"]["name"] = kustomization
    ks["spec"].update(targetNamespace=namespace, interval=ks_interval, retryInterval="5s")
    ks["spec"]["sourceRef"]["name"] = name
    ks["spec"]["serviceAccountName"] = kustomization
    items = [repo, ks, *tenant(namespace, kustomization)]
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return app


def tenant(namespace: str, account: str, env: str = "prod", flux_namespace: str = "flux-system") -> list[dict]:
    """flux/'s tenant ServiceAccount and RoleBinding of ``env``, for a Kustomization ``account`` into
    ``namespace``; the account lives beside the Kustomization, in ``flux_namespace``."""
    sa, binding = yaml.safe_load_all((FLUX_DIR / f"tenant-{EXAMPLE_APP}-{env}.yaml").read_text())
    sa["metadata"].update(name=account, namespace=flux_namespace)
    binding["metadata"].update(name=f"flux-{account}", namespace=namespace)
    binding["subjects"][0].update(name=account, namespace=flux_namespace)
    return [sa, binding]
