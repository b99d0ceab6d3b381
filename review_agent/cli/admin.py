"""`db`, `serve`, `worker` and the Action's entry point: running the service."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Annotated

import typer

from review_agent.cli.common import (
    _run,
    _settings,
    app,
    db_app,
    err,
)
from review_agent.wording import plural

if TYPE_CHECKING:
    pass


@db_app.command("init")
def db_init() -> None:
    """Create tables, extensions, indexes and the App's queue schema (idempotent)."""
    from review_agent.storage.factory import open_storage

    settings = _settings()

    def _init() -> tuple[str, list[str], str | None]:
        with open_storage(settings, setup=True) as storage:
            backend, migrated, note = storage.backend, storage.migrated, storage.memory_note
        if settings.database_url and settings.database_url.startswith(("postgres://", "postgresql://")):
            from review_agent.worker.schema import ensure_app_schema

            ensure_app_schema(settings.database_url)  # the GitHub App's queue and bookkeeping
        return backend, migrated, note

    backend, migrated, memory_note = _run(_init)
    typer.echo(f"database ready: {backend}")
    typer.echo(f"migrations applied: {', '.join(migrated)}" if migrated else "migrations: up to date")
    if memory_note:  # Postgres without pgvector: memory works (vectors compared in Python)
        typer.echo(f"note: memory compares vectors in Python, not pgvector: {memory_note}", err=True)


@db_app.command("prune")
def db_prune() -> None:
    """Keep only the latest checkpoint of every review (reviews and the audit log are kept)."""
    from review_agent.storage.factory import open_storage
    from review_agent.storage.retention import prune_to_latest

    settings = _settings()

    def _prune():  # type: ignore[no-untyped-def]
        with open_storage(settings) as storage:
            return prune_to_latest(storage.checkpointer, storage.audit)

    r = _run(_prune)
    if r.removed:
        reviews = plural(r.threads, "review")
        typer.echo(f"pruned {reviews}: {r.checkpoints_before} checkpoints -> {r.checkpoints_after}")
    else:
        kept = plural(r.checkpoints_after, "checkpoint")
        typer.echo(f"nothing to prune: {kept}, each the latest of its review")
    if r.bytes_before is not None and r.bytes_after is not None:
        typer.echo(f"database file: {_mb(r.bytes_before)} -> {_mb(r.bytes_after)}")


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n / 1000:.0f} kB"


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8080,
) -> None:
    """The GitHub App's webhook receiver: verify, record, queue (needs DATABASE_URL on Postgres)."""
    from review_agent.server.app import serve as run_server

    settings = _settings()
    err.print(f"serving webhooks on http://{host}:{port}/webhook", highlight=False)
    _run(run_server, settings, host, port)


@app.command()
def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-j", min=1, max=64, help="Files reviewed at a time, per review.")
    ] = 4,
    jobs: Annotated[
        int, typer.Option("--jobs", min=1, max=32, help="Reviews run at a time by this process.")
    ] = 1,
) -> None:
    """A queue worker of the GitHub App: runs queued reviews until SIGINT/SIGTERM."""
    from review_agent.worker.runner import run_worker

    settings = _settings()
    logging.getLogger("review_agent").setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:  # a long-running process: say when
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
    raise typer.Exit(_run(run_worker, settings, concurrency=concurrency, jobs=jobs))


@app.command(hidden=True)
def action() -> None:
    """Entry point of the GitHub Action (action.yml): reads the event payload and INPUT_* variables."""
    from review_agent.action import run_action

    raise typer.Exit(run_action(os.environ))
