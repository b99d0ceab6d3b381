"""Retention: finished reviews must not grow the checkpoint tables forever.

``review-agent db prune`` keeps the latest checkpoint of every thread (enough to resume, to show
``status`` and to build the report; the per-file reviews live in the store and are kept) and
deletes the older ones. On Postgres this is ``PostgresSaver.prune(strategy="keep_latest")``. The
SQLite saver has no ``prune`` (the base class raises NotImplementedError), so the equivalent SQL
for its two tables is here, in one place; then ``VACUUM`` gives the space back to the file system
(SQLite otherwise keeps freed pages for itself, and the file never shrinks).

The audit log is not touched: each pruned thread gets one more event saying what was pruned.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver

from review_agent.storage.audit import PRUNED, AuditLog


@dataclass
class PruneResult:
    threads: int  # threads that had older checkpoints, now deleted
    checkpoints_before: int
    checkpoints_after: int
    bytes_before: int | None = None  # SQLite: the database file (and its WAL) before and after
    bytes_after: int | None = None

    @property
    def removed(self) -> int:
        return self.checkpoints_before - self.checkpoints_after


def _durable(saver: BaseCheckpointSaver) -> BaseCheckpointSaver:
    return getattr(saver, "durable", saver)  # the Redis tier wraps the durable saver


_SQLITE_DELETE_OLD = (
    """DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id <> ?""",
    """DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id <> ?""",
)


def _sqlite_prune(conn: sqlite3.Connection, thread_ids: set[str]) -> None:
    latest = conn.execute(
        "SELECT thread_id, checkpoint_ns, MAX(checkpoint_id) FROM checkpoints "
        "GROUP BY thread_id, checkpoint_ns"
    ).fetchall()
    with conn:
        for thread_id, ns, checkpoint_id in latest:
            if thread_id in thread_ids:
                for sql in _SQLITE_DELETE_OLD:
                    conn.execute(sql, (thread_id, ns, checkpoint_id))


def _sqlite_files(conn: sqlite3.Connection) -> list[Path]:
    row = next((r for r in conn.execute("PRAGMA database_list").fetchall() if r[1] == "main"), None)
    if row is None or not row[2]:
        return []
    main = Path(row[2])
    return [main, main.with_name(main.name + "-wal")]


def _size(files: list[Path]) -> int:
    return sum(f.stat().st_size for f in files if f.exists())


def _sqlite_vacuum(conn: sqlite3.Connection) -> None:
    """Rewrite the file without its free pages, then fold the WAL back in and truncate it."""
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _counts(saver: BaseCheckpointSaver) -> dict[str, int]:
    conn = saver.conn  # type: ignore[attr-defined]
    if isinstance(conn, sqlite3.Connection):
        rows = conn.execute("SELECT thread_id, count(*) FROM checkpoints GROUP BY thread_id").fetchall()
        return {r[0]: int(r[1]) for r in rows}
    rows = conn.execute("SELECT thread_id, count(*) AS n FROM checkpoints GROUP BY thread_id").fetchall()
    return {r["thread_id"]: int(r["n"]) for r in rows}


def prune_to_latest(saver: BaseCheckpointSaver, audit: AuditLog | None = None) -> PruneResult:
    """Keep each thread's latest checkpoint; say (and record) only what was really deleted."""
    durable = _durable(saver)
    before = _counts(durable)
    to_prune = {t for t, n in before.items() if n > 1}
    conn = durable.conn  # type: ignore[attr-defined]
    files = _sqlite_files(conn) if isinstance(conn, sqlite3.Connection) else []
    bytes_before = _size(files) if files else None
    if isinstance(conn, sqlite3.Connection):
        if to_prune:
            _sqlite_prune(conn, to_prune)
        # also after an earlier prune whose VACUUM never ran: space is returned either way
        _sqlite_vacuum(conn)
    elif to_prune:
        durable.prune(sorted(to_prune), strategy="keep_latest")
    after = _counts(durable)
    if audit is not None and to_prune:
        audit.record_many(
            [
                (t, None, PRUNED, {"checkpoints_before": before[t], "checkpoints_after": after.get(t, 0)})
                for t in sorted(to_prune)
            ]
        )
    return PruneResult(
        threads=len(to_prune),
        checkpoints_before=sum(before.values()),
        checkpoints_after=sum(after.values()),
        bytes_before=bytes_before,
        bytes_after=_size(files) if files else None,
    )
