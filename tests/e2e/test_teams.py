"""Two teams on one cluster, each installed as README "Another team" says (the platform's commands
and the team's kustomize overlay, with this checkout for the GitHub URLs), each promoting its own
app through its own druppie-promote, and kept apart: no team's ServiceAccount may read the other's
Secrets or runs, and one team's flux-wait cannot make Flux reconcile the other's Kustomization."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from localcluster.gitserver import GitServer
from testbed.fluxapp import make_flux_app
from testbed.readme import block_with
from testbed.site import apply_site_settings
from tests.support.e2e import README, Tekton, started, wait_for
from tests.support.install import team_overlay

TEAMS = ("team-dijken", "team-gemalen")
IMAGE = "registry.example/druppie/drone-service"
GITHUB_APPS = "https://github.com/waterschap/druppie-apps.git"
USER, TOKEN = "team-bot", "teams-e2e-" + uuid.uuid4().hex
# Every ServiceAccount the catalog and its trigger install into a team's namespace.
ACCOUNTS = (
    "druppie-git-clone",
    "druppie-test",
    "druppie-scan",
    "druppie-build",
    "druppie-tag-commit",
    "druppie-flux-wait",
    "druppie-summary",
    "druppie-commit-status",
    "druppie-triggers",
    "druppie-webhook-gate",
    "druppie-prune",
)


@pytest.fixture(scope="module")
def teams(cluster, tekton, tmp_path_factory):
    work = tmp_path_factory.mktemp("teams")
    git = GitServer(tmp_path_factory.mktemp("teams-git"), credentials=(USER, TOKEN), host=cluster.host_ip).start()
    secret_dir = tmp_path_factory.mktemp("teams-secret")
    port = git.base_url.rsplit(":", 1)[1]
    (secret_dir / ".git-credentials").write_text(f"http://{USER}:{TOKEN}@{cluster.host_ip}:{port}\n")
    (secret_dir / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    # The README's two Secrets of druppie-apps; this server knows one login, so the read one is the same.
    (secret_dir / "read").mkdir()
    (secret_dir / "read" / ".git-credentials").write_text((secret_dir / ".git-credentials").read_text())
    platform = block_with(README, "kubectl create namespace team-dijken")
    create_secrets = block_with(README, "kubectl create secret generic druppie-apps-write")
    apps = {}
    for team in TEAMS:
        (work / team).mkdir()
        (work / team / "kustomization.yaml").write_text(team_overlay(team, work / team))
        for command in platform:
            Tekton(cluster, work).run(command.replace("team-dijken", team))
        for command in create_secrets:
            Tekton(cluster, secret_dir).run(command.replace("-n ci", f"-n {team}"))
        apply_site_settings(cluster, team)
        # The team's own app in Flux, listed for that team only (the platform's annotation).
        app = apps[team] = make_flux_app(cluster, f"{team}-apps", f"{team}-app", f"{team}-drone-service", "1m", "1m")
        for kind, name in (("gitrepository", app.name), ("kustomization", app.kustomization)):
            cluster.kubectl(
                "annotate", "--overwrite", "-n", "flux-system", kind, name, f"ci.druppie.io/flux-wait-namespaces={team}"
            )
    yield apps
    git.stop()
    for team in TEAMS:
        cluster.kubectl("delete", "namespace", team, "--wait=false", check=False)
    for app in apps.values():
        cluster.kubectl("delete", "namespace", app.namespace, "--wait=false", check=False)


def promote(tekton, team: str, app, tag: str) -> tuple[str, dict]:
    """README's `tkn pipeline start druppie-promote`, in ``team``'s namespace, for ``app``."""
    start = next(c for c in block_with(README, "tkn pipeline start druppie-promote") if c.startswith("tkn pipeline"))
    out = tekton.run(
        start,
        ["-p", "allow-plain-http=true", "-p", "timeout=90s"],
        {
            "-n ci": f"-n {team}",
            GITHUB_APPS: app.repo_url,
            "tag=1.0.5": f"tag={tag}",
            "kustomization=drone-service-prod": f"kustomization={app.kustomization}",
        },
        check=False,
    ).stdout
    name = started(out, "PipelineRun")

    def done() -> dict | None:
        run = tekton.cluster.get_json("pipelinerun", "-n", team, name)
        return run if run.get("status", {}).get("completionTime") else None

    return out, wait_for(f"PipelineRun {team}/{name}", done, timeout=300)


def test_each_team_promotes_its_own_app_through_its_own_catalog(tekton, cluster, teams):
    for app in teams.values():
        app.wait_ready()
    cluster.publish_image(f"{IMAGE}:1.0.8")
    with ThreadPoolExecutor(len(TEAMS)) as pool:
        runs = dict(zip(TEAMS, pool.map(lambda t: promote(tekton, t, teams[t], "1.0.8"), TEAMS), strict=True))
    for team, (out, run) in runs.items():
        assert run["status"]["conditions"][0]["reason"] == "Succeeded", (team, out[-3000:])
        assert teams[team].image() == f"{IMAGE}:1.0.8"
        # Every task ran in the team's namespace, under the team's ServiceAccounts.
        taskruns = cluster.get_json("taskruns", "-n", team, "-l", f"tekton.dev/pipelineRun={run['metadata']['name']}")
        accounts = {t["spec"]["serviceAccountName"] for t in taskruns["items"]}
        assert accounts == {"druppie-tag-commit", "druppie-flux-wait"}


def test_no_team_reads_the_others_secrets_or_runs(cluster, teams):
    for team, other in (TEAMS, TEAMS[::-1]):
        for account in ACCOUNTS:
            who = f"--as=system:serviceaccount:{team}:{account}"
            for args in (
                ("get", "secrets"),
                ("list", "secrets"),
                ("list", "taskruns.tekton.dev"),
                ("get", "pipelineruns.tekton.dev"),
                ("create", "pipelineruns.tekton.dev"),
                ("get", "pods/log"),
            ):
                answer = cluster.kubectl("auth", "can-i", *args, "-n", other, who, check=False).stdout.strip()
                assert answer == "no", (team, account, args, other)
        # What its summary and its EventListener need, in its own namespace only.
        own = f"--as=system:serviceaccount:{team}:druppie-summary"
        trigger = f"--as=system:serviceaccount:{team}:druppie-triggers"
        for args in (("list", "taskruns.tekton.dev", own), ("create", "pipelineruns.tekton.dev", trigger)):
            assert cluster.kubectl("auth", "can-i", *args, "-n", team).stdout.strip() == "yes", (team, args)


def test_a_teams_flux_wait_cannot_reconcile_the_other_teams_kustomization(tekton, cluster, teams):
    dijken, gemalen = TEAMS
    target = teams[gemalen]

    def requested() -> tuple:
        return tuple(o["metadata"].get("annotations", {}).get("reconcile.fluxcd.io/requestedAt")
                     for o in (target.gitrepo(), target.ks()))  # fmt: skip

    before = requested()
    cluster.publish_image(f"{IMAGE}:1.0.9")
    out, run = promote(tekton, dijken, target, "1.0.9")
    assert run["status"]["conditions"][0]["status"] == "False", out[-3000:]
    logs = tekton.tkn("pipelinerun", "logs", run["metadata"]["name"], "-n", dijken).stdout
    # flux-wait asks the source first: the policy refuses it there, so it never gets to the Kustomization.
    assert (
        f"druppie-flux-wait of namespace {dijken} may not reconcile GitRepository {target.name}: "
        f"its annotation ci.druppie.io/flux-wait-namespaces does not list {dijken}"
    ) in logs, logs[-3000:]
    assert requested() == before
    # Nor can it ask for the Kustomization itself, by hand.
    asked = cluster.kubectl("annotate", "-n", "flux-system", "kustomization", target.kustomization, "--overwrite",
                            "reconcile.fluxcd.io/requestedAt=by-hand",
                            f"--as=system:serviceaccount:{dijken}:druppie-flux-wait", check=False)  # fmt: skip
    assert (
        asked.returncode != 0
        and (f"druppie-flux-wait of namespace {dijken} may not reconcile Kustomization {target.kustomization}")
        in asked.stderr
    ), asked.stderr
    assert requested() == before


def test_each_team_has_its_own_eventlistener(cluster, teams):
    for team in TEAMS:
        el = cluster.get_json("eventlistener", "-n", team, "druppie-ci-cd")
        assert el["spec"]["serviceAccountName"] == "druppie-triggers"

        def ready(t: str = team) -> dict | None:
            status = cluster.get_json("eventlistener", "-n", t, "druppie-ci-cd").get("status", {})
            return next(
                (c for c in status.get("conditions", []) if c["type"] == "Ready" and c["status"] == "True"), None
            )

        wait_for(f"{team}'s EventListener to be ready", ready, timeout=180)
