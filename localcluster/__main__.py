"""python -m localcluster up|down|status: the local cluster for `make cluster-up` / `cluster-down`.

up      start; prints `export KUBECONFIG=...`; state in $DRUPPIE_CLUSTER_DIR (/tmp/druppie-cluster)
down    stop every process, leave nothing behind
status  the processes and whether they run
"""

from __future__ import annotations

import shutil
import sys

from .cluster import LocalCluster, default_state_dir
from .process import alive


def main(argv: list[str]) -> int:
    state = default_state_dir()
    command = argv[0] if argv else "status"
    if command == "up":
        if (state / "state.json").exists() and any(alive(p) for p in LocalCluster.load(state).pids.values()):
            print(f"cluster already running (state in {state}); `make cluster-down` first", file=sys.stderr)
            return 1
        shutil.rmtree(state, ignore_errors=True)
        try:
            cluster = LocalCluster(state).up()
        except RuntimeError as err:
            print(f"cluster-up failed: {err}", file=sys.stderr)
            return 1
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(
            f"# druppie-apps: {cluster.git_url}   registry: {cluster.registry}   node side: {cluster.node_side}"
            f"   tekton: {'yes' if cluster.with_tekton else 'no'}"
        )
        return 0
    if command == "down":
        if (state / "state.json").exists():
            LocalCluster.load(state).down()
            shutil.rmtree(state, ignore_errors=True)
        print("cluster down")
        return 0
    if command == "status":
        if not (state / "state.json").exists():
            print("no cluster")
            return 1
        cluster = LocalCluster.load(state)
        for name, pid in cluster.pids.items():
            print(f"{name:<24} pid {pid:<8} {'running' if alive(pid) else 'STOPPED'}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
