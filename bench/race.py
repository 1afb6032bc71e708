"""Many pipelines finishing at once into one GitOps repo: do all land, how fast, and how far from
what the git server itself can do?

The server's limit is measured in the same run, two ways:

- ``git push`` over smart HTTP of a prepared chain of commits, one fast-forward per push, one
  after the other: the fastest one branch can move through this server when nobody races and no
  client work (clone, edit, commit) is needed. No concurrent runs into one branch can beat it,
  since updates of one ref are serialised by its lock.
- ``git update-ref`` on the bare repo: the ref update alone, no HTTP and no git processes of the
  server in between (the floor the server's storage sets).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from localcluster.gitserver import COMMIT_ENV, GitServer, run

IMAGE = "registry.example/druppie/app"
Report = Callable[[str, str, str, "bool | None"], None]


def push_rate(server: GitServer, work: Path, pushes: int = 60) -> float:
    """Sequential fast-forward pushes per second of prepared commits to one branch over HTTP."""
    server.create_repo("limit", {"README.md": "limit\n"})
    clone = work / "limit-clone"
    run("git", "clone", "--quiet", server.url("limit"), str(clone))
    for i in range(pushes):
        run("git", "-C", str(clone), "commit", "--quiet", "--allow-empty", "-m", f"c{i}", env=COMMIT_ENV)
    shas = run("git", "-C", str(clone), "rev-list", "--reverse", f"HEAD~{pushes}..HEAD").stdout.split()
    start = time.perf_counter()
    for sha in shas:
        run("git", "-C", str(clone), "push", "--quiet", "origin", f"{sha}:refs/heads/main")
    return pushes / (time.perf_counter() - start)


def update_ref_rate(server: GitServer, updates: int = 300) -> float:
    """``git update-ref`` per second on the server's bare repo (after push_rate made the commits)."""
    bare = str(server.repo_path("limit"))
    shas = run("git", "--git-dir", bare, "rev-list", "--reverse", "main").stdout.split()
    start = time.perf_counter()
    for i in range(updates):
        run("git", "--git-dir", bare, "update-ref", "refs/heads/bench", shas[i % len(shas)])
    return updates / (time.perf_counter() - start)


def race(server: GitServer, step: Path, n: int) -> tuple[float, list[subprocess.CompletedProcess[str]], int]:
    """``n`` tag-commit runs at once with default options, each on its own app in one repo."""
    name = f"race-{n}"
    files = {
        f"envs/prod/app-{i:03d}/kustomization.yaml": f"images:\n- name: {IMAGE}-{i:03d}\n  newTag: 0.1.0\n"
        for i in range(n)
    }
    server.create_repo(name, files)

    def one(i: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(step),
                "tag-commit",
                "--repo-url",
                server.url(name),
                "--path",
                f"envs/prod/app-{i:03d}",
                "--image",
                f"{IMAGE}-{i:03d}",
                "--tag",
                "1.0.0",
            ],
            capture_output=True,
            text=True,
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        procs = list(pool.map(one, range(n)))
    wall = time.perf_counter() - start
    right = sum("newTag: 1.0.0" in server.read_file(name, path) for path in files)
    return wall, procs, right if len(server.log(name)) == n + 1 else -1


def run_bench(report: Report, step: Path, server: GitServer, work: Path) -> None:
    rate = push_rate(server, work)
    refs = update_ref_rate(server)
    report("git server limit: sequential fast-forward pushes over HTTP", f"{rate:.1f}/s", "(info)", None)
    report("  git update-ref on the bare repo (storage floor)", f"{refs:.0f}/s", "(info)", None)
    for n in (50, 100):
        wall, procs, right = race(server, step, n)
        landed = sum(p.returncode == 0 for p in procs)
        attempts = [int(m[1]) for p in procs if (m := re.search(r"attempt (\d+)$", p.stderr.strip()))]
        failures = {p.stderr.strip().splitlines()[-1] for p in procs if p.returncode}
        report(
            f"{n} concurrent tag-commits (defaults), one repo: landed, files right",
            f"{landed}/{n}, {right}/{n}",
            "all",
            landed == n and right == n,
        )
        for line in sorted(failures)[:3]:
            print(f"    failed: {line}", flush=True)
        report("  wall time", f"{wall:.1f}s", "< 5m", wall < 300)
        if attempts:
            report(
                "  push attempts per run (max / mean)",
                f"{max(attempts)} / {statistics.mean(attempts):.1f}",
                "(info)",
                None,
            )
        throughput = landed / wall
        report(
            "  commits landed per second / sequential push limit",
            f"{throughput:.2f}/s = {throughput / rate:.0%}",
            "(info)",
            None,
        )
