"""Push to new pod serving, warm: the loop of `make demo`, timed per stage.

A first push warms the node (images pulled, Flux settled); then each measured push is followed
from the commit to the Service answering with the new response. Per stage, from the objects'
own timestamps (whole seconds): trigger latency (push → PipelineRun created), per task the
queue and pod start (TaskRun created → its first step running) and the task's own work (its
steps' running time), Flux (flux-wait's step), and the share of the PipelineRun's wall time that
is Tekton's own overhead (wall time minus the steps' work on the critical path).
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from pathlib import Path

PUSHES = 2
CRITICAL_PATH = (("clone",), ("test", "scan"), ("build",), ("tag-commit",), ("flux-wait",), ("summary",))


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _task_times(cluster, pipelinerun: str) -> dict[str, dict[str, float]]:
    times = {}
    for tr in cluster.get_json("taskruns", "-n", "ci", "-l", f"tekton.dev/pipelineRun={pipelinerun}")["items"]:
        task = tr["metadata"]["labels"]["tekton.dev/pipelineTask"]
        steps = [s["terminated"] for s in tr["status"].get("steps", []) if "terminated" in s]
        first_step = min(_ts(s["startedAt"]) for s in steps)
        work = sum(_ts(s["finishedAt"]) - _ts(s["startedAt"]) for s in steps)
        times[task] = {
            "created": _ts(tr["metadata"]["creationTimestamp"]),
            "first_step": first_step,
            "work": work,
            "done": _ts(tr["status"]["completionTime"]),
        }
    return times


def run_bench(report, step: Path, tmp: Path) -> None:
    from localcluster.cluster import LocalCluster, missing
    from testbed.loop import Loop, succeeded

    lacking = missing("cluster") + missing("tekton") + missing("loop")
    if lacking:
        print(f"  skipped: the loop's cache is incomplete (make cluster-build); missing: {', '.join(lacking)}")
        return
    cluster = LocalCluster(tmp / "loop-cluster").up(frozenset({"kubelet", "tekton", "loop"}))
    try:
        loop = Loop(cluster, say=lambda m: None)
        loop.install()
        rows: dict[str, list[float]] = {}

        def add(name: str, value: float) -> None:
            rows.setdefault(name, []).append(value)

        for i in range(PUSHES + 1):
            greeting = f"bench push {i}"
            pushed = time.time()
            commit = loop.push_change(greeting)
            name = loop.pipelinerun_for(commit, timeout=120)
            run = loop.finished(name)
            if not succeeded(run):
                raise SystemExit(f"bench PipelineRun {name} failed: {run['status']['conditions'][0]}")
            loop.wait("the new response", lambda want=greeting: loop.service_says() == want, 180, interval=0.2)
            serving = time.time()
            if i == 0:
                continue  # the warm-up: images pulled, Flux settled
            created, done = _ts(run["metadata"]["creationTimestamp"]), _ts(run["status"]["completionTime"])
            tasks = _task_times(cluster, name)
            add("push -> new pod serving (total)", serving - pushed)
            add("trigger: push -> PipelineRun created", created - pushed)
            for task, t in tasks.items():
                add(f"{task}: queue + pod start", t["first_step"] - t["created"])
                add(f"{task}: own work (steps)", t["work"])
            add("PipelineRun wall time", done - created)
            work = sum(
                max(tasks[t]["work"] for t in stage if t in tasks)
                for stage in CRITICAL_PATH
                if any(t in tasks for t in stage)
            )
            add("Tekton's own overhead share of the PipelineRun", (done - created - work) / (done - created))
            add("after the PipelineRun: new pods answering", serving - done)
        for name, values in rows.items():
            value = statistics.median(values)
            text = f"{value * 100:.0f} %" if "share" in name else f"{value:.1f} s"
            report(f"loop (warm, median of {PUSHES}) {name}", text, "-", None)
    finally:
        cluster.down()
