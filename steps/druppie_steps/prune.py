"""prune-runs: keep the last N finished PipelineRuns of each app, delete the older ones.

Every webhook run gets its own volume (the TriggerTemplate's volumeClaimTemplate, 1 GiB each); the
PersistentVolumeClaim is owned by the PipelineRun, so deleting the run (in the background, as
`kubectl delete` does) lets the garbage collector delete its TaskRuns, pods and claim, and the
provisioner the volume. Runs are grouped by their ``app.kubernetes.io/name`` label (the
TriggerTemplate sets it); a run still going is never deleted, nor one without the label.

    druppie-step prune-runs --namespace ci --keep 5

The catalog runs it as a CronJob (triggers/druppie-ci-cd/prune.yaml) whose ServiceAccount may only
list and delete PipelineRuns in its namespace.
"""

from __future__ import annotations

from collections import defaultdict

import click

from .core.errors import InvalidInputError, StepError
from .core.kube import KubeObject, api_client
from .core.log import info
from .core.options import option, results_dir_option
from .core.results import write_results

APP_LABEL = "app.kubernetes.io/name"


def finished(run: KubeObject) -> bool:
    return bool(run.get("status", {}).get("completionTime"))


def to_delete(runs: list[KubeObject], keep: int) -> list[str]:
    """Names of the finished runs beyond the newest ``keep`` of each app (newest by creation). Pure."""
    by_app: dict[str, list[KubeObject]] = defaultdict(list)
    for run in runs:
        app = run["metadata"].get("labels", {}).get(APP_LABEL)
        if app:
            by_app[app].append(run)
    doomed = []
    for app_runs in by_app.values():
        newest_first = sorted(app_runs, key=lambda r: (r["metadata"]["creationTimestamp"], r["metadata"]["name"]),
                              reverse=True)  # fmt: skip
        doomed += [r["metadata"]["name"] for r in newest_first[keep:] if finished(r)]
    return sorted(doomed)


@click.command("prune-runs")
@option("--namespace", required=True, help="The namespace whose PipelineRuns are pruned.")
@option("--keep", type=int, default=5, help="Finished runs to keep per app (the newest).")
@option("--kubeconfig", default=None, help="Kubeconfig file (default: in-cluster, then KUBECONFIG).")
@option("--dry-run/--no-dry-run", default=False, help="Only say which runs would be deleted.")
@results_dir_option
def prune_runs(namespace: str, keep: int, kubeconfig: str | None, dry_run: bool, results_dir: str | None) -> None:
    """Keep the last N finished PipelineRuns of each app; delete the older ones with their volumes."""
    if keep < 1:
        raise InvalidInputError(f"invalid --keep {keep}: keep at least 1 run per app")
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CustomObjectsApi(api_client(kubeconfig))
    try:
        listed = api.list_namespaced_custom_object("tekton.dev", "v1", namespace, "pipelineruns")
    except ApiException as err:
        raise StepError(f"cannot list PipelineRuns in {namespace}: {err.status} {err.reason}") from err
    runs: list[KubeObject] = listed["items"] if isinstance(listed, dict) else []
    doomed = to_delete(runs, keep)
    deleted = []
    for name in doomed:
        if dry_run:
            info(f"would delete PipelineRun {namespace}/{name}")
            continue
        try:
            api.delete_namespaced_custom_object("tekton.dev", "v1", namespace, "pipelineruns", name,
                                                propagation_policy="Background")  # fmt: skip
        except ApiException as err:
            if err.status != 404:  # gone already: another prune or a person
                raise StepError(f"cannot delete PipelineRun {namespace}/{name}: {err.status} {err.reason}") from err
        deleted.append(name)
        info(f"deleted PipelineRun {namespace}/{name} (its TaskRuns, pods and volume go with it)")
    info(f"{len(runs)} PipelineRuns in {namespace}; kept the newest {keep} per app; deleted {len(deleted)}")
    write_results(results_dir, {"deleted": str(len(deleted))})
