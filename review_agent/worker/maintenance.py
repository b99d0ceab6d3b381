"""Periodic tasks of the fleet: retry the jobs of dead workers; queue missed pull requests.

procrastinate does not retry a dead worker's job by itself: the job stays "doing" with a worker
whose heartbeat stopped. ``retry_stalled_jobs`` runs every few seconds on one worker (the
periodic deferrer dedupes across the fleet), asks procrastinate for the jobs of workers silent
for REVIEW_AGENT_STALLED_AFTER seconds and puts them back in the queue; the next worker resumes
the review from its checkpoint, redoing at most the files that were in flight. A stalled job of
an older head whose newer head is already waiting is not requeued (it is superseded).

``reconcile_open_pull_requests`` covers deliveries that never arrived (GitHub down, the receiver
down for longer than GitHub retries): for the repositories the App has seen, it lists the open
pull requests and queues each head without a finished review and without a pending job. It is
bounded (REVIEW_AGENT_RECONCILE_LIMIT pull requests per run) so a large organisation is walked
over several runs rather than in one burst.

``prune_queue_tables`` runs nightly: delivery ids and finished jobs older than a week go (failed
jobs stay for a human), so the queue's tables stay small.
"""

from __future__ import annotations

import asyncio
import logging
import time

import procrastinate
from procrastinate import exceptions as pexc
from procrastinate.jobs import Status

from review_agent.wording import plural
from review_agent.worker.auth import token_credentials
from review_agent.worker.joblog import bump_counter
from review_agent.worker.queue import (
    MAINTENANCE_QUEUE,
    PRUNE_TASK,
    RECONCILE_TASK,
    REVIEW_QUEUE,
    REVIEW_TASK,
    STALLED_TASK,
    ReviewJob,
)
from review_agent.worker.review_task import Runtime

log = logging.getLogger(__name__)


def cron_every(seconds: float) -> str:
    """A cron line firing about every ``seconds`` (croniter's optional 6th field is seconds)."""
    s = max(1, int(seconds))
    if s < 60:
        return f"* * * * * */{s}"
    if s < 3600:
        return f"*/{max(1, s // 60)} * * * *"
    return f"0 */{max(1, s // 3600)} * * *"


async def retry_stalled(app: procrastinate.App, stalled_after: float) -> int:
    manager = app.job_manager
    retried = 0
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after):
        if job.id is None:
            continue
        if job.task_name in (
            STALLED_TASK,
            RECONCILE_TASK,
            PRUNE_TASK,
        ):  # periodic: the next tick does it again
            await manager.finish_job_by_id_async(job.id, status=Status.ABORTED, delete_job=False)
            continue
        try:
            await manager.retry_job(job)
            retried += 1
            log.warning("job %s (%s) of a dead worker requeued", job.id, job.lock or job.task_name)
        except pexc.UniqueViolation:
            # a newer head of this pull request is already waiting: this one is superseded
            await manager.finish_job_by_id_async(job.id, status=Status.ABORTED, delete_job=False)
        except pexc.ConnectorException as exc:
            log.warning("job %s could not be requeued: %s", job.id, exc)
    if retried:
        await bump_counter(app.connector.pool, "stalled_retried", retried)  # type: ignore[attr-defined]
    return retried


def _open_heads(
    runtime: Runtime, host: str, scheme: str, repository: str, inst: int | None, limit: int
) -> list[tuple[int, str]]:
    """(number, head sha) of open, non-draft pull requests of one repository (blocking)."""
    from review_agent.github.auth import github_client
    from review_agent.github.refs import api_url_for, parse_pr_url
    from review_agent.github.retry import read_retry

    settings = runtime.settings
    api = api_url_for(parse_pr_url(f"{scheme}://{host}/{repository}/pull/1"), settings.github_api_url)
    credentials = runtime.credentials.for_repository(host, scheme, repository, inst)
    gh = github_client(
        api,
        credentials or token_credentials(settings),
        retry=read_retry(settings.github_retries, 0.5, max_rate_limit_wait=60, secondary_rate_wait=60),
        timeout=30,
    )
    out: list[tuple[int, str]] = []
    for pr in gh.get_repo(repository, lazy=True).get_pulls(state="open", sort="updated", direction="desc"):
        if not pr.draft:
            out.append((pr.number, pr.head.sha))
        if len(out) >= limit:
            break
    return out


# the repositories most recently heard from first
RECONCILE_REPOS = (
    "SELECT r.host, r.scheme, r.full_name, r.installation_id FROM app_repositories r WHERE r.active "
    "ORDER BY (SELECT max(w.received_at) FROM webhook_deliveries w WHERE w.repository = r.full_name) "
    "DESC NULLS LAST, r.updated_at DESC LIMIT %s"
)
HAS_REVIEW_OR_JOB = (
    "SELECT EXISTS (SELECT 1 FROM app_review_runs WHERE lower(repository) = lower(%s) AND number = %s "
    "AND head_sha = %s AND outcome = 'finished') OR EXISTS (SELECT 1 FROM procrastinate_jobs WHERE "
    "lock = %s AND task_name = %s AND status IN ('todo', 'doing'))"
)


async def reconcile(app: procrastinate.App, runtime: Runtime, timestamp: int) -> int:
    limit = runtime.settings.reconcile_limit
    pool = app.connector.pool  # type: ignore[attr-defined]
    async with pool.connection() as conn:
        cur = await conn.execute(RECONCILE_REPOS, (limit,))
        repos = await cur.fetchall()
    queued = seen = 0
    for host, scheme, name, inst in repos:
        if seen >= limit:
            break
        try:
            heads = await asyncio.to_thread(_open_heads, runtime, host, scheme, name, inst, limit - seen)
        except Exception as exc:  # one repository unreadable: the others still count
            log.warning("reconcile: cannot list open pull requests of %s: %s", name, type(exc).__name__)
            continue
        for number, sha in heads:
            seen += 1
            job = ReviewJob(host, name, number, sha, f"reconcile:{timestamp}", inst, False, scheme)
            async with pool.connection() as conn:
                cur = await conn.execute(HAS_REVIEW_OR_JOB, (name, number, sha, job.key, REVIEW_TASK))
                row = await cur.fetchone()
            if row and row[0]:
                continue
            try:
                await app.configure_task(
                    REVIEW_TASK,
                    queue=REVIEW_QUEUE,
                    lock=job.key,
                    queueing_lock=job.key,
                    task_kwargs=job.as_kwargs(),
                ).defer_async()
                queued += 1
            except pexc.AlreadyEnqueued:
                pass
    if queued:
        log.info("reconcile: %s queued", plural(queued, "missed pull request head"))
    return queued


KEEP_DAYS = 7  # deliveries and finished jobs older than this go (GitHub redelivers within days)


async def prune_old_rows(app: procrastinate.App) -> None:
    """Bounded tables: old delivery ids (a redelivery after a week is not deduplicated, and is
    harmless: the review is already finished) and old finished jobs. Failed jobs stay for a human."""
    await app.job_manager.delete_old_jobs(
        nb_hours=KEEP_DAYS * 24, include_cancelled=True, include_aborted=True
    )
    async with app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
        await conn.execute(
            "DELETE FROM webhook_deliveries WHERE received_at < now() - make_interval(days => %s)",
            (KEEP_DAYS,),
        )


def register_maintenance(app: procrastinate.App, runtime: Runtime) -> None:
    settings = runtime.settings
    check_every = max(1.0, settings.stalled_after / 2)

    @app.periodic(cron=cron_every(check_every), periodic_id="stalled")
    @app.task(name=STALLED_TASK, queue=MAINTENANCE_QUEUE, queueing_lock=STALLED_TASK)
    async def retry_stalled_jobs(timestamp: int) -> int:
        return await retry_stalled(app, settings.stalled_after)

    @app.periodic(cron="17 3 * * *", periodic_id="prune")
    @app.task(name=PRUNE_TASK, queue=MAINTENANCE_QUEUE, queueing_lock=PRUNE_TASK)
    async def prune_queue_tables(timestamp: int) -> None:
        await prune_old_rows(app)

    if settings.reconcile_interval > 0:

        @app.periodic(cron=cron_every(settings.reconcile_interval), periodic_id="reconcile")
        @app.task(name=RECONCILE_TASK, queue=MAINTENANCE_QUEUE, queueing_lock=RECONCILE_TASK)
        async def reconcile_open_pull_requests(timestamp: int) -> int:
            started = time.monotonic()
            n = await reconcile(app, runtime, timestamp)
            log.debug("reconcile took %.1fs", time.monotonic() - started)
            return n
