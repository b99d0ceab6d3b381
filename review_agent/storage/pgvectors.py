"""Learnings' vectors in pgvector: on Postgres, the similarity search of memory runs in SQL.

A learning's text is the truth; a vector is what one embedder made of it (``storage/vectors.py``).
Here each (learning, embedder) pair is a row of ``review_agent_learning_vectors``, whose
``embedding`` column is an untyped ``vector``: two embedders, of any sizes, live side by side, so
switching the model server on, off, or to another model never refuses a command. For each
embedder (and size) the first write of its vectors creates a partial HNSW index over the column
cast to that size (``halfvec`` above 2,000 dimensions, none above 4,000: then the search is an
exact scan, still in SQL), and a search is ``ORDER BY embedding::vector(N) <=> query LIMIT k``
(cosine), filtered by the review's namespaces and the embedder, with pgvector's iterative index
scan so that the filter cannot starve the result.

Why our own SQL: LangGraph's maintained ``PostgresStore`` indexes with one embedding function
into one vector column of a fixed size for the whole database, so it cannot keep two embedders'
vectors. The SQL is kept in this module, as named constants, the way langgraph-checkpoint-postgres
keeps its own; ``pgvector`` (the maintained Python package) adapts the values.

Without the extension (the role may not create it, or the server lacks it), memory keeps its
vectors as store items and scores them in Python (``VectorCache``), with one warning that says
what to do: never a refused review.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from review_agent.errors import ServiceUnavailable
from review_agent.state.identity import stable_digest
from review_agent.storage.vectors import Ref

log = logging.getLogger(__name__)

TABLE = "review_agent_learning_vectors"

EXTENSION_VERSION = "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
EXTENSION_ON_SERVER = "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
TABLE_PRESENT = "SELECT to_regclass('review_agent_learning_vectors') IS NOT NULL AS present"
CREATE_EXTENSION = "CREATE EXTENSION IF NOT EXISTS vector"
CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS review_agent_learning_vectors (
    namespace text NOT NULL,
    key text NOT NULL,
    embedder text NOT NULL,
    dims integer NOT NULL CHECK (dims > 0),
    embedding vector NOT NULL,
    PRIMARY KEY (namespace, key, embedder),
    CHECK (vector_dims(embedding) = dims)
)"""
UPSERT = """
INSERT INTO review_agent_learning_vectors (namespace, key, embedder, dims, embedding)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (namespace, key, embedder) DO UPDATE SET dims = EXCLUDED.dims, embedding = EXCLUDED.embedding"""
PRESENT = """
SELECT namespace, key FROM review_agent_learning_vectors
WHERE embedder = %s AND namespace = ANY(%s)"""
DELETE_KEYS = "DELETE FROM review_agent_learning_vectors WHERE namespace = %s AND key = ANY(%s)"
EMBEDDERS = """
SELECT embedder, dims, count(*) AS vectors FROM review_agent_learning_vectors
GROUP BY embedder, dims ORDER BY embedder, dims"""
INDEX_PRESENT = "SELECT to_regclass(%s) IS NOT NULL AS present"
INDEX_LOCK = "SELECT pg_advisory_xact_lock(%s)"
# {index}, {cast} (e.g. vector(1536)), {ops}, {embedder} and {dims} are composed with psycopg.sql
CREATE_INDEX = """
CREATE INDEX IF NOT EXISTS {index} ON review_agent_learning_vectors
USING hnsw ((embedding::{cast}) {ops}) WHERE embedder = {embedder} AND dims = {dims}"""
# the embedder is a parameter (statements here are never server-prepared, so each is planned
# with its values and matches the partial index); {cast} and {dims} are composed
NEAREST = """
SELECT namespace, key, 1 - (embedding::{cast} <=> %(query)s::{cast}) AS similarity
FROM review_agent_learning_vectors
WHERE embedder = %(embedder)s AND dims = {dims} AND namespace = ANY(%(namespaces)s)
ORDER BY embedding::{cast} <=> %(query)s::{cast}
LIMIT %(k)s"""
# pgvector 0.8+: keep scanning the index until k rows pass the namespace filter, in order
ITERATIVE_SCAN = "SET LOCAL hnsw.iterative_scan = strict_order"

INDEX_LOCK_KEY = 0x7265766965772D76  # "review-v": one process creates an embedder's index
MAX_VECTOR_INDEX_DIMS = 2_000  # pgvector's HNSW limit for `vector`
MAX_HALFVEC_INDEX_DIMS = 4_000  # ... and for `halfvec` (0.7+)

ADVICE = "then `review-agent db init`"


@dataclass(frozen=True)
class PgVectorState:
    """What a database has: the extension's version (None: not enabled here) and our table."""

    version: str | None
    table: bool

    @property
    def ready(self) -> bool:
        return self.version is not None and self.table


def _version_tuple(version: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def pgvector_state(conn: Any) -> PgVectorState:
    row = conn.execute(EXTENSION_VERSION).fetchone()
    version = _row(row, "extversion")
    table = bool(_row(conn.execute(TABLE_PRESENT).fetchone(), "present"))
    return PgVectorState(version, table)


def _row(row: Any, name: str) -> Any:
    if row is None:
        return None
    return row[name] if isinstance(row, dict) else row[0]


def unavailable_reason(conn: Any) -> str:
    """Why this database has no pgvector, and what the operator does about it."""
    on_server = _row(conn.execute(EXTENSION_ON_SERVER).fetchone(), "default_version")
    if on_server is None:
        return not_installed()
    return (
        "the `vector` extension is not enabled in this database: run `CREATE EXTENSION vector;` "
        f"in it once as a superuser, {ADVICE}"
    )


def not_installed() -> str:
    return (
        "pgvector is not installed on this PostgreSQL server: install it (the postgresql-NN-pgvector "
        f"package, or a pgvector/pgvector image), {ADVICE}"
    )


def may_not_create() -> str:
    return (
        "the database role may not create the `vector` extension: run `CREATE EXTENSION vector;` "
        f"in this database once as a superuser (or use a pgvector image), {ADVICE}"
    )


def setup(conn: Any) -> str | None:
    """Enable the extension (if it is not) and create the table. Returns why pgvector cannot be
    used, or None. A refusal is an answer, not an error: memory then scores in Python."""
    import psycopg

    try:
        if pgvector_state(conn).version is None:
            conn.execute(CREATE_EXTENSION)
        conn.execute(CREATE_TABLE)
    except psycopg.errors.InsufficientPrivilege:
        if pgvector_state(conn).version is None:
            return may_not_create()
        raise  # the extension is there: a role that may not create tables is said elsewhere
    except (psycopg.errors.UndefinedFile, psycopg.errors.FeatureNotSupported):
        return not_installed()
    return None


def index_name(embedder: str, dims: int) -> str:
    return f"review_agent_lv_{stable_digest(embedder, str(dims), length=20)}"


def vector_cast(dims: int, version: str | None) -> tuple[str, str | None]:
    """(the type the column is cast to for this size, the HNSW operator class or None: no index)."""
    if dims <= MAX_VECTOR_INDEX_DIMS:
        return f"vector({dims})", "vector_cosine_ops"
    if dims <= MAX_HALFVEC_INDEX_DIMS and version and _version_tuple(version) >= (0, 7):
        return f"halfvec({dims})", "halfvec_cosine_ops"
    return f"vector({dims})", None


def nearest_statement(dims: int, version: str | None) -> Any:  # -> psycopg.sql.Composed
    """The search, for an embedder of this size (tests EXPLAIN it)."""
    from psycopg import sql

    cast, _ops = vector_cast(dims, version)
    return sql.SQL(NEAREST).format(cast=sql.SQL(cast), dims=sql.Literal(dims))


def _text(ns: tuple[str, ...]) -> str:
    return ".".join(ns)  # labels are percent-escaped: no dot inside a part


def _namespace(text: str) -> tuple[str, ...]:
    return tuple(text.split("."))


class PgVectors:
    """The pgvector side of memory for one process: one connection of its own (opened when first
    needed; files are reviewed in parallel, so calls are serialised), the indexes it made."""

    def __init__(self, connect: Callable[[], Any], version: str | None) -> None:
        self._connect = connect
        self.version = version
        self._conn: Any = None
        self._lock = threading.RLock()
        self._indexed: set[tuple[str, int]] = set()

    @contextmanager
    def _session(self) -> Iterator[Any]:
        import psycopg
        from pgvector.psycopg import register_vector

        with self._lock:
            try:
                if self._conn is None:
                    conn = self._connect()
                    conn.prepare_threshold = None  # planned with its values: partial indexes match
                    register_vector(conn)
                    self._conn = conn
                yield self._conn
            except psycopg.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ServiceUnavailable(f"pgvector memory failed: {first}") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def present(self, embedder: str, namespaces: Sequence[tuple[str, ...]]) -> set[Ref]:
        """Which learnings of these namespaces have a vector of this embedder."""
        if not namespaces:
            return set()
        with self._session() as conn:
            rows = conn.execute(PRESENT, (embedder, [_text(ns) for ns in namespaces])).fetchall()
        return {(_namespace(r["namespace"]), r["key"]) for r in rows}

    def put_many(self, embedder: str, rows: Sequence[tuple[Ref, list[float]]]) -> None:
        from pgvector import Vector

        if not rows:
            return
        with self._session() as conn:
            for dims in sorted({len(vec) for _ref, vec in rows}):
                self._ensure_index(conn, embedder, dims)
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    UPSERT,
                    [(_text(ns), key, embedder, len(vec), Vector(vec)) for (ns, key), vec in rows],
                )

    def _ensure_index(self, conn: Any, embedder: str, dims: int) -> None:
        """The partial HNSW index of this embedder and size, created on its first vectors."""
        from psycopg import sql

        if (embedder, dims) in self._indexed:
            return
        name = index_name(embedder, dims)
        cast, ops = vector_cast(dims, self.version)
        if ops is not None and not _row(conn.execute(INDEX_PRESENT, (name,)).fetchone(), "present"):
            statement = sql.SQL(CREATE_INDEX).format(
                index=sql.Identifier(name),
                cast=sql.SQL(cast),
                ops=sql.SQL(ops),
                embedder=sql.Literal(embedder),
                dims=sql.Literal(dims),
            )
            with conn.transaction():
                conn.execute(INDEX_LOCK, (INDEX_LOCK_KEY,))
                conn.execute(statement)
            log.info("created the pgvector index %s for %s (%d dimensions)", name, embedder, dims)
        self._indexed.add((embedder, dims))

    def nearest(
        self, embedder: str, namespaces: Sequence[tuple[str, ...]], query: Sequence[float], k: int
    ) -> dict[Ref, float]:
        """The k learnings of these namespaces whose vectors (of this embedder) are nearest the
        query, with their cosine similarity."""
        from pgvector import Vector

        if not namespaces or not query:
            return {}
        params = {
            "query": Vector(list(query)),
            "embedder": embedder,
            "namespaces": [_text(ns) for ns in namespaces],
            "k": k,
        }
        with self._session() as conn, conn.transaction():
            if self.version and _version_tuple(self.version) >= (0, 8):
                conn.execute(ITERATIVE_SCAN)
            rows = conn.execute(nearest_statement(len(query), self.version), params).fetchall()
        found = {(_namespace(r["namespace"]), r["key"]): float(r["similarity"]) for r in rows}
        return {ref: sim for ref, sim in found.items() if math.isfinite(sim)}  # a zero vector: NaN

    def forget(self, refs: Sequence[Ref]) -> None:
        """Delete these learnings' vectors, of every embedder."""
        by_ns: dict[str, list[str]] = {}
        for ns, key in refs:
            by_ns.setdefault(_text(ns), []).append(key)
        if not by_ns:
            return
        with self._session() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(DELETE_KEYS, list(by_ns.items()))

    def embedders(self) -> list[tuple[str, int, int]]:
        """(embedder, dims, how many vectors) held here."""
        with self._session() as conn:
            rows = conn.execute(EMBEDDERS).fetchall()
        return [(r["embedder"], r["dims"], r["vectors"]) for r in rows]
