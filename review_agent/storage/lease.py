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
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def _waiting(holder: dict[str, object] | str | None, wait: float) -> str:
    who = holder if isinstance(holder, str) else _describe(holder)
    return f"waiting for the run of this review held by {who}, up to {wait:g} s…"


def _busy(thread_id: str, holder: dict[str, object] | None, wait: float) -> ServiceUnavailable:
    waited = f" after waiting {wait:g}s" if wait else ""
    return ServiceUnavailable(
        f"this review is in progress in {_describe(holder)}{waited}; wait for it, or pass "
        f"--wait SECONDS (thread {thread_id})"
    )


def _file_holder(path: Path) -> dict[str, object] | None:
    try:
        return json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _file_lease(
    home: Path, thread_id: str, wait: float, on_wait: Callable[[str], None] | None
) -> Iterator[None]:
    locks = home / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{stable_digest(thread_id)}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(thread_id, _file_holder(path), wait) from None
                if on_wait is not None and not said:
                    on_wait(_waiting(_file_holder(path), wait))
                    said = True
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


def _advisory_holder(conn: Any, key: int) -> str:
    """Who holds the advisory lock: the application_name its connection set."""
    other = conn.execute(
        "SELECT a.application_name AS name FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
        "AND l.granted AND l.objsubid = 1 "
        "AND l.classid::bigint = ((%s::bigint >> 32) & 4294967295) "
        "AND l.objid::bigint = (%s::bigint & 4294967295) LIMIT 1",
        (key, key),
    ).fetchone()
    return other["name"] if other and other["name"] else "another review-agent process"


@contextlib.contextmanager
def _postgres_lease(
    url: str, thread_id: str, wait: float, on_wait: Callable[[str], None] | None
) -> Iterator[None]:
    from review_agent.storage.factory import open_postgres

    conn = open_postgres(url)
    try:
        holder = _holder()
        name = f"review-agent pid {holder['pid']} on {holder['host']} since {holder['since']}"
        conn.execute("SELECT set_config('application_name', %s, false)", (name[:63],))
        key = _advisory_key(thread_id)
        deadline = time.monotonic() + wait
        said = False
        while True:
            row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()
            if row and row["ok"]:
                break
            if time.monotonic() >= deadline:
                who = _advisory_holder(conn, key)
                waited = f" after waiting {wait:g}s" if wait else ""
                raise ServiceUnavailable(
                    f"this review is in progress in {who}{waited}; wait for it, or pass "
                    f"--wait SECONDS (thread {thread_id})"
                )
            if on_wait is not None and not said:
                on_wait(_waiting(_advisory_holder(conn, key), wait))
                said = True
            time.sleep(0.2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        conn.close()


@contextlib.contextmanager
def thread_lease(
    settings: Settings,
    thread_id: str,
    wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the thread for the duration of the block, or raise ServiceUnavailable (exit 3).
    ``on_wait`` is told once, in one line, when the thread is held elsewhere and ``wait`` lets
    this process wait for it (a silent wait of minutes looks like a hang)."""
    from review_agent.storage.factory import check_location

    check_location(settings)  # a bad DATABASE_URL or REVIEW_AGENT_HOME: one line, its exit code
    if settings.database_url:
        with _postgres_lease(settings.database_url, thread_id, wait, on_wait):
            yield
    else:
        with _file_lease(settings.home, thread_id, wait, on_wait):
            yield
