"""python -m localcluster up|down|status: the local cluster for `make cluster-up` / `cluster-down`.

up      start; prints `export KUBECONFIG=...` and each component's start time; state in
        $DRUPPIE_CLUSTER_DIR (/tmp/druppie-cluster)
down    stop every process, leave nothing behind
status  the components, their processes and whether they run
"""

from __future__ import annotations

import sys
import time

from .cluster import LocalCluster, default_state_dir, remove_state


def main(argv: list[str]) -> int:
    state = default_state_dir()
    command = argv[0] if argv else "status"
    if command == "up":
        if LocalCluster.exists(state):
            running = LocalCluster.load(state)
            if any(running.running(name) for name in running.processes()):
                print(f"cluster already running (state in {state}); `make cluster-down` first", file=sys.stderr)
                return 1
        remove_state(state)
        try:
            cluster = LocalCluster(state).up()
        except RuntimeError as err:
            print(f"cluster-up failed: {err}", file=sys.stderr)
            return 1
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(f"# druppie-apps: {cluster.git_url}   registry: {cluster.registry}   features: "
              f"{', '.join(sorted(cluster.features))}")  # fmt: skip
        return 0
    if command == "down":
        started = time.monotonic()
        if LocalCluster.exists(state):
            LocalCluster.load(state).down()
            remove_state(state)
        print(f"cluster down in {time.monotonic() - started:.1f}s")
        return 0
    if command == "status":
        if not LocalCluster.exists(state):
            print("no cluster")
            return 1
        cluster = LocalCluster.load(state)
        print(f"features: {', '.join(sorted(cluster.features))}")
        for name, seconds in cluster.timings.items():
            print(f"  {name:<24} ready at {seconds:6.1f}s")
        for name, pid in cluster.processes().items():
            print(f"  {name:<24} pid {pid:<8} {'running' if cluster.running(name) else 'STOPPED'}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
