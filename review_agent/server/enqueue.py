"""Record a delivery and queue what it asks for, in one Postgres transaction.

The delivery id (``X-GitHub-Delivery``, the same on every redelivery) is inserted first with
``ON CONFLICT DO NOTHING``: when it was already there the transaction does nothing more, so a
delivery that GitHub sends again (a timeout on our side, a manual redelivery, a receiver killed
after the commit) queues nothing twice. The job is deferred on the same connection, so the
delivery row and the job commit together or not at all.

One waiting job per pull request: procrastinate's ``queueing_lock`` on ``OWNER/REPO#N``. A newer
head replaces the waiting job (cancelled through procrastinate, then the new one deferred),
under a transaction-level advisory lock on that key so that two deliveries for one pull request
cannot race between the two steps. Transaction-level locks also work through a pooler in
transaction mode, unlike session locks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import procrastinate
from psycopg import AsyncConnection

from review_agent.server.events import Action, Cancel, Command, Ignore, Installation, Review
from review_agent.state.identity import stable_digest
from review_agent.worker.queue import COMMAND_TASK, REVIEW_QUEUE, REVIEW_TASK, pr_key


@dataclass(frozen=True)
class Outcome:
    status: str  # "queued", "duplicate", "ignored", "cancelled", "recorded"
    detail: str = ""
    job_id: int | None = None


def _xact_key(key: str) -> int:
    return int(stable_digest("queue", key, length=16), 16) - (1 << 63)


async def _pending_jobs(conn: AsyncConnection, key: str, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
    """Jobs of this pull request in the given states (procrastinate's own table, read only)."""
    cur = await conn.execute(
        "SELECT id, status::text AS status, args->>'head_sha' AS head_sha, "
        "coalesce((args->>'fresh')::boolean, false) AS fresh FROM procrastinate_jobs "
        "WHERE lock = %s AND task_name = %s AND status = ANY(%s::procrastinate_job_status[]) ORDER BY id",
        (key, REVIEW_TASK, list(statuses)),
    )
    cols = [c.name for c in cur.description or []]
    return [dict(zip(cols, row, strict=True)) for row in await cur.fetchall()]


async def _remember_repository(
    conn: AsyncConnection, host: str, scheme: str, name: str, inst: int | None
) -> None:
    await conn.execute(
        "INSERT INTO app_repositories (host, full_name, scheme, installation_id) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (host, full_name) DO UPDATE SET installation_id = "
        "coalesce(EXCLUDED.installation_id, app_repositories.installation_id), active = true, "
        "scheme = EXCLUDED.scheme, updated_at = now()",
        (host, name, scheme, inst),
    )


async def _queue_review(app: procrastinate.App, conn: AsyncConnection, action: Review) -> Outcome:
    job = action.job
    key = job.key
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_xact_key(key),))
    waiting = await _pending_jobs(conn, key, ("todo",))
    for w in waiting:
        same_head = w["head_sha"] == job.head_sha or not job.head_sha
        if same_head and (w["fresh"] or not job.fresh):
            return Outcome("queued", "a review of this head is already waiting", w["id"])
    for w in waiting:  # an older head (or a plain review when fresh is asked): replaced
        await app.job_manager.cancel_job_by_id_async(w["id"], connection=conn)
    job_id = await app.configure_task(
        REVIEW_TASK,
        queue=REVIEW_QUEUE,
        lock=key,
        queueing_lock=key,
        connection=conn,
        task_kwargs=job.as_kwargs(),
    ).defer_async()
    detail = "replaced a waiting review of an older head" if waiting else "review queued"
    return Outcome("queued", detail, job_id)


async def _cancel(app: procrastinate.App, conn: AsyncConnection, action: Cancel) -> Outcome:
    key = pr_key(action.repository, action.number)
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_xact_key(key),))
    jobs = await _pending_jobs(conn, key, ("todo", "doing"))
    for j in jobs:
        # a waiting job is cancelled; a running one is asked to stop at its next file boundary
        await app.job_manager.cancel_job_by_id_async(j["id"], abort=j["status"] == "doing", connection=conn)
    return Outcome("cancelled", f"{len(jobs)} pending job(s) cancelled")


async def _queue_command(app: procrastinate.App, conn: AsyncConnection, action: Command) -> Outcome:
    job_id = await app.configure_task(
        COMMAND_TASK, queue=REVIEW_QUEUE, connection=conn, task_kwargs=action.as_kwargs()
    ).defer_async()
    return Outcome("queued", f"/{action.name} queued", job_id)


async def _installation(conn: AsyncConnection, action: Installation) -> Outcome:
    await conn.execute(
        "INSERT INTO app_installations (id, account, active) VALUES (%s, %s, %s) ON CONFLICT (id) "
        "DO UPDATE SET account = EXCLUDED.account, active = EXCLUDED.active, updated_at = now()",
        (action.installation_id, action.account, action.active),
    )
    for name in action.added:
        await _remember_repository(conn, action.host, action.scheme, name, action.installation_id)
    for name in action.removed:
        await conn.execute(
            "UPDATE app_repositories SET active = false, updated_at = now() "
            "WHERE host = %s AND full_name = %s",
            (action.host, name),
        )
    if not action.active:
        await conn.execute(
            "UPDATE app_repositories SET active = false, updated_at = now() WHERE installation_id = %s",
            (action.installation_id,),
        )
    return Outcome("recorded", f"installation {action.installation_id}")


async def record_and_enqueue(
    app: procrastinate.App,
    delivery_id: str,
    event: str,
    action_name: str | None,
    repository: str | None,
    action: Action,
) -> Outcome:
    """Insert the delivery id and do what ``action`` asks, in one transaction."""
    async with app.connector.pool.connection() as conn, conn.transaction():  # type: ignore[attr-defined]
        cur = await conn.execute(
            "INSERT INTO webhook_deliveries (delivery_id, event, action, repository, outcome) "
            "VALUES (%s, %s, %s, %s, 'received') ON CONFLICT (delivery_id) DO NOTHING RETURNING 1",
            (delivery_id, event[:64], (action_name or "")[:64], (repository or "")[:200]),
        )
        if await cur.fetchone() is None:
            return Outcome("duplicate", "this delivery was received before")
        if isinstance(action, Review):
            j = action.job
            await _remember_repository(conn, j.host, j.scheme, j.repository, j.installation_id)
            outcome = await _queue_review(app, conn, action)
        elif isinstance(action, Command):
            await _remember_repository(
                conn, action.host, action.scheme, action.repository, action.installation_id
            )
            outcome = await _queue_command(app, conn, action)
        elif isinstance(action, Cancel):
            outcome = await _cancel(app, conn, action)
        elif isinstance(action, Installation):
            outcome = await _installation(conn, action)
        else:
            assert isinstance(action, Ignore)
            outcome = Outcome("ignored", action.reason)
        await conn.execute(
            "UPDATE webhook_deliveries SET outcome = %s, job_id = %s WHERE delivery_id = %s",
            (f"{outcome.status}: {outcome.detail}"[:200], outcome.job_id, delivery_id),
        )
        return outcome
