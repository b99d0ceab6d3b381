"""The App's tables: procrastinate's queue schema and our own bookkeeping, created idempotently.

procrastinate's ``schema.sql`` is a plain script (``CREATE TYPE``, ``CREATE TABLE`` ...): applied
a second time it fails on the first type that exists. ``db init`` must be safe to run on every
deploy, by several machines at once, so the script runs here in one transaction, under a
transaction-level advisory lock, and only when procrastinate's jobs table is not there yet. A
database whose queue schema is older than the installed procrastinate (one of its functions
missing) is reported with what to do instead of being half-upgraded.

Our own tables:

* ``webhook_deliveries``: one row per ``X-GitHub-Delivery`` id (primary key), inserted in the
  same transaction that defers the job, so a redelivered webhook queues nothing twice;
* ``app_repositories`` / ``app_installations``: which repositories the App serves (from
  deliveries and ``installation`` events), for the periodic reconcile;
* ``app_review_runs``: one row per finished, stopped or failed review job (the App's audit of
  what each job did and why), read by the reconcile, ``/metrics`` and the fleet benchmark;
* ``app_counters``: monotonic counters written by workers (stalled jobs retried).
"""

from __future__ import annotations

import re

from procrastinate.schema import SchemaManager

from review_agent.errors import BadInput, ServiceUnavailable
from review_agent.redaction import redact_url

# a fixed key: every `db init` / `serve` / `worker` start that creates tables takes it in turn
_INIT_LOCK = 0x7265766965770001

APP_TABLES = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id text PRIMARY KEY,
    event text NOT NULL,
    action text,
    repository text,
    outcome text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_repository_idx ON webhook_deliveries (repository, received_at);
CREATE TABLE IF NOT EXISTS app_installations (
    id bigint PRIMARY KEY,
    account text,
    active boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS app_repositories (
    host text NOT NULL,
    full_name text NOT NULL,
    scheme text NOT NULL DEFAULT 'https',
    installation_id bigint,
    active boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, full_name)
);
CREATE TABLE IF NOT EXISTS app_review_runs (
    id bigserial PRIMARY KEY,
    job_id bigint,
    delivery_id text,
    repository text NOT NULL,
    number integer NOT NULL,
    head_sha text NOT NULL,
    outcome text NOT NULL,
    detail text NOT NULL DEFAULT '',
    files integer NOT NULL DEFAULT 0,
    files_reviewed integer NOT NULL DEFAULT 0,
    model_calls integer NOT NULL DEFAULT 0,
    input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    worker text NOT NULL DEFAULT '',
    started_at timestamptz,
    finished_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS app_review_runs_pr_idx ON app_review_runs (lower(repository), number, head_sha);
CREATE TABLE IF NOT EXISTS app_counters (
    name text PRIMARY KEY,
    value bigint NOT NULL DEFAULT 0
);
"""


def _procrastinate_functions(schema_sql: str) -> set[str]:
    return {m.lower() for m in re.findall(r"CREATE FUNCTION\s+(\w+)", schema_sql)}


def ensure_app_schema(url: str) -> str:
    """Create procrastinate's schema (if absent) and our tables (if absent); return what was done.

    Raises ServiceUnavailable when the database is unreachable, BadInput when its queue schema
    is from an older procrastinate."""
    import psycopg

    schema_sql = SchemaManager.get_schema()
    try:
        with psycopg.connect(url, autocommit=False, connect_timeout=10) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INIT_LOCK,))
            row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
            present = bool(row and row[0])
            if present:
                have = {
                    r[0]
                    for r in conn.execute(
                        "SELECT proname FROM pg_proc WHERE proname LIKE 'procrastinate%'"
                    ).fetchall()
                }
                missing = sorted(_procrastinate_functions(schema_sql) - have)
                if missing:
                    raise BadInput(
                        "this database's queue schema is older than the installed procrastinate "
                        f"(missing {', '.join(missing[:3])}): apply procrastinate's migrations "
                        "(see its documentation, `procrastinate schema --migrations-path`), then "
                        "rerun `review-agent db init`"
                    )
                done = "queue schema present"
            else:
                conn.execute(schema_sql)  # no parameters: psycopg sends the script as it is
                done = "queue schema created"
            conn.execute(APP_TABLES)
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["unreachable"])[0]
        raise ServiceUnavailable(f"database at {redact_url(url)} unreachable: {first}") from exc
    return done
