"""One factory from settings to a checkpointer and a store (DESIGN.md §4).

The maintained savers and stores do the work; this module only opens their connections with the
options they need and turns "cannot connect" into ServiceUnavailable (exit code 3).
"""

from __future__ import annotations

import errno
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from langchain_core.embeddings import Embeddings
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.store.base import BaseStore
from langgraph.store.sqlite import SqliteStore

from review_agent.config import Settings
from review_agent.errors import BadInput, ServiceUnavailable
from review_agent.redaction import redact_url
from review_agent.storage.audit import AuditLog, postgres_audit, sqlite_audit
from review_agent.storage.embeddings import HashingEmbeddings
from review_agent.storage.memory import Learnings
from review_agent.storage.serde import StrictSerializer

log = logging.getLogger(__name__)


@dataclass
class Storage:
    checkpointer: BaseCheckpointSaver
    store: BaseStore
    backend: str  # human-readable: "sqlite (PATH)", "postgres", "postgres + redis"
    audit: AuditLog  # the append-only event log, in the same database (never pruned)
    embeddings: Embeddings | None = None
    vector_index: bool = False  # the store embeds and searches itself (pgvector)

    def learnings(self) -> Learnings:
        return Learnings(self.store, self.embeddings or HashingEmbeddings(), vector_index=self.vector_index)


META_NS = ("review-agent", "meta")


def choose_embeddings(settings: Settings) -> tuple[Embeddings, str, int]:
    """(embeddings, name, dimension). OpenAI's when a model server is configured (and not
    turned off with REVIEW_AGENT_EMBEDDINGS=local), else the local hashing embedding."""
    mode = settings.embeddings
    if mode == "openai" or (mode == "auto" and settings.model_configured):
        from langchain_openai import OpenAIEmbeddings

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "unused"
        emb = OpenAIEmbeddings(
            model=settings.embedding_model,
            dimensions=settings.embedding_dims,
            api_key=key,  # type: ignore[arg-type]
            base_url=settings.openai_base_url,
            check_embedding_ctx_length=False,
            max_retries=settings.model_max_retries,
            timeout=settings.model_timeout,
        )
        return emb, f"openai:{settings.embedding_model}", settings.embedding_dims
    local = HashingEmbeddings()
    return local, local.name, local.dims


def _check_embedding_record(store: BaseStore, name: str, dims: int) -> None:
    """A database's memory is indexed with one embedding, for ever: refuse to mix two."""
    item = store.get(META_NS, "embeddings")
    if item is None:
        store.put(META_NS, "embeddings", {"name": name, "dims": dims}, index=False)
        return
    if item.value.get("name") != name or item.value.get("dims") != dims:
        raise BadInput(
            f"this database's memory is indexed with {item.value.get('name')} "
            f"({item.value.get('dims')} dimensions), not {name} ({dims}): set "
            "REVIEW_AGENT_EMBEDDINGS / REVIEW_AGENT_EMBEDDING_MODEL to match, or use another database"
        )


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


_MISSING = re.compile(r'\b(database|role) "([^"]{1,100})" does not exist')


def _setup_pg_store(store: BaseStore) -> None:
    import psycopg

    try:
        store.setup()  # type: ignore[attr-defined]
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServiceUnavailable(
            "the database role may not create the `vector` extension: run `CREATE EXTENSION vector;` "
            "once as a superuser (or use a pgvector image), then `review-agent db init`"
        ) from exc
    except psycopg.errors.FeatureNotSupported as exc:
        raise ServiceUnavailable(
            f"pgvector is not installed on this PostgreSQL server ({exc}); install it or use "
            "the pgvector/pgvector image"
        ) from exc
    except psycopg.errors.UndefinedFile as exc:
        raise ServiceUnavailable(
            "pgvector is not installed on this PostgreSQL server: install the `vector` extension "
            "(e.g. the postgresql-NN-pgvector package or the pgvector/pgvector image)"
        ) from exc


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
def open_storage(settings: Settings, *, setup: bool = True) -> Iterator[Storage]:
    """Open the checkpointer and store the settings ask for; close them on exit."""
    embeddings, emb_name, dims = choose_embeddings(settings)
    with ExitStack() as stack:
        url = settings.database_url
        if not url:
            path = settings.sqlite_path
            saver_conn = _open_sqlite(path)
            stack.callback(saver_conn.close)
            store_conn = _open_sqlite(path)
            stack.callback(store_conn.close)
            checkpointer: BaseCheckpointSaver = SqliteSaver(saver_conn, serde=StrictSerializer())
            store: BaseStore = SqliteStore(store_conn)
            if setup:
                checkpointer.setup()
                store.setup()
            audit = sqlite_audit(lambda: _open_sqlite(path))
            backend = f"sqlite ({path})"
            vector_index = False
        elif url.startswith(("postgres://", "postgresql://")):
            from langgraph.checkpoint.postgres import PostgresSaver
            from langgraph.store.postgres import PostgresStore

            saver_conn = _open_postgres(url)
            stack.callback(_quietly(saver_conn.close))
            store_conn = _open_postgres(url)
            stack.callback(_quietly(store_conn.close))
            checkpointer = PostgresSaver(saver_conn, serde=StrictSerializer())
            store = PostgresStore(
                store_conn,
                index={"dims": dims, "embed": embeddings, "fields": ["text"]},  # type: ignore[typeddict-item]
            )
            if setup:
                checkpointer.setup()
                _setup_pg_store(store)
            audit = postgres_audit(lambda: _open_postgres(url))
            backend = "postgres"
            vector_index = True
        else:
            raise BadInput(
                f"DATABASE_URL {redact_url(url)!r} is not supported: use postgresql://… or leave it "
                "unset for the embedded SQLite default"
            )
        if settings.redis_url:
            from review_agent.storage.redis_tier import RedisTierSaver

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
        stack.callback(audit.close)
        with translated_errors(settings):
            if setup:
                audit.setup()
                _check_embedding_record(store, emb_name, dims)
            yield Storage(
                checkpointer=checkpointer,
                store=store,
                backend=backend,
                audit=audit,
                embeddings=embeddings,
                vector_index=vector_index,
            )
