"""The App's job log (``app_review_runs``): what each review job did, and why it ended.

One row per job run: finished (with files, model calls and tokens), superseded by a newer head,
cancelled (the pull request closed), stopped (a worker shutdown, requeued), or failed with the
error's one line, which says why a bad input is not retried. The reconcile reads it to find open
pull requests whose head has no finished review; ``/metrics`` and the fleet benchmark read it too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from review_agent.worker.queue import ReviewJob

log = logging.getLogger(__name__)
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class RunRecord:
    job_id: int | None
    job: ReviewJob
    outcome: str
    detail: str = ""
    head_sha: str = ""
    files: int = 0
    files_reviewed: int = 0
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    started_at: datetime | None = None


async def record_run(pool: Any, r: RunRecord) -> None:
    """Best effort: a database that is down right now must not turn a finished review into a
    failed job (the review itself is saved in the checkpoint and on the pull request)."""
    with contextlib.suppress(Exception):
        async with pool.connection(timeout=10) as conn:
            await conn.execute(
                "INSERT INTO app_review_runs (job_id, delivery_id, repository, number, head_sha, "
                "outcome, detail, files, files_reviewed, model_calls, input_tokens, output_tokens, "
                "worker, started_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    r.job_id,
                    r.job.delivery_id,
                    r.job.repository,
                    r.job.number,
                    r.head_sha or r.job.head_sha,
                    r.outcome,
                    r.detail[:500],
                    r.files,
                    r.files_reviewed,
                    r.model_calls,
                    r.input_tokens,
                    r.output_tokens,
                    WORKER_NAME,
                    r.started_at,
                ),
            )
            return
    log.warning("job %s: could not write the job log (database unreachable)", r.job_id)


async def bump_counter(pool: Any, name: str, by: int) -> None:
    with contextlib.suppress(Exception):
        async with pool.connection(timeout=10) as conn:
            await conn.execute(
                "INSERT INTO app_counters (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET value = app_counters.value + EXCLUDED.value",
                (name, by),
            )
