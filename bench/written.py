"""What a saver actually stored in a benchmark run, read back and attributed to supersteps.

Used by `bench.checkpoint`: for SQLite and Postgres the byte lengths of every column of the
thread's rows (Postgres ``jsonb`` as its text), for the in-memory saver the serialised values
``put``/``put_writes`` received, and for the store what its puts received.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

import psycopg
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import BaseStore, Op, PutOp, Result


class CountingStore(BaseStore):
    """An in-memory store that counts what its puts received, serialised as JSON (the in-memory
    analogue of the rows a database store writes)."""

    def __init__(self, inner: BaseStore) -> None:
        self.inner = inner
        self.bytes_written = 0
        self.puts = 0

    def _count(self, ops: Iterable[Op]) -> list[Op]:
        ops = list(ops)
        for op in ops:
            if isinstance(op, PutOp) and op.value is not None:
                self.puts += 1
                self.bytes_written += len(
                    ".".join(op.namespace).encode() + op.key.encode() + json.dumps(op.value).encode()
                )
        return ops

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return self.inner.batch(self._count(ops))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await self.inner.abatch(self._count(ops))


CkptRow = tuple[str, int, dict[str, Any]]  # checkpoint id, bytes, channel versions


def attribute(
    checkpoints: list[CkptRow], blobs: dict[tuple[str, str], int], writes: list[tuple[str, int]]
) -> list[int]:
    """Bytes per checkpoint, in order: its own row, the blobs its versions name first, and the
    pending writes made against the checkpoint before it (by the superstep it concludes)."""
    checkpoints = sorted(checkpoints)  # uuid6 ids sort in time order
    index = {cid: i for i, (cid, _, _) in enumerate(checkpoints)}
    out = [n for _, n, _ in checkpoints]
    seen: set[tuple[str, str]] = set()
    for i, (_, _, versions) in enumerate(checkpoints):
        for channel, version in (versions or {}).items():
            key = (channel, str(version))
            if key in blobs and key not in seen:
                seen.add(key)
                out[i] += blobs[key]
    leftover = sum(n for key, n in blobs.items() if key not in seen)
    if out:
        out[-1] += leftover  # never drop bytes, even ones we cannot place
    for cid, n in writes:
        i = index.get(cid, len(out) - 1)
        out[min(i + 1, len(out) - 1)] += n
    return out


def memory_rows(saver: InMemorySaver, thread_id: str) -> list[int]:
    def size(typed: tuple[str, bytes]) -> int:
        return len(typed[0]) + len(typed[1])

    checkpoints: list[CkptRow] = []
    for cid, (ck, md, _parent) in saver.storage[thread_id][""].items():
        versions = saver.serde.loads_typed(ck)["channel_versions"]
        checkpoints.append((cid, size(ck) + size(md), versions))
    blobs = {(k[2], str(k[3])): size(v) for k, v in saver.blobs.items() if k[0] == thread_id}
    writes = [
        (key[2], size(w[2]) + len(w[1]))
        for key, inner in saver.writes.items()
        if key[0] == thread_id
        for w in inner.values()
    ]
    return attribute(checkpoints, blobs, writes)


def sqlite_rows(conn: sqlite3.Connection, thread_id: str) -> list[int]:
    def b(col: str) -> str:
        return f"coalesce(length(CAST({col} AS BLOB)), 0)"

    ck_sql = (
        "SELECT checkpoint_id, "
        + " + ".join(
            b(c) for c in ("thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "type")
        )
        + " + "
        + b("checkpoint")
        + " + "
        + b("metadata")
        + " FROM checkpoints WHERE thread_id = ?"
    )
    wr_sql = (
        "SELECT checkpoint_id, 4 + "
        + " + ".join(
            b(c)
            for c in (
                "thread_id",
                "checkpoint_ns",
                "checkpoint_id",
                "task_id",
                "task_path",
                "channel",
                "type",
                "value",
            )
        )
        + " FROM writes WHERE thread_id = ?"
    )
    checkpoints = [(cid, n, {}) for cid, n in conn.execute(ck_sql, (thread_id,))]
    writes = list(conn.execute(wr_sql, (thread_id,)))
    return attribute(checkpoints, {}, writes)


PG_CKPT = """
SELECT checkpoint_id, octet_length(thread_id) + octet_length(checkpoint_ns) + octet_length(checkpoint_id)
       + coalesce(octet_length(parent_checkpoint_id), 0) + coalesce(octet_length(type), 0)
       + octet_length(checkpoint::text) + octet_length(metadata::text) AS n,
       checkpoint -> 'channel_versions' AS versions
FROM checkpoints WHERE thread_id = %s"""
PG_BLOBS = """
SELECT channel, version, octet_length(thread_id) + octet_length(checkpoint_ns) + octet_length(channel)
       + octet_length(version) + octet_length(type) + coalesce(octet_length(blob), 0) AS n
FROM checkpoint_blobs WHERE thread_id = %s"""
PG_WRITES = """
SELECT checkpoint_id, 4 + octet_length(thread_id) + octet_length(checkpoint_ns) + octet_length(checkpoint_id)
       + octet_length(task_id) + octet_length(channel) + coalesce(octet_length(type), 0)
       + octet_length(blob) AS n
FROM checkpoint_writes WHERE thread_id = %s"""
PG_STORE = (
    "SELECT coalesce(sum(octet_length(prefix) + octet_length(key) + octet_length(value::text)), 0),"
    " count(*) FROM store"
)
PG_DISK = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
WHERE c.relname IN ('checkpoints', 'checkpoint_blobs', 'checkpoint_writes', 'store') AND c.relkind = 'r'"""


def pg_rows(conn: psycopg.Connection, thread_id: str) -> list[int]:
    checkpoints = [(r[0], int(r[1]), r[2]) for r in conn.execute(PG_CKPT, (thread_id,))]
    blobs = {(r[0], r[1]): int(r[2]) for r in conn.execute(PG_BLOBS, (thread_id,))}
    writes = [(r[0], int(r[1])) for r in conn.execute(PG_WRITES, (thread_id,))]
    return attribute(checkpoints, blobs, writes)
