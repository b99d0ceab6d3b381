"""The Redis hot tier under faults, on redis-servers of the test's own (docs/architecture.md,
"Storage"): flush, outage, stall, restart from an old snapshot, writes Redis loses, a process
killed right after a write or interrupted between its durable write and its Redis step, and a
real graph whose node fails, resumed by new processes through the tier.

What is asserted every time: whatever happened, the tier never serves a state other than the
durable saver's, and it degrades to the durable saver rather than failing. Retry windows are
crossed by moving the tier's clock (`FakeClock`), never by sleeping; the only real waits are the
socket timeouts of a stalled Redis (0.2 s) and waiting for Redis to have processed a command.
"""

from __future__ import annotations

import logging
import operator
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
import redis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.types import ERROR
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from redis.exceptions import ResponseError

from review_agent.storage.redis import RedisTierSaver
from review_agent.storage.redis.scripts import PUT_WRITES, SCRIPTS, SHAS
from tests.services import PrivateRedis
from tests.tier import LOGGER, FakeClock, Writer, assert_same, drop_prefix, durable_saver, sqlite_saver
from tests.tier import thread_config as _config

pytestmark = pytest.mark.redis


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseCheckpointSaver]:
    with durable_saver(request.param, tmp_path) as saver:
        yield saver


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait for Redis to have processed something (not a retry window: those move the clock)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def session_keys(client: redis.Redis, prefix: str) -> dict[bytes, bytes | None]:
    return {k: client.get(k) for k in client.scan_iter(match=f"{prefix}s:*")}


# --------------------------------------------------------------------------------------------
# Flush, outage, stall, restart
# --------------------------------------------------------------------------------------------


def test_flushall_then_read_serves_durable_and_refills(
    durable: BaseCheckpointSaver, private_redis: Callable[..., PrivateRedis]
) -> None:
    server = private_redis()
    saver = RedisTierSaver(durable, server.url, prefix="ra:")
    w = Writer(saver, "t")
    w.put({"a": 1})
    c2 = w.put({"a": 2})
    saver.put_writes(c2, [("a", 3)], "task", "~t")
    assert_same(saver, _config("t"), hit=True)

    with server.client() as c:
        c.flushall()
        assert c.dbsize() == 0
    assert_same(saver, _config("t"), hit=False)
    assert saver.stats.refills == 1
    with server.client() as c:
        assert c.hget("ra:c:t:", "id") == c2["configurable"]["checkpoint_id"].encode()
    assert_same(saver, _config("t"), hit=True)
    # The flush took this process's write session with it: the next write notices the gap and
    # replaces the epoch (one more miss), rather than trusting a session Redis forgot.
    w.put({"a": 4})
    assert_same(saver, _config("t"), hit=False)
    assert_same(saver, _config("t"), hit=True)
    saver.close()


def test_redis_down_degrades_with_one_warning_and_recovers(
    durable: BaseCheckpointSaver,
    private_redis: Callable[..., PrivateRedis],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = private_redis(password="s3cret-pw")
    clock = FakeClock()
    saver = RedisTierSaver(
        durable, server.url, prefix="ra:", retry_after=5, socket_timeout=0.2, connect_timeout=0.2, clock=clock
    )
    assert "s3cret-pw" not in saver.redis_url and "***" in saver.redis_url
    w = Writer(saver, "t")
    w.put({"a": 1})
    assert_same(saver, _config("t"), hit=True)

    server.kill()
    caplog.set_level(logging.INFO, logger=LOGGER)
    started = time.monotonic()
    for i in range(2, 8):
        head = w.put({"a": i})
        saver.put_writes(head, [("a", i * 10)], f"task{i}", "~t")
        tup = saver.get_tuple(_config("t"))
        assert tup == durable.get_tuple(_config("t"))
        assert tup is not None and tup.checkpoint["channel_values"] == {"a": i}
        assert len(list(saver.list(_config("t")))) == i
        clock.advance(2)  # spans several retry windows: Redis is retried, and still down
    assert time.monotonic() - started < 5  # an outage costs little
    saver.delete_thread("gone")

    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "unavailable" in warnings[0].getMessage()
    assert all("s3cret-pw" not in r.getMessage() for r in caplog.records)
    assert saver.stats.skipped > 0

    # Redis comes back: after the retry window the tier is used again, and its old contents (here
    # an empty server) cannot make it serve anything older than the durable saver holds.
    server.start()
    assert_same(saver, _config("t"), hit=False)  # still backing off: not even tried
    clock.advance(5)
    assert_same(saver, _config("t"), hit=False)
    assert_same(saver, _config("t"), hit=True)
    infos = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.INFO]
    assert any("answers again" in r.getMessage() for r in infos)

    # A second outage warns again (once per outage, not once per process).
    server.kill()
    w.put({"a": 100})
    saver.get_tuple(_config("t"))  # the first command that waits for a reply finds Redis gone
    w.put({"a": 101})
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 2
    saver.close()


def test_stalled_redis_never_serves_a_stale_checkpoint(
    durable: BaseCheckpointSaver, private_redis: Callable[..., PrivateRedis]
) -> None:
    """Redis stops answering (SIGSTOP: timeouts, not refusals) while checkpoints are written.
    The pipelined writes wait in Redis' socket buffer; a read during the stall times out and is
    answered by the durable saver, and the writes in flight count as unknown from then on; a
    write while the tier backs off is skipped. When Redis answers again it holds an older
    checkpoint than the durable saver, which must never be served."""
    server = private_redis()
    clock = FakeClock()
    saver = RedisTierSaver(
        durable, server.url, prefix="ra:", retry_after=5, socket_timeout=0.2, connect_timeout=0.2, clock=clock
    )
    w = Writer(saver, "t")
    w.put({"a": 1})
    assert_same(saver, _config("t"), hit=True)

    server.pause()
    started = time.monotonic()
    w.put({"a": 2})  # pipelined: returns at once, waits in the socket buffer
    c3 = w.put({"a": 3})
    tup = saver.get_tuple(_config("t"))  # times out: the durable saver answers
    assert tup is not None and tup.checkpoint["channel_values"] == {"a": 3}
    assert saver.stats.hits == 1
    w.put({"a": 4})  # skipped: the tier is backing off
    assert time.monotonic() - started < 2
    server.resume()
    with server.client() as c:  # Redis applies what it had (a: 3), not what was skipped (a: 4)
        wait_until(lambda: c.hget("ra:c:t:", "id") == c3["configurable"]["checkpoint_id"].encode(), "a: 3")

    tup = assert_same(saver, _config("t"), hit=False)  # still backing off: the durable saver
    clock.advance(5)
    tup = assert_same(saver, _config("t"), hit=False)  # the epoch is replaced first
    assert tup.checkpoint["channel_values"] == {"a": 4}
    assert saver.stats.bumps == 1
    assert_same(saver, _config("t"), hit=True)
    saver.close()


def test_stalled_redis_catches_up_with_pipelined_writes(
    durable: BaseCheckpointSaver, private_redis: Callable[..., PrivateRedis]
) -> None:
    """A stall that nothing waits on (only pipelined writes meanwhile) is harmless: Redis applies
    the writes in order when it resumes, and serves the latest checkpoint."""
    server = private_redis()
    saver = RedisTierSaver(durable, server.url, prefix="ra:", socket_timeout=0.5)
    w = Writer(saver, "t")
    w.put({"a": 0})
    server.pause()
    started = time.monotonic()
    head = w.put({"a": 1})
    for i in range(2, 6):
        head = w.put({"a": i})
    saver.put_writes(head, [("a", 50)], "task", "~t")
    assert time.monotonic() - started < 0.4  # nothing waited for Redis
    server.resume()
    tup = assert_same(saver, _config("t"), hit=True)
    assert tup.checkpoint["channel_values"] == {"a": 5} and tup.pending_writes == [("task", "a", 50)]
    assert saver.stats.bumps == 0 and saver.stats.skipped == 0
    saver.close()


def test_redis_restored_from_an_old_snapshot_is_not_trusted(
    durable: BaseCheckpointSaver, private_redis: Callable[..., PrivateRedis]
) -> None:
    """A Redis restart that reloads a snapshot taken before later writes brings back an entry
    that looks valid; the server's new run_id invalidates it even for a brand-new process."""
    server = private_redis()
    saver = RedisTierSaver(durable, server.url, prefix="ra:")
    w = Writer(saver, "t")
    c1 = w.put({"a": 1})
    saver.flush()
    with server.client() as c:
        c.save()  # snapshot holding c1 as the latest
    c2 = w.put({"a": 2})
    assert_same(saver, _config("t"), hit=True)
    saver.close()

    server.kill()
    server.start()  # reloads dump.rdb: c1 is back
    with server.client() as c:
        assert c.hget("ra:c:t:", "id") == c1["configurable"]["checkpoint_id"].encode()

    fresh = RedisTierSaver(durable, server.url, prefix="ra:")  # e.g. the CI job's rerun
    tup = assert_same(fresh, _config("t"), hit=False)
    assert tup.config["configurable"]["checkpoint_id"] == c2["configurable"]["checkpoint_id"]
    assert_same(fresh, _config("t"), hit=True)
    fresh.close()


# --------------------------------------------------------------------------------------------
# Writes Redis loses, and the write session gate
# --------------------------------------------------------------------------------------------


def test_a_write_redis_lost_is_never_followed_by_one_applied_on_top(
    tmp_path: Path, private_redis: Callable[..., PrivateRedis]
) -> None:
    """SCRIPT FLUSH makes a pipelined write fail (NOSCRIPT, answered later); another process
    loads the scripts again before the next write of the session arrives. Applied, that write
    would leave the entry with one task's writes and not the other's: the session gate refuses
    it and replaces the epoch, so no process is served the mixed state."""
    durable = sqlite_saver(tmp_path / "c.sqlite")
    server = private_redis()
    saver = RedisTierSaver(durable, server.url, prefix="ra:")
    head = Writer(saver, "t").put({"a": 1})
    saver.flush()
    with server.client() as c:
        c.script_flush()
        saver.put_writes(head, [("a", 2)], "task-1", "~1")  # NOSCRIPT in Redis: lost
        wait_until(lambda: "errorstat_NOSCRIPT" in c.info("errorstats"), "the NOSCRIPT reply")
        c.script_load(PUT_WRITES)  # another process's tier loads its scripts
        before = session_keys(c, "ra:")
        saver.put_writes(head, [("a", 3)], "task-2", "~2")  # runs, but after a gap in the session
        wait_until(lambda: session_keys(c, "ra:") != before, "the second write")

    other = RedisTierSaver(durable, server.url, prefix="ra:")  # another process
    tup = assert_same(other, _config("t"), hit=False)  # the epoch moved: no mixed entry served
    assert [t for t, _, _ in tup.pending_writes or []] == ["task-1", "task-2"]
    assert_same(other, _config("t"), hit=True)  # refilled from the durable saver
    other.close()
    # This process learns of the lost write at its next read, and replaces the epoch itself.
    assert_same(saver, _config("t"), hit=False)
    assert saver.stats.bumps == 2  # one by the gate in Redis, one by this process
    assert_same(saver, _config("t"), hit=True)
    saver.close()
    durable.conn.close()


def test_the_write_gate_in_redis(session_redis: PrivateRedis) -> None:
    """The gate's contract, script by script: a write runs only if its session's previous write
    was applied; after a gap it is refused and the epoch replaced; a script that raised part-way
    does not count as applied; a closed session refuses its late writes without a new epoch."""
    prefix = f"ra-test:{uuid.uuid4().hex[:10]}:"
    with session_redis.client() as r:
        for src in SCRIPTS.values():
            r.script_load(src)
        epoch, index, entry, session = f"{prefix}epoch", f"{prefix}t:t", f"{prefix}c:t:", f"{prefix}s:one"
        keys = [epoch, index, entry, session]
        r.set(session, "0")

        def invalidate(prev: str, own: str) -> Any:
            return r.evalsha(SHAS["invalidate"], 4, *keys, prev, own, 60, "", uuid.uuid4().hex, 60)

        assert invalidate("0", "1") == 0 and r.get(session) == b"1"  # in order: applied
        first_epoch = r.get(epoch)
        assert invalidate("2", "3") == -2  # write 2 never arrived: refused
        assert r.get(epoch) != first_epoch and r.get(session) == b"3"  # ... a new epoch; goes on
        assert invalidate("3", "4") == 0

        # A root put whose field list is malformed raises after writing part of the entry.
        seen = b"\n".join(r.evalsha(SHAS["observe"], 2, epoch, index, "", "n"))
        with pytest.raises(ResponseError):
            r.evalsha(
                SHAS["put"], 4, *keys, "4", "5", 60, "", "n", "id-1", 60, "tok", "root", "0", seen, "{}", "ck"
            )
        assert r.get(session) == b"4"  # not counted as applied
        before = r.get(epoch)
        assert invalidate("5", "6") == -2 and r.get(epoch) != before  # so the next one sees a gap

        r.set(session, "x")  # closed: its connection failed, a later session took over
        before = r.get(epoch)
        assert invalidate("6", "7") == -2
        assert r.get(epoch) == before and r.get(session) == b"x"
        drop_prefix(r, prefix)


class InterruptedSqliteSaver(SqliteSaver):
    """A real SqliteSaver whose next put commits and then raises KeyboardInterrupt: Ctrl-C landing
    between the durable write and its Redis step."""

    interrupt = False

    def put(self, config: RunnableConfig, *args: Any, **kwargs: Any) -> RunnableConfig:
        result = super().put(config, *args, **kwargs)
        if self.interrupt:
            self.interrupt = False
            raise KeyboardInterrupt
        return result


def test_interrupted_between_the_durable_write_and_redis_never_serves_the_older_state(
    tmp_path: Path, private_redis: Callable[..., PrivateRedis]
) -> None:
    durable = InterruptedSqliteSaver(sqlite3.connect(str(tmp_path / "c.sqlite"), check_same_thread=False))
    durable.setup()
    server = private_redis()
    saver = RedisTierSaver(durable, server.url, prefix="ra:")
    w = Writer(saver, "t")
    w.put({"a": 1})
    durable.interrupt = True
    with pytest.raises(KeyboardInterrupt):
        w.put({"a": 2})  # committed in SQLite, not in Redis
    tup = assert_same(saver, _config("t"), hit=False)
    assert tup.checkpoint["channel_values"] == {"a": 2}
    assert saver.stats.bumps == 1
    assert_same(saver, _config("t"), hit=True)
    saver.close()
    durable.conn.close()


class BlockingPutSqliteSaver(SqliteSaver):
    """A real SqliteSaver whose next put waits for `release`, then fails if told to: a step's put
    still under way (in LangGraph's loop it waits for the saver's lock while the step's last
    pending writes are committed)."""

    entered: threading.Event | None = None
    release: threading.Event | None = None
    fail = False

    def put(self, config: RunnableConfig, *args: Any, **kwargs: Any) -> RunnableConfig:
        entered, release, self.entered = self.entered, self.release, None
        if entered is not None and release is not None:
            entered.set()
            release.wait(10)
            if self.fail:
                raise RuntimeError("database went away")
        return super().put(config, *args, **kwargs)


@pytest.mark.parametrize("put_fails", [False, True], ids=["put-lands", "put-fails"])
def test_writes_whose_child_is_on_its_way_never_leave_the_parent_served_without_them(
    tmp_path: Path, private_redis: Callable[..., PrivateRedis], put_fails: bool
) -> None:
    """While this process puts a child of c1, c1's pending writes are committed. Redis is not
    sent the writes (the child's put drops them), but c1's entry stops being served at once: a
    process reading meanwhile - or after this one died - gets c1 with its writes from the
    durable saver (and refills Redis with that), never c1 without them from Redis. Then the
    child is served from Redis; or, if its put failed, the durable saver's answer is refilled."""
    durable = BlockingPutSqliteSaver(sqlite3.connect(str(tmp_path / "c.sqlite"), check_same_thread=False))
    durable.setup()
    server = private_redis()
    saver = RedisTierSaver(durable, server.url, prefix="ra:")
    other = RedisTierSaver(durable, server.url, prefix="ra:")  # another process
    w = Writer(saver, "t")
    c1 = w.put({"a": 1})
    assert_same(other, _config("t"), hit=True)

    entered = durable.entered = threading.Event()
    durable.release, durable.fail = threading.Event(), put_fails
    errors: list[BaseException] = []

    def put_child() -> None:
        try:
            w.put({"a": 2})
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=put_child)
    thread.start()
    assert entered.wait(10)
    saver.put_writes(c1, [("a", 2)], "task", "~t")
    saver.flush()
    with server.client() as c:
        assert not any(f.startswith(b"w:") for f in c.hkeys("ra:c:t:"))  # not sent
    tup = assert_same(other, _config("t"), hit=False)
    assert tup.checkpoint["id"] == c1["configurable"]["checkpoint_id"]
    assert tup.pending_writes == [("task", "a", 2)]
    assert saver.get_tuple(_config("t")) == tup  # (from Redis again once refilled: exact)

    durable.release.set()
    thread.join(10)
    assert len(errors) == (1 if put_fails else 0)
    # The child, installed over the refilled parent; or, after a failure, c1 read once more.
    tup = assert_same(other, _config("t"), hit=not put_fails)
    assert tup.checkpoint["channel_values"] == ({"a": 1} if put_fails else {"a": 2})
    assert_same(other, _config("t"), hit=True)
    saver.close()
    other.close()
    durable.conn.close()


@pytest.mark.slow
def test_a_pipelined_write_survives_a_kill_right_after_it(
    tmp_path: Path, private_redis: Callable[..., PrivateRedis]
) -> None:
    """The process is SIGKILLed as soon as its last put returned, replies unread (so the kernel
    resets the connection): with Redis on the same host the command is already in Redis' buffer
    and is applied - the next process reads the last checkpoint from Redis."""
    path = tmp_path / "c.sqlite"
    sqlite_saver(path).conn.close()
    server = private_redis()
    child = textwrap.dedent(
        f"""
        import os, signal, sqlite3
        from langgraph.checkpoint.base import empty_checkpoint
        from langgraph.checkpoint.sqlite import SqliteSaver
        from review_agent.storage.redis import RedisTierSaver
        durable = SqliteSaver(sqlite3.connect({str(path)!r}, check_same_thread=False))
        saver = RedisTierSaver(durable, {server.url!r}, prefix="ra:")
        config = {{"configurable": {{"thread_id": "t", "checkpoint_ns": ""}}}}
        version = None
        for i in range(20):
            checkpoint = empty_checkpoint()
            version = durable.get_next_version(version, None)
            checkpoint["channel_values"] = {{"a": i}}
            checkpoint["channel_versions"] = {{"a": version}}
            config = saver.put(config, checkpoint, {{"source": "loop", "step": i}}, {{"a": version}})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", child], cwd=Path(__file__).parent.parent, timeout=60)
    assert result.returncode == -signal.SIGKILL
    durable = sqlite_saver(path)
    saver = RedisTierSaver(durable, server.url, prefix="ra:")
    tup = assert_same(saver, _config("t"), hit=True)
    assert tup.checkpoint["channel_values"] == {"a": 19}
    saver.close()
    durable.conn.close()


# --------------------------------------------------------------------------------------------
# A real LangGraph graph through the tier
# --------------------------------------------------------------------------------------------


class ReviewState(TypedDict):
    files: list[str]
    reviews: Annotated[list[str], operator.add]
    approved: bool


class FileTask(TypedDict):
    file: str


def build_graph(saver: BaseCheckpointSaver, calls: dict[str, int], fail_once: set[str]) -> Any:
    """plan -> Send fan-out of `review` -> collect -> (interrupt) approve -> END."""

    def plan(state: ReviewState) -> dict[str, Any]:
        return {}

    def fan_out(state: ReviewState) -> list[Send]:
        return [Send("review", {"file": f}) for f in state["files"]]

    def review(state: FileTask) -> dict[str, Any]:
        file = state["file"]
        calls[file] = calls.get(file, 0) + 1
        if file in fail_once:
            fail_once.discard(file)
            raise RuntimeError(f"model timeout on {file}")
        return {"reviews": [f"ok:{file}"]}

    def collect(state: ReviewState) -> dict[str, Any]:
        return {}

    def approve(state: ReviewState) -> dict[str, Any]:
        return {"approved": True}

    builder = StateGraph(ReviewState)
    builder.add_node("plan", plan)
    builder.add_node("review", review, input_schema=FileTask)
    builder.add_node("collect", collect)
    builder.add_node("approve", approve)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["review"])
    builder.add_edge("review", "collect")
    builder.add_edge("collect", "approve")
    builder.add_edge("approve", END)
    return builder.compile(checkpointer=saver, interrupt_before=["approve"])


FILES = ["a.py", "b.py", "c.py", "d.py"]


def test_graph_runs_fails_resumes_and_finishes_through_the_tier(
    durable: BaseCheckpointSaver, private_redis: Callable[..., PrivateRedis]
) -> None:
    """A review node fails in a Send fan-out; new processes resume through Redis, redo only the
    failed file, stop at an interrupt and finish."""
    server = private_redis()
    config: RunnableConfig = {"configurable": {"thread_id": "github.com/o/r#7@abc123"}}
    calls: dict[str, int] = {}
    saver = RedisTierSaver(durable, server.url, prefix="ra:")
    graph = build_graph(saver, calls, fail_once={"c.py"})

    # 1. One branch of the fan-out fails: the finished branches are kept as pending writes.
    with pytest.raises(RuntimeError, match=r"c\.py"):
        graph.invoke({"files": FILES, "reviews": [], "approved": False}, config, durability="sync")
    tup = assert_same(saver, config, hit=True)
    assert {w[1] for w in tup.pending_writes or []} >= {"reviews", ERROR}
    saver.close()

    # 2. A new process resumes: it reads the latest checkpoint from Redis and redoes only c.py.
    saver = RedisTierSaver(durable, server.url, prefix="ra:")
    graph = build_graph(saver, calls, fail_once=set())
    snapshot = graph.get_state(config)
    assert snapshot.next == ("review",)
    assert saver.stats.hits >= 1
    graph.invoke(None, config, durability="sync")
    assert calls == {"a.py": 1, "b.py": 1, "c.py": 2, "d.py": 1}
    assert graph.get_state(config).next == ("approve",)  # stopped at the interrupt
    assert_same(saver, config, hit=True)
    saver.close()

    # 3. Another process approves: resumed from Redis, nothing reviewed again.
    saver = RedisTierSaver(durable, server.url, prefix="ra:")
    graph = build_graph(saver, calls, fail_once=set())
    hits = saver.stats.hits
    result = graph.invoke(None, config, durability="sync")
    assert saver.stats.hits > hits
    assert result["approved"] is True
    assert sorted(result["reviews"]) == [f"ok:{f}" for f in FILES]
    assert calls == {"a.py": 1, "b.py": 1, "c.py": 2, "d.py": 1}
    assert graph.get_state(config).next == ()
    assert_same(saver, config, hit=True)
    # History comes from the durable saver, complete.
    assert len(list(saver.list(config))) == len(list(durable.list(config))) >= 5
    saver.close()
