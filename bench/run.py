"""Benchmarks of the catalog's steps. Prints ratios measured in one run (machines here are noisy,
so targets are checked here, never in timed tests).

    make bench            # all
    make bench BENCH=tag  # only names containing "tag"
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from localcluster.gitserver import GitServer, run  # noqa: E402

STEP = Path(sys.executable).parent / "druppie-step"
IMAGE = "registry.example/druppie/drone-service"
APP = "envs/prod/drone-service"
rows: list[tuple[str, str, str, bool | None]] = []


def report(name: str, value: str, target: str, ok: bool | None) -> None:
    rows.append((name, value, target, ok))
    mark = {True: "ok", False: "MISSED", None: ""}[ok]
    print(f"  {name:<58} {value:>22}  target {target:<10} {mark}", flush=True)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench command failed: {' '.join(cmd)}\n{proc.stderr}")
    return elapsed


def median_of(n: int, fn) -> float:
    return statistics.median(fn(i) for i in range(n))


def bench_help() -> None:
    bare = median_of(15, lambda _: timed([sys.executable, "-c", "pass"]))
    helped = median_of(15, lambda _: timed([str(STEP), "--help"]))
    report(
        "druppie-step --help / python3 -c pass",
        f"{helped / bare:.2f}x ({helped * 1000:.0f} ms)",
        "<= 8x",
        helped / bare <= 8,
    )
    from druppie_steps.cli import STEPS

    for step in sorted(STEPS):
        sub = median_of(15, lambda _, step=step: timed([str(STEP), step, "--help"]))
        report(
            f"druppie-step {step} --help / python3 -c pass",
            f"{sub / bare:.2f}x ({sub * 1000:.0f} ms)",
            "<= 8x",
            sub / bare <= 8,
        )


KUSTOMIZATION = f"images:\n- name: {IMAGE}\n  newTag: 1.0.0\n"


def fast_import_repo(bare: Path, files: int, commits: int) -> None:
    """A bare repo with `files` files and `commits` commits, built with git fast-import in seconds."""
    run("git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    lines: list[bytes] = []

    def blob_data(text: str) -> None:
        data = text.encode()
        lines.append(b"data %d\n" % len(data) + data + b"\n")

    payload = "x" * 900
    for c in range(commits):
        lines.append(b"commit refs/heads/main\n")
        lines.append(b"committer bench <bench@druppie.local> %d +0000\n" % (1_700_000_000 + c))
        blob_data(f"commit {c}")
        if c == 0:
            lines.append(f"M 100644 inline {APP}/kustomization.yaml\n".encode())
            blob_data(KUSTOMIZATION)
            for f in range(files - 1):
                lines.append(f"M 100644 inline apps/group-{f % 50:02d}/file-{f:04d}.yaml\n".encode())
                blob_data(f"# file {f}\nvalue: {f}\n{payload}\n")
        else:
            f = c % (files - 1)
            lines.append(f"M 100644 inline apps/group-{f % 50:02d}/file-{f:04d}.yaml\n".encode())
            blob_data(f"# file {f} revision {c}\nvalue: {c}\n{payload}\n")
    subprocess.run(["git", "--git-dir", str(bare), "fast-import", "--quiet"], input=b"".join(lines), check=True)
    run("git", "--git-dir", str(bare), "repack", "-a", "-d", "-q")


def bench_tag_commit(server: GitServer, work: Path) -> None:
    print("  building a GitOps repo with 20,000 commits and 2,000 files (fast-import)...", flush=True)
    fast_import_repo(server.repo_path("large"), files=2000, commits=20_000)
    fast_import_repo(server.repo_path("small"), files=10, commits=10)
    size = sum(p.stat().st_size for p in server.repo_path("large").rglob("*") if p.is_file())
    tags = iter(range(1, 10_000))

    def tag_commit(repo: str) -> float:
        return timed(
            [
                str(STEP),
                "tag-commit",
                "--repo-url",
                server.url(repo),
                "--path",
                APP,
                "--image",
                IMAGE,
                "--tag",
                f"1.0.{next(tags)}",
            ]
        )

    small = median_of(7, lambda _: tag_commit("small"))
    large = median_of(7, lambda _: tag_commit("large"))
    report(
        "tag-commit on 20k-commit/2k-file repo / on 10-commit repo",
        f"{large / small:.2f}x",
        "<= 1.5x",
        large / small <= 1.5,
    )

    def full_clone(i: int) -> float:
        return timed(["git", "clone", "--quiet", server.url("large"), str(work / f"clone-{i}")])

    clone = median_of(3, full_clone)
    report(
        f"full git clone of the large repo ({size / 1e6:.0f} MB packed) / tag-commit",
        f"{clone / large:.1f}x ({clone:.2f}s vs {large:.2f}s)",
        ">= 10x",
        clone / large >= 10,
    )

    def git_floor(i: int) -> float:
        """The git work alone, no Python: what any implementation of the same clone/commit/push pays."""
        repo = work / f"floor-{i}"
        start = time.perf_counter()
        run(
            "git",
            "clone",
            "--quiet",
            "--depth=1",
            "--single-branch",
            "--no-tags",
            "--filter=blob:none",
            "--no-checkout",
            server.url("large"),
            str(repo),
        )
        run("git", "-C", str(repo), "sparse-checkout", "set", "--cone", APP)
        run("git", "-C", str(repo), "checkout", "--quiet", "main")
        (repo / APP / "kustomization.yaml").write_text(KUSTOMIZATION.replace("1.0.0", f"9.9.{i}"))
        run("git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@b", "commit", "--quiet", "-am", "floor")
        run("git", "-C", str(repo), "push", "--quiet", "origin", "HEAD:main")
        return time.perf_counter() - start

    floor = median_of(5, git_floor)
    report(
        "  the same git operations alone (floor) / tag-commit", f"{floor / large:.2f} ({floor:.2f}s)", "(info)", None
    )
    report("  full git clone / that floor (the best any tag-commit could do)", f"{clone / floor:.1f}x", "(info)", None)


def bench_concurrency(server: GitServer) -> None:
    files = {
        f"envs/prod/app-{i:02d}/kustomization.yaml": f"images:\n- name: {IMAGE}-{i:02d}\n  newTag: 0.1.0\n"
        for i in range(20)
    }
    server.create_repo("race", files)

    def one(i: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(STEP),
                "tag-commit",
                "--repo-url",
                server.url("race"),
                "--path",
                f"envs/prod/app-{i:02d}",
                "--image",
                f"{IMAGE}-{i:02d}",
                "--tag",
                "1.0.0",
            ],
            capture_output=True,
            text=True,
        )

    single = timed(
        [
            str(STEP),
            "tag-commit",
            "--repo-url",
            server.url("race"),
            "--path",
            "envs/prod/app-00",
            "--image",
            f"{IMAGE}-00",
            "--tag",
            "0.2.0",
        ]
    )
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=20) as pool:
        procs = list(pool.map(one, range(20)))
    wall = time.perf_counter() - start
    landed = sum(p.returncode == 0 for p in procs)
    attempts = [int(p.stderr.rsplit("attempt ", 1)[-1].split()[0]) for p in procs if "attempt " in p.stderr]
    report(
        "20 concurrent tag-commits, 20 apps, one repo: wall time",
        f"{wall:.1f}s ({wall / single:.0f}x one run)",
        "all land",
        landed == 20 and len(server.log("race")) == 22,
    )
    report(
        "  push attempts per run (max / mean)",
        f"{max(attempts)} / {statistics.mean(attempts):.1f}",
        "<= 10",
        max(attempts) <= 10,
    )


def main() -> None:
    only = os.environ.get("BENCH", "")
    with tempfile.TemporaryDirectory(prefix="druppie-bench-") as tmp, GitServer(Path(tmp) / "git") as server:
        from bench.ci_tasks import run_bench as bench_ci
        from bench.flux_wait import run_bench as bench_flux_wait
        from bench.loop import run_bench as bench_loop
        from bench.race import run_bench as bench_race
        from bench.tekton import run_bench as bench_tekton

        benches = {
            "help": bench_help,
            "tag-commit": lambda: bench_tag_commit(server, Path(tmp)),
            "concurrency": lambda: bench_concurrency(server),
            "race": lambda: bench_race(report, STEP, server, Path(tmp)),
            "flux-wait": lambda: bench_flux_wait(report, STEP, Path(tmp)),
            "tekton": lambda: bench_tekton(report, STEP, Path(tmp)),
            "ci-tasks": lambda: bench_ci(report, STEP, Path(tmp)),
            "loop": lambda: bench_loop(report, STEP, Path(tmp)),
        }
        for name, fn in benches.items():
            if only in name:
                print(f"[{name}]", flush=True)
                fn()
    missed = [r for r in rows if r[3] is False]
    print(f"\n{len(rows)} figures, {len(missed)} targets missed")


if __name__ == "__main__":
    main()
