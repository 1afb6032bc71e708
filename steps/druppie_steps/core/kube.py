"""Kubernetes API access for steps: in-cluster config first, then --kubeconfig / KUBECONFIG.

The kubernetes client is imported here, inside functions, so only the steps that talk to the
API pay for it.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import StepError


def api_client(kubeconfig: str | None) -> Any:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if kubeconfig:
            return config.new_client_from_config(config_file=kubeconfig)
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            return client.ApiClient(cfg)
        return config.new_client_from_config()  # KUBECONFIG or ~/.kube/config
    except (ConfigException, OSError) as err:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "in-cluster / ~/.kube/config"
        raise StepError(f"cannot load Kubernetes credentials from {where}: {err}") from err
