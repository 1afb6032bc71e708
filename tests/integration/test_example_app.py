"""The example app the CI half of the catalog tests, scans and builds: its own suite passes."""

import subprocess
import sys

from tests.support.paths import REPO_ROOT

APP = REPO_ROOT / "examples" / "drone-service"


def test_drone_service_own_tests_pass():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=APP,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout
