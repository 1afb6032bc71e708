"""TaskRun overhead: druppie-tag-commit through Tekton on the local cluster, against the same step run directly.

For each run: from `tkn task start` to the step's first log line as tkn streams it, and to the
TaskRun's completion (Tekton's completionTime; whole seconds, so +-1 s), beside `druppie-step tag-commit` run directly
on this machine against the same git server. The first TaskRun pulls the step image (cold), the
later ones find it on the node (warm).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 4


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run_bench(report, step: Path, tmp: Path) -> None:
    from localcluster.cluster import LocalCluster, missing
    from localcluster.gitserver import GitServer
    from localcluster.toolchain import binaries, optional_binaries

    lacking = missing("cluster") + missing("tekton")
    if lacking:
        print(f"  skipped: Tekton tier cache incomplete (make cluster-build); missing: {', '.join(lacking)}")
        return
    cluster = LocalCluster(tmp / "tekton-cluster").up(frozenset({"kubelet", "tekton"}))
    server = None
    try:
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        subprocess.run(
            [str(ROOT / "hack" / "images.sh")],
            check=True,
            capture_output=True,
            env={**os.environ, "REGISTRY": cluster.registry},
        )
        kubectl = [str(binaries()["kubectl"])]
        subprocess.run([*kubectl, "create", "namespace", "ci"], env=env, check=True, capture_output=True)
        subprocess.run(
            [
                *kubectl,
                "apply",
                "-n",
                "ci",
                "-f",
                str(ROOT / "tasks/druppie-tag-commit/0.1/druppie-tag-commit.yaml"),
                "-f",
                str(ROOT / "tasks/druppie-tag-commit/0.1/rbac.yaml"),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        server = GitServer(tmp / "tekton-git", host=cluster.host_ip).start()
        url = server.create_repo("apps", source_dir=ROOT / "examples" / "druppie-apps")
        common = [
            "-p",
            f"repo-url={url}",
            "-p",
            "path=envs/prod/drone-service",
            "-p",
            "image=registry.example/druppie/drone-service",
        ]
        direct, first_line, total = [], [], []
        for i in range(RUNS):
            started = time.perf_counter()
            subprocess.run(
                [
                    str(step),
                    "tag-commit",
                    "--repo-url",
                    url,
                    "--path",
                    "envs/prod/drone-service",
                    "--image",
                    "registry.example/druppie/drone-service",
                    "--tag",
                    f"3.0.{2 * i}",
                ],
                check=True,
                capture_output=True,
            )
            direct.append(time.perf_counter() - started)

            wall_start = time.time()
            proc = subprocess.Popen(
                [
                    str(optional_binaries()["tkn"]),
                    "task",
                    "start",
                    "druppie-tag-commit",
                    "-n",
                    "ci",
                    "--serviceaccount",
                    "druppie-tag-commit",
                    "--use-param-defaults",
                    "--skip-optional-workspace",
                    *common,
                    "-p",
                    f"tag=3.0.{2 * i + 1}",
                    "--showlog",
                ],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            first = None
            name = ""
            for line in proc.stdout:  # type: ignore[union-attr]
                if line.startswith("TaskRun started: "):
                    name = line.split(": ", 1)[1].strip()
                elif line.startswith("[tag-commit]") and first is None:
                    first = time.time() - wall_start
            proc.wait()
            run = {}
            for _ in range(100):
                run = json.loads(
                    subprocess.run(
                        [str(optional_binaries()["tkn"]), "tr", "describe", name, "-n", "ci", "-o", "json"],
                        env=env,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
                if run.get("status", {}).get("completionTime"):
                    break
                time.sleep(0.3)
            status = run["status"]
            if status["conditions"][0]["reason"] != "Succeeded":
                raise SystemExit(f"bench TaskRun {name} failed: {status['conditions'][0]}")
            first_line.append(first or float("nan"))
            total.append(_ts(status["completionTime"]) - wall_start)
        d_med = statistics.median(direct)
        report("tag-commit run directly (median)", f"{d_med:.2f} s", "-", None)
        report("TaskRun cold: tkn start -> first step log line", f"{first_line[0]:.1f} s", "-", None)
        report("TaskRun cold: tkn start -> completion", f"{total[0]:.1f} s ({total[0] / d_med:.0f}x direct)", "-", None)
        warm_first, warm_total = statistics.median(first_line[1:]), statistics.median(total[1:])
        report("TaskRun warm: tkn start -> first step log line", f"{warm_first:.1f} s", "-", None)
        report(
            "TaskRun warm: tkn start -> completion", f"{warm_total:.1f} s ({warm_total / d_med:.0f}x direct)", "-", None
        )
    finally:
        if server:
            server.stop()
        cluster.down()
