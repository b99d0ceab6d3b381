"""The review job: run the same review service as the CLI for one queued pull request head.

What surrounds ``run_review`` here, and why:

* **One PR at a time, newest head wins.** The job holds procrastinate's ``lock`` on
  ``OWNER/REPO#N`` (no second worker runs the pull request) and the service takes its own lease
  on the thread. A watcher on the event loop asks Postgres, about once a second, whether a newer
  head of the same pull request is waiting; if so it sets ``ReviewOptions.stop``, the graph
  stops at the next file boundary (files in flight finish and are saved), and the job ends as
  "superseded" so the waiting job runs next.
* **Closed pull requests, shutdowns.** An abort request (the pull request closed) or a worker
  shutdown sets the same stop; an abort ends the job as cancelled, a shutdown requeues it at
  once for another worker. Procrastinate cancels an aborted async task: the review thread is
  still let finish its files in flight, so nothing half-written is left behind.
* **Retries by error class** (``retry``); a failure while a newer head waits is not retried: the
  newer head replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import procrastinate
from procrastinate import JobContext

from review_agent.config import Settings
from review_agent.errors import FilesFailed, Interrupted, ReviewAgentError
from review_agent.publish.report import ReviewReport, files_failed_message
from review_agent.worker.auth import JobCredentials
from review_agent.worker.joblog import RunRecord, record_run
from review_agent.worker.queue import REVIEW_TASK, ReviewJob
from review_agent.worker.retry import Requeue, is_transient

log = logging.getLogger(__name__)
WATCH_INTERVAL = 1.0  # seconds between two looks for a newer head / an abort / a shutdown


@dataclass
class Runtime:
    """What the tasks of one worker process share."""

    settings: Settings
    concurrency: int
    credentials: JobCredentials
    shutdown: threading.Event = field(default_factory=threading.Event)
    running: set[threading.Event] = field(default_factory=set)  # the stops of the reviews in flight

    def stop_all(self) -> None:
        """A shutdown: every review in flight stops at its next file boundary, now."""
        self.shutdown.set()
        for stop in list(self.running):
            stop.set()


class _LogListener:
    """Progress of a job, in the worker's log (one line per file)."""

    def __init__(self, job: ReviewJob) -> None:
        self.name = f"{job.repository}#{job.number}"
        self.total = 0
        self.done = 0

    def begin(self, *, total: int, done: int, resumed: bool, offline: bool, reviewer: str) -> None:
        if total:
            self.total, self.done = total, done

    def file_done(self, path: str, *, reused: bool, comments: int) -> None:
        self.done += 1
        log.info("%s: [%d/%d] %s%s", self.name, self.done, self.total, path, " (reused)" if reused else "")

    def info(self, message: str) -> None:
        log.info("%s: %s", self.name, message)


NEWER_HEAD_WAITING = (
    "SELECT 1 FROM procrastinate_jobs WHERE lock = %s AND task_name = %s AND status = 'todo' "
    "AND id <> %s AND coalesce(args->>'head_sha', '') <> '' AND args->>'head_sha' <> %s LIMIT 1"
)


async def newer_head_waiting(pool: Any, job: ReviewJob, job_id: int | None) -> bool:
    async with pool.connection(timeout=10) as conn:
        cur = await conn.execute(NEWER_HEAD_WAITING, (job.key, REVIEW_TASK, job_id or 0, job.head_sha))
        return await cur.fetchone() is not None


def _run_review(runtime: Runtime, job: ReviewJob, stop: threading.Event) -> ReviewReport:
    """The review itself, in a worker thread, as the job's installation (or GITHUB_TOKEN)."""
    from review_agent.service import ReviewOptions, run_review

    github = runtime.credentials.for_repository(job.host, job.scheme, job.repository, job.installation_id)
    options = ReviewOptions(
        target=job.url,
        post=True,
        fresh=job.fresh,
        concurrency=runtime.concurrency,
        stop=stop,
        github=github,
    )
    return run_review(options, runtime.settings, _LogListener(job))


def _fill(record: RunRecord, report: ReviewReport) -> None:
    record.head_sha = report.head_sha
    record.files = report.files_total
    record.files_reviewed = sum(1 for f in report.files if not f.reused)
    record.model_calls = report.model_calls
    usage = report.usage
    record.input_tokens, record.output_tokens = usage.input_tokens, usage.output_tokens


def register_review_task(
    app: procrastinate.App, runtime: Runtime, retry: procrastinate.BaseRetryStrategy
) -> None:
    pool_of = lambda: app.connector.pool  # type: ignore[attr-defined]  # noqa: E731

    @app.task(name=REVIEW_TASK, pass_context=True, retry=retry)
    async def review_pull_request(context: JobContext, **kwargs: Any) -> str:
        job = ReviewJob.from_kwargs(kwargs)
        job_id = context.job.id
        pool = pool_of()
        record = RunRecord(job_id, job, "finished", started_at=datetime.now(UTC))
        if await newer_head_waiting(pool, job, job_id):
            record.outcome, record.detail = "superseded", "a newer head was queued before this one started"
            await record_run(pool, record)
            return record.outcome
        stop = threading.Event()
        why: list[str] = []

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(WATCH_INTERVAL)
                reason = None
                if runtime.shutdown.is_set():
                    reason = "shutdown"
                elif context.should_abort():
                    reason = "cancelled"
                else:
                    with contextlib.suppress(Exception):  # a database blip: look again next time
                        if await newer_head_waiting(pool, job, job_id):
                            reason = "superseded"
                if reason:
                    why.append(reason)
                    stop.set()

        runtime.running.add(stop)
        if runtime.shutdown.is_set():
            stop.set()
        watcher = asyncio.create_task(watch(), name=f"watch job {job_id}")
        thread = asyncio.ensure_future(asyncio.to_thread(_run_review, runtime, job, stop))
        try:
            try:
                report = await asyncio.shield(thread)
                _fill(record, report)
                if report.failed:  # the exit-3 class: what was saved stays, the retry redoes the rest
                    raise FilesFailed(files_failed_message(report))
            except asyncio.CancelledError:
                # procrastinate cancels an aborted async job (or, past its grace period, a job
                # running at shutdown): let the files in flight finish and be saved first
                stop.set()
                with contextlib.suppress(BaseException):
                    await thread
                if runtime.shutdown.is_set():
                    record.outcome, record.detail = "requeued", "the worker shut down"
                    await record_run(pool, record)
                    raise Requeue("the worker shut down") from None
                record.outcome, record.detail = "cancelled", "the pull request was closed"
                await record_run(pool, record)
                raise
        except Interrupted as exc:
            reason = why[0] if why else "shutdown"
            record.detail = str(exc)
            if reason == "superseded":
                record.outcome = "superseded"
                await record_run(pool, record)
                return record.outcome
            if reason == "cancelled":
                record.outcome = "cancelled"
                await record_run(pool, record)
                raise procrastinate.exceptions.JobAborted(str(exc)) from None
            record.outcome = "requeued"
            await record_run(pool, record)
            raise Requeue(str(exc)) from None
        except ReviewAgentError as exc:
            record.outcome, record.detail = f"error {exc.exit_code}", f"{type(exc).__name__}: {exc}"
            if is_transient(exc):
                with contextlib.suppress(Exception):
                    if await newer_head_waiting(pool, job, job_id):
                        record.outcome = "superseded"
                        record.detail += " (not retried: a newer head is queued)"
                        await record_run(pool, record)
                        return record.outcome
            await record_run(pool, record)
            log.warning("%s#%s: %s", job.repository, job.number, record.detail)
            raise
        finally:
            watcher.cancel()
            runtime.running.discard(stop)
        posted = (report.posted or {}).get("message", "") if isinstance(report.posted, dict) else ""
        record.detail = str(posted)[:200]
        await record_run(pool, record)
        log.info(
            "%s#%s: review finished (%d files, %d model calls)",
            job.repository,
            job.number,
            report.files_total,
            report.model_calls,
        )
        return "finished"
