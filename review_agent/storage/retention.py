"""Retention: finished reviews must not grow the checkpoint tables forever.

``review-agent db prune`` keeps the latest checkpoint of every thread (enough to resume, to show
``status`` and to build the report; the per-file reviews live in the store and are kept) and
deletes the older ones. On Postgres this is ``PostgresSaver.prune(strategy="keep_latest")``. The
SQLite saver has no ``prune`` (the base class raises NotImplementedError), so the equivalent SQL
for its two tables is here, in one place.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from langgraph.checkpoint.base import BaseCheckpointSaver


@dataclass
class PruneResult:
    threads: int
    checkpoints_before: int
    checkpoints_after: int


def _durable(saver: BaseCheckpointSaver) -> BaseCheckpointSaver:
    return getattr(saver, "durable", saver)  # the Redis tier wraps the durable saver


_SQLITE_DELETE_OLD = (
    """DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id <> ?""",
    """DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id <> ?""",
)


def _sqlite_prune(conn: sqlite3.Connection) -> None:
    latest = conn.execute(
        "SELECT thread_id, checkpoint_ns, MAX(checkpoint_id) FROM checkpoints "
        "GROUP BY thread_id, checkpoint_ns"
    ).fetchall()
    with conn:
        for thread_id, ns, checkpoint_id in latest:
            for sql in _SQLITE_DELETE_OLD:
                conn.execute(sql, (thread_id, ns, checkpoint_id))


def _count(saver: BaseCheckpointSaver) -> tuple[int, list[str]]:
    conn = saver.conn  # type: ignore[attr-defined]
    if isinstance(conn, sqlite3.Connection):
        rows = conn.execute("SELECT thread_id, count(*) FROM checkpoints GROUP BY thread_id").fetchall()
        return sum(r[1] for r in rows), [r[0] for r in rows]
    rows = conn.execute("SELECT thread_id, count(*) AS n FROM checkpoints GROUP BY thread_id").fetchall()
    return sum(r["n"] for r in rows), [r["thread_id"] for r in rows]


def prune_to_latest(saver: BaseCheckpointSaver) -> PruneResult:
    durable = _durable(saver)
    before, threads = _count(durable)
    if isinstance(durable.conn, sqlite3.Connection):  # type: ignore[attr-defined]
        _sqlite_prune(durable.conn)  # type: ignore[attr-defined]
    elif threads:
        durable.prune(threads, strategy="keep_latest")
    after, _ = _count(durable)
    return PruneResult(threads=len(threads), checkpoints_before=before, checkpoints_after=after)
