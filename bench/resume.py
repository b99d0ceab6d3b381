"""Time from a rerun to the first resumed step, after a review was stopped half way (issue 6).

    python -m bench.resume            # 1000 files, stopped after 500
    python -m bench.resume --quick    # 200 files, 3 trials of each kind (about 20 s)

For each backend (SQLite, Postgres alone, Postgres via the Redis tier) a review of N files is run
with the real ``build_graph`` until its reviewer raises at file N/2 - what a crash of the model
call leaves behind: the checkpoint of the last finished step and the failed task's error write.
Then the rerun is timed, doing what ``service.run_review`` does on a rerun, in order:

    open storage (connect, ``setup()`` of saver and store: ``open_storage``) -> ``get_tuple`` (is
    this a new thread?) -> build the graph -> ``get_state`` -> count the finished reviews ->
    ``stream(None)`` (which reads the checkpoint once more) until the first resumed
    ``review_file`` starts.

The clock starts before storage is opened and stops when ``review_file`` makes its first call
(``ports.stop.is_set()``, the node's first line), which then answers "stop" so that the trial
leaves the thread as it found it and the next trial resumes from the same point.

Why two kinds of trial: a rerun after a kill is a new process, so each backend is timed in fresh
child processes (imports done before the clock, everything else - first connections, lazily
loaded adapters, graph compilation - inside it); and in one warm process, to show the steady
cost without first-use effects. "Postgres via Redis, cold" deletes the tier's keys before each
trial (a flush, eviction or expiry): the read falls back to Postgres and refills Redis.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    InstantReviewer,
    Place,
    SyntheticSource,
    backend_place,
    bench_redis,
    bench_settings,
    clean_up_on_sigterm,
    emit_json,
    open_place,
    print_table,
    target_line,
)
from review_agent.errors import Interrupted
from review_agent.graph import GraphPorts, build_graph
from review_agent.reviewers.base import ReviewRequest, ReviewResult
from review_agent.storage.redis import RedisTierSaver
from review_agent.storage.results import ReviewResults

VARIANTS = ("sqlite", "postgres", "postgres+redis", "postgres+redis cold")


class Crash(Exception):
    """Raised by the reviewer half way: the first run ends as a crash of a model call would."""


class CrashingReviewer(InstantReviewer):
    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def review(self, request: ReviewRequest) -> ReviewResult:
        if self.calls >= self.after:
            raise Crash(f"crash while reviewing {request.path}")
        return super().review(request)


class FirstStep(threading.Event):
    """Handed to the graph as ``ports.stop``: ``review_file`` asks it first thing, so the first
    question is the moment the first resumed step starts. It answers "stop" (the node raises
    Interrupted before touching the model or the store), which ends the trial there."""

    def __init__(self) -> None:
        super().__init__()
        self.at: float | None = None
        self.asked = 0

    def is_set(self) -> bool:
        self.asked += 1
        if self.at is None:
            self.at = time.perf_counter()
        return True


@dataclass
class Job:
    """Everything a child process needs to reach the same data."""

    backend: str
    home: str
    database_url: str | None
    redis_url: str | None
    redis_prefix: str | None
    thread_id: str
    files: int
    salt: str
    cold: bool = False

    def place(self) -> Place:
        return Place(
            self.backend,
            bench_settings(Path(self.home), self.database_url),
            self.database_url,
            self.redis_url,
            self.redis_prefix,
        )


def config_for(job: Job) -> dict[str, Any]:
    # as service._config: two supersteps per file at worst, plus the fixed steps around them
    return {"configurable": {"thread_id": job.thread_id}, "recursion_limit": 2 * job.files + 20}


def ports_for(
    job: Job, source: SyntheticSource, reviewer: Any, stop: threading.Event | None, store: Any
) -> GraphPorts:
    return GraphPorts(
        source=source,
        reviewer=reviewer,
        results=ReviewResults(store),
        target=source.resolve(),
        thread_id=job.thread_id,
        concurrency=1,
        stop=stop,
    )


def first_run(job: Job) -> int:
    """Review until the crash at file N/2; return how many reviews were saved."""
    source = SyntheticSource(job.files, salt=job.salt)
    with open_place(job.place()) as storage:
        graph = build_graph(
            ports_for(job, source, CrashingReviewer(job.files // 2), None, storage.store),
            storage.checkpointer,
            storage.store,
        )
        try:
            graph.invoke({"thread_id": job.thread_id}, config_for(job), durability="sync")
        except Crash:
            pass
        else:
            raise AssertionError("the first run was meant to crash half way")
        return ReviewResults(storage.store).count(job.thread_id)


def forget_redis(url: str, prefix: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


def trial(job: Job) -> dict[str, Any]:
    """One rerun, timed as the module docstring says: milliseconds from the clock's start to each mark."""
    if job.cold and job.redis_url and job.redis_prefix:
        forget_redis(job.redis_url, job.redis_prefix)
    source = SyntheticSource(job.files, salt=job.salt)
    probe = FirstStep()
    config = config_for(job)
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    with open_place(job.place()) as storage:
        marks["open"] = time.perf_counter()
        # run_review's order: is this a new thread? then build the graph, then read its state
        new_thread = storage.checkpointer.get_tuple({"configurable": {"thread_id": job.thread_id}}) is None
        marks["tuple"] = time.perf_counter()
        ports = ports_for(job, source, InstantReviewer(), probe, storage.store)
        graph = build_graph(ports, storage.checkpointer, storage.store)
        marks["graph"] = time.perf_counter()
        snapshot = graph.get_state(config)
        marks["state"] = time.perf_counter()
        done = ReviewResults(storage.store).count(job.thread_id)
        marks["count"] = time.perf_counter()
        assert not new_thread and snapshot.next, "nothing to resume"
        try:
            for _ in graph.stream(None, config, stream_mode=["updates", "custom"], durability="sync"):
                pass
        except Interrupted:
            pass
        assert probe.at is not None and probe.asked == 1, "the resumed run did not start one review_file"
        tier = storage.checkpointer if isinstance(storage.checkpointer, RedisTierSaver) else None
        stats = asdict(tier.stats) if tier is not None else {}
    return {
        "total_ms": (probe.at - t0) * 1000,
        "open_ms": (marks["open"] - t0) * 1000,
        "graph_ms": (marks["graph"] - marks["tuple"]) * 1000,
        # the two checkpoint reads before the run: get_tuple and get_state
        "read_state_ms": (marks["tuple"] - marks["open"] + marks["state"] - marks["graph"]) * 1000,
        "count_done_ms": (marks["count"] - marks["state"]) * 1000,
        "to_first_step_ms": (probe.at - marks["count"]) * 1000,
        "done": done,
        "cursor": snapshot.values.get("cursor"),
        "redis_hits": stats.get("hits", 0),
        "redis_misses": stats.get("misses", 0),
    }


def child_trial(job: Job) -> dict[str, Any]:
    """The same trial in a new Python process: a rerun after a kill is a new process."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.resume", "--child", json.dumps(asdict(job))],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child trial failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rotated(items: tuple[str, ...], i: int) -> list[str]:
    k = i % len(items)
    return list(items[k:] + items[:k])


def open_costs(jobs: dict[str, Job], n: int) -> dict[str, dict[str, float]]:
    """What opening storage costs, with the `setup()` calls `open_storage` makes and without
    (``setup=False``): on a rerun the schema is already there, so the difference is spent only
    to learn that."""
    out: dict[str, dict[str, float]] = {}
    for name, job in jobs.items():
        timings: dict[str, list[float]] = {"with_setup_ms": [], "without_setup_ms": []}
        for _ in range(n):
            for key, setup in (("with_setup_ms", True), ("without_setup_ms", False)):
                with ExitStack() as stack:
                    t = time.perf_counter()
                    stack.enter_context(open_place(job.place(), setup=setup))
                    timings[key].append((time.perf_counter() - t) * 1000)
        out[name] = {k: statistics.median(v) for k, v in timings.items()}
    return out


def median_of(trials: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in trials[0].items() if isinstance(v, float)]
    out: dict[str, Any] = {k: statistics.median(t[k] for t in trials) for k in keys}
    out["min_total_ms"] = min(t["total_ms"] for t in trials)
    out["max_total_ms"] = max(t["total_ms"] for t in trials)
    out["done"] = trials[0]["done"]
    out["cursor"] = trials[0]["cursor"]
    out["redis_hits"] = sum(t["redis_hits"] for t in trials)
    out["redis_misses"] = sum(t["redis_misses"] for t in trials)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 files, 3 trials of each kind")
    parser.add_argument("--files", type=int, default=None)
    parser.add_argument("--trials", type=int, default=None, help="fresh-process trials per backend")
    parser.add_argument("--warm-trials", type=int, default=None, help="same-process trials per backend")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    clean_up_on_sigterm()
    if args.child:
        print(json.dumps(trial(Job(**json.loads(args.child)))))
        return
    files = args.files or (200 if args.quick else 1000)
    fresh_n = args.trials or (3 if args.quick else 7)
    warm_n = args.warm_trials or (3 if args.quick else 15)
    print(
        f"resume benchmark: {files} files, stopped after {files // 2}; "
        f"{fresh_n} fresh-process and {warm_n} warm trials per backend"
    )

    results: dict[str, dict[str, dict[str, Any]]] = {}
    with ExitStack() as stack:
        redis_url = stack.enter_context(bench_redis())
        jobs: dict[str, Job] = {}
        for name in VARIANTS:
            # the cold variant gets data of its own: its trials refill Redis from Postgres, and
            # the tier demotes a refilled entry at the next pending write (here the trial's own
            # Interrupted), so the rerun after it misses once more - which must not leak into
            # the warm-cache variant's trials
            backend = name.removesuffix(" cold")
            place = stack.enter_context(backend_place(backend, redis_url))
            job = Job(
                backend=backend,
                home=str(place.settings.home),
                database_url=place.database_url,
                redis_url=place.redis_url,
                redis_prefix=place.redis_prefix,
                thread_id=f"bench-resume:{uuid.uuid4().hex[:8]}",
                files=files,
                salt=uuid.uuid4().hex[:8],
                cold=name.endswith(" cold"),
            )
            t = time.perf_counter()
            saved = first_run(job)
            took = time.perf_counter() - t
            print(f"  {name}: first run saved {saved} reviews in {took:.1f} s", flush=True)
            assert saved == files // 2, saved
            jobs[name] = job
        # Interleaved, in a rotated order: a slow moment of a shared machine falls on all alike.
        fresh: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
        warm: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
        for i in range(fresh_n):
            for name in rotated(VARIANTS, i):
                fresh[name].append(child_trial(jobs[name]))
        for name in VARIANTS:
            trial(jobs[name])  # warm-up of this process for each backend: not counted
        for i in range(warm_n):
            for name in rotated(VARIANTS, i):
                warm[name].append(trial(jobs[name]))
        for name in VARIANTS:
            results[name] = {"fresh": median_of(fresh[name]), "warm": median_of(warm[name])}
            for kind in ("fresh", "warm"):
                r = results[name][kind]
                assert r["done"] == files // 2 and r["cursor"] == files // 2, r
            print(
                f"  {name}: fresh {results[name]['fresh']['total_ms']:.1f} ms, "
                f"warm {results[name]['warm']['total_ms']:.1f} ms",
                flush=True,
            )
        opening = open_costs({name: jobs[name] for name in VARIANTS[:3]}, warm_n)

    headers = [
        "backend",
        "trials",
        "to first step ms",
        "min",
        "max",
        "open+setup",
        "build graph",
        "read state",
        "count done",
        "stream to step",
        "redis hits/misses",
    ]
    for kind, n in (("fresh", fresh_n), ("warm", warm_n)):
        rows = []
        for name in VARIANTS:
            r = results[name][kind]
            served = f"{r['redis_hits']}/{r['redis_misses']}" if name.startswith("postgres+redis") else "-"
            rows.append(
                [
                    name,
                    n,
                    r["total_ms"],
                    r["min_total_ms"],
                    r["max_total_ms"],
                    r["open_ms"],
                    r["graph_ms"],
                    r["read_state_ms"],
                    r["count_done_ms"],
                    r["to_first_step_ms"],
                    served,
                ]
            )
        title = (
            "Fresh process per rerun (median; imports before the clock)"
            if kind == "fresh"
            else "Same process, warm (median)"
        )
        print_table(headers, rows, title=f"{title}, {files} files, resumed at file {files // 2 + 1}")

    print_table(
        ["backend", "open with setup() ms", "open without setup() ms"],
        [[name, o["with_setup_ms"], o["without_setup_ms"]] for name, o in opening.items()],
        title="Opening storage (same process, median): the share of open+setup that setup() is",
    )

    pg, tier = results["postgres"], results["postgres+redis"]
    print("\nTargets:")
    targets = {
        "resume_ms/" + name: target_line(
            f"{name}: fresh-process rerun to first resumed step, ms", results[name]["fresh"]["total_ms"], 50.0
        )
        for name in VARIANTS
    }
    targets["redis_faster_than_postgres"] = target_line(
        "Postgres+Redis / Postgres, fresh-process rerun (< 1 is faster)",
        tier["fresh"]["total_ms"] / pg["fresh"]["total_ms"],
        0.999,
    )
    warm_ratio = tier["warm"]["total_ms"] / pg["warm"]["total_ms"]
    read_ratio = tier["warm"]["read_state_ms"] / pg["warm"]["read_state_ms"]
    print(
        f"       (warm: Postgres+Redis / Postgres = {warm_ratio:.3f}; "
        f"checkpoint reads alone = {read_ratio:.3f})"
    )
    emit_json(
        {"files": files, "resumed_at": files // 2, "results": results, "opening": opening, "targets": targets}
    )


if __name__ == "__main__":
    main()
