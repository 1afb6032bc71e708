"""The main job on an embedded default: promote drone-service 1.0.5 into a local druppie-apps.

Starts a real git server (smart HTTP on loopback) hosting a copy of examples/druppie-apps, runs
`druppie-step tag-commit` exactly as the Tekton task does (params through DRUPPIE_* env), shows
the commit it pushed, then runs it again (idempotent) and with an older tag (refused).
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from localcluster.gitserver import GitServer  # noqa: E402

STEP = Path(sys.executable).parent / "druppie-step"


def step(url: str, tag: str, results: Path) -> None:
    env = {**os.environ, "DRUPPIE_REPO_URL": url, "DRUPPIE_PATH": "envs/prod/drone-service",
           "DRUPPIE_IMAGE": "registry.example/druppie/drone-service", "DRUPPIE_TAG": tag,
           "DRUPPIE_PIPELINE_RUN": "demo-run", "DRUPPIE_RESULTS_DIR": str(results)}
    print(f"\n$ DRUPPIE_TAG={tag} druppie-step tag-commit", flush=True)
    code = subprocess.call([str(STEP), "tag-commit"], env=env)
    print(f"  exit {code}; results: " + ", ".join(f"{p.name}={p.read_text()}" for p in sorted(results.iterdir())))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, GitServer(Path(tmp) / "git") as server:
        url = server.create_repo("druppie-apps", source_dir=ROOT / "examples" / "druppie-apps")
        print(f"druppie-apps served at {url}")
        for i, tag in enumerate(["1.0.5", "1.0.5", "1.0.3"]):
            step(url, tag, Path(tmp) / f"results-{i}")
            if i == 0:
                git = ["git", "--git-dir", str(server.repo_path("druppie-apps"))]
                subprocess.call([*git, "--no-pager", "show", "--stat", "--patch", "--format=%n%h %s%n%n%b", "main"])
        print("\nhistory of druppie-apps:")
        subprocess.call(["git", "--git-dir", str(server.repo_path("druppie-apps")), "--no-pager", "log", "--oneline"])


if __name__ == "__main__":
    main()
