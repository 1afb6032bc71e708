"""druppie-apps' main protected the way examples/druppie-apps/README.md says: its curl command, run as
written, with a Gitea's address, owner and admin token for the reader's shell variables. Used by the
e2e tier's OTAP module, `make demo` and the integration test of the protection itself."""

from __future__ import annotations

import subprocess

from localcluster.gitea_api import GiteaClient, GiteaError
from localcluster.toolchain import ROOT

from .readme import block_with

README = ROOT / "examples/druppie-apps/README.md"


def protect_druppie_apps(forge: GiteaClient) -> None:
    (command,) = block_with(README, "curl -fsS -X POST")
    values = {"$GITEA_URL": forge.base_url.rstrip("/"), "$OWNER": forge.admin, "$GITEA_ADMIN_TOKEN": forge.token}
    for name, value in values.items():  # the README's variables, as the reader's shell would expand them
        if name not in command:
            raise RuntimeError(f"{README}: the protection command no longer uses {name}")
        command = command.replace(name, value)
    if forge.api("GET", f"/repos/{forge.admin}/druppie-apps/branch_protections"):
        unprotect_druppie_apps(forge)  # again (make demo twice): the README's command creates, never updates
    subprocess.run(["bash", "-c", command], cwd=ROOT, check=True, capture_output=True, text=True)


def unprotect_druppie_apps(forge: GiteaClient) -> None:
    try:
        forge.api("DELETE", f"/repos/{forge.admin}/druppie-apps/branch_protections/main")
    except GiteaError as err:
        if err.status != 404:
            raise
