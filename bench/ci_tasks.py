"""The CI half: image sizes against their bases, build cold and cached, scan and test of the example
app run directly, and the same three as TaskRuns on the local cluster's Tekton (ratio to direct).

Direct runs use the same programs on this machine (buildah with vfs storage, the Go-built scanners,
a local registry); TaskRuns are timed from `tkn task start` to Tekton's completionTime (whole seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PODMAN = ["podman", "--storage-driver", "vfs", "--runtime", "/usr/sbin/runc"]


def _newest(name: str) -> str | None:
    out = subprocess.run(
        [*PODMAN, "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True
    ).stdout.split()
    return next((i for i in out if name in i), None)


def _size(image: str) -> int:
    return int(
        subprocess.run(
            [*PODMAN, "image", "inspect", "--format", "{{.Size}}", image], capture_output=True, text=True, check=True
        ).stdout
    )


def push_advisory_db(registry: str, tmp: Path) -> str:
    """The tests' fixture advisory database, stamped now, pushed as the artifact druppie-scan pulls
    (its osv-db-ref param: without a database the scan fails); returns its reference."""
    db = tmp / "osv-db"
    shutil.copytree(ROOT / "tests" / "fixtures" / "osv-db", db)
    (db / "last-updated").write_text(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ\n"))
    ref = f"{registry}/druppie/osv-db:latest"
    step = Path(sys.executable).parent / "druppie-step"
    push = [str(step), "osv-db-push", "--db", str(db), "--ref", ref, "--no-tls-verify"]
    subprocess.run(push, check=True, capture_output=True)
    return ref


def _timed(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise SystemExit(f"bench command failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def image_sizes(report) -> None:
    bases = {
        "step": "druppie/bookworm-python3:",
        "scan": "druppie/druppie-step:",
        "build": "druppie/druppie-build-base:",
    }
    for kind, base in bases.items():
        image, base_image = _newest(f"druppie/druppie-{kind}:"), _newest(base)
        if not image or not base_image:
            report(f"image druppie-{kind}", "not built (make images)", "-", None)
            continue
        size, base_size = _size(image) / 2**20, _size(base_image) / 2**20
        report(
            f"image druppie-{kind} / its base", f"{size:.0f}/{base_size:.0f} MiB ({size / base_size:.2f}x)", "-", None
        )


def direct_runs(report, step: Path, tmp: Path) -> dict[str, float]:
    from localcluster.toolchain import cache_dir, toolchain
    from testbed.apps import drone_app
    from testbed.registry import start_registry
    from testbed.site import push_offline_base

    tools = toolchain()
    path = os.pathsep.join(
        [
            str(cache_dir() / f"{t}-{tools[t.upper().replace('-', '_') + '_VERSION']}")
            for t in ("syft", "gitleaks", "osv-scanner", "trivy")
        ]
        + [os.environ["PATH"]]
    )
    env = {"PATH": path, "CONTAINERS_STORAGE_CONF": "/dev/null"}
    (tmp / "bench-registry").mkdir()
    registry = start_registry(tmp / "bench-registry")
    times = {}
    try:
        # The real base of the example app's image (the offline bookworm + python3 of `make images`).
        base = push_offline_base(registry.host)
        build = [
            str(step),
            "build",
            "--image",
            f"{registry.host}/druppie/drone-service",
            "--no-tls-verify",
            "--build-args",
            f"BASE_IMAGE={base}",
            "--cache",
            str(tmp / "build-cache"),
        ]
        app = drone_app(tmp / "build-app")
        cold = _timed([*build, "--source", str(app), "--version", "1.0.0"], env)
        cached = _timed([*build, "--source", str(app), "--version", "1.0.1"], env)
        (app / "drone_service" / "app.py").write_text((app / "drone_service" / "app.py").read_text() + "\n# changed\n")
        changed = _timed([*build, "--source", str(app), "--version", "1.0.2"], env)
        report("build of the example app: cold (base pulled, no layers)", f"{cold:.1f} s", "-", None)
        report(
            "build: cache kept, source unchanged (every layer reused)",
            f"{cached:.1f} s ({cold / cached:.1f}x faster)",
            "-",
            None,
        )
        report(
            "build: cache kept, app.py changed (COPY and later redone)",
            f"{changed:.1f} s ({cold / changed:.1f}x faster)",
            "-",
            None,
        )
        times["build"] = changed
        scan_app = drone_app(tmp / "scan-app")
        times["scan"] = _timed(
            [
                str(step),
                "scan",
                "--source",
                str(scan_app),
                "--osv-db",
                str(ROOT / "tests/fixtures/osv-db"),
                "--max-db-age",
                "0",
            ],
            env,
        )
        report("scan of the example app, 4 scanners (direct)", f"{times['scan']:.1f} s", "-", None)
        # The image's wheelhouse, as in the TaskRun below (offline: no index is asked).
        wheels = tmp / "wheels"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "-d",
                str(wheels),
                "-r",
                str(ROOT / "steps/requirements-test-tools.txt"),
            ],
            check=True,
        )
        test_app = drone_app(tmp / "test-app")
        times["test"] = _timed(
            [str(step), "test", "--source", str(test_app), "--wheelhouse", str(wheels), "--offline"], env
        )
        report("test of the example app, fresh venv (direct)", f"{times['test']:.1f} s", "-", None)
    finally:
        registry.stop()
        subprocess.run(
            [
                "buildah",
                "--storage-driver",
                "vfs",
                "--root",
                str(tmp / "build-cache" / "buildah-storage"),
                "rm",
                "--all",
            ],
            capture_output=True,
        )
        shutil.rmtree(tmp / "build-cache", ignore_errors=True)
    return times


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def taskruns(report, direct: dict[str, float], tmp: Path) -> None:
    from localcluster.cluster import LocalCluster, missing
    from localcluster.gitserver import seed_repo
    from localcluster.toolchain import binaries, optional_binaries
    from testbed.site import push_offline_base

    lacking = missing("cluster") + missing("tekton")
    if lacking:
        print(f"  TaskRuns skipped: Tekton tier cache incomplete (make cluster-build); missing: {', '.join(lacking)}")
        return
    cluster = LocalCluster(tmp / "ci-cluster").up(frozenset({"kubelet", "tekton"}))
    try:
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        subprocess.run(
            [str(ROOT / "hack" / "images.sh")],
            check=True,
            capture_output=True,
            env={**os.environ, "REGISTRY": cluster.registry},
        )
        push_offline_base(cluster.registry)
        seed_repo(cluster.git_root / "drone-service.git", source_dir=ROOT / "examples" / "drone-service")
        kubectl, tkn = str(binaries()["kubectl"]), str(optional_binaries()["tkn"])
        subprocess.run([kubectl, "create", "namespace", "ci"], env=env, check=True, capture_output=True)
        files = [
            f"tasks/druppie-{t}/0.1/{n}"
            for t in ("git-clone", "test", "scan", "build")
            for n in (f"druppie-{t}.yaml", "rbac.yaml")
        ] + ["tasks/druppie-git-clone/0.1/samples/source-pvc.yaml"]
        subprocess.run(
            [kubectl, "apply", "-n", "ci", *[a for f in files for a in ("-f", str(ROOT / f))]],
            env=env,
            check=True,
            capture_output=True,
        )
        ws = ["-w", "name=source,claimName=drone-service-source"]
        osv_db_ref = push_advisory_db(cluster.registry, tmp)
        runs = {
            "clone": [
                "druppie-git-clone",
                "-p",
                f"url={cluster.git_url.rsplit('/', 1)[0]}/drone-service.git",
                "-p",
                "allow-plain-http=true",
                "-w",
                "name=output,claimName=drone-service-source",
            ],
            "test": ["druppie-test", "-p", "offline=true", *ws],
            "scan": ["druppie-scan", "-p", f"osv-db-ref={osv_db_ref}", "-p", "tls-verify=false", *ws],
            "build": [
                "druppie-build",
                "-p",
                f"image={cluster.registry}/druppie/drone-service",
                "-p",
                "version=1.0.0",
                "-p",
                "tls-verify=false",
                "-p",
                f"build-args=BASE_IMAGE={cluster.registry}/druppie/python:3.11-bookworm",
                *ws,
            ],
        }
        for rounds in ("cold", "warm"):
            for key, args in runs.items():
                started = time.time()
                out = subprocess.run(
                    [
                        tkn,
                        "task",
                        "start",
                        *args[:1],
                        "-n",
                        "ci",
                        "--serviceaccount",
                        args[0],
                        "--use-param-defaults",
                        "--skip-optional-workspace",
                        *args[1:],
                        "--showlog",
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                ).stdout
                name = next(
                    line.split(": ", 1)[1].strip() for line in out.splitlines() if line.startswith("TaskRun started: ")
                )
                for _ in range(100):
                    run = json.loads(
                        subprocess.run(
                            [tkn, "tr", "describe", name, "-n", "ci", "-o", "json"],
                            env=env,
                            capture_output=True,
                            text=True,
                        ).stdout
                    )
                    if run.get("status", {}).get("completionTime"):
                        break
                    time.sleep(0.3)
                if run["status"]["conditions"][0]["reason"] != "Succeeded":
                    raise SystemExit(f"bench TaskRun {name} failed:\n{out[-3000:]}")
                took = _ts(run["status"]["completionTime"]) - started
                if key in direct:
                    report(
                        f"TaskRun {key} ({rounds} image)", f"{took:.0f} s ({took / direct[key]:.1f}x direct)", "-", None
                    )
    finally:
        cluster.down()


def run_bench(report, step: Path, tmp: Path) -> None:
    image_sizes(report)
    direct = direct_runs(report, step, tmp)
    taskruns(report, direct, tmp)
