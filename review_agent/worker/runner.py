"""``review-agent worker``: run the queue's workers in this process until SIGINT/SIGTERM.

Two procrastinate workers share one event loop and one connection pool: one runs reviews and
commands (``--jobs`` at a time, each reviewing ``--concurrency`` files at a time), the other the
periodic maintenance, so that the stalled-job check still runs when every review slot is busy.

procrastinate stops a worker whose side task fails (a lost heartbeat or LISTEN connection when
Postgres restarts). This loop then opens the pool again and starts new workers, with a growing
pause while the database stays away; the jobs the old workers held are requeued by the stalled
check. A first SIGINT/SIGTERM stops new work and lets the reviews in flight stop at their next
file boundary (they are requeued for another worker); a second one exits at once (the stalled
check requeues what was running).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor

from review_agent.config import Settings
from review_agent.errors import BadInput
from review_agent.wording import plural
from review_agent.worker.auth import JobCredentials, job_credentials
from review_agent.worker.joblog import WORKER_NAME
from review_agent.worker.queue import COMMAND_TASK, MAINTENANCE_QUEUE, REVIEW_QUEUE, make_app
from review_agent.worker.retry import RetryByErrorClass
from review_agent.worker.review_task import Runtime, register_review_task
from review_agent.worker.schema import ensure_app_schema

log = logging.getLogger(__name__)
MAX_PAUSE = 30.0


def _one_line(exc: BaseException) -> str:
    from procrastinate.exceptions import ConnectorException

    # procrastinate's "Database error." wraps the psycopg error that says what happened
    cause = exc.__cause__ if isinstance(exc, ConnectorException) and exc.__cause__ is not None else exc
    text = " ".join(str(cause).split()) or "no message"
    return f"{type(cause).__name__}: {text[:300]}"


class OneLineErrors(logging.Filter):
    """procrastinate logs a lost connection (every worker, every Postgres restart) with its
    traceback; an operator needs one line, as from the CLI. REVIEW_AGENT_DEBUG=1 keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and not os.environ.get("REVIEW_AGENT_DEBUG"):
            message = " ".join(record.getMessage().split())
            record.msg = f"{message} ({_one_line(record.exc_info[1])})"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def _build_app(runtime: Runtime):  # -> procrastinate.App
    from review_agent.worker.commands import run_command
    from review_agent.worker.maintenance import register_maintenance

    settings = runtime.settings
    assert settings.database_url
    app = make_app(settings.database_url, settings.db_pool_size)
    retry = RetryByErrorClass(settings.job_retries, settings.job_retry_wait)
    register_review_task(app, runtime, retry)
    register_maintenance(app, runtime)

    @app.task(name=COMMAND_TASK, queue=REVIEW_QUEUE, retry=retry)
    async def pull_request_command(**kwargs: object) -> str:
        return await asyncio.to_thread(run_command, runtime.credentials, dict(kwargs))

    return app


async def _serve(runtime: Runtime, jobs: int, stopping: asyncio.Event) -> None:
    settings = runtime.settings
    stalled = settings.stalled_after
    common = {
        "install_signal_handlers": False,
        "update_heartbeat_interval": max(0.25, stalled / 4),
        "stalled_worker_timeout": stalled,
        "fetch_job_polling_interval": 2.0,
        "abort_job_polling_interval": 1.0,
        "listen_notify": True,
    }
    pause = 1.0
    while not stopping.is_set():
        app = _build_app(runtime)
        try:
            async with app.open_async():
                pause = 1.0
                workers = [
                    asyncio.create_task(
                        app.run_worker_async(
                            queues=[REVIEW_QUEUE], concurrency=jobs, name=f"{WORKER_NAME}/reviews", **common
                        )
                    ),
                    asyncio.create_task(
                        app.run_worker_async(
                            queues=[MAINTENANCE_QUEUE],
                            concurrency=1,
                            name=f"{WORKER_NAME}/maintenance",
                            delete_jobs="successful",
                            **common,
                        )
                    ),
                ]
                stop_wait = asyncio.create_task(stopping.wait())
                await asyncio.sleep(0)  # let the workers register before saying so
                log.info(
                    "worker %s ready: %s at a time, %s each",
                    WORKER_NAME,
                    plural(jobs, "review"),
                    plural(runtime.concurrency, "file"),
                )
                await asyncio.wait([*workers, stop_wait], return_when=asyncio.FIRST_COMPLETED)
                stop_wait.cancel()
                for w in workers:  # cancelling run_worker_async is procrastinate's graceful stop
                    w.cancel()
                results = await asyncio.gather(*workers, return_exceptions=True)
                if not stopping.is_set():
                    problems = [
                        r for r in results if isinstance(r, Exception)
                    ]  # a CancelledError is our own stop
                    why = _one_line(problems[0]) if problems else "its connection to Postgres was lost"
                    log.warning("worker stopped (%s); starting again", why)
        except Exception as exc:  # the database is away: try again after a pause
            if stopping.is_set():
                break
            log.warning("queue unreachable (%s); retrying in %.0fs", _one_line(exc), pause)
        if not stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=pause)
            pause = min(MAX_PAUSE, pause * 2)


async def _main(credentials: JobCredentials, concurrency: int, jobs: int) -> int:
    settings = credentials.settings
    for handler in logging.getLogger().handlers:
        handler.addFilter(OneLineErrors())
    loop = asyncio.get_running_loop()
    # reviews run in threads: room for every job and the commands beside them
    loop.set_default_executor(ThreadPoolExecutor(max_workers=jobs + 4, thread_name_prefix="job"))
    runtime = Runtime(settings=settings, concurrency=concurrency, credentials=credentials)
    stopping = asyncio.Event()
    signals_seen: list[int] = []

    def on_signal(signum: int) -> None:
        signals_seen.append(signum)
        if len(signals_seen) > 1:
            os._exit(130)  # the stalled check requeues what was running
        log.info("stopping: reviews in flight stop at their next file boundary and are requeued")
        runtime.stop_all()
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    await _serve(runtime, jobs, stopping)
    return 0


PRELOAD = (
    "langgraph.checkpoint.postgres",
    "langgraph.store.postgres",
    "review_agent.publish.github",
    "review_agent.service",
    "review_agent.sources.github",
    "review_agent.views",
)


def _preload(settings: Settings) -> None:
    """Import what a review needs now, not in the first job: a worker that takes over a dead
    one's review (or the first of a burst) starts it at once instead of after seconds of imports."""
    for name in (*PRELOAD, "review_agent.reviewers.model") if settings.model_configured else PRELOAD:
        importlib.import_module(name)


def run_worker(settings: Settings, *, concurrency: int = 4, jobs: int = 1) -> int:
    url = settings.database_url
    if not url or not url.startswith(("postgres://", "postgresql://")):
        raise BadInput("`worker` needs DATABASE_URL=postgresql://… (the queue lives in Postgres)")
    credentials = job_credentials(settings)
    ensure_app_schema(url)
    _preload(settings)

    log.info("GitHub credentials: %s", credentials.mode)
    return asyncio.run(_main(credentials, concurrency, jobs))
