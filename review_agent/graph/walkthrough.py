"""The ``walkthrough`` step: after the files, one walkthrough of the whole review, written from
the per-file summaries and findings (never the diffs) and saved once.

It is its own checkpointed step, between ``summarise`` and ``publish``. What it writes goes to
the results store *before* the step's checkpoint, like a file's review, with a digest of what
it was written from: a process killed after the model answered and before the checkpoint finds
it on rerun and does not ask again, and a rerun of a finished review never asks again either.
Only new inputs (a failed file reviewed by a later run, another reviewer) write a new one.

The model writes it when the walk is complete and the budget allows; otherwise (offline, an
unfinished walk under ``--max-files``, files that failed and wait for a rerun, ``--max-cost``
spent) the deterministic walkthrough is written, which costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from langgraph.config import get_stream_writer

from review_agent.errors import Interrupted
from review_agent.graph.ports import GraphPorts
from review_agent.reviewers.base import WalkthroughFile, WalkthroughRequest
from review_agent.reviewers.builtin.walkthrough import deterministic_walkthrough
from review_agent.reviewers.context import PRContext
from review_agent.state.identity import stable_digest
from review_agent.state.schemas import FileReview, Walkthrough

DETERMINISTIC = "builtin"


def walkthrough_request(
    context: PRContext,
    plan: list[dict[str, Any]],
    saved: dict[str, FileReview],
    skipped: int,
    preferences: dict[str, Any] | None = None,
) -> WalkthroughRequest:
    """What the walkthrough is written from: the planned files' reviews, in plan order, with the
    size of each change; files no run has reached yet are left out."""
    sizes = {f.path: f for f in context.files}
    files: list[WalkthroughFile] = []
    for entry in plan:
        review = saved.get(entry["path"])
        if review is None:
            continue
        size = sizes.get(review.path)
        files.append(
            WalkthroughFile(
                path=review.path,
                status=size.status if size else str(entry.get("status") or "modified"),
                additions=size.additions if size else 0,
                deletions=size.deletions if size else 0,
                summary=review.summary if review.ok else "",
                findings=tuple(review.findings) if review.ok else (),
                failed=None if review.ok else (review.error or "the review failed"),
            )
        )
    return WalkthroughRequest(
        title=context.title,
        description=context.description,
        files=tuple(files),
        skipped=skipped,
        preferences=dict(preferences or {}),
    )


def inputs_digest(request: WalkthroughRequest, writer: str) -> str:
    """A stable digest of what a walkthrough is written from and by whom."""
    files = [
        [
            f.path,
            f.status,
            f.additions,
            f.deletions,
            f.summary,
            f.failed,
            [c.model_dump(mode="json") for c in f.findings],
        ]
        for f in request.files
    ]
    payload = json.dumps(
        [request.title, request.description, request.skipped, request.preferences, files],
        sort_keys=True,
        default=str,
    )
    return stable_digest(payload, writer)


class WalkthroughStep:
    """The node: reads the saved reviews, writes the walkthrough unless the same one is saved."""

    def __init__(self, ports: GraphPorts, context: Callable[[], PRContext]) -> None:
        self.ports = ports
        self.context = context

    def why_deterministic(self, state: dict[str, Any], request: WalkthroughRequest) -> str | None:
        """Why this review gets the deterministic walkthrough rather than the model's (None:
        the model's)."""
        ports = self.ports
        if ports.walkthrough is None:
            return ""
        if not state.get("finished"):
            return "not every file is reviewed yet: counts and top findings until they are"
        if any(f.failed for f in request.files):
            # the rerun that retries them writes the model's walkthrough over every file
            return "some files could not be reviewed: counts and top findings until a rerun reviews them"
        spent = state.get("cost_usd", 0.0)
        if ports.max_cost is not None and spent >= ports.max_cost:
            return f"--max-cost ${ports.max_cost:g} reached: counts and top findings, no model call"
        return None

    def __call__(self, state: dict[str, Any]) -> dict[str, Any]:
        ports, results = self.ports, self.ports.results
        if ports.stop is not None and ports.stop.is_set():
            raise Interrupted("stopped before the walkthrough")
        plan = results.get_plan(ports.thread_id)[0]
        request = walkthrough_request(
            self.context(),
            plan,
            results.list(ports.thread_id),
            state.get("skipped_total", 0),
            state.get("preferences") or {},
        )
        reason = self.why_deterministic(state, request)
        writer = ports.walkthrough
        name = DETERMINISTIC if reason is not None or writer is None else writer.name
        key = inputs_digest(request, name)
        saved = results.get_walkthrough(ports.thread_id)
        if saved is not None and saved.inputs == key:  # written before a crash, or by a finished run
            return {}
        if reason is not None or writer is None:
            written: Walkthrough = deterministic_walkthrough(request, note=reason or None)
        else:
            written = writer.write_walkthrough(request)
        cost = ports.price(written.usage) if written.model_calls else None
        written = written.model_copy(update={"inputs": key, "cost_usd": cost})
        # saved before this step's checkpoint: a kill now does not ask the model again
        results.put_walkthrough(ports.thread_id, written)
        get_stream_writer()({"walkthrough": name, "model_calls": written.model_calls, "note": reason or None})
        return {"model_calls": written.model_calls, "cost_usd": cost or 0.0}
