"""The graph's state: the task-progress layer, checkpointed at every superstep.

Kept flat on purpose (issue 6): a superstep rewrites only small channels (``cursor``, ``batch``,
``last_done``, ``model_calls``, ``cost_usd``). The plan and each finished file's review are
written once, to the store (see ``review_agent.storage.results``), and the state only counts how
far the walk has come. A saver that stores whole checkpoints (SQLite) therefore writes as little
as one that stores changed channels (Postgres). So what
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
    files_total: int  # files the plan reviews (the plan itself is in the store)
    skipped_total: int
    cursor: int  # plan[:cursor] are finished
    batch: list[str]  # paths in flight during the next review step
    last_done: list[str]  # paths finished by the last review step (the audit trail's "file")
    model_calls: Annotated[int, operator.add]  # model calls over the thread's life
    cost_usd: Annotated[float, operator.add]  # model cost over the thread's life (known prices)
    capped: bool  # the last window stopped at this run's --max-files cap
    finished: bool  # the walk reached the end of the plan (failed files may remain: failed_total)
    failed_total: int  # files whose review failed (retried by the next run)
    posted: dict[str, Any] | None  # what the publisher posted (review id, counts), once done
