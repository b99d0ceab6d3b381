"""The audit log: an append-only record of what every review run did, beside the checkpoints.

Checkpoints are snapshots for recovery: they are overwritten in spirit (only the latest one
matters to a resume), pruned by ``db prune`` and deleted by ``--fresh``. An audit trail needs the
opposite: every run, how it ended, every file decision and every posting, kept for good. So this
is a plain table in the same database as the checkpoints (the SQLite file, or the Postgres
database), with one row per event, that nothing in the project updates or deletes — a trigger
refuses both, so a bug cannot quietly rewrite history either.

Why our own table and not the LangGraph store: the store is a key-value map (a put replaces a
value, ``delete`` exists), and its rows are found by namespace, not in time order; an event log is
append-and-scan, ordered by its id.

Rows hold names and counts only: paths, reviewer and model names, review ids, outcomes, one-line
error messages (credential-shaped text redacted). Never file content, a diff, a model answer or a
secret.

A run that was SIGKILLed (or lost its machine) leaves a start and no end. The next run of the same
thread (which holds the thread's lease, so the earlier one cannot still be running) records the
end for it: ``killed``.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from review_agent import __version__
from review_agent.redaction import redact_secrets

log = logging.getLogger(__name__)

TABLE = "review_audit"

# event names (what a row says happened)
RUN_STARTED = "run_started"
RUN_ENDED = "run_ended"
PLANNED = "planned"
FILE_REVIEWED = "file_reviewed"
FILE_REUSED = "file_reused"
FILE_FAILED = "file_failed"
POSTED = "posted"
WALKTHROUGH = "walkthrough"
FRESH = "fresh"
FORKED = "forked"
PRUNED = "pruned"

# how a run ended
FINISHED = "finished"
INTERRUPTED = "interrupted"
BUDGET = "budget"
ERROR = "error"
KILLED = "killed"

_SQLITE_SETUP = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        run_id TEXT,
        event TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{{}}'
    )""",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_thread ON {TABLE} (thread_id, id)",
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END""",
)

_PG_SETUP = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        id BIGSERIAL PRIMARY KEY,
        ts TIMESTAMPTZ NOT NULL DEFAULT now(),
        thread_id TEXT NOT NULL,
        run_id TEXT,
        event TEXT NOT NULL,
        data JSONB NOT NULL DEFAULT '{{}}'
    )""",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_thread ON {TABLE} (thread_id, id)",
    f"""CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{TABLE} is append-only'; END $$""",
    f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}",
    f"""CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION {TABLE}_append_only()""",
    f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}",
    f"""CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_append_only()""",
)


@dataclass(frozen=True)
class AuditEvent:
    id: int
    ts: datetime  # UTC
    thread_id: str
    run_id: str | None
    event: str
    data: dict[str, Any]


@dataclass
class RunRecord:
    """One run of one thread, as the log tells it: its start, and its end if one was recorded."""

    run_id: str
    thread_id: str
    number: int  # 1 for the thread's first run
    started_at: datetime
    start: dict[str, Any]
    ended_at: datetime | None = None
    end: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str | None:
        return self.end.get("outcome") if self.end else None

    def looks_alive(self) -> bool:
        """No end recorded and its process still exists on this machine: it is running now.
        (A run on another machine without an end is reported as such, never guessed alive.)"""
        if self.end or self.start.get("host") != socket.gethostname():
            return False
        pid = self.start.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _now() -> datetime:
    return datetime.now(UTC)


def one_line(text: str, limit: int = 300) -> str:
    """A message as it may be kept: one line, bounded, no credential-shaped text."""
    first = (str(text).strip().splitlines() or [""])[0]
    return redact_secrets(first)[:limit]


class _SqliteBackend:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def setup(self) -> None:
        for sql in _SQLITE_SETUP:
            self.conn.execute(sql)

    def exists(self) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
        return row is not None

    def insert(self, rows: list[tuple[str, str | None, str, dict[str, Any]]]) -> None:
        ts = _now().isoformat()
        with self.conn:  # one transaction (the connection is in autocommit mode otherwise)
            self.conn.execute("BEGIN")
            self.conn.executemany(
                f"INSERT INTO {TABLE} (ts, thread_id, run_id, event, data) VALUES (?, ?, ?, ?, ?)",
                [(ts, t, r, e, json.dumps(d, sort_keys=True, default=str)) for t, r, e, d in rows],
            )

    def select(self, where: str, params: tuple[Any, ...]) -> list[AuditEvent]:
        cur = self.conn.execute(
            f"SELECT id, ts, thread_id, run_id, event, data FROM {TABLE} WHERE {where} ORDER BY id",
            params,
        )
        return [
            AuditEvent(r[0], datetime.fromisoformat(r[1]), r[2], r[3], r[4], json.loads(r[5] or "{}"))
            for r in cur.fetchall()
        ]

    def threads_like(self, prefix: str) -> list[tuple[str, datetime]]:
        rows = self.conn.execute(
            f"SELECT thread_id, MAX(ts) FROM {TABLE} WHERE lower(thread_id) LIKE ? ESCAPE '\\' "
            "GROUP BY thread_id ORDER BY MAX(id) DESC",
            (_like_prefix(prefix),),
        ).fetchall()
        return [(r[0], datetime.fromisoformat(r[1])) for r in rows]

    def count(self) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])


class _PostgresBackend:
    def __init__(self, conn: Any) -> None:  # a psycopg.Connection with dict rows, autocommit
        self.conn = conn

    def exists(self) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s) AS t", (TABLE,)).fetchone()
        return row is not None and row["t"] is not None

    def setup(self) -> None:
        if self.exists():
            return
        with self.conn.transaction():
            # two processes setting up one new database at once must not race on the catalog
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TABLE + ".setup",))
            for sql in _PG_SETUP:
                self.conn.execute(sql)

    def insert(self, rows: list[tuple[str, str | None, str, dict[str, Any]]]) -> None:
        from psycopg.types.json import Jsonb

        dumps = lambda d: json.dumps(d, sort_keys=True, default=str)  # noqa: E731
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {TABLE} (thread_id, run_id, event, data) VALUES (%s, %s, %s, %s)",
                [(t, r, e, Jsonb(d, dumps=dumps)) for t, r, e, d in rows],
            )

    def select(self, where: str, params: tuple[Any, ...]) -> list[AuditEvent]:
        rows = self.conn.execute(
            f"SELECT id, ts, thread_id, run_id, event, data FROM {TABLE} WHERE "
            + where.replace("?", "%s")
            + " ORDER BY id",
            params,
        ).fetchall()
        return [
            AuditEvent(r["id"], r["ts"], r["thread_id"], r["run_id"], r["event"], dict(r["data"] or {}))
            for r in rows
        ]

    def threads_like(self, prefix: str) -> list[tuple[str, datetime]]:
        rows = self.conn.execute(
            f"SELECT thread_id, MAX(ts) AS ts FROM {TABLE} WHERE lower(thread_id) LIKE %s "
            "ESCAPE '\\' GROUP BY thread_id ORDER BY MAX(id) DESC",
            (_like_prefix(prefix),),
        ).fetchall()
        return [(r["thread_id"], r["ts"]) for r in rows]

    def count(self) -> int:
        return int(self.conn.execute(f"SELECT count(*) AS n FROM {TABLE}").fetchone()["n"])


def _like_prefix(prefix: str) -> str:
    escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class AuditLog:
    """The append-only event log of one database. Opens its own connection on first use (a
    review's checkpointer and store keep theirs), so recording never waits on a saver's lock."""

    def __init__(self, connect: Callable[[], Any], kind: str) -> None:
        if kind not in ("sqlite", "postgres"):
            raise ValueError(f"no audit log for {kind!r}")
        self._connect = connect
        self._kind = kind
        self._conn: Any = None
        self._backend: _SqliteBackend | _PostgresBackend | None = None
        self._ready = False
        self._lock = threading.RLock()

    # -- connection ------------------------------------------------------------------------

    def _db(self) -> _SqliteBackend | _PostgresBackend:
        if self._backend is None:
            self._conn = self._connect()
            self._backend = (
                _SqliteBackend(self._conn) if self._kind == "sqlite" else _PostgresBackend(self._conn)
            )
        return self._backend

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with suppress(Exception):  # a dropped connection has nothing left to close
                    self._conn.close()
            self._conn = self._backend = None
            self._ready = False

    def setup(self) -> None:
        """Create the table, its index and the append-only triggers (idempotent)."""
        with self._lock:
            self._db().setup()
            self._ready = True

    def _ensure(self) -> _SqliteBackend | _PostgresBackend:
        db = self._db()
        if not self._ready:
            db.setup()
            self._ready = True
        return db

    # -- writing ---------------------------------------------------------------------------

    def record(
        self, thread_id: str, run_id: str | None, event: str, data: Mapping[str, Any] | None = None
    ) -> None:
        """Append one event. ``data``: names and counts only (never content or secrets)."""
        self.record_many([(thread_id, run_id, event, dict(data or {}))])

    def record_many(self, rows: list[tuple[str, str | None, str, dict[str, Any]]]) -> None:
        if not rows:
            return
        with self._lock:
            self._ensure().insert(rows)

    # -- reading ---------------------------------------------------------------------------

    def events(self, thread_id: str) -> list[AuditEvent]:
        with self._lock:
            db = self._db()
            if not self._ready and not db.exists():
                return []
            return db.select("thread_id = ?", (thread_id,))

    def runs(self, thread_id: str) -> list[RunRecord]:
        return runs_of(self.events(thread_id))

    def threads_like(self, prefix: str) -> list[tuple[str, datetime]]:
        """Threads whose id starts with ``prefix`` (case-insensitive), most recent first, with
        the time of their last event: e.g. every head of one pull request."""
        with self._lock:
            db = self._db()
            if not self._ready and not db.exists():
                return []
            return db.threads_like(prefix)

    def count(self) -> int:
        with self._lock:
            db = self._db()
            if not self._ready and not db.exists():
                return 0
            return db.count()

    # -- runs ------------------------------------------------------------------------------

    def start_run(
        self,
        thread_id: str,
        *,
        user: str | None = None,
        reviewer: str = "",
        model: str | None = None,
        options: Mapping[str, Any] | None = None,
        target: str | None = None,
        head_sha: str | None = None,
        resumed_from: int | None = None,
        files_total: int | None = None,
    ) -> AuditRun:
        """Record a run's start, and the end of any earlier run of the thread that never said how
        it ended: it was killed. Call it while holding the thread's lease, so that no earlier run
        can still be alive."""
        run_id = uuid.uuid4().hex[:16]
        rows: list[tuple[str, str | None, str, dict[str, Any]]] = [
            (
                thread_id,
                r.run_id,
                RUN_ENDED,
                {
                    "outcome": KILLED,
                    "message": "ended without a word (killed, or its machine went down); "
                    f"found by run {run_id}",
                    "noticed_by": run_id,
                },
            )
            for r in self.runs(thread_id)
            if not r.end
        ]
        start: dict[str, Any] = {
            "by": _login(),
            "user": user,
            "reviewer": reviewer,
            "model": model,
            "options": dict(options or {}),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "version": __version__,
        }
        for key, value in (
            ("target", target),
            ("head_sha", head_sha),
            ("resumed_from", resumed_from),
            ("files_total", files_total),
        ):
            if value is not None:
                start[key] = value
        rows.append((thread_id, run_id, RUN_STARTED, start))
        self.record_many(rows)
        return AuditRun(self, thread_id, run_id)

    @contextmanager
    def run(self, thread_id: str, **start: Any) -> Iterator[AuditRun]:
        """``start_run``, then the run's end when the block exits: finished, or how it stopped
        (interrupted, budget, error), judged from the exception that left the block."""
        audit_run = self.start_run(thread_id, **start)
        try:
            yield audit_run
        except BaseException as exc:
            audit_run.ended_by(exc)
            raise
        else:
            audit_run.ended(audit_run.outcome or FINISHED, **audit_run.end_data)


def _login() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # some containers have no login name for their uid
        return None


def outcome_of(exc: BaseException) -> str:
    from review_agent.errors import BudgetExhausted, Interrupted

    if isinstance(exc, Interrupted | KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(exc, BudgetExhausted):
        return BUDGET
    return ERROR


class AuditRun:
    """The recording calls for one run of one thread."""

    def __init__(self, log: AuditLog, thread_id: str, run_id: str) -> None:
        self.log = log
        self.thread_id = thread_id
        self.run_id = run_id
        self.outcome: str | None = None  # set to override "finished" at a clean exit
        self.end_data: dict[str, Any] = {}  # extra facts for the end row (files done, calls)
        self._ended = False

    def _put(self, event: str, data: dict[str, Any]) -> None:
        self.log.record(self.thread_id, self.run_id, event, data)

    def planned(self, files_total: int, skipped: list[Mapping[str, Any]] | None = None) -> None:
        """The plan: how many files will be reviewed, and each skipped file with its reason."""
        skipped = [{"path": str(s["path"]), "reason": str(s.get("reason", ""))} for s in skipped or []]
        self._put(PLANNED, {"files_total": files_total, "skipped": skipped})

    def walkthrough(self, writer: str, model_calls: int, note: str | None = None) -> None:
        """The walkthrough was written (by a model, or deterministically, and why)."""
        data: dict[str, Any] = {"writer": writer, "model_calls": model_calls}
        if note:
            data["note"] = one_line(note)
        self._put(WALKTHROUGH, data)

    def file_done(
        self,
        path: str,
        *,
        comments: int,
        reused: bool = False,
        reviewer: str | None = None,
        reused_from: str | None = None,
        model_calls: int | None = None,
    ) -> None:
        """A file's review was saved: reviewed now (by ``reviewer``), or reused from an earlier
        review (``reused_from``: that review's thread, when known)."""
        data: dict[str, Any] = {"path": path, "comments": comments}
        if reviewer:
            data["reviewer"] = reviewer
        if model_calls is not None:
            data["model_calls"] = model_calls
        if reused:
            data["from"] = reused_from
        self._put(FILE_REUSED if reused else FILE_REVIEWED, data)

    def file_failed(self, path: str, reason: str) -> None:
        self._put(FILE_FAILED, {"path": path, "reason": one_line(reason)})

    def posted(self, result: Mapping[str, Any]) -> None:
        """What the publisher did (a ``PublishResult`` as a dict): ids and counts, no bodies."""
        keys = ("review_id", "comments_posted", "comments_already_there", "moved_to_body", "read_only")
        data = {k: result.get(k) for k in keys if k in result}
        data["message"] = one_line(str(result.get("message", "")))
        self._put(POSTED, data)

    def fresh(self, checkpoints_deleted: bool = True) -> None:
        """``--fresh``: the thread's checkpoints and saved reviews were discarded (this log is not)."""
        self._put(FRESH, {"checkpoints_deleted": checkpoints_deleted})

    def ended(self, outcome: str, message: str = "", **data: Any) -> None:
        """How the run ended. Never raises: it is called on the way out of a failure, whose own
        error must reach the user (a missing end is reported as "killed" by the next run)."""
        if self._ended:
            return
        self._ended = True
        row = {"outcome": outcome, **data}
        if message:
            row["message"] = one_line(message)
        try:
            self._put(RUN_ENDED, row)
        except Exception as exc:
            # A run ending in failure already tells the user why (usually the same lost database:
            # one line, not two); the next run marks it killed. A clean end that cannot be
            # recorded is worth a warning.
            level = logging.WARNING if outcome == "finished" else logging.DEBUG
            log.log(
                level,
                "could not record the end of run %s in the audit log: %s",
                self.run_id,
                one_line(str(exc)),
            )

    def ended_by(self, exc: BaseException) -> None:
        message = str(exc) or type(exc).__name__
        code = getattr(exc, "exit_code", None)
        extra = {"exit_code": code} if isinstance(code, int) else {}
        self.ended(outcome_of(exc), message, **self.end_data, **extra)


def runs_of(events: list[AuditEvent]) -> list[RunRecord]:
    """Fold a thread's events into its runs, in the order they started."""
    runs: dict[str, RunRecord] = {}
    for ev in events:
        if ev.run_id is None:
            continue
        if ev.event == RUN_STARTED:
            runs[ev.run_id] = RunRecord(ev.run_id, ev.thread_id, len(runs) + 1, ev.ts, ev.data)
        elif ev.event == RUN_ENDED and ev.run_id in runs and not runs[ev.run_id].end:
            runs[ev.run_id].ended_at = ev.ts
            runs[ev.run_id].end = ev.data
    return list(runs.values())


def sqlite_audit(connect: Callable[[], sqlite3.Connection]) -> AuditLog:
    return AuditLog(connect, "sqlite")


def postgres_audit(connect: Callable[[], Any]) -> AuditLog:
    return AuditLog(connect, "postgres")


__all__ = [
    "AuditEvent",
    "AuditLog",
    "AuditRun",
    "RunRecord",
    "one_line",
    "outcome_of",
    "postgres_audit",
    "runs_of",
    "sqlite_audit",
]
