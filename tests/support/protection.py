"""druppie-apps' main protected the way examples/druppie-apps/README.md says: its curl command, run as
written, with a Gitea's address, owner and admin token for the reader's shell variables."""

from __future__ import annotations

import subprocess

from localcluster.gitea_api import GiteaClient
from testbed.readme import block_with
from tests.support.paths import REPO_ROOT

README = REPO_ROOT / "examples/druppie-apps/README.md"


def protect_druppie_apps(forge: GiteaClient) -> None:
    (command,) = block_with(README, "curl -fsS -X POST")
    values = {"$GITEA_URL": forge.base_url.rstrip("/"), "$OWNER": forge.admin, "$GITEA_ADMIN_TOKEN": forge.token}
    for name, value in values.items():  # the README's variables, as the reader's shell would expand them
        assert name in command, name
        command = command.replace(name, value)
    subprocess.run(["bash", "-c", command], cwd=REPO_ROOT, check=True, capture_output=True, text=True)


def unprotect_druppie_apps(forge: GiteaClient) -> None:
    forge.api("DELETE", f"/repos/{forge.admin}/druppie-apps/branch_protections/main")
