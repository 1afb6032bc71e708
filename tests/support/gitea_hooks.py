"""A Gitea webhook's delivery history, read from Gitea's SQLite file (its API has no endpoint for
it; the web UI shows it from the ``hook_task`` table). Read-only, while Gitea runs (WAL journal).

A delivery is queued first, then attempted. Gitea marks it delivered when the attempt starts
(so no second worker takes it) and writes the request and the response when it is over; only
then is it *done* here. Waiting for the mark alone made a test read a delivery without its
response (``'NoneType' object is not subscriptable``, once in a fresh clone's `make test`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from localcluster.gitea_api import GiteaClient


def deliveries(forge: GiteaClient, db_path: Path, repo: str, hook_id: int) -> list[dict]:
    """The hook's deliveries, oldest first: event, delivered, succeeded, request and response.

    The request headers are those sent (an Authorization header masked by Gitea); the body is
    the exact bytes signed."""
    forge.hook(repo, hook_id)  # 404 for another repo's hook
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute(
            "SELECT id, uuid, event_type, is_delivered, is_succeed, request_content, "
            "response_content FROM hook_task WHERE hook_id = ? ORDER BY id",
            (hook_id,),
        ).fetchall()
    return [
        {
            "id": r[0],
            "uuid": r[1],
            "event": r[2],
            "delivered": bool(r[3]),
            "succeeded": bool(r[4]),
            "request": json.loads(r[5]) if r[5] else None,
            "response": json.loads(r[6]) if r[6] else None,
        }
        for r in rows
    ]


def wait_for_deliveries(
    forge: GiteaClient, db_path: Path, repo: str, hook_id: int, count: int = 1, timeout: float = 30
) -> list[dict]:
    """The hook's deliveries once at least ``count`` of them are over: attempted, with the
    request and the response (or the error) recorded."""
    deadline = time.monotonic() + timeout
    while True:
        done = [d for d in deliveries(forge, db_path, repo, hook_id) if d["delivered"] and d["response"] is not None]
        if len(done) >= count:
            return done
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{repo}: hook {hook_id} has {len(done)} deliveries over, not {count}, after {timeout:.0f}s"
            )
        time.sleep(0.1)
