"""One factory from settings to a checkpointer and a store (docs/architecture.md, "Storage").

The maintained savers and stores do the work; this module only opens their connections with the
options they need, sets a database up on first use (``storage/migrations.py``), and turns "cannot
connect" into ServiceUnavailable (exit code 3) and a bad location into one line. On Postgres it
also chooses where memory's vectors live: pgvector when the database has (or lets us create) the
extension, else store items scored in Python, said once (``storage/pgvectors.py``).
"""

from __future__ import annotations

import errno
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.store.base import BaseStore, TTLConfig
from langgraph.store.sqlite import SqliteStore

from review_agent.config import Settings
from review_agent.errors import BadInput, ServiceUnavailable
from review_agent.redaction import redact_url
from review_agent.storage.audit import AuditLog, postgres_audit, sqlite_audit
from review_agent.storage.embeddings import Embedder, choose_embedder
from review_agent.storage.memory import Learnings
from review_agent.storage.migrations import MigrationContext, apply_pending, record_setup, setup_is_current
from review_agent.storage.pgvectors import PgVectors, PgVectorState, pgvector_state, unavailable_reason
from review_agent.storage.pgvectors import setup as pgvector_setup
from review_agent.storage.serde import StrictSerializer
from review_agent.storage.vectors import VectorCache, VectorIndex

log = logging.getLogger(__name__)


@dataclass
class Storage:
    checkpointer: BaseCheckpointSaver
    store: BaseStore
    backend: str  # human-readable: "sqlite (PATH)", "postgres", "postgres + redis"
    audit: AuditLog  # the append-only event log, in the same database (never pruned)
    embedder: Embedder | None = None  # None: offline, recall is lexical
    migrated: list[str] = field(default_factory=list)  # migrations this opening applied
    vectors: VectorIndex | None = None  # learnings' vectors: pgvector, or store items (None)
    memory_note: str | None = None  # Postgres without pgvector: why, and what to do

    def learnings(self) -> Learnings:
        return Learnings(self.store, self.embedder, self.vectors)


@dataclass
class _PgMemory:
    """pgvector on one Postgres database: what it has, its setup with the rest, or why not."""

    conn: Any  # the store's connection: the state and the setup run on it
    vectors: PgVectors
    state: PgVectorState
    note: str | None = None

    def context(self, store: BaseStore) -> MigrationContext:
        return MigrationContext(store, "postgres", self.vectors if self.state.ready else None)

    def arrived(self) -> bool:
        """The extension was enabled since our setup (by a superuser): our table is next."""
        return self.state.version is not None and not self.state.table

    def setup(self) -> None:
        self.note = pgvector_setup(self.conn)
        self.state = pgvector_state(self.conn)
        self.vectors.version = self.state.version

    def index(self, store: BaseStore) -> tuple[VectorIndex, str | None]:
        if self.state.ready:
            return self.vectors, None
        note = self.note or unavailable_reason(self.conn)
        return VectorCache(store, fallback=note), note


def check_location(settings: Settings) -> None:
    """Refuse, before anything is opened or created, a DATABASE_URL that cannot name a Postgres
    database (exit 2) and a REVIEW_AGENT_HOME that cannot be a directory (exit 3, as when the
    SQLite file cannot be opened). Every command, and the review's lease, call this first."""
    url = settings.database_url
    if url:
        parts = urlsplit(url)
        problem = None
        if parts.scheme not in ("postgres", "postgresql"):
            given = f"{parts.scheme}://" if parts.scheme else "none"
            problem = f"the scheme must be postgresql://, not {given}"
        else:
            try:
                parts.port  # noqa: B018 - parsing it is the check
            except ValueError:
                problem = "the port is not a number"
        if problem:
            raise BadInput(
                f"DATABASE_URL {redact_url(url)!r} is not supported ({problem}): use "
                "postgresql://USER@HOST/DB, or leave it unset for the embedded SQLite default"
            )
        return
    home = settings.home
    for parent in (home, *home.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ServiceUnavailable(
                    f"cannot use REVIEW_AGENT_HOME {home}: {parent} is a file, not a directory; "
                    "point REVIEW_AGENT_HOME at a directory"
                )
            return


def open_sqlite(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the embedded database, each part of storage its own (the saver, the store
    and the audit log keep their own transactions): WAL, so readers never wait on the writer."""
    try:
        if read_only:  # the connection itself cannot write: a read-only command never does
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
    except (OSError, sqlite3.Error) as exc:
        raise ServiceUnavailable(f"cannot open the SQLite database {path}: {exc}") from exc
    return conn


def open_postgres(url: str, *, read_only: bool = False):  # -> psycopg.Connection
    """A connection as every part of storage needs it (the lease too); a wrong name is exit 2,
    an unreachable server exit 3."""
    import psycopg
    from psycopg.rows import dict_row

    # read-only: the server refuses any write in this session, so a read-only command cannot
    # write even by mistake
    options = {"options": "-c default_transaction_read_only=on"} if read_only else {}
    try:
        # autocommit: without it PostgresSaver commits nothing, silently (docs/architecture.md,
        # "Pitfalls"). prepare_threshold=0 prepares every statement at once, as the saver's own
        # from_conn_string does: a direct or session-mode connection, never PgBouncer in
        # transaction mode (langgraph#6705).
        return psycopg.Connection.connect(
            url, autocommit=True, prepare_threshold=0, row_factory=dict_row, connect_timeout=10, **options
        )
    except psycopg.OperationalError as exc:
        missing = _MISSING.search(str(exc))
        if missing:  # the server answered: not unreachable, but a name that is wrong (exit 2)
            kind, name = missing.groups()
            raise BadInput(
                f'{kind} "{name}" does not exist on the server of {redact_url(url)}: create it, or fix '
                "DATABASE_URL"
            ) from exc
        raise ServiceUnavailable(
            f"database at {redact_url(url)} unreachable: {str(exc).strip().splitlines()[0]}"
        ) from exc
    except psycopg.ProgrammingError as exc:  # a URL libpq cannot parse
        raise BadInput(
            f"DATABASE_URL {redact_url(url)!r} is not a valid connection URL: "
            f"{str(exc).strip().splitlines()[0]}"
        ) from exc


_MISSING = re.compile(r'\b(database|role) "([^"]{1,100})" does not exist')


def _sqlite_tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


def _postgres_tables(conn) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchall()
    return {r["table_name"] for r in rows}


# the tables a set-up database has (the savers name their writes table differently)
REQUIRED_TABLES = {
    "sqlite": frozenset({"checkpoints", "writes", "store", "store_migrations"}),
    "postgres": frozenset({"checkpoints", "checkpoint_writes", "store", "store_migrations"}),
}
SETUP_LOCK = 0x7265766965772D61  # "review-a": one process sets a Postgres database up at a time


def _setup(
    checkpointer: BaseCheckpointSaver,
    store: BaseStore,
    audit: AuditLog,
    ready: bool,
    *,
    force: bool,
    pg: _PgMemory | None,
) -> list[str]:
    """First use, ``db init`` (force), a library upgrade, or the vector extension enabled since:
    the savers' and the store's own setup, pgvector's, then our pending migrations. Otherwise
    nothing: opening a current database writes nothing. Returns the migrations applied."""
    ctx = pg.context(store) if pg else MigrationContext(store, "sqlite")
    if not force and ready and setup_is_current(ctx) and not (pg and pg.arrived()):
        return []
    checkpointer.setup()
    store.setup()  # type: ignore[attr-defined]
    audit.setup()
    if pg:
        pg.setup()
        ctx = pg.context(store)
    ran = apply_pending(ctx)
    record_setup(store)
    return ran


def check_redis_url(url: str) -> None:
    """Refuse a REDIS_URL that cannot name a Redis database (redis-py would quietly use db 0)."""
    parts = urlsplit(url)
    problem = None
    if parts.scheme not in ("redis", "rediss", "unix"):
        problem = f"the scheme must be redis://, rediss:// or unix://, not {parts.scheme or 'none'!r}"
    elif parts.scheme != "unix":
        try:
            parts.port  # noqa: B018 - parsing it is the check
        except ValueError:
            problem = "the port is not a number"
        db = parts.path.strip("/")
        if problem is None and db and not db.isdigit():
            problem = f"the database must be a number, not {db[:20]!r}"
    if problem:
        raise BadInput(f"REDIS_URL is not a valid Redis URL ({redact_url(url)}): {problem}")


def _quietly(close: Callable[[], None]) -> Callable[[], None]:
    """Closing a connection that the server already dropped must not hide the real error."""

    def run() -> None:
        with suppress(Exception):
            close()

    return run


@contextmanager
def translated_errors(settings: Settings) -> Iterator[None]:
    """A database lost or full in the middle of a review is a service problem (exit 3, state
    saved up to the last step), said in one line — not a traceback."""
    import psycopg

    try:
        yield
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["connection lost"])[0]
        raise ServiceUnavailable(
            f"database at {redact_url(settings.database_url)} failed: {first}; progress up to the "
            "last saved step is kept: rerun the same command when it is back"
        ) from exc
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise ServiceUnavailable(
                f"the SQLite database {settings.sqlite_path} stayed locked by another process for "
                "30 s; rerun the same command when it is done"
            ) from exc
        raise ServiceUnavailable(
            f"cannot write the SQLite database {settings.sqlite_path}: {exc}; free some space (or "
            "fix its permissions) and rerun the same command"
        ) from exc
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise
        raise ServiceUnavailable(
            f"no space left for review-agent's state ({exc.strerror}); free some space and rerun"
        ) from exc


@contextmanager
def open_storage(settings: Settings, *, setup: bool = False, read_only: bool = False) -> Iterator[Storage]:
    """Open the checkpointer and store the settings ask for; close them on exit.

    ``setup=True`` (``db init``) runs every setup step and pending migration; otherwise they
    run on first use only. ``read_only=True`` (``status``, ``history``, ``prefs list``) writes
    nothing: SQLite is opened read-only, the Postgres checkpointer's session is read-only, the
    store's reads refresh no expiry, and a database that does not exist yet reads as empty
    instead of being created.
    """
    check_location(settings)
    embedder = choose_embedder(settings)
    with ExitStack() as stack:
        url = settings.database_url
        tables: set[str]
        pg: _PgMemory | None = None
        if not url:
            path = settings.sqlite_path
            backend = f"sqlite ({path})"
            if read_only and not path.exists():
                yield _empty(backend, embedder)
                return
            saver_conn = open_sqlite(path, read_only=read_only)
            stack.callback(saver_conn.close)
            store_conn = open_sqlite(path, read_only=read_only)
            stack.callback(store_conn.close)
            with translated_errors(settings):
                tables = _sqlite_tables(store_conn)
            checkpointer: BaseCheckpointSaver = SqliteSaver(saver_conn, serde=StrictSerializer())
            store: BaseStore = SqliteStore(store_conn, ttl=_ttl(read_only))
            audit = sqlite_audit(lambda: open_sqlite(path, read_only=read_only))
        else:
            from langgraph.checkpoint.postgres import PostgresSaver
            from langgraph.store.postgres import PostgresStore

            backend = "postgres"
            saver_conn = open_postgres(url, read_only=read_only)
            stack.callback(_quietly(saver_conn.close))
            # not read-only at the server: the store's every `get` is an UPDATE ... RETURNING
            # that refreshes expiry times (none here: no item has a TTL, and reads refresh none)
            store_conn = open_postgres(url)
            stack.callback(_quietly(store_conn.close))
            with translated_errors(settings):
                tables = _postgres_tables(store_conn)
                state = pgvector_state(store_conn)
            vectors = PgVectors(lambda: open_postgres(url, read_only=read_only), state.version)
            stack.callback(_quietly(vectors.close))
            pg = _PgMemory(store_conn, vectors, state)
            checkpointer = PostgresSaver(saver_conn, serde=StrictSerializer())
            store = PostgresStore(store_conn, ttl=_ttl(read_only))
            audit = postgres_audit(lambda: open_postgres(url, read_only=read_only))
        ready = tables >= REQUIRED_TABLES["postgres" if url else "sqlite"]
        stack.callback(audit.close)
        if read_only and not ready:
            yield _empty(backend + (" + redis" if settings.redis_url else ""), embedder)
            return
        migrated: list[str] = []
        if not read_only:
            with translated_errors(settings), _setup_errors(), _setup_lock(store_conn if url else None):
                migrated = _setup(checkpointer, store, audit, ready, force=setup, pg=pg)
        index: VectorIndex | None = None
        note: str | None = None
        if pg is not None:
            with translated_errors(settings):
                index, note = pg.index(store)
        if settings.redis_url:
            from review_agent.storage.redis import RedisTierSaver

            check_redis_url(settings.redis_url)
            try:
                tier = RedisTierSaver(
                    checkpointer, settings.redis_url, ttl_seconds=settings.redis_ttl_seconds
                )
            except ValueError as exc:
                raise BadInput(f"REDIS_URL is not a valid redis:// URL: {exc}") from exc
            stack.callback(tier.close)
            checkpointer = tier
            backend += " + redis"
        with translated_errors(settings):
            yield Storage(checkpointer, store, backend, audit, embedder, migrated, index, note)


def _ttl(read_only: bool) -> TTLConfig | None:
    """Reading an item refreshes its expiry by default, which is a write: not when read-only."""
    return {"refresh_on_read": False} if read_only else None


def _empty(backend: str, embedder: Embedder | None) -> Storage:
    """A database that does not exist yet, as a read-only command sees it: empty."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    nothing = sqlite_audit(lambda: sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None))
    return Storage(InMemorySaver(serde=StrictSerializer()), InMemoryStore(), backend, nothing, embedder)


@contextmanager
def _setup_lock(conn) -> Iterator[None]:
    """Two processes using a fresh Postgres database at once set it up one after the other.

    Polled with pg_try_advisory_lock, never waited for in one blocking statement: the holder's
    checkpointer setup runs CREATE INDEX CONCURRENTLY on another connection, which waits for
    every statement in flight; a waiter blocked in pg_advisory_lock is one, and waits for the
    holder in turn — a deadlock Postgres cannot see (several App workers starting at once)."""
    if conn is None:
        yield
        return
    while not conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (SETUP_LOCK,)).fetchone()["ok"]:
        time.sleep(0.1)
    try:
        yield
    finally:
        with suppress(Exception):
            conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))


@contextmanager
def _setup_errors() -> Iterator[None]:
    """A role that may not create tables is told so in one line."""
    import psycopg

    try:
        yield
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServiceUnavailable(
            "the database role may not create review-agent's tables: run `review-agent db init` "
            f"once as a role that may ({str(exc).strip().splitlines()[0]})"
        ) from exc
