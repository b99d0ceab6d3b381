"""One factory from settings to a checkpointer and a store (DESIGN.md §4).

The maintained savers and stores do the work; this module only opens their connections with the
options they need and turns "cannot connect" into ServiceUnavailable (exit code 3).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.store.base import BaseStore
from langgraph.store.sqlite import SqliteStore

from review_agent.config import Settings, redact_url
from review_agent.errors import BadInput, ServiceUnavailable

log = logging.getLogger(__name__)


@dataclass
class Storage:
    checkpointer: BaseCheckpointSaver
    store: BaseStore
    backend: str  # human-readable: "sqlite (PATH)", "postgres", "postgres + redis"


def _open_sqlite(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
    except (OSError, sqlite3.Error) as exc:
        raise ServiceUnavailable(f"cannot open the SQLite database {path}: {exc}") from exc
    return conn


def _open_postgres(url: str):  # -> psycopg.Connection
    import psycopg
    from psycopg.rows import dict_row

    try:
        # autocommit: without it PostgresSaver commits nothing, silently (DESIGN.md §9).
        return psycopg.Connection.connect(
            url, autocommit=True, prepare_threshold=0, row_factory=dict_row, connect_timeout=10
        )
    except psycopg.OperationalError as exc:
        raise ServiceUnavailable(
            f"database at {redact_url(url)} unreachable: {str(exc).strip().splitlines()[0]}"
        ) from exc


@contextmanager
def open_storage(settings: Settings, *, setup: bool = True) -> Iterator[Storage]:
    """Open the checkpointer and store the settings ask for; close them on exit."""
    with ExitStack() as stack:
        url = settings.database_url
        if not url:
            path = settings.sqlite_path
            saver_conn = _open_sqlite(path)
            stack.callback(saver_conn.close)
            store_conn = _open_sqlite(path)
            stack.callback(store_conn.close)
            checkpointer: BaseCheckpointSaver = SqliteSaver(saver_conn)
            store: BaseStore = SqliteStore(store_conn)
            if setup:
                checkpointer.setup()
                store.setup()
            backend = f"sqlite ({path})"
        elif url.startswith(("postgres://", "postgresql://")):
            from langgraph.checkpoint.postgres import PostgresSaver
            from langgraph.store.postgres import PostgresStore

            saver_conn = _open_postgres(url)
            stack.callback(saver_conn.close)
            store_conn = _open_postgres(url)
            stack.callback(store_conn.close)
            checkpointer = PostgresSaver(saver_conn)
            store = PostgresStore(store_conn)
            if setup:
                checkpointer.setup()
                store.setup()
            backend = "postgres"
        else:
            raise BadInput(
                f"DATABASE_URL {redact_url(url)!r} is not supported: use postgresql://… or leave it "
                "unset for the embedded SQLite default"
            )
        if settings.redis_url:
            from review_agent.storage.redis_tier import RedisTierSaver

            checkpointer = RedisTierSaver(
                checkpointer, settings.redis_url, ttl_seconds=settings.redis_ttl_seconds
            )
            backend += " + redis"
        yield Storage(checkpointer=checkpointer, store=store, backend=backend)
