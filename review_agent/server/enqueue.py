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
from review_agent.wording import plural
from review_agent.worker.queue import COMMAND_TASK, REVIEW_QUEUE, REVIEW_TASK, pr_key


@dataclass(frozen=True)
class Outcome:
    status: str  # "queued", "duplicate", "ignored", "cancelled", "recorded"
    detail: str = ""
    job_id: int | None = None


def _xact_key(key: str) -> int:
    return int(stable_digest("queue", key, length=16), 16) - (1 << 63)


PENDING_JOBS = (
    "SELECT id, status::text AS status, args->>'head_sha' AS head_sha, "
    "coalesce((args->>'fresh')::boolean, false) AS fresh FROM procrastinate_jobs "
    "WHERE lock = %s AND task_name = %s AND status = ANY(%s::procrastinate_job_status[]) ORDER BY id"
)
# known repositories, for the reconcile: inserted once, never updated here (a row updated by
# every delivery would serialise a burst of deliveries of one repository on its row lock)
REMEMBER_REPOSITORY = (
    "INSERT INTO app_repositories (host, full_name, scheme, installation_id) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (host, full_name) DO NOTHING"
)
INSERT_DELIVERY = (
    "INSERT INTO webhook_deliveries (delivery_id, event, action, repository, outcome) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (delivery_id) DO NOTHING RETURNING 1"
)


async def _rows(cur: Any) -> list[dict[str, Any]]:
    cols = [c.name for c in cur.description or []]
    return [dict(zip(cols, row, strict=True)) for row in await cur.fetchall()]


async def _queue_review(
    app: procrastinate.App, conn: AsyncConnection, action: Review, waiting: list[dict[str, Any]]
) -> Outcome:
    job = action.job
    for w in waiting:
        same_head = w["head_sha"] == job.head_sha or not job.head_sha
        if same_head and (w["fresh"] or not job.fresh):
            return Outcome("queued", "a review of this head is already waiting", w["id"])
    for w in waiting:  # an older head (or a plain review when fresh is asked): replaced
        await app.job_manager.cancel_job_by_id_async(w["id"], connection=conn)
    job_id = await app.configure_task(
        REVIEW_TASK,
        queue=REVIEW_QUEUE,
        lock=job.key,
        queueing_lock=job.key,
        connection=conn,
        task_kwargs=job.as_kwargs(),
    ).defer_async()
    detail = "replaced a waiting review of an older head" if waiting else "review queued"
    return Outcome("queued", detail, job_id)


async def _cancel(app: procrastinate.App, conn: AsyncConnection, jobs: list[dict[str, Any]]) -> Outcome:
    for j in jobs:
        # a waiting job is cancelled; a running one is asked to stop at its next file boundary
        await app.job_manager.cancel_job_by_id_async(j["id"], abort=j["status"] == "doing", connection=conn)
    return Outcome("cancelled", f"{plural(len(jobs), 'pending job')} cancelled")


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
        await conn.execute(
            "INSERT INTO app_repositories (host, full_name, scheme, installation_id) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (host, full_name) DO UPDATE SET "
            "installation_id = EXCLUDED.installation_id, active = true, updated_at = now()",
            (action.host, name, action.scheme, action.installation_id),
        )
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


def _expected(action: Action) -> Outcome:
    """The outcome written with the delivery row, so that the usual case needs no UPDATE."""
    if isinstance(action, Review):
        return Outcome("queued", "review queued")
    if isinstance(action, Command):
        return Outcome("queued", f"/{action.name} queued")
    if isinstance(action, Ignore):
        return Outcome("ignored", action.reason)
    return Outcome("recorded", "")


async def record_and_enqueue(
    app: procrastinate.App,
    delivery_id: str,
    event: str,
    action_name: str | None,
    repository: str | None,
    action: Action,
    *,
    synchronous_commit: bool = True,
) -> Outcome:
    """Insert the delivery id and do what ``action`` asks, in one transaction.

    Round trips matter under a burst: the delivery row, the repository row, the pull request's
    advisory lock and its pending jobs go in one pipeline; then the job is deferred; then the
    commit. The job's arguments hold the delivery id (``args->>'delivery_id'``)."""
    expected = _expected(action)
    key = None
    if isinstance(action, Review):
        key = action.job.key
    elif isinstance(action, Cancel):
        key = pr_key(action.repository, action.number)
    async with app.connector.pool.connection() as conn, conn.transaction():  # type: ignore[attr-defined]
        async with conn.pipeline():
            if not synchronous_commit:
                await conn.execute("SET LOCAL synchronous_commit = off")
            inserted = await conn.execute(
                INSERT_DELIVERY,
                (
                    delivery_id,
                    event[:64],
                    (action_name or "")[:64],
                    (repository or "")[:200],
                    f"{expected.status}: {expected.detail}"[:200],
                ),
            )
            if isinstance(action, Review | Command):
                where = action.job if isinstance(action, Review) else action
                await conn.execute(
                    REMEMBER_REPOSITORY, (where.host, where.repository, where.scheme, where.installation_id)
                )
            pending = None
            if key is not None:
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_xact_key(key),))
                states = ["todo"] if isinstance(action, Review) else ["todo", "doing"]
                pending = await conn.execute(PENDING_JOBS, (key, REVIEW_TASK, states))
        if await inserted.fetchone() is None:
            return Outcome("duplicate", "this delivery was received before")
        if isinstance(action, Review):
            assert pending is not None
            outcome = await _queue_review(app, conn, action, await _rows(pending))
        elif isinstance(action, Command):
            outcome = await _queue_command(app, conn, action)
        elif isinstance(action, Cancel):
            assert pending is not None
            outcome = await _cancel(app, conn, await _rows(pending))
        elif isinstance(action, Installation):
            outcome = await _installation(conn, action)
        else:
            outcome = expected
        if (outcome.status, outcome.detail) != (expected.status, expected.detail):
            await conn.execute(
                "UPDATE webhook_deliveries SET outcome = %s WHERE delivery_id = %s",
                (f"{outcome.status}: {outcome.detail}"[:200], delivery_id),
            )
        return outcome
