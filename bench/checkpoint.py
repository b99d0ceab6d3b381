"""Checkpoint cost per superstep, and bytes written per superstep, as the PR grows (issue 6).

    python -m bench.checkpoint            # N = 50, 200, 1000 files (a few minutes)
    python -m bench.checkpoint --quick    # N = 20, 50, 100 (well under a minute)

Two states walk the same change file by file, on every backend, in one run (ours in one
superstep per file, a ``review_window`` of one file at concurrency 1; the naive one in two, a
review step then a collect step, as a stock Send-and-collect graph does):

- ``ours``: the real ``build_graph`` (plan + cursor in the state, each finished review written
  once to the store), with a synthetic in-memory source and an instant reviewer;
- ``naive``: a stock-agent state that keeps a ``comments`` dict and a ``messages`` list in plain
  channels, growing with every file (docs/architecture.md, "Pitfalls": rewritten at every step).

Why it is measured this way:

- *ms per superstep* is the wall time of each superstep of the walk as the stream produces it,
  with ``durability="sync"`` as the service runs it: node, reducers and the saver's write,
  everything a step costs. Flatness is the median step of the last 10% of the walk over that of
  the first 10% (medians: one stall of another process on a shared machine would move a
  window's mean), shown on wall time and on this process's CPU time, with the median step of
  each tenth of the walk for the largest N.
- *Interleaved*: in each round the walks of every backend run in lockstep, each taking its turn
  for ``--block`` supersteps (`lockstep`), so that on a machine shared with other work all
  backends see the same load; each round's ratio of Postgres via Redis to Postgres alone is taken
  from walks that ran side by side, and the ratio reported is the median over the rounds. The
  client CPU ratio (this process's CPU per step) is printed beside it: load from other processes
  lengthens every backend's waits alike and pulls the wall ratio towards 1, the CPU ratio not.
- *bytes per superstep* is what the saver actually stored, read back after the run: for SQLite
  and Postgres the byte lengths of every column of the thread's new rows (Postgres ``jsonb`` as
  its text), for the in-memory saver the serialised values ``put``/``put_writes`` received.
  Rows are attributed to the superstep that wrote them (a blob to the first checkpoint whose
  versions name it, a pending write to the checkpoint after the one it was written against), so
  growth inside one run is visible too. For ``ours`` the store writes (each review and its
  reuse-cache entry, written once) are counted as well: nothing is left out to look small.
- Postgres rows are also summed physically (``pg_total_relation_size`` delta of the checkpoint
  and store tables, indexes, TOAST and page slack included), and for Postgres via Redis the bytes
  Redis received (``total_net_input_bytes`` delta).

Storage is the benchmark's own (`bench.common`): uniquely named Postgres databases, dropped at the
end, and a private ``redis-server`` without persistence unless ``REVIEW_AGENT_BENCH_REDIS_URL``
names one.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

import psycopg
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.store.base import BaseStore, Op, PutOp, Result
from langgraph.store.memory import InMemoryStore

from bench.common import (
    InstantReviewer,
    Place,
    SyntheticSource,
    backend_place,
    bench_redis,
    clean_up_on_sigterm,
    emit_json,
    mean,
    open_place,
    print_table,
    redis_bytes_in,
    tail_ratio,
    target_line,
)
from review_agent.graph import GraphPorts, build_graph
from review_agent.patches import parse_patch
from review_agent.reviewers.base import ReviewRequest
from review_agent.state.schemas import FileReview
from review_agent.storage.results import ReviewResults

ALL_BACKENDS = ("none", "memory", "sqlite", "postgres", "postgres+redis")
DATABASES = ("sqlite", "postgres", "postgres+redis")
STATES = ("ours", "naive")
WALK_NODES = {"review_window", "review_file", "collect", "review"}


# -- the naive state -----------------------------------------------------------------------------


def _merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


class NaiveState(TypedDict, total=False):
    files: list[str]
    cursor: int
    messages: Annotated[list[AnyMessage], add_messages]
    comments: Annotated[dict[str, Any], _merge]


def build_naive_graph(source: SyntheticSource, reviewer: InstantReviewer, checkpointer: Any):
    """What a stock agent does: the prompt and the answer of every file go into `messages`, every
    file's comments into `comments`, and both stay in the state for the whole walk."""

    def plan(state: NaiveState) -> dict[str, Any]:
        return {"files": [f.path for f in source.list_files()], "cursor": 0}

    def review(state: NaiveState) -> dict[str, Any]:
        path = state["files"][state["cursor"]]
        changed = source.get_file(path)
        assert changed is not None and changed.patch is not None
        parsed = parse_patch(path, changed.patch)
        outcome = reviewer.review(ReviewRequest(path=path, patch=parsed, content=source.get_content(path)))
        answer = FileReview(path=path, summary=outcome.summary, comments=outcome.comments)
        return {
            "messages": [
                HumanMessage(content=f"FILE: {path}\n{parsed.numbered}"),
                AIMessage(content=answer.model_dump_json(include={"summary", "comments"})),
            ],
            "comments": {path: [c.model_dump(mode="json") for c in outcome.comments]},
        }

    def collect(state: NaiveState) -> dict[str, Any]:
        return {"cursor": state["cursor"] + 1}

    def route(state: NaiveState) -> str:
        return "review" if state["cursor"] < len(state["files"]) else END

    g = StateGraph(NaiveState)
    g.add_node("plan", plan)
    g.add_node("review", review)
    g.add_node("collect", collect)
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", route, ["review", END])
    g.add_edge("review", "collect")
    g.add_conditional_edges("collect", route, ["review", END])
    return g.compile(checkpointer=checkpointer)


# -- measuring what is written -------------------------------------------------------------------


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


# -- one run -------------------------------------------------------------------------------------


@dataclass
class Run:
    state: str
    backend: str
    files: int
    supersteps: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process, all threads: client-side work, no waiting
    walk_ms: list[float] = field(default_factory=list)  # per walk superstep, wall
    walk_cpu_ms: list[float] = field(default_factory=list)  # per walk superstep, this process's CPU
    ckpt_steps: list[int] = field(default_factory=list)  # bytes per superstep (checkpoint index)
    walk_bytes: list[int] = field(default_factory=list)
    store_bytes: int = 0
    store_puts: int = 0
    redis_in: int = 0
    pg_disk: int = 0

    @property
    def ms_per_step(self) -> float:
        return mean(self.walk_ms)

    @property
    def cpu_ms_per_step(self) -> float:
        return self.cpu_seconds * 1000 / self.supersteps if self.supersteps else float("nan")

    @property
    def flat(self) -> float:
        """Median per-step cost of the last 10% of the walk over that of the first 10%. Medians,
        because on a shared machine one stall of another process would otherwise move a window's
        mean; a cost that grows with the files done moves the median as much as the mean."""
        return tail_ratio(self.walk_ms, use_median=True)

    @property
    def flat_mean(self) -> float:
        return tail_ratio(self.walk_ms)

    @property
    def flat_cpu(self) -> float:
        """The same on this process's CPU time per step: blind to waiting (fsync, other
        processes), so it shows whether the work of a step grows, whatever the machine does."""
        return tail_ratio(self.walk_cpu_ms, use_median=True)

    @property
    def median_ms(self) -> float:
        """The typical step: what a step costs when no other process gets in the way."""
        return statistics.median(self.walk_ms) if self.walk_ms else float("nan")

    @property
    def ckpt_per_step(self) -> float:
        return sum(self.ckpt_steps) / self.supersteps if self.supersteps else 0.0

    @property
    def store_per_step(self) -> float:
        return self.store_bytes / self.supersteps if self.supersteps else 0.0

    @property
    def bytes_per_step(self) -> float:
        return self.ckpt_per_step + self.store_per_step


@dataclass
class Cell:
    """The rounds of one (state, backend, N): timings are their medians; bytes are the same in
    every round (deterministic), so the first round's are shown."""

    runs: list[Run]

    TIMED = ("ms_per_step", "cpu_ms_per_step", "flat", "flat_mean", "flat_cpu", "median_ms", "seconds")

    def __getattr__(self, name: str) -> Any:
        if name in self.TIMED:
            return statistics.median(getattr(r, name) for r in self.runs)
        return getattr(self.runs[0], name)


class Backend:
    """One backend's open savers for a whole benchmark, plus how to read back what they wrote."""

    def __init__(self, name: str, place: Place | None) -> None:
        self.name = name
        self.place = place
        self.checkpointer: BaseCheckpointSaver | None = None
        self.store: BaseStore | None = None
        self._sqlite: sqlite3.Connection | None = None
        self._pg: psycopg.Connection | None = None

    @property
    def redis_url(self) -> str | None:
        """The Redis this backend writes to (only Postgres via Redis), for its bytes-in count."""
        return self.place.redis_url if self.place is not None and self.place.redis_prefix else None

    @contextmanager
    def opened(self) -> Iterator[Backend]:
        if self.place is None:  # none / memory
            self.checkpointer = InMemorySaver() if self.name == "memory" else None
            yield self
            return
        with open_place(self.place) as storage:
            self.checkpointer = storage.checkpointer
            self.store = storage.store
            if self.place.database_url:
                self._pg = psycopg.connect(self.place.database_url, autocommit=True)
            else:
                self._sqlite = sqlite3.connect(str(self.place.settings.sqlite_path))
            try:
                yield self
            finally:
                for conn in (self._pg, self._sqlite):
                    if conn is not None:
                        conn.close()

    def fresh_store(self) -> BaseStore:
        return self.store if self.store is not None else CountingStore(InMemoryStore())

    def store_written(self, store: BaseStore) -> tuple[int, int]:
        """(bytes, rows) the store holds, or has been given (in memory); deltas are a run's writes."""
        if isinstance(store, CountingStore):
            return store.bytes_written, store.puts
        if self._pg is not None:
            row = self._pg.execute(PG_STORE).fetchone()
        else:
            assert self._sqlite is not None
            row = self._sqlite.execute(
                "SELECT coalesce(sum(length(CAST(prefix AS BLOB)) + length(CAST(key AS BLOB))"
                " + length(CAST(value AS BLOB))), 0), count(*) FROM store"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def pg_disk(self) -> int:
        return int(self._pg.execute(PG_DISK).fetchone()[0]) if self._pg is not None else 0  # type: ignore[index]

    def rows(self, thread_id: str) -> list[int]:
        if self.checkpointer is None:
            return []
        if isinstance(self.checkpointer, InMemorySaver):
            return memory_rows(self.checkpointer, thread_id)
        if self._pg is not None:
            return pg_rows(self._pg, thread_id)
        assert self._sqlite is not None
        return sqlite_rows(self._sqlite, thread_id)


class Walk:
    """One run of one state on one backend, advanced a few supersteps at a time, so that the runs
    of several backends can be interleaved (`lockstep`).

    Every figure of a walk is taken inside its own `advance` calls: a superstep's time is that of
    the ``next()`` on the stream that produced it (the consumer does nothing else between two
    chunks), so the time other walks run in between is never counted."""

    def __init__(self, backend: Backend, state: str, files: int) -> None:
        self.backend = backend
        self.run = Run(state=state, backend=backend.name, files=files)
        self.source = SyntheticSource(files)
        self.reviewer = InstantReviewer()
        self.thread_id = f"b:{state}:{uuid.uuid4().hex[:8]}"  # short: it is repeated in every row
        self.store = backend.fresh_store()
        if state == "ours":
            ports = GraphPorts(
                source=self.source,
                reviewer=self.reviewer,
                results=ReviewResults(self.store),
                target=self.source.resolve(),
                thread_id=self.thread_id,
                concurrency=1,
            )
            graph = build_graph(ports, backend.checkpointer, self.store)
            graph_input: Any = {"thread_id": self.thread_id}
        else:
            graph = build_naive_graph(self.source, self.reviewer, backend.checkpointer)
            graph_input = {}
        config = {"configurable": {"thread_id": self.thread_id}, "recursion_limit": 2 * files + 20}
        self.store_before = backend.store_written(self.store)
        self.disk_before = backend.pg_disk()
        self.redis_before = redis_bytes_in(backend.redis_url) if backend.redis_url else 0
        # durability="sync" as the service runs it; without a checkpointer it has no meaning (and
        # LangGraph 1.2 fails on it), so the no-checkpointer baseline runs with the default
        durability: dict[str, Any] = {"durability": "sync"} if backend.checkpointer is not None else {}
        self.stream = iter(graph.stream(graph_input, config, stream_mode="updates", **durability))
        self.steps: list[tuple[float, float, str]] = []  # wall s, cpu s, node of each superstep
        self.done = False

    def advance(self, supersteps: int) -> None:
        for _ in range(supersteps):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                chunk = next(self.stream)
            except StopIteration:
                self.run.seconds += time.perf_counter() - t0
                self.run.cpu_seconds += time.process_time() - c0
                self.done = True
                return
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            self.run.seconds += wall
            self.run.cpu_seconds += cpu
            self.steps.append((wall, cpu, next(iter(chunk))))

    def finish(self) -> Run:
        """Read back what was written and check the walk did what it should."""
        run, backend = self.run, self.backend
        if backend.redis_url:
            run.redis_in = redis_bytes_in(backend.redis_url) - self.redis_before
        store_after = backend.store_written(self.store)
        run.store_bytes = store_after[0] - self.store_before[0]
        run.store_puts = store_after[1] - self.store_before[1]
        run.pg_disk = backend.pg_disk() - self.disk_before
        files = run.files
        assert self.reviewer.calls == files, (
            f"{run.state}/{run.backend}: {self.reviewer.calls} reviews for {files}"
        )
        walk = [i for i, (_, _, node) in enumerate(self.steps) if node in WALK_NODES]
        per_file = 1 if run.state == "ours" else 2  # ours: one review_window step per file at concurrency 1
        assert len(walk) == per_file * files, f"expected {per_file * files} walk steps, saw {len(walk)}"
        run.walk_ms = [self.steps[i][0] * 1000 for i in walk]
        run.walk_cpu_ms = [self.steps[i][1] * 1000 for i in walk]
        run.supersteps = len(self.steps)
        run.ckpt_steps = backend.rows(self.thread_id)
        if run.ckpt_steps:
            # Checkpoints, in order: the input (step -1), the input applied (step 0), then one per
            # superstep: what superstep i (stream chunk i) wrote is in checkpoint i + 2 - its pending
            # writes went against checkpoint i + 1, and its channel values first appear in i + 2.
            assert len(run.ckpt_steps) == len(self.steps) + 2, (len(run.ckpt_steps), len(self.steps))
            run.walk_bytes = [run.ckpt_steps[i + 2] for i in walk]
        return run


def lockstep(walks: list[Walk], block: int) -> list[Run]:
    """Advance the walks `block` supersteps at a time, in turn, until all are done.

    Why: on a machine shared with other work the load changes from one second to the next, and
    a run of 1000 files takes several seconds; walks that take turns every few dozen supersteps
    see the same load, so their ratio is not at the mercy of which one ran during a busy moment.
    What a turn costs the walks (a background save finishing while another walk runs, caches
    cooled by the other walk) falls on every walk alike and amounts to one superstep in `block`.
    """
    while not all(w.done for w in walks):
        for w in walks:
            if not w.done:
                w.advance(block)
    return [w.finish() for w in walks]


def run_once(backend: Backend, state: str, files: int) -> Run:
    [run] = lockstep([Walk(backend, state, files)], files)
    return run


# -- the benchmark -------------------------------------------------------------------------------


def measure(
    sizes: list[int],
    backends: list[str],
    states: list[str],
    rounds: int,
    naive_rounds: int,
    block: int,
    log: Callable[[str], None],
) -> dict[tuple[str, str, int], Cell]:
    """Every backend is open for the whole benchmark. In each round, the walks of all backends
    for one state and size run in lockstep (`lockstep`), in a rotated order each round: load from
    other processes on a shared machine, or the disk's fsync latency drifting, then falls on all
    backends alike instead of on whichever ran last."""
    cells: dict[tuple[str, str, int], list[Run]] = {}
    with ExitStack() as stack:
        redis_url = stack.enter_context(bench_redis()) if "postgres+redis" in backends else None
        opened = []
        for name in backends:
            place = stack.enter_context(backend_place(name, redis_url)) if name in DATABASES else None
            opened.append(stack.enter_context(Backend(name, place).opened()))
        for backend in opened:
            for state in states:  # warm-up: imports, prepared plans, first-connection costs
                run_once(backend, state, 5)
        for rnd in range(rounds):
            order = opened[rnd % len(opened) :] + opened[: rnd % len(opened)]
            for files in sizes:
                for state in states:
                    if state == "naive" and rnd >= naive_rounds:
                        continue
                    runs = lockstep([Walk(backend, state, files) for backend in order], block)
                    for r in runs:
                        cells.setdefault((state, r.backend, files), []).append(r)
                        log(
                            f"  round {rnd + 1} {r.backend:15} {state:5} N={files:5}: "
                            f"{r.ms_per_step:7.3f} ms/step, {r.bytes_per_step:11,.0f} B/step, "
                            f"{r.seconds:6.2f} s"
                        )
    return {k: Cell(v) for k, v in cells.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 20, 50, 100; 2 rounds")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--backends", type=lambda s: s.split(","), default=list(ALL_BACKENDS))
    parser.add_argument("--states", type=lambda s: s.split(","), default=list(STATES))
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds of 'ours' (default 3)")
    parser.add_argument(
        "--naive-rounds",
        type=int,
        default=1,
        help="rounds of the naive state (its N=1000 runs are slow; default 1)",
    )
    parser.add_argument(
        "--block",
        type=int,
        default=20,
        help="supersteps each backend's walk runs before the next one's turn (default 20)",
    )
    args = parser.parse_args(argv)
    clean_up_on_sigterm()
    sizes = args.sizes or ([20, 50, 100] if args.quick else [50, 200, 1000])
    rounds = args.rounds or (2 if args.quick else 3)
    for b in args.backends:
        if b not in ALL_BACKENDS:
            parser.error(f"unknown backend {b!r}")

    print(
        f"checkpoint benchmark: N = {sizes}, backends = {args.backends}, states = {args.states}, "
        f"rounds = {rounds} (naive: {min(rounds, args.naive_rounds)}), backends interleaved every "
        f"{args.block} supersteps"
    )
    t0 = time.perf_counter()
    by = measure(
        sizes,
        args.backends,
        args.states,
        rounds,
        args.naive_rounds,
        args.block,
        log=lambda s: print(s, flush=True),
    )
    print(f"measured in {time.perf_counter() - t0:.0f} s")
    report(by, sizes, args.backends, args.states)


def report(
    by: dict[tuple[str, str, int], Cell], sizes: list[int], backends: list[str], states: list[str]
) -> None:
    nmin, nmax = min(sizes), max(sizes)
    cells = [by[(s, b, n)] for n in sizes for s in states for b in backends if (s, b, n) in by]
    headers = [
        "state",
        "backend",
        "N",
        "steps",
        "ms/step",
        "typ. ms",
        "cpu ms",
        "ckpt B/step",
        "store B/step",
        "total B/step",
        "redis B/step",
        "pg disk B/step",
        "flat",
        "flat cpu",
        "bytes last/first",
    ]
    rows = []
    for c in cells:
        rows.append(
            [
                c.state,
                c.backend,
                c.files,
                c.supersteps,
                c.ms_per_step,
                c.median_ms,
                c.cpu_ms_per_step,
                round(c.ckpt_per_step),
                round(c.store_per_step),
                round(c.bytes_per_step),
                round(c.redis_in / c.supersteps) if c.backend == "postgres+redis" else "-",
                round(c.pg_disk / c.supersteps) if c.backend.startswith("postgres") else "-",
                c.flat,
                c.flat_cpu,
                tail_ratio(c.walk_bytes) if c.walk_bytes else "-",
            ]
        )
    print_table(
        headers,
        rows,
        title=(
            "Per cell. ms/step: mean wall time of a walk superstep (review or collect), median over rounds; "
            "typ. ms: median step;\ncpu ms: this process's CPU per step; B/step: bytes stored per superstep, "
            "all supersteps, store writes included;\nflat: median step of the last 10% / of the first 10% "
            "(wall; 'flat cpu': on CPU time)"
        ),
    )

    figures: dict[str, Any] = {"sizes": sizes, "cells": [], "summary": {}, "targets": {}}
    for c in cells:
        figures["cells"].append(
            {
                "state": c.state,
                "backend": c.backend,
                "files": c.files,
                "supersteps": c.supersteps,
                "rounds": len(c.runs),
                "ms_per_step": round(c.ms_per_step, 4),
                "ms_per_step_rounds": [round(r.ms_per_step, 4) for r in c.runs],
                "median_step_ms": round(c.median_ms, 4),
                "cpu_ms_per_step": round(c.cpu_ms_per_step, 4),
                "seconds": round(c.seconds, 3),
                "ckpt_bytes_per_step": round(c.ckpt_per_step, 1),
                "store_bytes_per_step": round(c.store_per_step, 1),
                "bytes_per_step": round(c.bytes_per_step, 1),
                "store_puts": c.store_puts,
                "redis_bytes_in_per_step": round(c.redis_in / c.supersteps, 1) if c.redis_in else None,
                "pg_disk_bytes_per_step": round(c.pg_disk / c.supersteps, 1) if c.pg_disk else None,
                "time_flatness": round(c.flat, 3),
                "time_flatness_cpu": round(c.flat_cpu, 3),
                "bytes_flatness": round(tail_ratio(c.walk_bytes), 3) if c.walk_bytes else None,
            }
        )

    summary_rows = []
    for state in states:
        for b in backends:
            lo, hi = by.get((state, b, nmin)), by.get((state, b, nmax))
            if lo is None or hi is None:
                continue
            growth = hi.bytes_per_step / lo.bytes_per_step if lo.bytes_per_step else float("nan")
            summary_rows.append(
                [
                    state,
                    b,
                    lo.ms_per_step,
                    hi.ms_per_step,
                    hi.cpu_ms_per_step,
                    hi.flat,
                    hi.flat_cpu,
                    round(lo.bytes_per_step),
                    round(hi.bytes_per_step),
                    growth,
                ]
            )
            figures["summary"][f"{state}/{b}"] = {
                "ms_per_step_nmin": round(lo.ms_per_step, 4),
                "ms_per_step_nmax": round(hi.ms_per_step, 4),
                "cpu_ms_per_step_nmax": round(hi.cpu_ms_per_step, 4),
                "time_flatness_nmax": round(hi.flat, 3),
                "time_flatness_cpu_nmax": round(hi.flat_cpu, 3),
                "bytes_per_step_nmin": round(lo.bytes_per_step, 1),
                "bytes_per_step_nmax": round(hi.bytes_per_step, 1),
                "bytes_growth": round(growth, 3),
            }
    print_table(
        [
            "state",
            "backend",
            f"ms/step N={nmin}",
            f"ms/step N={nmax}",
            f"cpu ms N={nmax}",
            f"flat N={nmax}",
            f"flat cpu N={nmax}",
            f"B/step N={nmin}",
            f"B/step N={nmax}",
            f"B growth {nmax}/{nmin}",
        ],
        summary_rows,
        title="Summary",
    )
    naive, ours = by.get(("naive", "postgres", nmax)), by.get(("ours", "postgres", nmax))
    if naive is not None and ours is not None:
        times = naive.bytes_per_step / ours.bytes_per_step
        print(
            f"\n  Postgres at N={nmax}: the naive state stores {times:.0f}x the bytes per step of ours "
            f"({naive.bytes_per_step:,.0f} vs {ours.bytes_per_step:,.0f})."
        )

    decile_rows = []
    for b in backends:
        hi = by.get(("ours", b, nmax))
        if hi is not None:
            per_round = [deciles(r.walk_ms) for r in hi.runs]
            decile_rows.append([b, *(statistics.median(col) for col in zip(*per_round, strict=True))])
            figures["summary"][f"ours/{b}"]["walk_deciles_ms"] = [round(x, 3) for x in decile_rows[-1][1:]]
    if decile_rows:
        print_table(
            ["backend", *(f"{10 * i}-{10 * i + 10}%" for i in range(10))],
            decile_rows,
            title=f"State 'ours', N={nmax}: median ms per step in each tenth of the walk (median "
            "over rounds): a cost that grows with the files done rises left to right",
        )

    ratio_rows = []
    ratios = figures["summary"].setdefault("redis_over_postgres", {})
    for files in sizes:
        pg, tier = by.get(("ours", "postgres", files)), by.get(("ours", "postgres+redis", files))
        if pg is None or tier is None:
            continue
        pairs = list(zip(tier.runs, pg.runs, strict=True))
        entry = {
            "ms": paired_ratio(tier, pg),
            "typical_ms": statistics.median(t.median_ms / p.median_ms for t, p in pairs),
            "cpu_ms": statistics.median(t.cpu_ms_per_step / p.cpu_ms_per_step for t, p in pairs),
            "rounds": [round(t.ms_per_step / p.ms_per_step, 3) for t, p in pairs],
        }
        ratios[str(files)] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in entry.items()}
        ratio_rows.append(
            [
                files,
                len(pairs),
                entry["ms"],
                entry["typical_ms"],
                entry["cpu_ms"],
                " ".join(f"{r:.2f}" for r in entry["rounds"]),
            ]
        )
    if ratio_rows:
        print_table(
            ["N", "rounds", "ms/step", "typ. step", "client cpu", "each round (ms/step)"],
            ratio_rows,
            title="Postgres+Redis / Postgres, state 'ours' (median of rounds run side by side)",
        )

    print("\nTargets (state 'ours'):")
    targets: dict[str, Any] = {}
    if str(nmax) in ratios:
        targets["redis_over_postgres"] = target_line(
            f"Postgres+Redis / Postgres ms per step at N={nmax}", ratios[str(nmax)]["ms"], 1.1
        )
    for b in backends:
        hi, lo = by.get(("ours", b, nmax)), by.get(("ours", b, nmin))
        if hi is not None:
            targets[f"flat/{b}"] = target_line(
                f"{b}: last 10% / first 10% ms per step at N={nmax} (on CPU: {hi.flat_cpu:.3f})", hi.flat, 1.2
            )
        if hi is not None and lo is not None and lo.bytes_per_step:
            targets[f"bytes_growth/{b}"] = target_line(
                f"{b}: bytes per step N={nmax} / N={nmin}", hi.bytes_per_step / lo.bytes_per_step, 1.2
            )
    figures["targets"] = targets
    emit_json(figures)


def deciles(values: list[float]) -> list[float]:
    k = max(1, len(values) // 10)
    return [statistics.median(values[i * k : (i + 1) * k] or values[-k:]) for i in range(10)]


def paired_ratio(a: Cell, b: Cell) -> float:
    """Median over rounds of a's ms/step over b's in the same round (they ran side by side)."""
    return statistics.median(x.ms_per_step / y.ms_per_step for x, y in zip(a.runs, b.runs, strict=True))


if __name__ == "__main__":
    main()
