"""Helpers of the Redis tier's tests: durable savers, a checkpoint writer, the tier's key names,
a fake clock, and the adapter the async-only conformance suite runs the sync tier through.

Shared by tests/test_redis_tier.py (the contract, on the session's Redis) and
tests/test_redis_tier_faults.py (faults, on redis-servers of the test's own).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import psycopg
import redis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    empty_checkpoint,
)
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from review_agent.storage.redis import RedisTierSaver
from tests.pg import SAVER_CONN_KWARGS, temp_database

LOGGER = "review_agent.storage.redis"


def sqlite_saver(path: Path) -> SqliteSaver:
    saver = SqliteSaver(sqlite3.connect(str(path), check_same_thread=False))
    saver.setup()
    return saver


@contextmanager
def postgres_saver(url: str) -> Iterator[PostgresSaver]:
    with psycopg.Connection.connect(url, **SAVER_CONN_KWARGS) as conn:
        saver = PostgresSaver(conn)
        saver.setup()
        yield saver


@contextmanager
def durable_saver(kind: str, tmp_path: Path) -> Iterator[BaseCheckpointSaver]:
    """A sync durable saver on a fresh SQLite file or a fresh Postgres database."""
    if kind == "sqlite":
        lite = sqlite_saver(tmp_path / "checkpoints.sqlite")
        try:
            yield lite
        finally:
            lite.conn.close()
    else:
        with temp_database() as url, postgres_saver(url) as pg:
            yield pg


def thread_config(thread_id: str, ns: str = "", checkpoint_id: str | None = None) -> RunnableConfig:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


class Writer:
    """Builds checkpoints the way LangGraph does: fresh ids, the saver's own versions, parents."""

    def __init__(self, saver: BaseCheckpointSaver, thread_id: str, ns: str = "") -> None:
        self.saver = saver
        self.thread_id = thread_id
        self.ns = ns
        self.values: dict[str, Any] = {}
        self.versions: dict[str, Any] = {}
        self.head: RunnableConfig | None = None

    def put(
        self,
        changes: dict[str, Any],
        *,
        remove: tuple[str, ...] = (),
        parent: RunnableConfig | None = None,
        metadata: dict[str, Any] | None = None,
        extra_configurable: dict[str, Any] | None = None,
        checkpoint_id: str | None = None,
    ) -> RunnableConfig:
        new_versions = {}
        for key, value in changes.items():
            self.values[key] = value
            self.versions[key] = self.saver.get_next_version(self.versions.get(key), None)
            new_versions[key] = self.versions[key]
        for key in remove:
            self.values.pop(key, None)
            self.versions.pop(key, None)
        checkpoint = empty_checkpoint()
        checkpoint["id"] = checkpoint_id or str(uuid6(clock_seq=-1))
        checkpoint["channel_values"] = dict(self.values)
        checkpoint["channel_versions"] = dict(self.versions)
        checkpoint["versions_seen"] = {"node": dict(self.versions)}
        checkpoint["updated_channels"] = sorted(changes)
        parent = parent if parent is not None else self.head
        cfg = thread_config(self.thread_id, self.ns)
        if parent is not None:
            cfg["configurable"]["checkpoint_id"] = parent["configurable"]["checkpoint_id"]
        cfg["configurable"].update(extra_configurable or {})
        md = cast(CheckpointMetadata, metadata or {"source": "loop", "step": 1, "parents": {}})
        self.head = self.saver.put(cfg, checkpoint, md, new_versions)
        return self.head


def assert_same(saver: RedisTierSaver, cfg: RunnableConfig, *, hit: bool) -> CheckpointTuple:
    """The tier's answer equals the durable saver's; `hit`: and it came from Redis."""
    before = saver.stats.hits
    got = saver.get_tuple(cfg)
    want = saver.durable.get_tuple(cfg)
    assert got == want
    assert saver.stats.hits - before == (1 if hit else 0), saver.stats
    assert got is not None
    return got


def entry_key(prefix: str, thread_id: str, ns: str = "") -> str:
    """The key of a namespace's cached checkpoint (the tier's key layout)."""
    esc = thread_id.replace("%", "%25").replace(":", "%3A")
    return f"{prefix}c:{esc}:{ns.replace('%', '%25').replace(':', '%3A')}"


def drop_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    if keys:
        client.delete(*keys)


class FakeClock:
    """The monotonic clock handed to the tier: a test moves it past a retry window instead of
    sleeping through it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class InThreads(BaseCheckpointSaver[Any]):
    """The sync tier as the async-only conformance suite calls it: each async method runs the
    tier's sync one in a worker thread. The tier itself offers no async methods (nothing in the
    service runs a graph on an event loop); this adapter lives here, not in the product."""

    def __init__(self, saver: RedisTierSaver) -> None:
        super().__init__(serde=saver.serde)
        self.saver = saver

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.saver.get_next_version(current, channel)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.saver.get_tuple, config)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.saver.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await asyncio.to_thread(self.saver.put_writes, config, writes, task_id, task_path)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        rows = await asyncio.to_thread(
            lambda: [*self.saver.list(config, filter=filter, before=before, limit=limit)]
        )
        for row in rows:
            yield row

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.saver.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.saver.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.saver.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(lambda: self.saver.prune(thread_ids, strategy=strategy))
