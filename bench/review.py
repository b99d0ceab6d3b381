"""Whole-review wall time against a model of fixed latency, at several concurrencies (issue 6).

    python -m bench.review            # 100 files, 200 ms per model answer, concurrency 1, 4, 8, 16
    python -m bench.review --quick    # 32 files

What runs is what a user runs: ``service.run_review`` on a local git repository (built like
``tests/gitrepo.make_repo``: a ``feature`` branch changing N Python files), with the real
``ModelReviewer`` (langchain-openai over HTTP) talking to ``tests/fakes/openai_server.py``
started as its own process with ``--delay``, so that the server's threads do not compete with
the review for this process's GIL. Each concurrency gets a fresh ``REVIEW_AGENT_HOME`` (its own
SQLite file): nothing is reused from an earlier run.

The ideal is files x delay / concurrency: what a review would take if the model were the only
cost and exactly `concurrency` requests were in flight at every moment. The ratio to it is the
figure that matters. Two diagnostics explain a gap: the peak number of requests the server saw
in flight at once (from its own record of arrival times), and the number of review supersteps
(each a barrier that waits for its slowest file).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import bench_settings, emit_json, print_table, target_line
from review_agent.service import ReviewOptions, run_review
from tests.fakes.openai_server import WALKTHROUGH
from tests.gitrepo import make_repo as make_test_repo


class Listener:
    """Records when each file finished (the service's progress events)."""

    def __init__(self) -> None:
        self.done: list[float] = []

    def begin(self, *, total: int, done: int, resumed: bool, offline: bool, reviewer: str) -> None:
        pass

    def file_done(self, path: str, *, reused: bool, comments: int) -> None:
        self.done.append(time.perf_counter())

    def info(self, message: str) -> None:
        pass


def make_repo(root: Path, files: int) -> Path:
    """The tests' repository builder, each size in its own folder."""
    folder = root / f"repo{files}"
    folder.mkdir(parents=True)
    return make_test_repo(folder, files=files)


def serve_fake(delay: float) -> None:
    """The fake OpenAI server of the tests, with Nagle's algorithm off on its sockets.

    Why: its handler writes the headers and the body of an answer in two `send`s on a keep-alive
    connection, so the body waits for the client's delayed ACK - about 40 ms on every call, which
    would be counted as the review's own overhead. With TCP_NODELAY an answer at delay 0 takes
    about 1.5 ms. Everything else (routes, answers, recording, `--delay`) is the test fake's.
    """
    from tests.fakes import openai_server as fake

    class Handler(fake._Handler):
        disable_nagle_algorithm = True

    class NoDelayFake(fake.FakeOpenAI):
        def start(self) -> NoDelayFake:
            server = fake._Server(("127.0.0.1", self.port), Handler)
            server.fake = self
            self.port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
            return self

    server = NoDelayFake(delay=delay).start()
    print(server.base_url, flush=True)  # the parent reads the URL from the first line
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    while not stop.wait(0.5):
        pass
    server.stop()


class FakeServer:
    """The fake model server in a child process (so that its threads do not compete with the
    review for this process's GIL); stopped, by its pid, on exit."""

    def __init__(self, delay: float, *, stock: bool = False) -> None:
        command = (
            ["-m", "tests.fakes.openai_server", "--delay", str(delay)]
            if stock
            else ["-m", "bench.review", "--serve-fake", str(delay)]
        )
        self.proc = subprocess.Popen(
            [sys.executable, *command],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.stop()
            raise RuntimeError("the fake OpenAI server did not start")

    def calls(self) -> dict[str, Any]:
        root = self.base_url.removesuffix("/v1")
        with urllib.request.urlopen(f"{root}/_fake/calls", timeout=10) as resp:
            return json.load(resp)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def peak_in_flight(arrivals: list[float], delay: float) -> int:
    """Most requests in flight at once, from arrival times: a request is in flight for `delay`
    seconds after it arrives (the server answers after exactly that)."""
    arrivals = sorted(arrivals)
    peak, lo = 0, 0
    for hi, t in enumerate(arrivals):
        while arrivals[lo] <= t - delay:
            lo += 1
        peak = max(peak, hi - lo + 1)
    return peak


def run_one(repo: Path, server: FakeServer, concurrency: int, delay: float, files: int) -> dict[str, Any]:
    seen_before = server.calls()["total"]
    with tempfile.TemporaryDirectory(prefix="ra-bench-review-") as home:
        settings = bench_settings(
            Path(home),
            openai_base_url=server.base_url,
            openai_api_key="sk-bench",
            model="fake-model",
            model_timeout=30.0,
            model_max_retries=0,
        )
        listener = Listener()
        start, cpu_start = time.perf_counter(), time.process_time()
        report = run_review(
            ReviewOptions(target=str(repo), base="main", head="feature", concurrency=concurrency),
            settings,
            listener,
        )
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
    snap = server.calls()
    # the files' calls; the walkthrough is one more call, after them
    calls = [c for c in snap["calls"][seen_before:] if c["path"] != WALKTHROUGH]
    reviewed = len(report.files)
    assert reviewed == files, f"reviewed {reviewed} of {files} files"
    assert len(calls) == files, f"{len(calls)} model calls for {files} files"
    ideal = files * delay / concurrency + delay  # and the walkthrough's one call after the files
    return {
        "concurrency": concurrency,
        "wall_s": wall,
        "ideal_s": ideal,
        "ratio": wall / ideal,
        "batches": math.ceil(files / concurrency),
        "batch_bound_s": math.ceil(files / concurrency) * delay,
        "model_calls": len(calls),
        "peak_in_flight": peak_in_flight([c["timestamp"] for c in calls], delay),
        "first_file_s": (listener.done[0] - start) if listener.done else float("nan"),
        "cpu_ms_per_file": cpu * 1000 / files,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 files")
    parser.add_argument("--files", type=int, default=None)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds before each model answer")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8, 16])
    parser.add_argument(
        "--stock-fake",
        action="store_true",
        help="the test fake as it is (about 40 ms more per call: Nagle + delayed ACK)",
    )
    parser.add_argument("--serve-fake", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake is not None:
        serve_fake(args.serve_fake)
        return
    files = args.files or (32 if args.quick else 100)
    print(
        f"review benchmark: {files} files, model answers after {args.delay * 1000:.0f} ms, "
        f"concurrency {args.concurrency}, SQLite storage, real ModelReviewer over HTTP, "
        f"{'stock fake server' if args.stock_fake else 'fake server with TCP_NODELAY'}"
    )

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ra-bench-repo-") as root:
        repo = make_repo(Path(root), files)
        server = FakeServer(args.delay, stock=args.stock_fake)
        try:
            # warm-up: imports and first-use costs (langchain-openai, httpx, SQLite) are paid once
            # per process, not per concurrency; a real CLI run pays them too, before its first file
            run_one(make_repo(Path(root) / "warm-up", 2), server, 2, args.delay, 2)
            for c in args.concurrency:
                r = run_one(repo, server, c, args.delay, files)
                rows.append(r)
                print(
                    f"  concurrency {c:3}: {r['wall_s']:.2f} s (ideal {r['ideal_s']:.2f} s, "
                    f"{r['ratio']:.2f}x), peak {r['peak_in_flight']} requests in flight",
                    flush=True,
                )
        finally:
            server.stop()

    print_table(
        [
            "concurrency",
            "wall s",
            "ideal s",
            "ratio to ideal",
            "batches",
            "batches x delay s",
            "peak in flight",
            "first file s",
            "client cpu ms/file",
        ],
        [
            [
                r["concurrency"],
                r["wall_s"],
                r["ideal_s"],
                r["ratio"],
                r["batches"],
                r["batch_bound_s"],
                r["peak_in_flight"],
                r["first_file_s"],
                r["cpu_ms_per_file"],
            ]
            for r in rows
        ],
        title=f"Whole review, {files} files, {args.delay * 1000:.0f} ms per model call "
        "(ideal = files x delay / concurrency + one walkthrough call)",
    )
    print("\nTargets:")
    targets = {}
    for r in rows:
        if r["concurrency"] == 8:
            targets["ratio_c8"] = target_line("review wall time / ideal at concurrency 8", r["ratio"], 1.15)
    emit_json({"files": files, "delay_s": args.delay, "runs": rows, "targets": targets})


if __name__ == "__main__":
    main()
