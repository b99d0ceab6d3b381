"""The Redis hot tier's contract, against real Redis, Postgres and SQLite (docs/architecture.md,
"Storage").

The published conformance suite (langgraph-checkpoint-conformance) runs against RedisTierSaver
over each sync durable saver and, as a control, against the plain async savers. The other tests
check what the suite cannot see: that the answers come from Redis and equal the durable saver's,
that no race between processes makes Redis serve an older or a deleted state, and that a real
graph resumes through the tier. Faults (flush, outage, stall, restart, lost writes) are in
tests/test_redis_tier_faults.py.

Keys live under a per-test prefix on the session's private redis-server, deleted afterwards.
"""

from __future__ import annotations

import copy
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import psycopg
import pytest
import redis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    CheckpointTuple,
)
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import CapabilityReport
from langgraph.checkpoint.conformance.spec import (
    test_copy_thread,
    test_delete_for_runs,
    test_delete_thread,
    test_get_tuple,
    test_list,
    test_prune,
    test_put,
    test_put_writes,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from review_agent.storage.redis import RedisTierSaver
from tests.pg import SAVER_CONN_KWARGS, async_temp_database
from tests.services import PrivateRedis
from tests.tier import (
    InThreads,
    Writer,
    assert_same,
    drop_prefix,
    durable_saver,
    entry_key,
    postgres_saver,
    sqlite_saver,
)
from tests.tier import thread_config as _config

# Set per session to the session's private redis-server (tests/services.py): never a shared Redis.
REDIS_URL = ""

pytestmark = pytest.mark.redis

# Every check of the suite, by capability: a run must pass all of them, not merely "no failure".
SUITE_SIZE = {
    "put": len(test_put.ALL_PUT_TESTS),
    "put_writes": len(test_put_writes.ALL_PUT_WRITES_TESTS),
    "get_tuple": len(test_get_tuple.ALL_GET_TUPLE_TESTS),
    "list": len(test_list.ALL_LIST_TESTS),
    "delete_thread": len(test_delete_thread.ALL_DELETE_THREAD_TESTS),
    "delete_for_runs": len(test_delete_for_runs.ALL_DELETE_FOR_RUNS_TESTS),
    "copy_thread": len(test_copy_thread.ALL_COPY_THREAD_TESTS),
    "prune": len(test_prune.ALL_PRUNE_TESTS),
}
BASE = {"put", "put_writes", "get_tuple", "list", "delete_thread"}
EXTENDED = {"delete_for_runs", "copy_thread", "prune"}


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _private_redis_url(session_redis: PrivateRedis) -> None:
    global REDIS_URL
    REDIS_URL = session_redis.url


@pytest.fixture
def rclient(_private_redis_url: None) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def prefix(rclient: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own on the session's Redis, removed afterwards."""
    p = f"ra-test:{uuid.uuid4().hex[:10]}:"
    yield p
    drop_prefix(rclient, p)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseCheckpointSaver]:
    with durable_saver(request.param, tmp_path) as saver:
        yield saver


# --------------------------------------------------------------------------------------------
# The published conformance suite
# --------------------------------------------------------------------------------------------


def _supported_extended(durable_cls: type) -> set[str]:
    """Extended capabilities the durable saver implements; the tier delegates them, so it
    supports exactly these (the others raise NotImplementedError, as without the tier)."""
    return {
        cap
        for cap in EXTENDED
        if getattr(durable_cls, cap) is not getattr(BaseCheckpointSaver, cap)
        or getattr(durable_cls, "a" + cap) is not getattr(BaseCheckpointSaver, "a" + cap)
    }


def _assert_conformance(report: CapabilityReport, expected: set[str]) -> None:
    report.print_report()
    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert report.passed_all(), failures
    ran = {name for name, r in report.results.items() if r.detected and r.passed}
    assert ran == expected
    for name in expected:
        assert report.results[name].tests_passed == SUITE_SIZE[name], name


DURABLE_CLASSES: dict[str, type[BaseCheckpointSaver]] = {
    "postgres": PostgresSaver,
    "sqlite": SqliteSaver,
    "postgres-async": AsyncPostgresSaver,
    "sqlite-async": AsyncSqliteSaver,
}


@asynccontextmanager
async def _open_durable(kind: str, where: str) -> AsyncIterator[BaseCheckpointSaver]:
    """A durable saver of `kind` on the database URL or SQLite file `where`."""
    if kind == "postgres":
        with psycopg.Connection.connect(where, **SAVER_CONN_KWARGS) as conn:
            yield PostgresSaver(conn)
    elif kind == "postgres-async":
        async with await psycopg.AsyncConnection.connect(where, **SAVER_CONN_KWARGS) as aconn:
            yield AsyncPostgresSaver(aconn)
    elif kind == "sqlite":
        saver = sqlite_saver(Path(where))
        try:
            yield saver
        finally:
            saver.conn.close()
    else:
        async with aiosqlite.connect(where) as aconn:
            yield AsyncSqliteSaver(aconn)


@pytest.mark.parametrize(
    ("kind", "tiered"),
    [
        pytest.param("postgres", True, marks=pytest.mark.postgres, id="tier-postgres"),
        pytest.param("sqlite", True, id="tier-sqlite"),
        # Controls: the plain savers, in the async form the suite calls.
        pytest.param("postgres-async", False, marks=pytest.mark.postgres, id="plain-postgres-async"),
        pytest.param("sqlite-async", False, id="plain-sqlite-async"),
    ],
)
async def test_conformance_suite(kind: str, tiered: bool, tmp_path: Path, prefix: str) -> None:
    """langgraph-checkpoint-conformance, through its own runner (`validate`), must pass in full:
    every capability the durable saver has, every check of it. `tiered=False` is the control."""
    durable_cls = DURABLE_CLASSES[kind]
    expected = BASE | _supported_extended(durable_cls)
    tiers: list[RedisTierSaver] = []
    async with AsyncExitStack() as stack:
        if kind.startswith("postgres"):
            where = await stack.enter_async_context(async_temp_database())
            with postgres_saver(where):
                pass  # creates the tables once; each suite then opens its own connection
        else:
            where = str(tmp_path / "conformance.sqlite")

        @checkpointer_test(
            name=f"{'RedisTierSaver over ' if tiered else ''}{durable_cls.__name__}",
            skip_capabilities=EXTENDED - expected,
        )
        async def factory() -> AsyncIterator[BaseCheckpointSaver]:
            async with _open_durable(kind, where) as durable:
                if not tiered:
                    yield durable
                    return
                saver = RedisTierSaver(durable, REDIS_URL, prefix=prefix)
                tiers.append(saver)
                try:
                    yield InThreads(saver)
                finally:
                    saver.close()

        report = await validate(factory)
    _assert_conformance(report, expected)
    if tiered:
        # The suite's reads really went through Redis, not only through the fallback.
        assert sum(t.stats.hits for t in tiers) > 20
        assert sum(t.stats.skipped for t in tiers) == 0


# --------------------------------------------------------------------------------------------
# Behaviour on the session's Redis
# --------------------------------------------------------------------------------------------


def test_put_lands_in_durable_and_redis(
    durable: BaseCheckpointSaver, prefix: str, rclient: redis.Redis
) -> None:
    saver = RedisTierSaver(durable, REDIS_URL, prefix=prefix, ttl_seconds=600)
    w = Writer(saver, "thread:1")
    head = w.put({"files": ["a.py", "b.py"], "done": 0})
    cid = head["configurable"]["checkpoint_id"]

    assert durable.get_tuple(head) is not None
    assert rclient.hget(f"{prefix}c:thread%3A1:", "id") == cid.encode()
    tup = assert_same(saver, _config("thread:1"), hit=True)
    assert tup.checkpoint["channel_values"] == {"files": ["a.py", "b.py"], "done": 0}

    # TTL on every key of the thread (the epoch key is deliberately permanent and tiny).
    for key in (f"{prefix}c:thread%3A1:", f"{prefix}t:thread%3A1"):
        assert 0 < rclient.ttl(key) <= 600
    assert rclient.ttl(f"{prefix}epoch") == -1
    saver.close()


def test_cached_tuple_is_exactly_the_durable_one(
    durable: BaseCheckpointSaver, prefix: str, rclient: redis.Redis
) -> None:
    """A differential run: after every kind of write, the tier answers from Redis and its answer
    equals the durable saver's (checkpoint, metadata, parent, pending writes and their order)."""
    saver = RedisTierSaver(durable, REDIS_URL, prefix=prefix)
    tid = "local:/tmp/repo%20x:main..abc"  # ':' and '%' must survive the key escaping
    w = Writer(saver, tid)
    latest = _config(tid)

    c1 = w.put(
        {
            "text": "héllo\u2603",
            "n": 3,
            "f": 1.5,
            "flag": True,
            "nothing": None,
            "nested": {"k": [1, {"b": b"\x00\xff"}], "t": (1, 2)},
            "reviews": [],
        },
        metadata={"source": "input", "step": -1, "parents": {}, "writes": {"x": 1}},
        extra_configurable={"user": "alice", "attempt": 2, "__hidden": "no", "obj": object()},
    )
    assert_same(saver, latest, hit=True)

    # Pending writes: task_path orders them, duplicates of (task, idx) are ignored, special
    # channels replace, a mixed batch is insert-or-ignore.
    saver.put_writes(c1, [("reviews", ["b.py"]), ("n", 4)], "task-b", "~b")
    saver.put_writes(c1, [("reviews", ["a.py"])], "task-a", "~a")
    saver.put_writes(c1, [("reviews", ["again"])], "task-a", "~a")
    saver.put_writes(c1, [(ERROR, "boom")], "task-c", "~c")
    saver.put_writes(c1, [(ERROR, "boom, again")], "task-c", "~c")
    saver.put_writes(c1, [(INTERRUPT, {"ask": 1}), ("n", 5)], "task-d", "~d")
    saver.put_writes(c1, [(INTERRUPT, {"ask": 2}), ("n", 6)], "task-d", "~d")
    tup = assert_same(saver, latest, hit=True)
    assert [w[0] for w in tup.pending_writes or []] == [
        "task-a",
        "task-b",
        "task-b",
        "task-c",
        "task-d",
        "task-d",
    ]

    # Children: one channel changes (the others are carried over inside Redis), then a channel
    # disappears and another appears.
    c2 = w.put({"n": 4, "reviews": ["a.py", "b.py"]})
    assert_same(saver, latest, hit=True)
    w.put({"fresh": {"x": 1}}, remove=("nested",))
    c3 = assert_same(saver, latest, hit=True)
    assert "nested" not in c3.checkpoint["channel_values"]

    # A specific checkpoint: from Redis if it is the cached one, else from the durable saver.
    assert_same(saver, c3.config, hit=True)
    assert_same(saver, c2, hit=False)
    assert saver.get_tuple(_config(tid, checkpoint_id=str(uuid6(clock_seq=-1)))) is None

    # A fork from an older checkpoint (time travel): the tier cannot carry values over from a
    # non-parent, so it forgets the entry; the next read refills it from the durable saver.
    w.put({"n": 99}, parent=c1)
    assert_same(saver, latest, hit=False)
    assert_same(saver, latest, hit=True)

    # Writes merged into a refilled entry would need the original task paths: the entry stops
    # being served until the next put, which is mirrored again.
    head = saver.get_tuple(latest)
    assert head is not None
    saver.put_writes(head.config, [("reviews", ["c.py"])], "task-e", "~e")
    assert_same(saver, latest, hit=False)
    w.put({"n": 100})
    assert_same(saver, latest, hit=True)

    # An inconsistent put (a channel's version moves although it is not in new_versions): the
    # savers disagree on it (PostgresSaver finds no blob at that version, SqliteSaver returns the
    # value), so the tier must not guess; each backend's own answer is served.
    w.values["fresh"] = {"x": 2}
    w.versions["fresh"] = saver.get_next_version(w.versions["fresh"], None)
    w.put({})
    assert_same(saver, latest, hit=False)
    assert_same(saver, latest, hit=True)
    w.put({"fresh": {"x": 3}})  # consistent again: mirrored again
    assert_same(saver, latest, hit=True)

    # Writes that reach the saver before their checkpoint's put (durability="async" does not
    # order them): the put must not be mirrored without them.
    future_id = str(uuid6(clock_seq=-1))
    saver.put_writes(_config(tid, checkpoint_id=future_id), [("n", 7)], "early", "~e")
    assert_same(saver, latest, hit=False)  # refilled meanwhile with the parent, as a read would
    w.put({"n": 8}, checkpoint_id=future_id)
    tup = assert_same(saver, latest, hit=False)
    assert tup.pending_writes == [("early", "n", 7)]
    assert_same(saver, latest, hit=True)

    # A subgraph namespace is cached on its own.
    sub = Writer(saver, tid, ns="review:0|child:x")
    s1 = sub.put({"inner": "v"})
    saver.put_writes(s1, [("inner", "w")], "sub-task", "~s")
    assert_same(saver, _config(tid, "review:0|child:x"), hit=True)
    assert_same(saver, latest, hit=True)

    # Parallel tasks write concurrently (a Send fan-out): every write ends up in the entry.
    head_cfg = w.put({"n": 101})
    threads = [
        threading.Thread(target=saver.put_writes, args=(head_cfg, [("reviews", [f"f{i}"])], f"t{i}", f"~{i}"))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tup = assert_same(saver, latest, hit=True)
    assert len(tup.pending_writes or []) == 8

    # delete_thread removes the thread from both tiers, every namespace included.
    saver.delete_thread(tid)
    assert saver.get_tuple(latest) is None
    assert saver.get_tuple(_config(tid, "review:0|child:x")) is None
    leftovers = [k for k in rclient.scan_iter(match=f"{prefix}c:*")]
    assert leftovers == []
    saver.close()


def test_failed_durable_write_stops_the_namespace_being_served(
    durable: BaseCheckpointSaver, prefix: str
) -> None:
    """A durable write that raises may have been applied in part: the tier stops answering for
    the namespace and re-reads whatever the durable saver holds."""
    saver = RedisTierSaver(durable, REDIS_URL, prefix=prefix)
    w = Writer(saver, "t")
    head = w.put({"a": 1})
    assert_same(saver, _config("t"), hit=True)
    with pytest.raises(TypeError):
        saver.put_writes(head, [("a", 2), ("b", object())], "task", "~t")
    assert_same(saver, _config("t"), hit=False)
    assert_same(saver, _config("t"), hit=True)
    with pytest.raises(TypeError):
        w.put({"a": threading.Lock()})
    assert_same(saver, _config("t"), hit=False)
    saver.close()


def test_eviction_and_expiry_fall_back_and_refill(
    durable: BaseCheckpointSaver, prefix: str, rclient: redis.Redis
) -> None:
    saver = RedisTierSaver(durable, REDIS_URL, prefix=prefix, ttl_seconds=1)
    w = Writer(saver, "t")
    w.put({"a": 1})
    w.put({"a": 2})
    entry, index = f"{prefix}c:t:", f"{prefix}t:t"

    rclient.delete(entry)  # evicted entry
    assert_same(saver, _config("t"), hit=False)
    assert saver.stats.refills == 1
    assert_same(saver, _config("t"), hit=True)

    rclient.delete(index)  # evicted index: its entries are no longer trusted
    assert_same(saver, _config("t"), hit=False)
    assert_same(saver, _config("t"), hit=True)

    # Real expiry (TTL 1 s): both keys vanish, the durable saver still answers, Redis refills.
    deadline = time.monotonic() + 5
    while rclient.exists(entry, index) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rclient.exists(entry, index) == 0
    tup = assert_same(saver, _config("t"), hit=False)
    assert tup.checkpoint["channel_values"] == {"a": 2}
    assert_same(saver, _config("t"), hit=True)
    saver.close()


class RacingSqliteSaver(SqliteSaver):
    """A real SqliteSaver that runs `hook` right after a read or a committed put: another process
    acting while this one is between its durable step and its Redis step."""

    read_hook: Callable[[], None] | None = None
    put_hook: Callable[[], None] | None = None

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        result = super().get_tuple(config)
        hook, self.read_hook = self.read_hook, None
        if hook is not None:
            hook()
        return result

    def put(self, config: RunnableConfig, *args: Any, **kwargs: Any) -> RunnableConfig:
        result = super().put(config, *args, **kwargs)
        hook, self.put_hook = self.put_hook, None
        if hook is not None:
            hook()
        return result


def _racing_sqlite(path: Path) -> RacingSqliteSaver:
    saver = RacingSqliteSaver(sqlite3.connect(str(path), check_same_thread=False))
    saver.setup()
    return saver


@pytest.mark.parametrize("applied", [True, False], ids=["write-applied", "write-in-flight"])
@pytest.mark.parametrize("evicted", ["entry", "entry+index"])
@pytest.mark.parametrize("second_write", ["put", "put_writes", "delete_thread"])
def test_refill_never_puts_back_an_older_state(
    tmp_path: Path, prefix: str, rclient: redis.Redis, second_write: str, evicted: str, applied: bool
) -> None:
    """Another process writes between this one's durable read and its refill. `applied`: Redis
    has applied that write before the refill, which must then fail. Otherwise (a pipelined write
    still on its way, which Redis may apply after the refill) the refill may land, but the write
    corrects it: the next read equals the durable saver."""
    durable = _racing_sqlite(tmp_path / "c.sqlite")
    reader = RedisTierSaver(durable, REDIS_URL, prefix=prefix)
    writer = RedisTierSaver(durable, REDIS_URL, prefix=prefix)  # "another process"
    w = Writer(writer, "t")
    c1 = w.put({"a": 1})
    writer.flush()
    rclient.delete(entry_key(prefix, "t"))  # force the reader to miss and refill
    if evicted == "entry+index":
        rclient.delete(f"{prefix}t:t")

    def concurrent_write() -> None:
        if second_write == "put":
            w.put({"a": 2})
        elif second_write == "put_writes":
            writer.put_writes(c1, [("a", 5)], "task", "~t")
        else:
            writer.delete_thread("t")
        if applied:
            writer.flush()

    durable.read_hook = concurrent_write
    stale = reader.get_tuple(_config("t"))  # concurrent with the write: either answer is fine
    assert stale is not None and stale.checkpoint["id"] == c1["configurable"]["checkpoint_id"]
    if applied:
        assert reader.stats.refills == 0  # ... but it must not be put back into Redis
    writer.flush()

    now = reader.get_tuple(_config("t"))
    assert now == durable.get_tuple(_config("t"))
    if second_write == "delete_thread":
        assert now is None
    elif second_write == "put":
        assert now is not None and now.checkpoint["channel_values"] == {"a": 2}
    else:
        assert now is not None and now.pending_writes == [("task", "a", 5)]
    reader.close()
    writer.close()
    durable.conn.close()


@pytest.mark.parametrize("read_first", [True, False], ids=["read-first", "put-only"])
@pytest.mark.parametrize("meanwhile", ["delete_thread", "put_child"])
def test_a_root_put_never_brings_back_what_another_process_changed_meanwhile(
    tmp_path: Path, prefix: str, rclient: redis.Redis, meanwhile: str, read_first: bool
) -> None:
    """Process A commits a thread's first checkpoint; before A's Redis step, process B deletes
    the thread (or writes a child of it without Redis holding the root, so B's put invalidates).
    A's Redis step must not then install the root: Redis would serve a deleted checkpoint, or
    one older than the durable saver's latest, until the TTL ran out. `read_first`: A read the
    empty thread before, as LangGraph does before it starts a thread."""
    durable = _racing_sqlite(tmp_path / "c.sqlite")
    a = RedisTierSaver(durable, REDIS_URL, prefix=prefix)
    b = RedisTierSaver(durable, REDIS_URL, prefix=prefix)  # another process
    if read_first:
        assert a.get_tuple(_config("t")) is None

    def other_process() -> None:
        if meanwhile == "delete_thread":
            b.delete_thread("t")
            return
        root = durable.get_tuple(_config("t"))  # as B would after a Redis outage: no refill
        assert root is not None
        child = Writer(b, "t")
        child.values, child.versions = (
            dict(root.checkpoint["channel_values"]),
            dict(root.checkpoint["channel_versions"]),
        )
        child.put({"a": 2}, parent=root.config)
        b.flush()

    durable.put_hook = other_process
    Writer(a, "t").put({"a": 1})  # the root: committed, then B acts, then A's Redis step
    a.flush()
    assert durable.put_hook is None, "the other process did not run"

    want = durable.get_tuple(_config("t"))
    assert a.get_tuple(_config("t")) == want
    assert a.stats.hits == 0  # nothing valid was left in Redis
    for saver in (b, RedisTierSaver(durable, REDIS_URL, prefix=prefix)):
        assert saver.get_tuple(_config("t")) == want
    if meanwhile == "delete_thread":
        assert want is None and rclient.exists(entry_key(prefix, "t")) == 0
    else:
        assert want is not None and want.checkpoint["channel_values"] == {"a": 2}
    a.close()
    b.close()
    durable.conn.close()


def test_delegates_versions_allowlist_and_maintenance(durable: BaseCheckpointSaver, prefix: str) -> None:
    saver = RedisTierSaver(durable, REDIS_URL, prefix=prefix)
    # The durable saver's version format (zero-padded counter + random suffix), not the base's ints.
    version = saver.get_next_version(f"{5:032}.0.5", None)
    assert isinstance(version, str) and version.startswith(f"{6:032}.")
    assert saver.serde is durable.serde

    # LangGraph compiles graphs with a clone carrying a msgpack allowlist: the clone wraps the
    # durable saver's own clone and shares the Redis link (one warning, one stats record). With
    # the default serde (no strict allowlist) there is nothing to change and no clone.
    assert saver.with_allowlist([("tests", "Thing")]) is saver
    strict = copy.copy(durable)
    strict.serde = JsonPlusSerializer(allowed_msgpack_modules=[("tests", "Other")])
    strict_tier = RedisTierSaver(strict, REDIS_URL, prefix=prefix)
    clone = strict_tier.with_allowlist([("tests", "Thing")])
    assert isinstance(clone, RedisTierSaver)
    assert clone is not strict_tier and clone.durable is not strict
    assert clone.serde is clone.durable.serde is not strict.serde
    assert clone.stats is strict_tier.stats

    w = Writer(saver, "t")
    w.put({"a": 1})
    w.put({"a": 2})
    assert len(list(saver.list(_config("t")))) == 2
    if isinstance(durable, PostgresSaver):
        saver.prune(["t"], strategy="keep_latest")
        assert len(list(saver.list(_config("t")))) == 1
        assert_same(saver, _config("t"), hit=False)  # pruned threads are re-read once
        assert_same(saver, _config("t"), hit=True)
    else:
        with pytest.raises(NotImplementedError):
            saver.prune(["t"])
        with pytest.raises(NotImplementedError):
            saver.copy_thread("t", "u")
        assert_same(saver, _config("t"), hit=True)  # an unsupported call invalidates nothing
    saver.close()


def test_unmodelled_saver_is_cached_only_from_its_own_answers(prefix: str) -> None:
    """For a saver whose storage rules the tier does not know (here InMemorySaver), puts are not
    mirrored - that could differ from what it returns - but its own answers are."""
    durable = InMemorySaver()
    saver = RedisTierSaver(durable, REDIS_URL, prefix=prefix)
    w = Writer(saver, "t")
    head = w.put({"a": [1]})
    assert saver.stats.installs == 0 and saver.stats.invalidations == 1
    assert_same(saver, _config("t"), hit=False)
    assert_same(saver, _config("t"), hit=True)
    saver.put_writes(head, [("a", [2])], "task", "~t")
    assert_same(saver, _config("t"), hit=False)
    assert_same(saver, _config("t"), hit=True)
    saver.close()


def test_bad_redis_url_is_reported_at_construction(tmp_path: Path) -> None:
    durable = sqlite_saver(tmp_path / "c.sqlite")
    with pytest.raises(ValueError) as excinfo:
        RedisTierSaver(durable, "http://user:hunter2@redis.example:6379/0")
    assert "hunter2" not in str(excinfo.value)
    with pytest.raises(ValueError):
        RedisTierSaver(durable, REDIS_URL, ttl_seconds=0)
    durable.conn.close()
