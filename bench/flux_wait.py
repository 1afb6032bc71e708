"""flux-wait versus `flux reconcile kustomization --with-source`, side by side on the real local cluster.

Measures, from the end of the push:
- success: time to exit for both; and how long after Flux reported Ready our step exited (a
  separate watch records when the Ready object appears);
- broken commit: time to exit for both (the CLI waits for its timeout).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_bench(report, step: Path, tmp: Path) -> None:
    from localcluster.cluster import LocalCluster
    from localcluster.cluster import missing as cache_missing
    from localcluster.gitserver import COMMIT_ENV, run
    from localcluster.toolchain import binaries
    from testbed.fluxapp import make_flux_app
    from testbed.kubewatch import KubectlWatch

    missing = cache_missing("cluster")
    flux_cli = binaries()["kubectl"].parents[1] / f"flux-cli-{_toolchain()['FLUX_CLI_VERSION']}" / "flux"
    if missing or not flux_cli.is_file():
        print(f"  skipped: cluster cache incomplete (make cluster-build); missing: {', '.join(missing) or flux_cli}")
        return
    cluster = LocalCluster(tmp / "cluster").up()
    try:
        app = make_flux_app(cluster, "bench-apps", "bench", "bench-drone-service", "1m", "5m")
        app.wait_ready(timeout=120)
        tags = iter(range(10, 1000))

        def push_tag() -> str:
            tag = f"2.0.{next(tags)}"
            cluster.publish_image(f"registry.example/druppie/drone-service:{tag}")
            out = subprocess.run(
                [
                    str(step),
                    "tag-commit",
                    "--repo-url",
                    app.repo_url,
                    "--path",
                    "envs/prod/drone-service",
                    "--image",
                    "registry.example/druppie/drone-service",
                    "--tag",
                    tag,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            return out.split("revision=")[1].split()[0]

        ours, theirs, after_ready, cli_wrong = [], [], [], 0
        for _ in range(3):
            revision = push_tag()
            watcher = KubectlWatch(cluster, "kustomization", "flux-system", app.kustomization)
            start = time.monotonic()
            subprocess.run(
                [
                    str(step),
                    "flux-wait",
                    "--kustomization",
                    app.kustomization,
                    "--revision",
                    revision,
                    "--kubeconfig",
                    str(cluster.kubeconfig),
                    "--timeout",
                    "2m",
                ],
                check=True,
                capture_output=True,
            )
            end = time.monotonic()
            ours.append(end - start)
            ready_at = ready_time(watcher.stop(), revision)
            if ready_at:
                after_ready.append(end - ready_at)

            revision = push_tag()
            start = time.monotonic()
            subprocess.run(
                [
                    str(flux_cli),
                    "reconcile",
                    "kustomization",
                    app.kustomization,
                    "--with-source",
                    "-n",
                    "flux-system",
                    "--kubeconfig",
                    str(cluster.kubeconfig),
                    "--timeout",
                    "2m",
                ],
                check=True,
                capture_output=True,
            )
            theirs.append(time.monotonic() - start)
            if app.ks()["status"]["lastAppliedRevision"] != revision:
                cli_wrong += 1
        o, t = statistics.median(ours), statistics.median(theirs)
        report(
            "flux-wait success: push -> exit (median of 3)",
            f"{o:.2f}s vs CLI {t:.2f}s ({o / t:.2f}x)",
            "<= CLI",
            o <= t,
        )
        worst = max(after_ready) if after_ready else float("nan")
        report(
            "flux-wait exit after Flux reported Ready (worst of 3)",
            f"{worst * 1000:.0f} ms",
            "< 1 s",
            bool(after_ready) and worst < 1.0,
        )
        report("CLI runs that ended before the pushed revision was applied", f"{cli_wrong} of 3", "(info)", None)

        # A broken commit: fail fast versus the CLI's timeout.
        work = tmp / "clone"
        run("git", "clone", "--quiet", app.repo_url, str(work))
        deployment = work / "apps/drone-service/deployment.yaml"
        good = deployment.read_text()
        deployment.write_text("apiVersion: apps/v1\nkind: Deployment\nspec: [\n")
        run("git", "-C", str(work), "commit", "--quiet", "-am", "broken", env=COMMIT_ENV)
        run("git", "-C", str(work), "push", "--quiet", "origin", "main")
        broken = run("git", "-C", str(work), "rev-parse", "HEAD").stdout.strip()
        start = time.monotonic()
        ours_fail = subprocess.run(
            [
                str(step),
                "flux-wait",
                "--kustomization",
                app.kustomization,
                "--revision",
                broken,
                "--kubeconfig",
                str(cluster.kubeconfig),
                "--timeout",
                "2m",
            ],
            capture_output=True,
        )
        ours_broken = time.monotonic() - start
        cli_timeout = 60
        start = time.monotonic()
        subprocess.run(
            [
                str(flux_cli),
                "reconcile",
                "kustomization",
                app.kustomization,
                "--with-source",
                "-n",
                "flux-system",
                "--kubeconfig",
                str(cluster.kubeconfig),
                "--timeout",
                f"{cli_timeout}s",
            ],
            capture_output=True,
        )
        cli_broken = time.monotonic() - start
        report(
            "broken commit: push -> exit",
            f"{ours_broken:.1f}s vs CLI {cli_broken:.1f}s (CLI --timeout {cli_timeout}s)",
            "< 10 s",
            ours_fail.returncode == 1 and ours_broken < 10,
        )
        deployment.write_text(good)
        run("git", "-C", str(work), "commit", "--quiet", "-am", "fixed", env=COMMIT_ENV)
        run("git", "-C", str(work), "push", "--quiet", "origin", "main")
    finally:
        cluster.down()


def ready_time(events: list[tuple[float, dict]], revision: str) -> float:
    """When the API first showed the Kustomization Ready=True at ``revision`` (0 if never)."""
    for at, obj in events:
        status = obj.get("status", {})
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        if ready and status.get("lastAppliedRevision") == revision:
            return at
    return 0.0


def _toolchain() -> dict[str, str]:
    from localcluster.toolchain import toolchain

    return toolchain()
