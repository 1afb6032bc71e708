"""Where things are, for tests: the repo, the example apps, the druppie-step the tests run."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_APPS = REPO_ROOT / "examples" / "druppie-apps"
STEP = Path(sys.executable).parent / "druppie-step"
# A basic-auth login of the tests' git servers: a GitHub-style token as password, never to be logged.
TEST_USER, TEST_TOKEN = "ci-bot", "ghp_S3cr3tT0kenThatMustNeverLeak42"
