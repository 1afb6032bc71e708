"""The README's single-task `tkn` commands on the e2e cluster: github.com → the cluster's git server,
registry.example → the cluster registry's address for pushes (tests/e2e/test_ci_tasks.py says why)."""

from __future__ import annotations

from tests.support.e2e import started

GITHUB_APP = "https://github.com/waterschap/drone-service.git"
IMAGE = "registry.example/druppie/drone-service"


def start(
    tekton, cluster, command: str, repo: str = "drone-service", extra: list[str] | None = None, check: bool = True
) -> tuple[str, dict, str]:
    """Run one README tkn command; returns (TaskRun name, finished TaskRun, its log)."""
    out = tekton.run(
        command,
        extra,
        {
            GITHUB_APP: f"{cluster.git_url.rsplit('/', 1)[0]}/{repo}.git",
            IMAGE: f"{cluster.registry}/druppie/drone-service",
            "registry.example/druppie/osv-db": f"{cluster.registry}/druppie/osv-db",
        },
        check=False,
    )
    name = started(out.stdout, "TaskRun")
    run = tekton.taskrun(name)
    logs = tekton.tkn("taskrun", "logs", name, "-n", "ci").stdout
    if check:
        assert run["status"]["conditions"][0]["reason"] == "Succeeded", logs
    return name, run, logs


def clone(tekton, cluster, ci, repo: str = "drone-service") -> dict:
    _, run, _ = start(tekton, cluster, ci["druppie-git-clone"], repo, ["-p", "allow-plain-http=true"])
    return tekton.results(run)
