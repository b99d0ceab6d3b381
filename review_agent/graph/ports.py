"""What the review graph is handed: every piece of I/O comes through these ports, so the graph
never imports PyGithub, psycopg, redis or an HTTP client, and each port can be tested and swapped
alone (docs/architecture.md, "Layers")."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from langgraph.store.base import BaseStore

from review_agent.reviewers.base import Reviewer, WalkthroughWriter
from review_agent.sources.base import ResolvedTarget, Source
from review_agent.state.schemas import FileReview, Usage, Walkthrough
from review_agent.storage.memory import Recalled

PreferenceLoader = Callable[[BaseStore, str | None, ResolvedTarget], dict[str, Any]]


def _no_preferences(store: BaseStore, user: str | None, target: ResolvedTarget) -> dict[str, Any]:
    return {}


class ResultsPort(Protocol):
    """Where finished per-file reviews and the plan live, apart from the checkpoints (each is
    written once, so a superstep's checkpoint does not grow with the files already reviewed)."""

    def get(self, thread_id: str, path: str) -> FileReview | None: ...

    def put(self, thread_id: str, review: FileReview) -> None: ...

    def list(self, thread_id: str) -> dict[str, FileReview]: ...

    def put_plan(self, thread_id: str, plan: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> None: ...

    def get_plan(self, thread_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]: ...

    def put_pr_context(self, thread_id: str, context: dict[str, Any]) -> None: ...

    def get_pr_context(self, thread_id: str) -> dict[str, Any] | None: ...

    def put_walkthrough(self, thread_id: str, walkthrough: Walkthrough) -> None: ...

    def get_walkthrough(self, thread_id: str) -> Walkthrough | None: ...

    def get_cached(self, key: str) -> FileReview | None: ...

    def put_cached(self, key: str, review: FileReview) -> None: ...


# The learnings relevant to a file: given its path and hunks, returns the rules for the prompt,
# the dismissed findings that suppress a similar comment, and their ids (for the report).
Recall = Callable[[str, str], Recalled]


@dataclass
class GraphPorts:
    source: Source
    reviewer: Reviewer
    results: ResultsPort
    target: ResolvedTarget
    thread_id: str
    user: str | None = None
    concurrency: int = 1
    load_preferences: PreferenceLoader = _no_preferences
    plan_options: dict[str, Any] = field(default_factory=dict)
    stop: threading.Event | None = None  # set by SIGINT/SIGTERM: start no new file
    recall: Recall | None = None
    # how alike two texts are (0..1): a comment close to a dismissed finding is dropped
    similarity: Callable[[str, str], float] | None = None
    suppress_score: float = 0.6
    # the cost of one file's model usage in USD, or None when the price is unknown
    price: Callable[[Usage], float | None] = lambda usage: None
    max_cost: float | None = None  # stop (state saved) once the review's cost reaches this
    # files this run may send to the reviewer (--max-files): the cap belongs to the run, not to
    # the plan, so a later run without it reviews the rest
    run_cap: int | None = None
    fresh: bool = False  # --fresh: ask the reviewer again for every file, reuse nothing
    retry_attempts: int = 2  # a file whose model server is unreachable is tried again this often
    retry_interval: float = 5.0
    # writes the walkthrough after the files (one model call, or the deterministic one); None:
    # the deterministic walkthrough
    walkthrough: WalkthroughWriter | None = None
    # posts the finished review (GitHub); given the final state, returns what was posted
    publish: Callable[[dict[str, Any]], dict[str, Any]] | None = None
