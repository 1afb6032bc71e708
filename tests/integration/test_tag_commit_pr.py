"""tag-commit --mode pull-request against a real Gitea (1.27): the branch promote/<app>/<env>, one pull
request per app and environment, the supersession guard, a late merge, and the API's failures.
GitHub's shape is checked against a fake of its REST API (tests/support/fake_github.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hack import catalog
from localcluster.gitea import GiteaServer, missing
from localcluster.gitea_api import GiteaClient, GiteaError
from localcluster.process import free_port
from tests.support.fake_github import FakeGitHub
from tests.support.fake_gitlab import FakeGitLab
from tests.support.forge_proxy import ForgeProxy
from tests.support.paths import EXAMPLE_APPS, STEP
from tests.support.tekton_env import tekton_env

pytestmark = pytest.mark.skipif(bool(missing()), reason=f"not built yet: {', '.join(missing())}")

IMAGE = "registry.example/druppie/drone-service"
APP = "envs/prod/drone-service"
KUSTOMIZATION = f"{APP}/kustomization.yaml"
BRANCH = "promote/drone-service/prod"
DIGEST = "sha256:" + "0123456789abcdef" * 4
SOURCE = "3f2a9c1e0b4d5f6a7b8c9d0e1f2a3b4c5d6e7f80"
BOT, BOT_PASSWORD = "ci-bot", "ci-bot-Passw0rd-long"
_names = iter(range(1_000_000))


@pytest.fixture(scope="module")
def gitea(tmp_path_factory):
    with GiteaServer(tmp_path_factory.mktemp("gitea")) as server:
        yield server


@pytest.fixture(scope="module")
def forge(gitea) -> GiteaClient:
    client = gitea.client()
    client.create_user(BOT, BOT_PASSWORD)
    return client


@pytest.fixture(scope="module")
def token(forge) -> str:
    return forge.token_for(BOT)


@pytest.fixture(scope="module")
def basic_auth(gitea, token, tmp_path_factory) -> Path:
    """The task's basic-auth workspace: the bot's token in .git-credentials, for git and the API alike."""
    folder = tmp_path_factory.mktemp("basic-auth")
    (folder / ".git-credentials").write_text(f"http://{BOT}:{token}@127.0.0.1:{gitea.port}\n")
    return folder


@dataclass
class Apps:
    forge: GiteaClient
    name: str
    url: str

    def pulls(self, state: str = "all") -> list[dict]:
        return self.forge.api("GET", f"/repos/{self.forge.admin}/{self.name}/pulls?state={state}&limit=50")

    def pull(self, number: int) -> dict:
        return self.forge.api("GET", f"/repos/{self.forge.admin}/{self.name}/pulls/{number}")

    def branch(self, name: str = BRANCH) -> str | None:
        try:
            return self.forge.head(self.name, name)
        except GiteaError as err:
            if err.status == 404:
                return None
            raise

    def read(self, ref: str = "main") -> str:
        return self.forge.read_file(self.name, KUSTOMIZATION, ref)

    def parents(self, sha: str) -> list[str]:
        commit = self.forge.api("GET", f"/repos/{self.forge.admin}/{self.name}/git/commits/{sha}")
        return [p["sha"] for p in commit["parents"]]


@pytest.fixture
def apps(forge) -> Apps:
    """A fresh druppie-apps (envs/prod/drone-service at 1.0.4) the bot may write to."""
    name = f"apps-{next(_names)}"
    url = forge.create_repo(name, source_dir=EXAMPLE_APPS)
    forge.add_collaborator(name, BOT)
    return Apps(forge, name, url)


@pytest.fixture
def promote(run_step, basic_auth):
    """tag-commit --mode pull-request as the bot."""

    def run(apps: Apps, tag: str, *extra: str, env: dict[str, str] | None = None):
        return run_step(
            *("tag-commit", "--repo-url", apps.url, "--path", APP, "--image", IMAGE, "--tag", tag),
            *("--mode", "pull-request", "--forge", "gitea", "--basic-auth", str(basic_auth), *extra),
            env=env,
        )

    return run


@pytest.fixture
def push(run_step, basic_auth):
    """tag-commit as today (--mode push) as the bot: a newer tag reaching main another way, e.g. a hotfix."""

    def run(apps: Apps, tag: str):
        return run_step(
            *("tag-commit", "--repo-url", apps.url, "--path", APP, "--image", IMAGE, "--tag", tag),
            *("--basic-auth", str(basic_auth)),
        )

    return run


def _last(run) -> str:
    return run.stderr.strip().splitlines()[-1]


def _written(pull: dict) -> tuple:
    """The parts of a pull request that tag-commit writes."""
    return pull["number"], pull["state"], pull["title"], pull["body"], pull["head"]["ref"], pull["head"]["sha"]


def _wait_mergeable(apps: Apps, number: int, mergeable: bool, timeout: float = 30) -> dict:
    """Gitea checks mergeability in a queue after every push to either branch."""
    deadline = time.monotonic() + timeout
    while True:
        pull = apps.pull(number)
        if pull["mergeable"] is mergeable:
            return pull
        assert time.monotonic() < deadline, f"pull request {number} never became mergeable={mergeable}"
        time.sleep(0.2)


def test_opens_one_pull_request_whose_branch_is_main_plus_the_edit(apps, promote):
    main = apps.forge.head(apps.name)
    before = apps.read()
    run = promote(
        apps,
        "1.0.5",
        *("--digest", DIGEST, "--source-commit", SOURCE, "--pipeline-run", "drone-service-run-7"),
        *("--tested-by", "drone-service-run-7, acceptatie-e2e-3"),
    )
    assert run.returncode == 0, run.output
    [pull] = apps.pulls()
    head = apps.branch()
    assert (pull["state"], pull["head"]["ref"], pull["base"]["ref"], pull["head"]["sha"]) == (
        "open",
        BRANCH,
        "main",
        head,
    )
    assert run.results == {
        "commit": head,
        "revision": f"{BRANCH}@sha1:{head}",
        "changed": "true",
        "previous-tag": "1.0.4",
        "deployed": "false",  # nothing reaches the cluster before the merge
        "reason": f"proposed 1.0.5 (was 1.0.4) in {pull['html_url']}",
        "pull-request-url": pull["html_url"],
    }
    assert apps.forge.head(apps.name) == main and apps.read() == before  # main untouched
    assert apps.parents(head) == [main]  # one commit on top of main: exactly the edit
    assert apps.read(BRANCH) == before.replace(
        "    newTag: 1.0.4  # written by CI, do not edit by hand\n",
        f"    newTag: 1.0.5  # written by CI, do not edit by hand\n    digest: {DIGEST}\n",
    )
    assert pull["title"] == f"drone-service: deploy {IMAGE}:1.0.5 (was 1.0.4)"
    body = pull["body"]
    for row in (
        f"| Image | `{IMAGE}:1.0.5` |",
        f"| Digest | `{DIGEST}` |",
        f"| Source commit | `{SOURCE}` |",
        "| Tested by | `drone-service-run-7`, `acceptatie-e2e-3` |",
        "| Replaces | `1.0.4` on `main` |",
        "| Pipeline run | `drone-service-run-7` |",
    ):
        assert row in body.splitlines(), body


def test_a_newer_promotion_updates_the_same_pull_request_and_a_rerun_changes_nothing(apps, promote):
    first = promote(apps, "1.0.5", "--tested-by", "run-1")
    assert first.returncode == 0, first.output
    apps.forge.commit_file(apps.name, "README.md", "main moved on\n", "unrelated change on main")
    main = apps.forge.head(apps.name)
    newer = promote(apps, "1.0.6", "--tested-by", "run-2")
    assert newer.returncode == 0, newer.output
    [pull] = apps.pulls()  # still one, the same
    assert newer.results["pull-request-url"] == first.results["pull-request-url"] == pull["html_url"]
    assert "| Tested by | `run-2` |" in pull["body"] and f"`{IMAGE}:1.0.6`" in pull["body"]
    assert pull["title"] == f"drone-service: deploy {IMAGE}:1.0.6 (was 1.0.4)"
    head = apps.branch()
    assert newer.results["commit"] == head != first.results["commit"]
    assert apps.parents(head) == [main]  # rebuilt on main as it is now, not stacked on the old proposal
    assert "newTag: 1.0.6" in apps.read(BRANCH) and "newTag: 1.0.4" in apps.read()

    again = promote(apps, "1.0.6", "--tested-by", "run-2")
    assert again.returncode == 0, again.output
    assert again.results["changed"] == "false" and again.results["commit"] == head == apps.branch()
    assert len(apps.pulls()) == 1


def test_racing_promotions_end_in_one_pull_request_that_describes_the_highest(apps, promote):
    """Rising tags of one app and environment at once: the lease keeps the branch from going back, and
    whichever run writes the text last writes the tip's (each branch commit records its proposal)."""
    tags = [f"1.1.{i}" for i in range(6)]
    with ThreadPoolExecutor(max_workers=len(tags)) as pool:
        runs = list(pool.map(lambda t: promote(apps, t, "--tested-by", f"run-{t}"), tags))
    for run in runs:  # proposed, or refused because a newer proposal was there first
        assert run.returncode == 0 or "error: not proposed: " in _last(run), run.output
    assert runs[-1].returncode == 0
    [pull] = apps.pulls()
    head = apps.branch()
    assert "newTag: 1.1.5" in apps.read(BRANCH) and pull["head"]["sha"] == head
    assert pull["title"] == f"drone-service: deploy {IMAGE}:1.1.5 (was 1.0.4)"
    assert f"| Image | `{IMAGE}:1.1.5` |" in pull["body"] and "| Tested by | `run-1.1.5` |" in pull["body"]
    assert all(r.results["pull-request-url"] == pull["html_url"] for r in runs if r.returncode == 0)


def test_a_stale_text_written_last_is_replaced_by_the_tips(apps, promote, gitea):
    """The interleaving the race test rarely hits, forced: 1.0.6 pushes, its text is held in the proxy,
    1.0.7 pushes and writes its text, then 1.0.6's stale text lands; 1.0.6 sees the branch moved and
    writes the text of the tip (1.0.7's, from the trailers of its commit)."""
    assert promote(apps, "1.0.5").returncode == 0
    with ForgeProxy(gitea.base_url) as proxy, ThreadPoolExecutor(1) as pool:
        hold = proxy.hold_next("PATCH", "/pulls/")
        slow = pool.submit(promote, apps, "1.0.6", "--tested-by", "run-6", "--forge-api-url", f"{proxy.url}/api/v1")
        assert hold.arrived.wait(60), "1.0.6 never wrote its text"
        fast = promote(apps, "1.0.7", "--tested-by", "run-7", "--source-commit", SOURCE)
        assert fast.returncode == 0, fast.output
        hold.release.set()
        late = slow.result(timeout=120)
    assert late.returncode == 0, late.output
    tip = apps.branch()
    assert tip == fast.results["commit"] != late.results["commit"]
    assert late.results["reason"].endswith(f"; a newer promotion replaced it since ({tip[:12]})")
    assert f"moved to {tip[:12]} ({IMAGE}:1.0.7) meanwhile; describing that" in late.stderr
    [pull] = apps.pulls()
    assert pull["title"] == f"drone-service: deploy {IMAGE}:1.0.7 (was 1.0.4)"
    assert f"| Image | `{IMAGE}:1.0.7` |" in pull["body"] and "| Tested by | `run-7` |" in pull["body"]
    assert f"| Source commit | `{SOURCE}` |" in pull["body"]


def test_an_older_tag_than_the_open_pull_request_proposes_is_refused(apps, promote):
    assert promote(apps, "1.0.7").returncode == 0
    [pull] = apps.pulls()
    head = apps.branch()
    stale = promote(apps, "1.0.6")
    assert stale.returncode == 1, stale.output
    assert _last(stale) == (
        f"error: not proposed: {IMAGE}:1.0.6 is older than 1.0.7, which the open pull request {pull['html_url']} "
        f"already proposes for {APP}; --allow-downgrade replaces it anyway, --allow-no-change accepts that "
        "nothing is proposed"
    )
    assert stale.results["deployed"] == "false" and stale.results["changed"] == "false"
    assert stale.results["reason"] == f"not proposed: {BRANCH} already proposes 1.0.7, newer than 1.0.6"
    # Branch and pull request untouched; Gitea recomputes fields such as `mergeable` on its own, so compare
    # what tag-commit writes.
    assert apps.branch() == head and [_written(p) for p in apps.pulls()] == [_written(pull)]

    accepted = promote(apps, "1.0.6", "--allow-no-change")
    assert accepted.returncode == 0 and apps.branch() == head


def test_an_older_tag_than_main_has_is_refused_and_opens_nothing(apps, promote, push):
    direct = push(apps, "1.0.7")
    assert direct.returncode == 0, direct.output
    stale = promote(apps, "1.0.6")
    assert stale.returncode == 1
    assert _last(stale).startswith(f"error: not deployed: {IMAGE}:1.0.6 is older than 1.0.7, which {APP} already has")
    assert apps.branch() is None and apps.pulls() == []
    same = promote(apps, "1.0.7")  # already on main: nothing to propose
    assert same.returncode == 0 and same.results["deployed"] == "true" and same.results["changed"] == "false"
    assert apps.branch() is None and apps.pulls() == []


def test_a_late_merge_of_an_older_proposal_conflicts_and_a_newer_promotion_makes_it_mergeable(apps, promote, push):
    """The supersession guard at merge time: the proposal changes the very line that holds the tag, so a
    newer tag on main makes the old pull request conflict; the forge refuses to merge it."""
    assert promote(apps, "1.0.5").returncode == 0
    [pull] = apps.pulls()
    _wait_mergeable(apps, pull["number"], True)
    hotfix = push(apps, "1.0.6")
    assert hotfix.returncode == 0, hotfix.output  # a newer tag reaches main another way
    _wait_mergeable(apps, pull["number"], False)
    with pytest.raises(GiteaError) as refused:
        apps.forge.api("POST", f"/repos/{apps.forge.admin}/{apps.name}/pulls/{pull['number']}/merge", {"Do": "merge"})
    assert refused.value.status == 405
    assert "newTag: 1.0.6" in apps.read() and apps.forge.head(apps.name) == hotfix.results["commit"]

    newer = promote(apps, "1.0.7")  # rebuilt on main as it is now: the same pull request, mergeable again
    assert newer.returncode == 0, newer.output
    assert newer.results["previous-tag"] == "1.0.6" and newer.results["pull-request-url"] == pull["html_url"]
    _wait_mergeable(apps, pull["number"], True)
    apps.forge.api("POST", f"/repos/{apps.forge.admin}/{apps.name}/pulls/{pull['number']}/merge", {"Do": "merge"})
    assert "newTag: 1.0.7" in apps.read() and apps.pull(pull["number"])["merged"]
    after = promote(apps, "1.0.6")  # and nothing older gets proposed after the merge
    assert after.returncode == 1 and "is older than 1.0.7" in _last(after)


def test_the_token_is_in_no_log_result_argument_or_body(apps, promote, token, tmp_path):
    """git is wrapped to record every command line it gets; the token comes from the workspace file only."""
    shim = tmp_path / "bin"
    shim.mkdir()
    calls = tmp_path / "git-calls"
    real_git = shutil.which("git")
    (shim / "git").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\nexec {real_git} "$@"\n')
    (shim / "git").chmod(0o755)
    run = promote(apps, "1.0.5", "--tested-by", "run-1", env={"PATH": f"{shim}:{os.environ['PATH']}"})
    assert run.returncode == 0, run.output
    assert "push" in calls.read_text() and "credential fill" in calls.read_text()
    for text in (run.stdout, run.stderr, calls.read_text(), *run.results.values(), apps.pulls()[0]["body"]):
        assert token not in text
    failed = promote(
        apps, "1.0.6", "--forge-api-url", f"http://127.0.0.1:{free_port()}/api/v1", "--transient-retries", "0"
    )
    assert failed.returncode == 1 and token not in failed.output


def test_an_unreachable_forge_is_one_line_and_nothing_is_pushed(apps, promote):
    port = free_port()
    run = promote(apps, "1.0.5", "--forge-api-url", f"http://127.0.0.1:{port}/api/v1", "--transient-retries", "0")
    assert run.returncode == 1
    assert _last(run) == (
        f"error: cannot reach forge API http://127.0.0.1:{port}/api/v1 "
        f"(GET /repos/{apps.forge.admin}/{apps.name}/pulls): [Errno 111] Connection refused (gave up after 0 retries)"
    )
    assert run.results == {} and apps.branch() is None


@pytest.mark.parametrize(
    "case,status",
    [("wrong API root", 404), ("wrong token", 401)],
)
def test_a_4xx_from_the_forge_is_one_line_naming_it_and_nothing_is_pushed(apps, promote, gitea, tmp_path, case, status):
    extra = ["--forge-api-url", f"{gitea.base_url}/api/v2"] if case == "wrong API root" else []
    if case == "wrong token":
        wrong = tmp_path / "wrong"
        wrong.mkdir()
        (wrong / ".git-credentials").write_text(f"http://{BOT}:{'0' * 40}@127.0.0.1:{gitea.port}\n")
        extra = ["--basic-auth", str(wrong)]  # the last --basic-auth counts
    run = promote(apps, "1.0.5", *extra)
    assert run.returncode == 1
    api = f"{gitea.base_url}/api/{'v2' if status == 404 else 'v1'}"
    assert _last(run).startswith(
        f"error: forge API {api} answered HTTP {status} to GET /repos/{apps.forge.admin}/{apps.name}/pulls"
    ), run.stderr
    assert "0" * 40 not in run.output and apps.branch() is None and apps.pulls() == []


def test_a_failed_open_after_the_push_says_so_and_a_rerun_converges(apps, promote, gitea):
    with ForgeProxy(gitea.base_url) as proxy:
        api = ["--forge-api-url", f"{proxy.url}/api/v1"]
        proxy.fail_next(1, 500, "POST", "/pulls")
        run = promote(apps, "1.0.5", *api, "--transient-retries", "0")
        assert run.returncode == 1
        head = apps.branch()
        assert head is not None and apps.pulls() == []
        assert _last(run) == (
            f"error: forge API {proxy.url}/api/v1 answered HTTP 500 to POST "
            f"/repos/{apps.forge.admin}/{apps.name}/pulls: injected by the test proxy (gave up after 0 retries); "
            f"the branch {BRANCH} was pushed at {head[:12]} but its pull request was not opened or updated: "
            "run again (the same promotion converges)"
        )
        proxy.fail_next(1, 502, "GET", "/pulls")  # a transient error is retried
        again = promote(apps, "1.0.5", *api)
        assert again.returncode == 0, again.output
        assert "answered HTTP 502" in again.stderr and "retry 1/4" in again.stderr
    assert again.results["changed"] == "false" and again.results["commit"] == head == apps.branch()
    [pull] = apps.pulls()
    assert again.results["pull-request-url"] == pull["html_url"] and pull["head"]["sha"] == head


def test_github_shape_against_a_fake_of_its_api(apps, promote, token):
    with FakeGitHub(apps.forge.admin, apps.name, token, lambda ref: apps.branch(ref) or "") as github:
        api = ["--forge", "github", "--forge-api-url", github.url]
        first = promote(apps, "1.0.5", *api, "--source-commit", SOURCE)
        assert first.returncode == 0, first.output
        second = promote(apps, "1.0.6", *api, "--source-commit", SOURCE)
        assert second.returncode == 0, second.output
        [pull] = github.pulls
        assert (pull["number"], pull["state"], pull["head"]["ref"], pull["base"]["ref"]) == (1, "open", BRANCH, "main")
        assert first.results["pull-request-url"] == second.results["pull-request-url"] == pull["html_url"]
        assert f"`{IMAGE}:1.0.6`" in pull["body"] and f"| Source commit | `{SOURCE}` |" in pull["body"]
        methods = [(m, p.split("?")[0]) for m, p, _ in github.requests]
        pulls = f"/repos/{apps.forge.admin}/{apps.name}/pulls"
        assert methods == [("GET", pulls), ("POST", pulls), ("GET", pulls), ("PATCH", f"{pulls}/1")]
        listing = github.requests[0][1]
        assert f"head={apps.forge.admin}%3A{BRANCH.replace('/', '%2F')}" in listing and "per_page=100" in listing
        assert all(h["authorization"] == f"Bearer {token}" for _, _, h in github.requests)
        assert all(h["x-github-api-version"] == "2022-11-28" for _, _, h in github.requests)
        assert apps.read(BRANCH).count("newTag: 1.0.6") == 1 and token not in first.output + second.output


def test_gitlab_shape_against_a_fake_of_its_api(apps, promote, token):
    with FakeGitLab(apps.forge.admin, apps.name, token, lambda ref: apps.branch(ref) or "") as gitlab:
        api = ["--forge", "gitlab", "--forge-api-url", gitlab.url]
        first = promote(apps, "1.0.5", *api, "--tested-by", "run-5")
        assert first.returncode == 0, first.output
        second = promote(apps, "1.0.6", *api, "--tested-by", "run-6")
        assert second.returncode == 0, second.output
        [mr] = gitlab.pulls
        assert (mr["iid"], mr["state"], mr["source_branch"], mr["target_branch"]) == (1, "opened", BRANCH, "main")
        assert first.results["pull-request-url"] == second.results["pull-request-url"] == mr["web_url"]
        assert f"| Image | `{IMAGE}:1.0.6` |" in mr["description"] and "| Tested by | `run-6` |" in mr["description"]
        project = f"/projects/{apps.forge.admin}%2F{apps.name}/merge_requests"
        methods = [(m, p.split("?")[0]) for m, p, _ in gitlab.requests]
        assert methods == [("GET", project), ("POST", project), ("GET", project), ("PUT", f"{project}/1")]
        assert (
            "state=opened" in gitlab.requests[0][1]
            and "source_branch=promote%2Fdrone-service%2Fprod" in (gitlab.requests[0][1])
        )
        assert all(h["authorization"] == f"Bearer {token}" for _, _, h in gitlab.requests)


def test_the_tasks_env_runs_the_pull_request_mode(apps, basic_auth, tmp_path):
    """The Task's params reach the step through env only, the token through the basic-auth workspace."""
    task = yaml.safe_load((catalog.ROOT / "tasks/druppie-tag-commit/0.1/druppie-tag-commit.yaml").read_text())
    params = {"repo-url": apps.url, "path": APP, "image": IMAGE, "tag": "1.0.5", "digest": DIGEST}
    params |= {"mode": "pull-request", "forge": "gitea", "source-commit": SOURCE, "tested-by": "ci-run-1,ci-run-2"}
    env = tekton_env(task, params, {"basic-auth": str(basic_auth)}, str(tmp_path / "results"))
    proc = subprocess.run(
        [str(STEP), *task["spec"]["steps"][0]["command"][1:]],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **env, "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    results = {p.name: p.read_text() for p in (tmp_path / "results").iterdir()}
    assert set(results) == {r["name"] for r in task["spec"]["results"]}
    [pull] = apps.pulls()
    assert results["pull-request-url"] == pull["html_url"] and results["deployed"] == "false"
    assert "| Tested by | `ci-run-1`, `ci-run-2` |" in pull["body"] and f"`{SOURCE}`" in pull["body"]


def test_a_rollback_by_pull_request_says_so_first_with_its_reason(apps, promote, run_step, basic_auth):
    """Prod protected: a rollback, too, is a pull request, and its reviewer reads why before anything else."""
    ran, newer = "sha256:" + "a1" * 32, "sha256:" + "b2" * 32
    for tag, digest in (("1.0.6", ran), ("1.0.7", newer)):  # what prod ran, newest last
        done = run_step(*("tag-commit", "--repo-url", apps.url, "--path", APP, "--image", IMAGE, "--tag", tag),
                        *("--digest", digest, "--basic-auth", str(basic_auth)))  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
    back = promote(apps, "1.0.6", "--digest", ran, "--rollback-reason", "1.0.7 answers 500 on /health")
    assert back.returncode == 0, back.stderr[-2000:]
    [pull] = apps.pulls()
    assert pull["html_url"] == back.results["pull-request-url"]
    assert pull["body"].startswith(f"Rolls **drone-service** in **prod** back to `{IMAGE}:1.0.6@{ran}`"), pull["body"]
    assert "| Rollback | `1.0.7 answers 500 on /health` |" in pull["body"]
    tip = apps.forge.api("GET", f"/repos/{apps.forge.admin}/{apps.name}/git/commits/{apps.branch()}")
    assert "Rollback: 1.0.7 answers 500 on /health" in tip["commit"]["message"]
    assert f"digest: {newer}" in apps.read()  # main untouched until the merge
