"""Single owner per thread: two processes on one review (a manual rerun while CI runs) must not
both review it.

The lease is tied to the holder's life, so a killed process never blocks the next run:
- SQLite default: an ``flock`` on a file under ``REVIEW_AGENT_HOME/locks`` (the kernel drops it
  when the process dies);
- Postgres: a session-level advisory lock on a dedicated connection (Postgres drops it when the
  connection does).
The holder writes who it is (pid, host, start time) where the waiting process can read it, so
the refusal names the other run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from review_agent.config import Settings
from review_agent.errors import ServiceUnavailable
from review_agent.state.identity import stable_digest


def _holder() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def _describe(holder: dict[str, object] | None) -> str:
    if not holder:
        return "another review-agent process"
    return f"review-agent pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"


def _busy(thread_id: str, holder: dict[str, object] | None, wait: float) -> ServiceUnavailable:
    waited = f" after waiting {wait:g}s" if wait else ""
    return ServiceUnavailable(
        f"this review is in progress in {_describe(holder)}{waited}; wait for it, or pass "
        f"--wait SECONDS (thread {thread_id})"
    )


@contextlib.contextmanager
def _file_lease(home: Path, thread_id: str, wait: float) -> Iterator[None]:
    locks = home / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{stable_digest(thread_id)}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    try:
                        holder = json.loads(path.read_text() or "null")
                    except (OSError, ValueError):
                        holder = None
                    raise _busy(thread_id, holder, wait) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({**_holder(), "thread": thread_id}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _advisory_key(thread_id: str) -> int:
    # a signed 64-bit key from a stable digest (never hash(): it differs between processes)
    return int(stable_digest("lease", thread_id, length=16), 16) - (1 << 63)


@contextlib.contextmanager
def _postgres_lease(url: str, thread_id: str, wait: float) -> Iterator[None]:
    from review_agent.storage.factory import _open_postgres

    conn = _open_postgres(url)
    try:
        holder = _holder()
        name = f"review-agent pid {holder['pid']} on {holder['host']} since {holder['since']}"
        conn.execute("SELECT set_config('application_name', %s, false)", (name[:63],))
        key = _advisory_key(thread_id)
        deadline = time.monotonic() + wait
        while True:
            row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()
            if row and row["ok"]:
                break
            if time.monotonic() >= deadline:
                other = conn.execute(
                    "SELECT a.application_name AS name FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                    "AND l.granted AND l.objsubid = 1 "
                    "AND l.classid::bigint = ((%s::bigint >> 32) & 4294967295) "
                    "AND l.objid::bigint = (%s::bigint & 4294967295) LIMIT 1",
                    (key, key),
                ).fetchone()
                who = other["name"] if other and other["name"] else "another review-agent process"
                waited = f" after waiting {wait:g}s" if wait else ""
                raise ServiceUnavailable(
                    f"this review is in progress in {who}{waited}; wait for it, or pass "
                    f"--wait SECONDS (thread {thread_id})"
                )
            time.sleep(0.2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        conn.close()


@contextlib.contextmanager
def thread_lease(settings: Settings, thread_id: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the thread for the duration of the block, or raise ServiceUnavailable (exit 3)."""
    if settings.database_url:
        with _postgres_lease(settings.database_url, thread_id, wait):
            yield
    else:
        with _file_lease(settings.home, thread_id, wait):
            yield
