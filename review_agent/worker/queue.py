"""The queue: a procrastinate App on our own Postgres, and what a review job carries.

Why procrastinate: jobs are rows in the database that already holds the checkpoints, so a job
can be deferred inside the webhook's own transaction (the delivery id and the job commit
together or not at all), workers heartbeat, and ``queueing_lock`` / ``lock`` give "one waiting
job per pull request" and "one running job per pull request" without a queue of our own.

A job carries ids only (installation, repository, pull request number, head SHA, delivery id):
never a token. Tokens are minted or read by the worker that runs it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import procrastinate

REVIEW_QUEUE = "reviews"
MAINTENANCE_QUEUE = "maintenance"
REVIEW_TASK = "review_agent.review_pull_request"
COMMAND_TASK = "review_agent.pull_request_command"
STALLED_TASK = "review_agent.retry_stalled_jobs"
RECONCILE_TASK = "review_agent.reconcile_open_pull_requests"
PRUNE_TASK = "review_agent.prune_queue_tables"


def pr_key(repository: str, number: int) -> str:
    """The lock of one pull request: ``OWNER/REPO#N`` (lower-case: GitHub names are not
    case-sensitive, and two spellings must not run side by side)."""
    return f"{repository.lower()}#{number}"


@dataclass(frozen=True)
class ReviewJob:
    """The arguments of a review job: ids, never a token."""

    host: str  # the web host of the pull request (github.com, a GHE host, the tests' fake)
    repository: str  # OWNER/REPO
    number: int
    head_sha: str
    delivery_id: str
    installation_id: int | None = None
    fresh: bool = False
    scheme: str = "https"

    @property
    def key(self) -> str:
        return pr_key(self.repository, self.number)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}/{self.repository}/pull/{self.number}"

    def as_kwargs(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> ReviewJob:
        known = {k: kwargs[k] for k in cls.__dataclass_fields__ if k in kwargs}
        return cls(**known)


def connector_kwargs(url: str, pool_size: int) -> dict[str, Any]:
    """Options of procrastinate's psycopg pool. ``prepare_threshold=None``: no server-side
    prepared statements, so a transaction-mode pooler in front of the database does not break
    the queue's own queries (LISTEN/NOTIFY and session advisory locks still need a direct or
    session-mode connection)."""
    return {
        "conninfo": url,
        "min_size": 1,
        "max_size": max(1, pool_size),
        "kwargs": {"prepare_threshold": None, "connect_timeout": 10},
    }


def make_app(url: str, pool_size: int = 4) -> procrastinate.App:
    """A procrastinate App on DATABASE_URL. The tasks are added by the worker (a blueprint); the
    webhook server defers by task name and never imports the review service."""
    connector = procrastinate.PsycopgConnector(**connector_kwargs(url, pool_size))
    return procrastinate.App(connector=connector)
