"""The GitHub App's fleet: N pull requests x F files, a model of fixed latency L, W workers
reviewing C files at a time each, on one Postgres (issue 13).

    python -m bench.fleet                      # N=12, F=12, L=2.0 s, W=3, C=4; bursts of 200
    python -m bench.fleet --prs 30 --workers 3 --files 4 --latency 0.5 --clients 8

Two measurements, each on a fresh database:

1. **Webhook latency under a burst.** `review-agent serve` alone; 200 signed deliveries (and
   10% of them again with the same delivery id, as a GitHub retry would), each on a connection
   of its own, with 1, 8, 32 and 200 connections in flight; timed at the client from connect to
   the whole answer (the requests are built and signed before the clock starts). Each answer
   commits a delivery row and a procrastinate job in one transaction. Then: jobs queued ==
   distinct deliveries. With all 200 in flight at once the last answer waits for the 199 before
   it: that figure is one receiver's throughput, not its latency.
2. **Wall time against the ideal.** W `review-agent worker` processes are started and ready
   first (their start-up is not counted), then the N deliveries are sent; the wall time runs from
   the first delivery to the last review finished (the workers' job log). The ideal is what the
   model alone would take with perfect spreading: ceil(N / W) reviews per worker, each
   ceil(F / C) model answers long, plus its walkthrough's one answer. Everything else (webhook,
   queue, GitHub reads, checkpoints, posting) is the fleet's overhead.

Nothing lost and nothing duplicated is checked on what the fake GitHub and the fake model saw:
one review per pull request, one comment per file and none twice, one model call per file.

The fake GitHub runs in this process, the fake model in a child process (bench.review's
Nagle-free copy of the tests' fake), the receiver and the workers as the real CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import emit_json, print_table, target_line
from bench.review import FakeServer
from review_agent.server.signature import sign
from tests.app_fleet import SECRET, TOKEN, Fleet, post_webhook, pr_payload
from tests.fakes.github_app_routes import FakeGitHubApp
from tests.fakes.github_server import added_file_patch, make_file
from tests.fakes.openai_server import WALKTHROUGH
from tests.pg import temp_database


def pr_files(number: int, files: int) -> list[dict[str, Any]]:
    out = []
    for i in range(files):
        lines = [f"def handler_{number}_{i}(request):", f"    return request.user.id + {i}", ""]
        path = f"pr{number:03d}/mod{i:02d}.py"
        out.append(make_file(path, added_file_patch(lines), status="added", content="\n".join(lines)))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


def raw_request(port: int, payload: dict[str, Any], delivery: str) -> bytes:
    """One delivery as bytes on the wire, signed like GitHub's (computed before the burst, so
    the client's own work is not timed)."""
    body = json.dumps(payload).encode()
    head = (
        f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"User-Agent: GitHub-Hookshot/bench\r\nX-GitHub-Event: pull_request\r\n"
        f"X-GitHub-Delivery: {delivery}\r\nX-Hub-Signature-256: {sign(SECRET.encode(), body)}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _send_all(port: int, requests: list[bytes], clients: int) -> list[tuple[float, int]]:
    """Every request on a connection of its own (as GitHub's deliveries come), at most
    ``clients`` in flight; (seconds from connect to the whole answer, status) each."""
    gate = asyncio.Semaphore(clients)

    async def one(data: bytes) -> tuple[float, int]:
        async with gate:
            started = time.perf_counter()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            await writer.drain()
            answer = await reader.read()
            writer.close()
            return time.perf_counter() - started, int(answer.split(b" ", 2)[1])

    return await asyncio.gather(*(one(r) for r in requests))


def burst(home: Path, size: int, concurrencies: list[int]) -> list[dict[str, Any]]:
    """Bursts of ``size`` deliveries to a receiver with no workers, at several numbers of
    connections in flight: latency, and that duplicates (10% sent twice) queue nothing twice."""
    out = []
    with FakeGitHubApp(token=TOKEN) as gh, temp_database("ra_bench_burst") as db:
        pr = gh.add_pr("octo", "burst", 1, pr_files(1, 1))
        fleet = Fleet(db, gh, "http://127.0.0.1:9/v1", home / "burst")
        try:
            fleet.start_server()
            post_webhook(fleet.url, "ping", {"zen": "warm up"})
            for round_no, clients in enumerate(concurrencies):
                requests = []
                for n in range(size):
                    payload = pr_payload(gh, pr)
                    payload["number"] = payload["pull_request"]["number"] = round_no * 100_000 + n + 1
                    payload["pull_request"]["head"]["sha"] = uuid.uuid4().hex + "00000000"
                    requests.append(raw_request(fleet.port, payload, str(uuid.uuid4())))
                sent = requests + requests[: size // 10]  # some sent twice: GitHub retrying
                before = fleet.query("SELECT count(*) FROM procrastinate_jobs")[0][0]
                started = time.perf_counter()
                results = asyncio.run(_send_all(fleet.port, sent, clients))
                elapsed = time.perf_counter() - started
                jobs = fleet.query("SELECT count(*) FROM procrastinate_jobs")[0][0] - before
                latencies = [r[0] for r in results]
                out.append(
                    {
                        "clients": clients,
                        "sent": len(sent),
                        "distinct": size,
                        "jobs": jobs,
                        "statuses": dict(collections.Counter(r[1] for r in results)),
                        "per_second": len(sent) / elapsed,
                        "p50_ms": statistics.median(latencies) * 1000,
                        "p99_ms": percentile(latencies, 0.99) * 1000,
                        "max_ms": max(latencies) * 1000,
                    }
                )
        finally:
            fleet.stop_all()
    return out


def fleet_run(
    home: Path, prs: int, files: int, latency: float, workers: int, concurrency: int
) -> dict[str, Any]:
    model = FakeServer(latency)
    try:
        with FakeGitHubApp(token=TOKEN) as gh, temp_database("ra_bench_fleet") as db:
            pulls = [gh.add_pr("octo", f"svc{n % 4}", n + 1, pr_files(n + 1, files)) for n in range(prs)]
            fleet = Fleet(
                db,
                gh,
                model.base_url,
                home / "fleet",
                REVIEW_AGENT_MODEL_RETRIES="2",
                REVIEW_AGENT_MODEL_TIMEOUT="60",
                REVIEW_AGENT_STALLED_AFTER="30",
            )
            try:
                fleet.start_server()
                for w in range(workers):
                    fleet.start_worker(f"w{w}", "--concurrency", str(concurrency))
                fleet.wait_until(
                    lambda: all(" ready: " in fleet.log(f"w{w}") for w in range(workers)),
                    120,
                    "the workers to be ready",
                )
                time.sleep(1.0)  # their LISTEN connections and first polls are up
                started = time.perf_counter()
                for pr in pulls:
                    status, _ = post_webhook(fleet.url, "pull_request", pr_payload(gh, pr))
                    assert status == 202, status
                fleet.wait_until(
                    lambda: len(fleet.runs("finished")) >= prs, 60 + prs * files * latency * 2, "reviews"
                )
                finished_at = fleet.query("SELECT extract(epoch FROM max(finished_at)) FROM app_review_runs")[
                    0
                ][0]
                # the job log's clock is the database's (same machine): convert to this process's
                wall = time.perf_counter() - started - (time.time() - float(finished_at))
                time.sleep(1.0)
                runs = fleet.runs()
                jobs = collections.Counter(s for _, s, _, _ in fleet.jobs())
            finally:
                fleet.stop_all()
            reviews = [len(gh.reviews("octo", pr.repo.name, pr.number)) for pr in pulls]
            comments_ok = all(
                len(
                    {
                        (c["path"], c.get("line"), c["body"])
                        for c in gh.review_comments("octo", pr.repo.name, pr.number)
                    }
                )
                == len(gh.review_comments("octo", pr.repo.name, pr.number))
                == files
                for pr in pulls
            )
        calls = model.calls()
    finally:
        model.stop()
    # each review: its files, then one walkthrough call
    ideal = math.ceil(prs / workers) * (math.ceil(files / concurrency) + 1) * latency
    walkthroughs = calls["by_path"].pop(WALKTHROUGH, 0)
    per_path = collections.Counter(calls["by_path"])
    return {
        "wall_s": wall,
        "ideal_s": ideal,
        "ratio": wall / ideal,
        "reviews_posted": sum(reviews),
        "prs_with_one_review": sum(1 for r in reviews if r == 1),
        "comments_ok": comments_ok,
        "model_calls": calls["total"] - walkthroughs,
        "walkthrough_calls": walkthroughs,
        "files_called_twice": sum(1 for n in per_path.values() if n > 1),
        "runs_finished": sum(1 for r in runs if r[3] == "finished"),
        "jobs": dict(jobs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prs", type=int, default=12)
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds before each model answer")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4, help="files at a time per review")
    parser.add_argument("--burst", type=int, default=200, help="deliveries in each burst")
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=[1, 8, 32, 200],
        help="connections in flight during a burst, one burst each; the target is checked at the second",
    )
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="ra-bench-fleet-"))

    bursts = burst(home, args.burst, args.clients)
    print_table(
        ["connections", "sent", "distinct", "jobs queued", "per s", "p50 ms", "p99 ms", "max ms", "answers"],
        [
            [
                b["clients"],
                b["sent"],
                b["distinct"],
                b["jobs"],
                b["per_second"],
                b["p50_ms"],
                b["p99_ms"],
                b["max_ms"],
                str(b["statuses"]),
            ]
            for b in bursts
        ],
        title=f"Webhook bursts: {args.burst} deliveries (+{args.burst // 10} redelivered) to one receiver",
    )
    checked = bursts[1] if len(bursts) > 1 else bursts[0]
    f = fleet_run(home, args.prs, args.files, args.latency, args.workers, args.concurrency)
    print_table(
        ["N prs", "F files", "L s", "W workers", "C files/review", "wall s", "ideal s", "wall/ideal"],
        [
            [
                args.prs,
                args.files,
                args.latency,
                args.workers,
                args.concurrency,
                f["wall_s"],
                f["ideal_s"],
                f["ratio"],
            ]
        ],
        title="Fleet: wall time from the first delivery to the last review finished",
    )
    lost = args.prs - f["prs_with_one_review"]
    duplicated = f["reviews_posted"] - f["prs_with_one_review"] + f["files_called_twice"]
    intact = (
        lost == 0
        and duplicated == 0
        and f["comments_ok"]
        and f["model_calls"] == args.prs * args.files
        and all(b["jobs"] == b["distinct"] for b in bursts)
    )
    print(
        f"\n{'nothing lost, nothing duplicated' if intact else 'LOST OR DUPLICATED WORK'}: "
        f"{f['prs_with_one_review']}/{args.prs} pull requests reviewed once, {f['reviews_posted']} reviews "
        f"posted, {f['model_calls']} model calls for {args.prs * args.files} files; bursts: "
        + ", ".join(
            f"{b['jobs']} jobs for {b['distinct']} distinct deliveries of {b['sent']}" for b in bursts
        )
    )
    print("\nTargets")
    targets = {
        "wall_over_ideal": target_line(f"wall / ideal (W={args.workers})", f["ratio"], 1.25),
        "webhook_p99_ms": target_line(
            f"webhook p99 ms, burst of {args.burst} over {checked['clients']} connections",
            checked["p99_ms"],
            100.0,
        ),
    }
    emit_json(
        {
            "benchmark": "fleet",
            "params": vars(args),
            "bursts": bursts,
            "fleet": f,
            "nothing_lost_nothing_duplicated": intact,
            "targets": targets,
        }
    )
    return 0 if intact else 1


if __name__ == "__main__":
    sys.exit(main())
