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
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from bench.checkpoint_report import report
from bench.common import (
    InstantReviewer,
    Place,
    SyntheticSource,
    backend_place,
    bench_redis,
    clean_up_on_sigterm,
    mean,
    open_place,
    redis_bytes_in,
    tail_ratio,
)
from bench.naive_state import build_naive_graph
from bench.written import PG_DISK, PG_STORE, CountingStore, memory_rows, pg_rows, sqlite_rows
from review_agent.graph import GraphPorts, build_graph
from review_agent.storage.results import ReviewResults

ALL_BACKENDS = ("none", "memory", "sqlite", "postgres", "postgres+redis")
DATABASES = ("sqlite", "postgres", "postgres+redis")
STATES = ("ours", "naive")
WALK_NODES = {"review_window", "review_file", "collect", "review"}


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


if __name__ == "__main__":
    main()
