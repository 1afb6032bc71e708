"""Kubernetes API access for steps: in-cluster config first, then --kubeconfig / KUBECONFIG.

The kubernetes client is imported here, inside functions, so only the steps that talk to the
API pay for it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import StepError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

# An object as the API returns it: JSON, so its values are whatever the resource's schema says.
KubeObject = dict[str, Any]


def api_client(kubeconfig: str | None) -> ApiClient:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    made: ApiClient
    try:
        if kubeconfig:
            made = config.new_client_from_config(config_file=kubeconfig)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            made = client.ApiClient(cfg)
        else:
            made = config.new_client_from_config()  # KUBECONFIG or ~/.kube/config
        return made
    except (ConfigException, OSError) as err:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "in-cluster / ~/.kube/config"
        raise StepError(f"cannot load Kubernetes credentials from {where}: {err}") from err
