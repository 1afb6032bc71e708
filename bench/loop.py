"""Push to new pod serving, warm: the loop of `make demo`, timed per stage; then the same through
OTAP (the trigger's default): push → test serving → acceptatie serving → prod pull request.

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
        _otap(report, cluster, loop)
    finally:
        cluster.down()


# The OTAP run's stages, in order: each is the span from its first task's creation to its last's end.
OTAP_STAGES = (
    ("test: clone, test ‖ scan, build, tag-commit, flux-wait", ("clone", "test", "scan", "build", "tag-commit",
                                                                "flux-wait")),
    ("acceptatie: gate, promote, flux-wait", ("acceptatie-gate", "acceptatie-promote", "acceptatie-wait")),
    ("prod proposal: gate, pull request", ("prod-gate", "prod-promote")),
)  # fmt: skip


def _otap(report, cluster, loop) -> None:
    """The trigger's default, OTAP: push → test serving → acceptatie serving, warm, per stage."""
    loop.set_otap(True)
    rows: dict[str, list[float]] = {}
    try:
        for i in range(PUSHES + 1):
            greeting = f"bench otap push {i}"
            pushed = time.time()
            commit = loop.push_change(greeting)
            name = loop.pipelinerun_for(commit, timeout=120)
            serving: dict[str, float] = {}
            for namespace in ("test", "acceptatie"):  # each observed while the run goes on
                loop.wait(f"{namespace} answering", lambda ns=namespace, g=greeting: loop.service_says(ns) == g,
                          600, interval=0.2)  # fmt: skip
                serving[namespace] = time.time()
            run = loop.finished(name)
            if run["status"]["conditions"][0]["status"] != "True":
                raise SystemExit(f"bench PipelineRun {name} failed: {run['status']['conditions'][0]}")
            if i == 0:
                continue
            tasks = _task_times(cluster, name)
            rows.setdefault("push -> test serving", []).append(serving["test"] - pushed)
            rows.setdefault("push -> acceptatie serving", []).append(serving["acceptatie"] - pushed)
            rows.setdefault("push -> prod pull request (run done)", []).append(
                _ts(run["status"]["completionTime"]) - pushed
            )
            for stage, names in OTAP_STAGES:
                ran = [tasks[t] for t in names if t in tasks]
                rows.setdefault(stage, []).append(max(t["done"] for t in ran) - min(t["created"] for t in ran))
    finally:
        loop.set_otap(False)
        for pull in loop.gitea.api("GET", f"/repos/{loop.gitea.admin}/druppie-apps/pulls?state=open"):
            loop.gitea.api("PATCH", f"/repos/{loop.gitea.admin}/druppie-apps/pulls/{pull['number']}",
                           {"state": "closed"})  # fmt: skip
    test, acceptatie = (
        statistics.median(rows["push -> test serving"]),
        statistics.median(rows["push -> acceptatie serving"]),
    )
    for name, values in rows.items():
        report(f"otap (warm, median of {PUSHES}) {name}", f"{statistics.median(values):.1f} s", "-", None)
    report("otap: acceptatie serving / test serving", f"{acceptatie / test:.2f}x", "-", None)
