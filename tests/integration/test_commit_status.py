"""druppie-step commit-status against the real Gitea (1.27.3) on loopback: the statuses appear on the
commit, a later report replaces a context's state, a forge that refuses or is not there is a warning
and exit 0, and what a token that can write statuses can and cannot do (measured here, reported in
tasks/druppie-commit-status/0.1/README.md)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from localcluster.gitea import GiteaServer, missing
from localcluster.gitea_api import ADMIN, GiteaError, _git_env
from localcluster.process import free_port
from localcluster.toolchain import ROOT
from tests.support.paths import STEP
from tests.support.tekton_env import tekton_env

pytestmark = pytest.mark.skipif(bool(missing()), reason=f"not built yet: {', '.join(missing())}")

BOT, BOT_PASSWORD = "druppie-status", "status-bot-Passw0rd-long"
CONTEXTS = ("druppie/test", "druppie/scan", "druppie/build", "druppie/deploy-prod")


@pytest.fixture(scope="module")
def forge(tmp_path_factory):
    with GiteaServer(tmp_path_factory.mktemp("gitea")) as gitea:
        client = gitea.client()
        client.create_repo("drone-service", files={"README.md": "drone\n"})
        client.create_user(BOT, BOT_PASSWORD)
        # The platform's status bot: write access (Gitea's least that may write statuses), a token
        # scoped write:repository (the only scope that covers them), and every branch and tag of the
        # app protected against its pushes.
        client.add_collaborator("drone-service", BOT, "write")
        protect(client, "drone-service")
        yield client


def protect(client, repo: str) -> None:
    path = f"/repos/{ADMIN}/{repo}"
    client.api(
        "POST",
        f"{path}/branch_protections",
        {
            "rule_name": "*",
            "enable_push": True,
            "enable_push_whitelist": True,
            "push_whitelist_usernames": [ADMIN],
            "enable_merge_whitelist": True,
            "merge_whitelist_usernames": [ADMIN],
        },
    )
    client.api("POST", f"{path}/tag_protections", {"name_pattern": "*", "whitelist_usernames": [ADMIN]})
    client.api("PATCH", path, {"has_wiki": False})


def bot_token(client, *scopes: str) -> str:
    return client.token_for(BOT, BOT_PASSWORD, scopes or ("write:repository",))


def token_file(tmp_path: Path, token: str) -> Path:
    """The status-token workspace: a folder with the Secret's key ``token``."""
    folder = tmp_path / "status-token"
    folder.mkdir(exist_ok=True)
    (folder / "token").write_text(token + "\n")
    return folder


def statuses(client, repo: str, sha: str) -> dict[str, tuple[str, str, str]]:
    """Each context's newest (state, description, target_url) on the commit, from Gitea's combined status."""
    combined = client.api("GET", f"/repos/{ADMIN}/{repo}/commits/{sha}/status")
    return {s["context"]: (s["status"], s["description"], s["target_url"]) for s in combined["statuses"] or []}


def step_args(client, sha: str, path: Path, *statuses: str, repo: str = "drone-service") -> list[str]:
    args = ["commit-status", "--repo-url", client.clone_url(repo), "--commit", sha, "--credentials", str(path)]
    for status in statuses:
        args += ["--status", status]
    return args


def assert_token_nowhere(token: str, run, argv: list[str]) -> None:
    assert token not in " ".join(argv)
    assert token not in run.stdout + run.stderr
    assert all(token not in value for value in run.results.values())


def test_pending_then_final_statuses_appear_on_the_commit_and_replace_each_other(forge, run_step, tmp_path):
    sha = forge.head("drone-service")
    token = bot_token(forge)
    path = token_file(tmp_path, token)
    link = "https://tekton.example/#/namespaces/ci/pipelineruns/drone-service-1"
    argv = [
        *step_args(forge, sha, path, *(f"{c}=pending:started by drone-service-1" for c in CONTEXTS)),
        "--target-url",
        link,
    ]
    first = run_step(*argv)
    assert first.returncode == 0, first.stderr
    assert first.results == {"reported": "true", "reason": ""}
    assert statuses(forge, "drone-service", sha) == dict.fromkeys(
        CONTEXTS, ("pending", "started by drone-service-1", link)
    )
    assert_token_nowhere(token, first, argv)

    # The finally task's words: Tekton's status and reason of each pipeline task, from the variable.
    env = {
        "DRUPPIE_STATUS": "druppie/test=Succeeded:Succeeded\ndruppie/scan=Failed:Failed\n"
        "druppie/build=None:None\ndruppie/deploy-prod=Failed:TaskRunTimeout\n"
    }
    second = run_step(*step_args(forge, sha, path), env=env)
    assert second.returncode == 0, second.stderr
    assert second.results["reported"] == "true"
    assert statuses(forge, "drone-service", sha) == {
        "druppie/test": ("success", "succeeded", ""),
        "druppie/scan": ("failure", "failed", ""),
        "druppie/build": ("failure", "not run: an earlier task failed or the run was stopped", ""),
        "druppie/deploy-prod": ("failure", "failed (TaskRunTimeout)", ""),
    }
    assert forge.api("GET", f"/repos/{ADMIN}/drone-service/commits/{sha}/status")["state"] == "failure"
    assert "commit status druppie/test=success (succeeded) on druppie-admin/drone-service@" in second.stderr
    assert_token_nowhere(token, second, [])


@pytest.mark.parametrize("case", ["revoked", "without write:repository", "not a collaborator", "no such commit"])
def test_a_forge_that_refuses_is_one_warning_naming_it_and_its_http_status_and_exit_0(forge, run_step, tmp_path, case):
    sha, repo = forge.head("drone-service"), "drone-service"
    token, expected = {
        "revoked": ("0" * 40, "HTTP 401"),
        "without write:repository": (bot_token(forge, "read:repository"), "HTTP 403"),
        "not a collaborator": (bot_token(forge), "HTTP 403"),
        # Measured: Gitea 1.27.3 answers 500 "GetCommit[<sha>]: object does not exist" (tried twice).
        "no such commit": (bot_token(forge), "HTTP 500"),
    }[case]
    if case == "not a collaborator":
        repo = "other-app"
        if "other-app" not in {r["name"] for r in forge.api("GET", "/user/repos")}:
            forge.create_repo(repo, files={"README.md": "other\n"})
        sha = forge.head(repo)
    if case == "no such commit":
        sha = "0123456789abcdef0123456789abcdef01234567"
    before = statuses(forge, repo, forge.head(repo))
    run = run_step(*step_args(forge, sha, token_file(tmp_path, token), "druppie/test=pending:started", repo=repo))
    assert run.returncode == 0, run.stderr
    assert run.results["reported"] == "false"
    *retried, warning = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(retried) == (1 if case == "no such commit" else 0), retried
    assert f"gitea at {forge.base_url}" in warning and expected in warning, warning
    assert run.results["reason"].startswith("druppie/test: gitea at") and expected in run.results["reason"]
    assert statuses(forge, repo, forge.head(repo)) == before
    assert_token_nowhere(token, run, [])


def test_an_unreachable_forge_is_one_warning_and_exit_0(run_step, tmp_path):
    port = free_port()
    token = "f" * 40
    argv = [
        "commit-status",
        "--repo-url",
        f"http://127.0.0.1:{port}/druppie-admin/drone-service.git",
        "--commit",
        "a" * 40,
        "--status",
        "druppie/test=pending",
        "--status",
        "druppie/scan=pending",
        "--credentials",
        str(token_file(tmp_path, token)),
        "--timeout",
        "20s",
    ]
    run = run_step(*argv)
    assert run.returncode == 0, run.stderr
    assert run.results["reported"] == "false"
    assert f"gitea at http://127.0.0.1:{port} unreachable" in run.results["reason"]
    assert run.results["reason"].startswith("druppie/test, druppie/scan: ")  # one try, one retry, then stop
    assert run.stderr.count("trying once more") == 1
    assert "commit statuses NOT reported" in run.stderr
    assert_token_nowhere(token, run, argv)


def test_no_token_is_a_warning_and_exit_0(forge, run_step, tmp_path):
    """The trigger binds the status-token Secret as optional: an absent Secret is an empty folder."""
    sha = forge.head("drone-service")
    (tmp_path / "empty").mkdir()
    run = run_step(*step_args(forge, sha, tmp_path / "empty", "druppie/test=pending"))
    assert run.returncode == 0 and run.results == {
        "reported": "false",
        "reason": f"druppie/test: no status token at {tmp_path}/empty/token (the status-token Secret is absent or "
        "has no key 'token')",
    }
    assert run.stderr.startswith("warning: commit statuses NOT reported on druppie-admin/drone-service@")
    # The Task's variables when its optional workspace is not bound at all.
    env = {"DRUPPIE_CREDENTIALS": "", "DRUPPIE_CREDENTIALS_BOUND": "false"}
    args = ["commit-status", "--repo-url", forge.clone_url("drone-service"), "--commit", sha, "--status", "x=pending"]
    unbound = run_step(*args, env=env)
    assert unbound.returncode == 0 and unbound.results["reason"] == (
        "x: no status token (the status-token workspace is not bound)"
    )
    assert statuses(forge, "drone-service", sha).get("x") is None


def test_a_bad_option_is_the_callers_bug_exit_2_before_any_call(forge, run_step, tmp_path):
    path = token_file(tmp_path, bot_token(forge))
    run = run_step(*step_args(forge, "main", path, "druppie/test=pending"))
    assert run.returncode == 2 and run.results == {}
    assert run.stderr.splitlines() == [
        "error: invalid --commit 'main': not a full commit sha (40 hex digits, 64 in a sha256 repository); "
        "a forge takes statuses on a commit, not a branch or a short sha"
    ]


# --- what a token that can write statuses can do: Gitea has no status-only scope -------------------


def git(work: Path, *args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **_git_env(token),
        "GIT_AUTHOR_NAME": "bot",
        "GIT_AUTHOR_EMAIL": "bot@druppie.local",
        "GIT_COMMITTER_NAME": "bot",
        "GIT_COMMITTER_EMAIL": "bot@druppie.local",
    }
    return subprocess.run(["git", *args], cwd=work, env=env, capture_output=True, text=True)


def refused(call) -> int:
    try:
        call()
    except GiteaError as err:
        return err.status
    raise AssertionError("the forge accepted it")


def open_pull_request(client, repo: str, branch: str) -> int:
    """A branch with one new file (the admin's), and a pull request of it into main."""
    content = {"content": base64.b64encode(b"x\n").decode(), "message": branch, "branch": "main", "new_branch": branch}
    client.api("POST", f"/repos/{ADMIN}/{repo}/contents/{branch}.txt", content)
    return client.api("POST", f"/repos/{ADMIN}/{repo}/pulls", {"head": branch, "base": "main", "title": branch})[
        "number"
    ]


def test_only_write_repository_with_write_access_may_write_statuses_and_such_a_token_can_push(forge, tmp_path):
    """Measured on Gitea 1.27.3: no scope narrower than write:repository covers statuses, and the
    token's user needs write access to the repository; without branch protection that token pushes."""
    forge.create_repo("unprotected", files={"README.md": "x\n"})
    forge.add_collaborator("unprotected", BOT, "write")
    sha = forge.head("unprotected")
    body = {"state": "pending", "context": "druppie/test"}
    path = f"/repos/{ADMIN}/unprotected/statuses/{sha}"
    for scopes in (("read:repository",), ("write:issue",), ("write:misc",), ("write:user",), ("write:organization",)):
        assert refused(lambda s=scopes: forge.api("POST", path, body, token=bot_token(forge, *s))) == 403, scopes
    token = bot_token(forge, "write:repository")
    forge.api("POST", path, body, token=token)

    work = tmp_path / "clone"
    assert git(tmp_path, "clone", "-q", forge.clone_url("unprotected"), str(work)).returncode == 0
    (work / "planted").write_text("by the status token\n")
    git(work, "add", "planted")
    git(work, "commit", "-qm", "planted")
    pushed = git(work, "push", "origin", "main", token=token)
    assert pushed.returncode == 0, pushed.stderr  # the honest part: this token can push
    assert forge.head("unprotected") != sha
    # ... and write the wiki (a repository write, the same scope) ...
    forge.api("POST", f"/repos/{ADMIN}/unprotected/wiki/new", {"title": "x", "content_base64": "eA=="}, token=token)
    # ... and merge anyone's pull request: with branch protection but no merge allow-list too.
    forge.api(
        "POST",
        f"/repos/{ADMIN}/unprotected/branch_protections",
        {"rule_name": "*", "enable_push": True, "enable_push_whitelist": True, "push_whitelist_usernames": [ADMIN]},
    )
    number = open_pull_request(forge, "unprotected", "feature")
    before = forge.head("unprotected")
    forge.api("POST", f"/repos/{ADMIN}/unprotected/pulls/{number}/merge", {"Do": "merge"}, token=token)
    assert forge.head("unprotected") != before


def test_on_a_protected_repository_the_status_token_cannot_change_code_tags_or_wiki(forge, tmp_path):
    """The platform's counter-measure (README): every branch and tag protected against the bot's pushes
    and merges, the wiki off. Its token still writes statuses; it can no longer push, commit through the
    API, merge, tag or release."""
    token = bot_token(forge)
    repo = f"/repos/{ADMIN}/drone-service"
    sha = forge.head("drone-service")
    forge.api("POST", f"{repo}/statuses/{sha}", {"state": "success", "context": "druppie/measure"}, token=token)

    work = tmp_path / "clone"
    assert git(tmp_path, "clone", "-q", forge.clone_url("drone-service"), str(work)).returncode == 0
    (work / "planted").write_text("by the status token\n")
    git(work, "add", "planted")
    git(work, "commit", "-qm", "planted")
    for refspec in ("HEAD:refs/heads/main", "HEAD:refs/heads/new-branch", "HEAD:refs/tags/v9.9.9"):
        pushed = git(work, "push", "origin", refspec, token=token)
        assert pushed.returncode != 0 and "declined" in pushed.stderr, (refspec, pushed.stderr)
    content = {"content": base64.b64encode(b"x").decode(), "message": "m", "branch": "main"}
    assert refused(lambda: forge.api("POST", f"{repo}/contents/planted", content, token=token)) == 403
    assert (
        refused(
            lambda: forge.api("POST", f"{repo}/releases", {"tag_name": "v9", "target_commitish": "main"}, token=token)
        )
        == 422
    )  # "release tag name is protected"
    assert refused(
        lambda: forge.api("POST", f"{repo}/wiki/new", {"title": "x", "content_base64": "eA=="}, token=token)
    ) in (403, 404)
    assert refused(lambda: forge.api("PATCH", repo, {"description": "x"}, token=token)) == 403  # settings
    assert (
        refused(
            lambda: forge.api(
                "POST",
                f"{repo}/hooks",
                {"type": "gitea", "active": True, "config": {"url": "http://127.0.0.1:9/", "content_type": "json"}},
                token=token,
            )
        )
        == 403
    )
    assert refused(lambda: forge.api("POST", f"{repo}/issues", {"title": "x"}, token=token)) == 403  # scope
    assert refused(lambda: forge.api("DELETE", repo, token=token)) == 403
    # The merge allow-list leaves the bot out: it cannot merge a pull request (405 "User not allowed
    # to merge PR"). It can still close one: what remains of write access (README).
    number = open_pull_request(forge, "drone-service", "feature")
    sha = forge.head("drone-service")
    assert refused(lambda: forge.api("POST", f"{repo}/pulls/{number}/merge", {"Do": "merge"}, token=token)) == 405
    assert forge.api("PATCH", f"{repo}/pulls/{number}", {"state": "closed"}, token=token)["state"] == "closed"
    assert forge.head("drone-service") == sha


# --- the Task and the pipeline's wiring, run as Tekton would (no cluster) ---------------------------


def test_the_pipelines_status_tasks_run_the_step_as_tekton_would(forge, tmp_path):
    """druppie-ci-cd's statuses-pending and finally statuses, their params substituted as Tekton does
    (a failed scan, so build and deploy did not run), the Task's env, the step: what the commit shows."""
    task = yaml.safe_load((ROOT / "tasks/druppie-commit-status/0.1/druppie-commit-status.yaml").read_text())
    pipeline = yaml.safe_load((ROOT / "pipelines/druppie-ci-cd/0.1/druppie-ci-cd.yaml").read_text())["spec"]
    forge.commit_file("drone-service", "app.py", "print('wired')\n", "a commit the pipeline reports on")
    sha = forge.head("drone-service")
    outcome = {"clone": ("Succeeded", "Succeeded"), "test": ("Succeeded", "Succeeded"), "scan": ("Failed", "Failed"),
               "build": ("None", "None"), "tag-commit": ("None", "None"), "flux-wait": ("None", "None")}  # fmt: skip
    context = {
        "params.repo-url": forge.clone_url("drone-service"),
        "params.environment": "prod",
        "params.dashboard-url": "https://tekton.example",
        "params.allow-plain-http": "false",  # the forge is on loopback: allowed without the opt-in
        "tasks.clone.results.commit": sha,
        "context.pipelineRun.name": "drone-service-run-1",
        **{f"tasks.{t}.status": s for t, (s, _) in outcome.items()},
        **{f"tasks.{t}.reason": r for t, (_, r) in outcome.items()},
    }

    def substituted(value: str) -> str:
        return re.sub(r"\$\(([\w.-]+)\)", lambda m: context[m[1]], value)

    (tmp_path / "status-token").mkdir()
    (tmp_path / "status-token/token").write_text(bot_token(forge))
    shown = {}
    for name in ("statuses-pending", "statuses"):
        (pipeline_task,) = [t for t in pipeline["tasks"] + pipeline["finally"] if t["name"] == name]
        assert pipeline_task["workspaces"] == [{"name": "status-token", "workspace": "status-token"}]
        params = {p["name"]: substituted(p["value"]) for p in pipeline_task["params"]}
        results = tmp_path / f"results-{name}"
        env = tekton_env(task, params, {"status-token": str(tmp_path / "status-token")}, str(results))
        env = {k: v.replace("$(context.taskRun.namespace)", "ci") for k, v in env.items()}
        proc = subprocess.run([str(STEP), *task["spec"]["steps"][0]["command"][1:]], capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env})  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert {p.name: p.read_text() for p in results.iterdir()} == {"reported": "true", "reason": ""}
        shown[name] = statuses(forge, "drone-service", sha)
    link = "https://tekton.example/#/namespaces/ci/pipelineruns/drone-service-run-1"
    assert shown["statuses-pending"] == {
        "druppie/test": ("pending", "running", link),
        "druppie/scan": ("pending", "running", link),
        "druppie/build": ("pending", "waiting for test and scan", link),
        "druppie/deploy-prod": ("pending", "waiting for the build", link),
    }
    not_run = "not run: an earlier task failed or the run was stopped"
    assert shown["statuses"] == {
        "druppie/test": ("success", "succeeded", link),
        "druppie/scan": ("failure", "failed", link),
        "druppie/build": ("failure", not_run, link),
        "druppie/deploy-prod": ("failure", not_run, link),
    }
