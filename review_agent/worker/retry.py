"""Retries by error class, the exit codes' meaning carried over to jobs.

* ServiceUnavailable and FilesFailed (the exit-3 class: GitHub, the model server or the
  database unreachable; files that could not be reviewed) and lost connections: retried with
  exponential backoff, up to REVIEW_AGENT_JOB_RETRIES attempts. The checkpoint makes each retry
  resume, not restart.
* BadInput (exit 2), a budget reached (exit 4), refused state, an abort: never retried; retrying
  cannot change the answer. The job log says why.
* Requeue (the worker is shutting down, the review stopped at a file boundary): at once, so
  that another worker continues it.
* Anything else (a bug, or a failure not mapped yet): twice, then it stays failed for a human.
"""

from __future__ import annotations

import asyncio

from procrastinate import BaseRetryStrategy, RetryDecision
from procrastinate.exceptions import ConnectorException, JobAborted
from procrastinate.jobs import Job

from review_agent.errors import BadInput, BudgetExhausted, CorruptState, FilesFailed, ServiceUnavailable

UNKNOWN_ERROR_ATTEMPTS = 2
MAX_WAIT = 600.0


class Requeue(Exception):
    """Stopped by a worker shutdown with progress saved: run again now, anywhere."""


def is_transient(exc: BaseException) -> bool:
    import psycopg

    return isinstance(
        exc,
        ServiceUnavailable | FilesFailed | ConnectorException | psycopg.OperationalError | ConnectionError,
    )


class RetryByErrorClass(BaseRetryStrategy):
    def __init__(self, max_attempts: int, wait: float) -> None:
        self.max_attempts = max_attempts
        self.wait = wait

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, Requeue):
            return RetryDecision(retry_in={"seconds": 0})
        if isinstance(
            exception, BadInput | BudgetExhausted | CorruptState | JobAborted | asyncio.CancelledError
        ):
            return None
        if is_transient(exception):
            if job.attempts >= self.max_attempts:
                return None
            return RetryDecision(retry_in={"seconds": min(MAX_WAIT, self.wait * (2**job.attempts))})
        if job.attempts >= UNKNOWN_ERROR_ATTEMPTS:
            return None
        return RetryDecision(retry_in={"seconds": min(MAX_WAIT, self.wait * (2**job.attempts))})
