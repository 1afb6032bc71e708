"""Two teams on one cluster, each installed as README "Another team" says (the platform's commands
and the team's kustomize overlay, with this checkout for the GitHub URLs), each running the whole
loop for its own app: a push to its repository in Gitea → its webhook → its EventListener and
webhook-gate → its druppie-ci-cd (clone, test ‖ scan, build, tag-commit into the shared
druppie-apps, flux-wait) → Flux deploys its app into its namespace. And kept apart: no team's
ServiceAccount may read the other's Secrets or runs, and one team's flux-wait cannot make Flux
reconcile the other's Kustomization."""

from __future__ import annotations

import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from testbed.loop import Loop, Team, succeeded
from testbed.readme import block_with
from testbed.site import apply_site_settings
from tests.support.e2e import README, Tekton, started, wait_for
from tests.support.install import team_overlay

TEAMS = {
    "team-dijken": Team("team-dijken", app="dijk-sensor", target="dijken-prod", gitrepository="druppie-apps-dijken"),
    "team-gemalen": Team("team-gemalen", app="gemaal-pomp", target="gemalen-prod",
                         gitrepository="druppie-apps-gemalen"),
}  # fmt: skip
GITHUB_APPS = "https://github.com/waterschap/druppie-apps.git"
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
def teams(cluster, loop, tmp_path_factory):
    """Each team's catalog by the README's commands and overlay, then its loop (testbed.loop.Team)."""
    work = tmp_path_factory.mktemp("teams")
    platform = block_with(README, "kubectl create namespace team-dijken")
    loops = {}
    for team in TEAMS.values():
        (work / team.namespace).mkdir()
        (work / team.namespace / "kustomization.yaml").write_text(team_overlay(team.namespace, work / team.namespace))
        for command in platform:
            Tekton(cluster, work).run(command.replace("team-dijken", team.namespace))
        apply_site_settings(cluster, team.namespace)
        loops[team.namespace] = Loop(cluster, say=lambda m: print(f"[teams] {m}", flush=True), team=team)
    with ThreadPoolExecutor(len(loops)) as pool:
        list(pool.map(lambda lp: lp.install_team(), loops.values()))
    yield loops
    for lp in loops.values():
        for kind, name in (("kustomization", lp.team.kustomization), ("gitrepository", lp.team.gitrepository)):
            cluster.kubectl("patch", "-n", "flux-system", kind, name, "--type=merge",
                            "-p", '{"spec":{"suspend":true}}', check=False)  # fmt: skip
        for namespace in (lp.team.namespace, lp.team.target):
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_push_to_each_teams_app_runs_its_own_loop_into_its_own_namespace(cluster, teams):
    greetings = {ns: f"{ns} {uuid.uuid4().hex[:6]}" for ns in teams}
    # Both teams push at once: their tag-commits race for druppie-apps' main, and each lands.
    commits = {ns: lp.push_change(greetings[ns]) for ns, lp in teams.items()}

    def run_of(ns: str) -> dict:
        lp = teams[ns]
        return lp.finished(lp.pipelinerun_for(commits[ns]))

    with ThreadPoolExecutor(len(teams)) as pool:
        runs = dict(zip(teams, pool.map(run_of, teams), strict=True))
    for ns, run in runs.items():
        lp, name = teams[ns], run["metadata"]["name"]
        results = {r["name"]: r["value"] for r in run["status"].get("results", [])}
        taskruns = cluster.get_json("taskruns", "-n", ns, "-l", f"tekton.dev/pipelineRun={name}")["items"]
        reasons = {t["metadata"]["labels"]["tekton.dev/pipelineTask"]: t["status"]["conditions"][0]["reason"]
                   for t in taskruns}  # fmt: skip
        assert succeeded(run), (ns, reasons, lp.failures(name))
        # The team's app, built as its own image, and its own Kustomization applied the tag commit.
        assert name.startswith(f"{lp.team.app}-") and results["CHAINS-GIT_COMMIT"] == commits[ns]
        assert results["IMAGE_URL"].startswith(f"{lp.image}:1.1."), results
        assert results["status"] == "Succeeded", results
        # Every task ran in the team's namespace, under the team's own ServiceAccounts.
        accounts = {t["spec"]["serviceAccountName"] for t in taskruns}
        assert accounts >= {"druppie-git-clone", "druppie-build", "druppie-tag-commit", "druppie-flux-wait"}, accounts
        assert all(t["metadata"]["namespace"] == ns for t in taskruns)
        lp.wait(f"{ns}'s pods to serve its change", lambda lp=lp, ns=ns: lp.service_says() == greetings[ns], 180)
        assert lp.deployed_image() == f"{results['IMAGE_URL']}@{results['IMAGE_DIGEST']}"
    # Both tag commits are in the shared druppie-apps, each in its own team's folder.
    dijken, gemalen = teams.values()
    for lp in (dijken, gemalen):
        kustomization = lp.gitea.read_file("druppie-apps", f"envs/prod/{lp.team.app}/kustomization.yaml")
        assert f"newName: {lp.image}" in kustomization


def promote(tekton, team: str, target: Loop, tag: str) -> tuple[str, dict]:
    """README's `tkn pipeline start druppie-promote`, in ``team``'s namespace, aimed at ``target``'s app."""
    start = next(
        c
        for c in block_with(README, "tkn pipeline start druppie-promote", without="rollback-reason")
        if c.startswith("tkn pipeline")
    )
    out = tekton.run(
        start,
        ["-p", "allow-plain-http=true", "-p", "timeout=90s"],
        {
            "-n ci": f"-n {team}",
            GITHUB_APPS: target.gitea.clone_url("druppie-apps"),
            "path=envs/prod/drone-service": f"path=envs/prod/{target.team.app}",
            "image=registry.example/druppie/drone-service": f"image={target.image}",
            "tag=1.0.5": f"tag={tag}",
            "kustomization=drone-service-prod": f"kustomization={target.team.kustomization}",
        },
        check=False,
    ).stdout
    name = started(out, "PipelineRun")

    def done() -> dict | None:
        run = tekton.cluster.get_json("pipelinerun", "-n", team, name)
        return run if run.get("status", {}).get("completionTime") else None

    return out, wait_for(f"PipelineRun {team}/{name}", done, timeout=300)


def test_no_team_reads_the_others_secrets_or_runs(cluster, teams):
    verbs = (
        ("get", "secrets"),
        ("list", "secrets"),
        ("list", "taskruns.tekton.dev"),
        ("get", "pipelineruns.tekton.dev"),
        ("create", "pipelineruns.tekton.dev"),
        ("get", "pods/log"),
    )
    names = tuple(TEAMS)
    # Each ServiceAccount of one team, each verb, in the other team's namespace: all "no".
    questions = [(team, account, args, other) for team, other in (names, names[::-1])
                 for account in ACCOUNTS for args in verbs]  # fmt: skip

    def answer(question: tuple) -> str:
        team, account, args, other = question
        who = f"--as=system:serviceaccount:{team}:{account}"
        return cluster.kubectl("auth", "can-i", *args, "-n", other, who, check=False).stdout.strip()

    with ThreadPoolExecutor(8) as pool:
        answers = dict(zip(questions, pool.map(answer, questions), strict=True))
    assert [q for q, a in answers.items() if a != "no"] == []
    for team in names:
        # What its summary and its EventListener need, in its own namespace only.
        own = f"--as=system:serviceaccount:{team}:druppie-summary"
        trigger = f"--as=system:serviceaccount:{team}:druppie-triggers"
        for args in (("list", "taskruns.tekton.dev", own), ("create", "pipelineruns.tekton.dev", trigger)):
            assert cluster.kubectl("auth", "can-i", *args, "-n", team).stdout.strip() == "yes", (team, args)


def test_a_teams_flux_wait_cannot_reconcile_the_other_teams_kustomization(tekton, cluster, teams):
    dijken, gemalen = TEAMS
    target = teams[gemalen]

    def requested() -> tuple:
        return tuple(cluster.get_json(kind, "-n", "flux-system", name)["metadata"].get("annotations", {})
                     .get("reconcile.fluxcd.io/requestedAt")
                     for kind, name in (("gitrepository", target.team.gitrepository),
                                        ("kustomization", target.team.kustomization)))  # fmt: skip

    before = requested()
    # A newer tag of gemalen's image: the teams share druppie-apps and its bot, so tag-commit may
    # write it; what must be refused is flux-wait asking Flux for gemalen's objects.
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{target.image}:1.0.4", f"docker://{target.image}:1.9.0"], check=True)  # fmt: skip
    out, run = promote(tekton, dijken, target, "1.9.0")
    assert run["status"]["conditions"][0]["status"] == "False", out[-3000:]
    logs = tekton.tkn("pipelinerun", "logs", run["metadata"]["name"], "-n", dijken).stdout
    # flux-wait asks the source first: the policy refuses it there, so it never gets to the Kustomization.
    assert (
        f"druppie-flux-wait of namespace {dijken} may not reconcile GitRepository {target.team.gitrepository}: "
        f"its annotation ci.druppie.io/flux-wait-namespaces does not list {dijken}"
    ) in logs, logs[-3000:]
    assert requested() == before
    # Nor can it ask for the Kustomization itself, by hand.
    asked = cluster.kubectl("annotate", "-n", "flux-system", "kustomization", target.team.kustomization,
                            "--overwrite", "reconcile.fluxcd.io/requestedAt=by-hand",
                            f"--as=system:serviceaccount:{dijken}:druppie-flux-wait", check=False)  # fmt: skip
    assert (
        asked.returncode != 0
        and (f"druppie-flux-wait of namespace {dijken} may not reconcile Kustomization {target.team.kustomization}")
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
