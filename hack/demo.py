"""`make demo`: the whole loop on the local cluster, live, the OTAP way.

Builds what is missing (once; says how long up front), starts the cluster (or reuses the running
one), installs the catalog as the README says plus the EventListeners and a Gitea hosting the app
and druppie-apps (its main protected), then pushes a visible change to the app and follows it:
webhook, PipelineRun (its logs as `tkn pipeline logs -f` shows them), image, test serving it, the
same digest in acceptatie, a prod pull request; a second Gitea user approves and merges it, and
druppie-prod-deploy follows Flux until productie serves it. Ends with a table and the commands to
look around; the cluster stays up. A second `make demo` reuses all of it and rolls out the next
version.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from localcluster.cluster import LocalCluster, default_state_dir, missing  # noqa: E402 - after the path is set
from localcluster.toolchain import cache_dir, optional_binaries  # noqa: E402
from testbed.loop import APP, REVIEWER, Loop, succeeded  # noqa: E402
from testbed.protection import protect_druppie_apps  # noqa: E402

GREETINGS = [
    "Drones inspecteren de dijken, ook 's nachts",
    "Drones meten het waterpeil",
    "Drones zien de kwelwater-plekken",
    "Drones tellen de muskusratten",
]


def say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def build_missing() -> None:
    lacking = missing("cluster") + missing("tekton") + missing("loop")
    if not lacking:
        return
    say(f"the cache lacks {len(lacking)} part(s): building them once into {cache_dir()}.")
    say(
        "A cold build of everything (Kubernetes, etcd, Flux, Tekton, Triggers, CoreDNS, Gitea, scanners) "
        "takes about 45-60 min on 2 cores; it happens once, later runs take about 2 min. Progress per component:"
    )
    subprocess.run([str(ROOT / "hack" / "cluster-build.sh")], check=True)


def cluster_up() -> LocalCluster:
    state = default_state_dir()
    if LocalCluster.exists(state):
        cluster = LocalCluster.load(state)
        if cluster.running("kube-apiserver") and cluster.with_loop:
            say(f"reusing the running cluster ({state})")
            return cluster
        cluster.down()
    say("starting the local cluster (etcd, Kubernetes with a kubelet, Flux, Tekton, Triggers, CoreDNS, Gitea)")
    return LocalCluster(state).up()


def follow(cluster: LocalCluster, name: str) -> None:
    """The PipelineRun's logs as `tkn pipelinerun logs -f` shows them."""
    subprocess.run(
        [str(optional_binaries()["tkn"]), "pipelinerun", "logs", name, "-n", "ci", "-f"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
    )


def main() -> int:
    started = time.monotonic()
    build_missing()
    cluster = cluster_up()
    loop = Loop(cluster, say)
    stages: list[tuple[str, float, str]] = []
    if not loop.installed:
        t = time.monotonic()
        loop.install()
        stages.append(
            ("install: images, catalog, Gitea, EventListener, Flux", time.monotonic() - t, "once per cluster")
        )
    # The catalog's workflow: OTAP, druppie-apps' main protected, a second person for prod.
    loop.set_otap(True)
    loop.reviewer_token()
    protect_druppie_apps(loop.gitea)
    runs = len(list((loop.state).glob("run-*")))
    greeting = f"{GREETINGS[runs % len(GREETINGS)]} (demo {runs + 1})"
    before = loop.service_says()
    say(f"the app says now in productie: {before!r}")

    t = time.monotonic()
    commit = loop.push_change(greeting)
    (loop.state / f"run-{runs + 1}").write_text(commit)
    say(f"pushed {commit[:7]} to {loop.gitea.base_url}/druppie-admin/{APP} (GREETING = {greeting!r})")
    name = loop.pipelinerun_for(commit)
    stages.append(("webhook → EventListener → PipelineRun created", time.monotonic() - t, name))
    say(f"PipelineRun {name} started: test, then acceptatie, then a prod pull request; its logs:")
    t = time.monotonic()
    follow(cluster, name)
    run = loop.finished(name)
    results = {r["name"]: r["value"] for r in run["status"].get("results", [])}
    reason = run["status"]["conditions"][0]["reason"]
    stages.append((f"PipelineRun, test → acceptatie → prod pull request ({reason})", time.monotonic() - t,
                   results.get("IMAGE_DIGEST", "")[:19]))  # fmt: skip
    if not succeeded(run):
        say(f"the PipelineRun did not succeed: {results.get('summary') or run['status']['conditions'][0]}")
        return 1
    for namespace in ("test", "acceptatie"):
        t = time.monotonic()
        answers = lambda ns=namespace: loop.service_says(ns) == greeting  # noqa: E731 - read once, below
        loop.wait(f"{namespace} to answer with the new greeting", answers, 180)
        stages.append((f"{namespace} serving the new greeting", time.monotonic() - t, namespace))

    pull = results["PROD_PULL_REQUEST"]
    say(f"productie waits for the pull request {pull}: a second person ({REVIEWER}) approves and merges it")
    t = time.monotonic()
    merge = loop.approve_and_merge(int(pull.rstrip("/").rsplit("/", 1)[1]))
    name = f"{APP}-prod-{merge[:12]}"  # druppie-prod-deploy, started by druppie-apps' pull_request webhook
    loop.wait(f"PipelineRun {name}", lambda: name in {r["metadata"]["name"] for r in
              cluster.get_json("pipelineruns", "-n", "ci")["items"]}, 60)  # fmt: skip
    stages.append(("approved, merged → druppie-prod-deploy created", time.monotonic() - t, name))
    t = time.monotonic()
    follow(cluster, name)
    prod_run = loop.finished(name)
    if not succeeded(prod_run):
        say(f"druppie-prod-deploy did not succeed: {prod_run['status']['conditions'][0].get('message', '')}")
        return 1
    loop.wait("productie to answer with the new greeting", lambda: loop.service_says() == greeting, 180)
    stages.append(("Flux applied the merge; productie serving", time.monotonic() - t,
                   loop.deployed_image().rsplit("/", 1)[-1]))  # fmt: skip

    print()
    print(f"{'stage':<58} {'seconds':>8}  result")
    for stage, seconds, result in stages:
        print(f"{stage:<58} {seconds:8.1f}  {result}")
    print(f"{'total':<58} {time.monotonic() - started:8.1f}")
    print()
    for key in ("IMAGE_URL", "IMAGE_DIGEST", "GITOPS_COMMIT", "APPLIED_REVISION", "ACCEPTATIE_REVISION",
                "PROD_PULL_REQUEST"):  # fmt: skip
        print(f"  {key:<17} {results.get(key, '')}")
    print(f"  {'before':<17} {before}\n  {'after':<17} {loop.service_says()}")
    print(f"""
Look around (the cluster stays up; `make cluster-down` stops it):
  export KUBECONFIG={cluster.kubeconfig}
  {optional_binaries()["tkn"]} pr list -n ci
  {optional_binaries()["tkn"]} pr describe {name} -n ci
  Gitea: {loop.gitea.base_url}  (user druppie-admin, password in {cluster.gitea_password_file})
  make demo   # again: the next version rolls out""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
