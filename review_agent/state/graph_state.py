"""The graph's state: the task-progress layer, checkpointed at every superstep.

Kept flat on purpose (issue 6): a superstep rewrites only small channels (``cursor``, ``batch``,
``last_done``, ``model_calls``). The plan is written once, by the plan step. Each finished file's
review is written once, to the store, by the step that produced it (see
``review_agent.storage.results``), and the state only counts how far the walk has come. So what
one superstep writes does not grow with the number of files already reviewed, and a resumed run
finds every finished review without re-serialising them at each step.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class ReviewState(TypedDict, total=False):
    thread_id: str
    target: dict[str, Any]  # display, kind, head_sha, base_sha, title, author, repo_slug, number
    user: str | None
    preferences: dict[str, Any]  # environmental knowledge, loaded once per thread
    notes: list[str]  # what the user should know about this review (ignored config, truncation)
    plan: list[dict[str, Any]]  # PlannedFile dumps, in review order; written once
    skipped: list[dict[str, Any]]  # Skipped dumps; written once
    files_total: int
    cursor: int  # plan[:cursor] are finished
    batch: list[str]  # paths in flight during the next review step
    last_done: list[str]  # paths finished by the last review step (the audit trail's "file")
    model_calls: Annotated[int, operator.add]  # model calls over the thread's life
    cost_usd: Annotated[float, operator.add]  # model cost over the thread's life (known prices)
    finished: bool
    posted: dict[str, Any] | None  # what the publisher posted (review id, counts), once done


class FileTask(TypedDict):
    """What one review branch receives (a ``Send`` payload)."""

    thread_id: str
    index: int
    file: dict[str, Any]  # a PlannedFile dump
    preferences: dict[str, Any]
