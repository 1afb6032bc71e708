"""prune-runs' choice: the newest N finished runs of each app stay, running and unlabelled ones are never touched."""

from __future__ import annotations

import pytest

from druppie_steps.cli import main
from druppie_steps.prune import to_delete


def run(name: str, app: str | None, created: str, done: bool = True) -> dict:
    labels = {"app.kubernetes.io/name": app} if app else {}
    status = {"completionTime": "2026-12-04T10:00:00Z"} if done else {}
    return {"metadata": {"name": name, "labels": labels, "creationTimestamp": created}, "status": status}


def test_keeps_the_newest_n_per_app_and_deletes_the_older_finished_ones():
    runs = [run(f"drone-{i}", "drone-service", f"2026-12-04T0{i}:00:00Z") for i in range(1, 6)]
    runs += [run(f"gemaal-{i}", "gemaal-monitor", f"2026-12-04T0{i}:30:00Z") for i in range(1, 3)]
    assert to_delete(runs, keep=2) == ["drone-1", "drone-2", "drone-3"]
    assert to_delete(runs, keep=5) == []


def test_a_run_still_going_or_without_an_app_label_is_never_deleted():
    runs = [
        run("old-running", "drone-service", "2026-12-01T00:00:00Z", done=False),
        run("old-unlabelled", None, "2026-12-01T00:00:00Z"),
        run("old-done", "drone-service", "2026-12-02T00:00:00Z"),
        run("new", "drone-service", "2026-12-04T00:00:00Z"),
    ]
    assert to_delete(runs, keep=1) == ["old-done"]


def test_keep_must_be_at_least_one(capsys):
    assert main(["prune-runs", "--namespace", "ci", "--keep", "0"]) == 2
    assert "invalid --keep 0: keep at least 1 run per app" in capsys.readouterr().err


@pytest.mark.parametrize("keep", [1, 3])
def test_the_same_creation_time_is_ordered_by_name(keep):
    runs = [run(n, "a", "2026-12-04T00:00:00Z") for n in ("a-1", "a-2", "a-3", "a-4")]
    assert to_delete(runs, keep) == sorted(["a-1", "a-2", "a-3", "a-4"])[: 4 - keep]
