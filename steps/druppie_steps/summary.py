"""summary: the finally task of a pipeline: what ran, what it produced, which task failed and why.

Tekton gives a finally task every DAG task's `$(tasks.<name>.status)` and `$(tasks.<name>.reason)`
whatever happened, but skips a finally task that references a result a failed or skipped task
never wrote (v1.15: "Results were missing"). So this step takes the statuses as params, the only
inputs that always exist, and reads everything else (results, durations, failure messages) from
the pipeline's TaskRuns through the API: its ServiceAccount may get and list TaskRuns, nothing
more. Without that access it still summarises from the statuses, with a warning.

The formatting and the failure extraction are pure functions of TaskRun dicts (tested without a
cluster); `fetch_taskruns` is the only function that talks to the API.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import click

from .core import log
from .core.errors import InvalidInputError
from .core.kube import KubeObject
from .core.options import Duration, option, results_dir_option, timeout_option
from .core.redact import redact
from .core.results import write_results

# The results worth a column, per Task (the TaskRun's tekton.dev/task label), in this order.
KEY_RESULTS = {
    "druppie-git-clone": ("commit", "url"),
    "git-clone": ("commit", "url"),
    "druppie-test": ("passed", "failed", "skipped", "coverage"),
    "druppie-scan": ("critical", "high", "medium", "low", "suppressed"),
    "druppie-build": ("IMAGE_URL", "IMAGE_DIGEST"),
    "druppie-tag-commit": ("commit", "changed", "deployed", "previous-tag"),
    "druppie-flux-reconcile-wait": ("applied-revision", "reason"),
}
OTHER_TASK_RESULTS = 3  # a Task not listed above shows its first three results
STATUSES = ("Succeeded", "Failed", "None")
SHA = re.compile(r"\b(sha256:)?([0-9a-f]{40}|[0-9a-f]{64})\b")
MAX_MESSAGE = 400  # a failure message in the results; Tekton keeps results small (4 KiB in all)


@dataclass
class Row:
    """One pipeline task: its status from Tekton's context, the rest from its TaskRun (if any)."""

    task: str
    status: str
    reason: str = ""
    taskrun: str = ""
    task_ref: str = ""
    duration: str = ""
    results: dict[str, str] = field(default_factory=dict)
    message: str = ""
    optional: bool = False  # a when-expression may skip it (--optional-tasks)


def parse_statuses(text: str) -> list[tuple[str, str, str]]:
    """``<task> <status> [<reason>]`` per line, as the pipeline writes $(tasks.<task>.status/reason)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if len(words) > 3 or len(words) < 2 or words[1] not in STATUSES:
            raise InvalidInputError(
                f"invalid --tasks line {number} {line.strip()!r}: use '<task> <status> [<reason>]' with "
                f"a status of {', '.join(STATUSES)}, e.g. 'test $(tasks.test.status) $(tasks.test.reason)'"
            )
        found.append((words[0], words[1], words[2] if len(words) == 3 else ""))
    if not found:
        raise InvalidInputError("invalid --tasks: no pipeline task given")
    return found


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_duration(seconds: float) -> str:
    """42s, 3m04s, 1h02m: short enough for a table column."""
    whole = round(max(seconds, 0))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def duration(taskrun: KubeObject) -> str:
    status = taskrun.get("status") or {}
    start, end = _parse_time(status.get("startTime")), _parse_time(status.get("completionTime"))
    return format_duration((end - start).total_seconds()) if start and end else ""


def results_of(taskrun: KubeObject) -> dict[str, str]:
    """A TaskRun's results (v1 status.results), values as text; a failed TaskRun keeps those written before."""
    out = {}
    for item in (taskrun.get("status") or {}).get("results") or []:
        value = item.get("value")
        out[str(item.get("name"))] = value if isinstance(value, str) else ("" if value is None else str(value))
    return out


def condition(taskrun: KubeObject) -> KubeObject:
    for cond in (taskrun.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Succeeded":
            return cond
    return {}


def latest_per_task(taskruns: list[KubeObject]) -> dict[str, KubeObject]:
    """The newest TaskRun of each pipeline task (a retried task has several)."""
    latest: dict[str, KubeObject] = {}
    for run in taskruns:
        meta = run.get("metadata") or {}
        task = (meta.get("labels") or {}).get("tekton.dev/pipelineTask")
        if not task:
            continue
        key = (meta.get("creationTimestamp") or "", meta.get("name") or "")
        old = latest.get(task)
        if old is None or key >= ((old["metadata"].get("creationTimestamp") or ""), old["metadata"].get("name") or ""):
            latest[task] = run
    return latest


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_rows(statuses: list[tuple[str, str, str]], taskruns: list[KubeObject]) -> list[Row]:
    latest = latest_per_task(taskruns)
    rows = []
    for task, status, reason in statuses:
        row = Row(task, status, reason)
        run = latest.get(task)
        if run is not None:
            meta = run.get("metadata") or {}
            labels = meta.get("labels") or {}
            cond = condition(run)
            row.taskrun = meta.get("name") or ""
            row.task_ref = labels.get("tekton.dev/task") or labels.get("tekton.dev/clusterTask") or ""
            row.duration = duration(run)
            row.results = results_of(run)
            row.message = one_line(cond.get("message") or "")
            row.reason = row.reason or cond.get("reason") or ""
        rows.append(row)
    return rows


def short(value: str) -> str:
    """Commit shas and digests cut to 12 hex digits, for the table."""
    return SHA.sub(lambda m: (m[1] or "") + m[2][:12], value)


def key_results(row: Row) -> str:
    names = KEY_RESULTS.get(row.task_ref) or tuple(sorted(row.results))[:OTHER_TASK_RESULTS]
    return " ".join(f"{n}={short(row.results[n])}" for n in names if row.results.get(n, "") != "")


def shown_status(row: Row) -> str:
    if row.status == "None":
        return "not run"
    if row.status == "Failed" and row.reason and row.reason != "Failed":
        return f"Failed ({row.reason})"  # TaskRunTimeout, TaskRunCancelled, ...
    return row.status


def table(rows: list[Row]) -> str:
    lines = [("task", "status", "duration", "key results")]
    lines += [(r.task, "skipped" if skipped(r, rows) else shown_status(r), r.duration or "-", key_results(r) or "-")
              for r in rows]  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip() for a, b, c, d in lines)


# A build pod whose node lacks the Localhost seccomp profile never starts its step; the runtime's
# message names the file, not the fix.
MISSING_PROFILE = re.compile(r"seccomp.*druppie-build\.json.*no such file", re.I)
MISSING_PROFILE_FIX = (
    "the node has no seccomp profile druppie-build.json: the platform team installs it on every node with "
    "`kubectl apply -k install/seccomp` (druppie-build's README)"
)


def failure_reason(row: Row, namespace: str) -> str:
    """Why a task failed: Tekton's reason and message, the results it wrote, where its log is."""
    parts = [row.reason or "Failed"]
    if row.message:
        parts[0] += f": {row.message}"
    if MISSING_PROFILE.search(row.message):
        parts.insert(0, f"{MISSING_PROFILE_FIX}.")
    written = key_results(row)
    if written:
        parts.append(f"({written})")
    if row.taskrun:
        parts.append(f"log: tkn taskrun logs {row.taskrun} -n {namespace}")
    elif not row.message:
        parts.append("(no TaskRun was created)")
    return " ".join(parts)


def failed_rows(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.status == "Failed"]


def skipped(row: Row, rows: list[Row]) -> bool:
    """An optional task that did not run while nothing failed: its when-expression skipped it (or a
    task it takes results from), as the run's params asked. Tekton's status says "None" for both
    that and a task left out after a failure; only the latter is a failure."""
    return row.optional and row.status == "None" and not failed_rows(rows)


def overall_status(rows: list[Row]) -> str:
    """Succeeded only when every pipeline task succeeded or was skipped on purpose; a task not run
    otherwise means an earlier one failed."""
    ok = all(r.status == "Succeeded" or skipped(r, rows) for r in rows)
    return "Succeeded" if rows and ok else "Failed"


def _result(rows: list[Row], task_ref: str, name: str) -> str:
    return next((r.results[name] for r in rows if r.task_ref == task_ref and r.results.get(name)), "")


def suppressions(rows: list[Row]) -> list[str]:
    """``<task> suppressions: <the scan's active exceptions>`` for every scan that had any, and
    ``<task> advisories: skipped: ...`` for every scan that did not check the dependencies against
    an advisory database (its ``advisories`` result says why; a checked one is not repeated here)."""
    lines = []
    for r in rows:
        if r.task_ref != "druppie-scan":
            continue
        if r.results.get("suppressions"):
            lines.append(f"{r.task} suppressions: {r.results['suppressions']}")
        advisories = r.results.get("advisories", "")
        if advisories and not advisories.startswith("checked"):
            lines.append(f"{r.task} advisories: {advisories}")
    return lines


def summary_text(rows: list[Row], namespace: str) -> str:
    """The one line: on success what was built and deployed, on failure where it stopped and why."""
    status = overall_status(rows)
    image, digest = _result(rows, "druppie-build", "IMAGE_URL"), _result(rows, "druppie-build", "IMAGE_DIGEST")
    gitops = _result(rows, "druppie-tag-commit", "commit")
    changed = _result(rows, "druppie-tag-commit", "changed")
    previous = _result(rows, "druppie-tag-commit", "previous-tag")
    deployed = _result(rows, "druppie-tag-commit", "deployed")
    reason = _result(rows, "druppie-tag-commit", "reason")
    applied = _result(rows, "druppie-flux-reconcile-wait", "applied-revision")
    said = []
    if image:
        said.append(f"built {image}" + (f"@{digest}" if digest else ""))
    if deployed == "false":  # never a plain green: say in words that this build does not run
        said.append(reason or "not deployed")
    elif gitops:
        if changed == "false":
            said.append(
                f"GitOps commit {gitops[:12]} unchanged (already at {previous or 'that tag'}; nothing deployed)"
            )
        else:
            said.append(f"GitOps commit {gitops[:12]}")
    if applied:
        said.append(f"Flux applied {short(applied)}")
    # Promotions after the first deploy (OTAP): each further tag-commit and what became of it.
    for row in [r for r in rows if r.task_ref == "druppie-tag-commit"][1:]:
        if row.results.get("pull-request-url"):
            said.append(f"{row.task}: pull request {row.results['pull-request-url']}")
        elif row.results.get("deployed") == "true":
            said.append(f"{row.task}: {row.results.get('path') or 'pushed'} at {short(row.results.get('commit', ''))}")
    # Exceptions the app made to its own scan are part of what happened, whatever the outcome.
    excepted = "".join(f"; {line}" for line in suppressions(rows))
    if status == "Succeeded":
        return one_line(f"Succeeded: {', '.join(said) or 'every task succeeded'}{excepted}", 1000)
    failed = failed_rows(rows)
    not_run = [r.task for r in rows if r.status == "None" and not skipped(r, rows)]
    where = ", ".join(f"{r.task} ({r.reason or 'Failed'})" for r in failed) or "no task failed, but not every task ran"
    text = f"Failed at {where}"
    if said:
        text += f"; {', '.join(said)}"
    if not_run:
        text += f"; not run: {', '.join(not_run)}"
    return one_line(text + excepted, 1000)


def summarise(
    statuses: list[tuple[str, str, str]],
    taskruns: list[KubeObject],
    namespace: str,
    optional: frozenset[str] = frozenset(),
) -> tuple[str, dict[str, str]]:
    """The log text (table and verdict) and the four results; ``optional``: the pipeline tasks a
    when-expression may skip."""
    rows = build_rows(statuses, taskruns)
    for row in rows:
        row.optional = row.task in optional
    failed = failed_rows(rows)
    results = {
        "status": overall_status(rows),
        "failed-task": ",".join(r.task for r in failed),
        "failed-reason": one_line("; ".join(f"{r.task}: {failure_reason(r, namespace)}" for r in failed), 1500),
        "summary": summary_text(rows, namespace),
    }
    text = table(rows) + "\n"
    for line in suppressions(rows):
        text += f"\n{line}"
    text += "\n" + results["summary"]
    for row in failed:
        text += f"\n{row.task} failed: {failure_reason(row, namespace)}"
    return text, results


def fetch_taskruns(
    namespace: str, pipeline_run: str, kubeconfig: str | None, timeout_seconds: float = 60.0
) -> list[KubeObject]:
    """The PipelineRun's TaskRuns (tekton.dev/v1), by the label Tekton puts on each, within ``timeout_seconds``."""
    from kubernetes import client

    from .core.kube import api_client

    api = client.CustomObjectsApi(api_client(kubeconfig))
    listed = api.list_namespaced_custom_object(
        "tekton.dev",
        "v1",
        namespace,
        "taskruns",
        label_selector=f"tekton.dev/pipelineRun={pipeline_run}",
        _request_timeout=timeout_seconds,
    )
    items = listed.get("items") if isinstance(listed, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def _api_error(err: Exception) -> str:
    status, reason = getattr(err, "status", None), getattr(err, "reason", None)
    if status:
        return f"HTTP {status} {reason or ''}".strip()
    return one_line(str(err) or type(err).__name__, 200)


@click.command("summary")
@option("--pipeline-run", required=True, help="Name of the PipelineRun to summarise ($(context.pipelineRun.name)).")
@option("--namespace", required=True, help="Its namespace ($(context.taskRun.namespace) in the Task).")
@option(
    "--tasks",
    "task_statuses",
    required=True,
    help="One line per pipeline task: '<task> $(tasks.<task>.status) $(tasks.<task>.reason)'.",
)
@option(
    "--optional-tasks",
    default="",
    help="Pipeline tasks a when-expression may skip (comma or space separated): their status None, while "
    "no task failed, is 'skipped', not a failure.",
)
@option("--kubeconfig", default="", help="Kubeconfig file; default: in-cluster, then KUBECONFIG.")
@timeout_option("1m")
@results_dir_option
def summary(
    pipeline_run: str,
    namespace: str,
    task_statuses: str,
    optional_tasks: str,
    kubeconfig: str,
    timeout: Duration,
    results_dir: str | None,
) -> None:
    """Summarise a PipelineRun: a table of its tasks, and results status, failed-task, failed-reason, summary.

    Past --timeout without an answer from the API, it summarises from the statuses alone."""
    statuses = parse_statuses(task_statuses)
    optional = frozenset(optional_tasks.replace(",", " ").split())
    unknown = sorted(optional - {task for task, _, _ in statuses})
    if unknown:
        raise InvalidInputError(f"invalid --optional-tasks {', '.join(unknown)!r}: not among the --tasks lines")
    try:
        taskruns = fetch_taskruns(namespace, pipeline_run, kubeconfig or None, timeout.seconds)
    except Exception as err:  # noqa: BLE001 - the summary must still be written without the API
        log.warn(
            f"cannot list the TaskRuns of {pipeline_run} in {namespace} ({_api_error(err)}): "
            "summarising from the task statuses only (no durations, results or messages)"
        )
        taskruns = []
    text, results = summarise(statuses, taskruns, namespace, optional)
    write_results(results_dir, results)
    click.echo(redact(text))
