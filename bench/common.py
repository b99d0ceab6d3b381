"""Shared pieces of the benchmarks: a synthetic change, an instant reviewer, storage, output.

Why synthetic ports: the checkpoint and resume benchmarks measure what the workflow and its savers
cost per superstep, so the source and the reviewer must cost (almost) nothing and be deterministic.
They satisfy the real `Source` and `Reviewer` protocols, so the real `build_graph` runs unchanged.

Why `open_storage` for SQLite and Postgres: a benchmark of storage must open it as a review does
(same connection options, same `setup()` calls, the same Postgres store with its vector index).
The Redis tier is wrapped here rather than by the factory only because the factory has no
setting for the key prefix, and every benchmark run needs a prefix of its own that it can delete.

Where the data lives: a benchmark owns what it touches. Postgres databases get unique names on
the server of ``REVIEW_AGENT_BENCH_POSTGRES_URL`` (default: trust auth as ``postgres`` on
127.0.0.1:5432) and are dropped at the end; Redis is a ``redis-server`` of the benchmark's own on
a free port, without persistence, stopped at the end - unless ``REVIEW_AGENT_BENCH_REDIS_URL``
names one (keys then live under a prefix of their own, deleted at the end).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

from review_agent.config import Settings
from review_agent.reviewers.base import ReviewRequest, ReviewResult
from review_agent.sources.base import ChangedFile, ResolvedTarget
from review_agent.state.schemas import Comment, Usage
from review_agent.storage.factory import Storage, open_storage
from review_agent.storage.redis import RedisTierSaver

POSTGRES_ADMIN_URL = os.environ.get(
    "REVIEW_AGENT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgres", "postgres+redis")


# -- the synthetic change ------------------------------------------------------------------------


class SyntheticSource:
    """A change of `files` Python files, each with a small realistic hunk (about 300 bytes).

    `salt` goes into every blob SHA: the review cache is keyed by blob SHA, so two runs on one
    database with different salts never reuse each other's reviews (which would skip the store
    writes a benchmark must count).
    """

    def __init__(self, files: int, *, salt: str | None = None) -> None:
        self.salt = salt or uuid.uuid4().hex[:8]
        self.head_sha = hashlib.sha1(f"head:{self.salt}".encode()).hexdigest()
        self.base_sha = hashlib.sha1(f"base:{self.salt}".encode()).hexdigest()
        self._files: dict[str, ChangedFile] = {}
        self._content: dict[str, str] = {}
        for i in range(files):
            path = f"src/pkg{i // 100:02d}/mod{i:04d}.py"
            patch = (
                f"@@ -10,6 +10,8 @@ def handler_{i}(request):\n"
                f"     user = request.user\n"
                f"     items = load_items(user, limit={i % 50 + 10})\n"
                f"-    total = sum(item.price for item in items)\n"
                f"+    print('debug', user, items)  # debug\n"
                f"+    total = sum(item.price * item.qty for item in items)\n"
                f"+    log.info('total for %s is %s', user.id, total)\n"
                f"     if total > LIMIT_{i % 7}:\n"
                f"         raise TooExpensive(total)\n"
                f"     return total\n"
            )
            self._files[path] = ChangedFile(
                path=path,
                status="modified",
                patch=patch,
                blob_sha=hashlib.sha1(f"{self.salt}:{path}".encode()).hexdigest(),
                additions=3,
                deletions=1,
            )
            body = "".join(f"# line {n}\n" for n in range(1, 10))
            self._content[path] = body + f"def handler_{i}(request):\n    ...\n"

    def resolve(self) -> ResolvedTarget:
        return ResolvedTarget(
            kind="local",
            display=f"synthetic://{len(self._files)}-{self.salt}",
            head_sha=self.head_sha,
            base_sha=self.base_sha,
            title="synthetic change",
            path=f"/synthetic/{self.salt}",
        )

    def list_files(self) -> list[ChangedFile]:
        return list(self._files.values())

    def get_file(self, path: str) -> ChangedFile | None:
        return self._files.get(path)

    def get_content(self, path: str) -> str | None:
        return self._content.get(path)

    def get_base_content(self, path: str) -> str | None:
        return None


class InstantReviewer:
    """Answers at once with what a model typically returns for a small hunk: a summary and one
    anchored comment, so a finished review has a realistic size (about 400 bytes as JSON)."""

    name = "bench:instant"
    prompt_version = "bench-1"

    def __init__(self) -> None:
        self.calls = 0

    def review(self, request: ReviewRequest) -> ReviewResult:
        self.calls += 1
        added = sorted(request.patch.added)
        comments = []
        if added:
            comments.append(
                Comment(
                    line=added[0],
                    severity="warning",
                    body="A debug `print` is left in; remove it or use the module logger.",
                )
            )
        return ReviewResult(
            summary=(
                f"`{request.path}` now multiplies price by quantity and logs the total. "
                "The arithmetic looks right; a debug print was left behind."
            ),
            comments=comments,
            model_calls=1,
            usage=Usage(input_tokens=420, output_tokens=80),
        )


# -- storage -------------------------------------------------------------------------------------


def bench_settings(home: Path, database_url: str | None = None, **extra: Any) -> Settings:
    """Settings from arguments only: no `.env`, no environment surprises; offline and with local
    embeddings unless `extra` says otherwise (e.g. a model server for the review benchmark)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": None,
        "openai_api_key": None,
        "openai_base_url": None,
        "home": home,
        "embeddings": "local",
    }
    values.update(extra)
    by_alias = {Settings.model_fields[k].alias or k: v for k, v in values.items()}
    return Settings(_env_file=None, **by_alias)  # type: ignore[call-arg]


def clean_up_on_sigterm() -> None:
    """Make SIGTERM end the benchmark as Ctrl-C does, through its `finally` blocks: its Postgres
    databases are dropped and its redis-server stopped however it is stopped."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


@contextmanager
def temp_database(prefix: str = "ra_bench") -> Iterator[str]:
    """A uniquely named, empty Postgres database; dropped on exit (FORCE: a connection left open
    by a failed run cannot keep it alive)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def bench_redis() -> Iterator[str]:
    """The Redis URL to benchmark on: ``REVIEW_AGENT_BENCH_REDIS_URL`` if set, else a private
    ``redis-server`` on a free port (no RDB, no AOF), stopped by its pid on exit. Private by
    default so that a benchmark never touches a Redis it did not start, and so that the bytes
    Redis received are ours alone."""
    given = os.environ.get("REVIEW_AGENT_BENCH_REDIS_URL")
    if given:
        yield given
        return
    if shutil.which("redis-server") is None:
        raise SystemExit(
            "redis-server is not installed; set REVIEW_AGENT_BENCH_REDIS_URL to use another Redis"
        )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="ra-bench-redis-") as folder:
        cmd = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with redis.Redis.from_url(url) as client:
                        client.ping()
                    break
                except redis.exceptions.ConnectionError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("the benchmark's redis-server did not start") from None
                    time.sleep(0.02)
            yield url
        finally:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def redis_prefix(url: str) -> Iterator[str]:
    """A key prefix of our own; every key under it is deleted on exit."""
    prefix = f"ra-bench-{uuid.uuid4().hex[:10]}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            for i in range(0, len(keys), 500):
                client.delete(*keys[i : i + 500])
        finally:
            client.close()


@dataclass
class Place:
    """Where one backend's data lives, so that several opens reach the same data."""

    backend: str
    settings: Settings
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str | None = None


@contextmanager
def backend_place(backend: str, redis_url: str | None = None) -> Iterator[Place]:
    """A fresh database (SQLite file or Postgres database) and, for Postgres via Redis, a key
    prefix on `redis_url` (from `bench_redis`), all removed on exit."""
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ra-bench-")))
        url = None
        prefix = None
        if backend in ("postgres", "postgres+redis"):
            url = stack.enter_context(temp_database("ra_bench"))
        if backend == "postgres+redis":
            if redis_url is None:
                raise ValueError("postgres+redis needs the URL of the benchmark's Redis (bench_redis)")
            prefix = stack.enter_context(redis_prefix(redis_url))
        yield Place(backend, bench_settings(home, url), url, redis_url, prefix)


@contextmanager
def open_place(place: Place, *, setup: bool = False) -> Iterator[Storage]:
    """Open storage as a review does (`open_storage`); for Postgres via Redis, wrap its
    PostgresSaver in the Redis tier exactly as the factory does, with our own prefix."""
    with open_storage(place.settings, setup=setup) as storage:
        if place.redis_url is None or place.redis_prefix is None:
            yield storage
            return
        tier = RedisTierSaver(
            storage.checkpointer,
            place.redis_url,
            ttl_seconds=place.settings.redis_ttl_seconds,
            prefix=place.redis_prefix,
        )
        try:
            yield Storage(
                checkpointer=tier,
                store=storage.store,
                backend=storage.backend + " + redis",
                audit=storage.audit,
                embedder=storage.embedder,
            )
        finally:
            tier.close()


def redis_bytes_in(url: str) -> int:
    """Bytes Redis has received from all clients: the delta over a run is what we sent it
    (other clients of a shared server would add to it; the benchmark machine has none)."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_net_input_bytes"])
    finally:
        client.close()


# -- figures and output --------------------------------------------------------------------------


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def tail_ratio(values: Sequence[float], share: float = 0.1, *, use_median: bool = False) -> float:
    """Mean (or median) of the last `share` of the values over that of the first: 1.0 is flat."""
    if len(values) < 2:
        return float("nan")
    k = max(1, int(len(values) * share))
    stat = statistics.median if use_median else mean
    first = stat(values[:k])
    return stat(values[-k:]) / first if first else float("nan")


def fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """A plain fixed-width table: readable in a terminal and in a CI log."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    if title:
        print(f"\n{title}")

    def line(values: Sequence[str]) -> str:
        # first column left-aligned (names), the others right-aligned (figures)
        pairs = enumerate(zip(values, widths, strict=True))
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in pairs)

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))


def target_line(name: str, value: float, limit: float, *, higher_is_worse: bool = True) -> dict[str, Any]:
    """Print one target check with its gap when it is missed; return it for the JSON line."""
    met = value <= limit if higher_is_worse else value >= limit
    gap = "" if met else f"  MISSED by {value - limit:+.3f} ({value / limit:.2f}x the limit)"
    op = "<=" if higher_is_worse else ">="
    print(f"  {'ok  ' if met else 'FAIL'} {name}: {value:.3f} (target {op} {limit}){gap}")
    return {"value": round(value, 4), "limit": limit, "met": met}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: a figure that does not apply is null
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def emit_json(figures: dict[str, Any]) -> None:
    """The last line of every benchmark: one JSON object of its figures (strict JSON)."""
    print(json.dumps(_finite(figures), sort_keys=True, separators=(",", ":"), allow_nan=False), flush=True)
