"""Throwaway Postgres databases for tests, on the machine's real server (docs/architecture.md,
"Testing").

Each test that needs Postgres gets a database of its own, created empty and dropped afterwards
(with FORCE, so a connection a failing test left open cannot keep it alive), so tests never see
each other's rows and can run in any order.

    with temp_database() as url:
        with psycopg.connect(url, **SAVER_CONN_KWARGS) as conn:
            saver = PostgresSaver(conn)
            saver.setup()

The server is `REVIEW_AGENT_TEST_POSTGRES_URL` (default: trust auth as ``postgres`` on
127.0.0.1:5432, database ``test``); the new databases live on the same server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from tests.tiers import require

ADMIN_URL = os.environ.get("REVIEW_AGENT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

SAVER_CONN_KWARGS: dict[str, Any] = {
    # What PostgresSaver / AsyncPostgresSaver need (docs/architecture.md, "Pitfalls"): without
    # autocommit nothing is committed, silently; rows as dicts. prepare_threshold=0 prepares
    # every statement at once, as the saver's own from_conn_string does and as the product's
    # connections do (which is why they need a direct or session-mode connection, never
    # PgBouncer in transaction mode).
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}


def _new_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def database_url(name: str, admin_url: str = ADMIN_URL) -> str:
    """The admin URL pointing at database `name` instead."""
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _create(name: str) -> sql.Composed:
    return sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))


def _drop(name: str) -> sql.Composed:
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))


@contextmanager
def temp_database(prefix: str = "ra_test") -> Iterator[str]:
    """Create an empty database, yield its URL, drop it on exit (even if the test failed)."""
    require("postgres", "creates a Postgres database")
    name = _new_name(prefix)
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(_create(name))
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(_drop(name))


@asynccontextmanager
async def async_temp_database(prefix: str = "ra_test") -> AsyncIterator[str]:
    """Async twin of `temp_database`, for tests that run on an event loop."""
    require("postgres", "creates a Postgres database")
    name = _new_name(prefix)
    async with await psycopg.AsyncConnection.connect(ADMIN_URL, autocommit=True) as conn:
        await conn.execute(_create(name))
    try:
        yield database_url(name)
    finally:
        async with await psycopg.AsyncConnection.connect(ADMIN_URL, autocommit=True) as conn:
            await conn.execute(_drop(name))


@contextmanager
def limited_role(url: str) -> Iterator[str]:
    """A login role that may create tables in the database at `url` but not extensions (as on
    most managed Postgres services); yields the URL for it, drops the role and what it owns on
    exit."""
    role = _new_name("ra_limited")
    dbname = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(dbname), sql.Identifier(role))
        )
    try:
        parts = urlsplit(url)
        yield urlunsplit(parts._replace(netloc=parts.netloc.replace("postgres@", f"{role}@", 1)))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
