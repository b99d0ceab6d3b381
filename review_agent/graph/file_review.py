"""The review of one file inside a ``review_window`` step: take it from this review's saved
results, from an earlier review of the same change, or ask the reviewer; then save it.

Every path through here is safe to run twice (a step re-executes after a crash): a file whose
review is saved is never sent to the reviewer again, and the result is saved before the step's
checkpoint, so a kill loses at most the files in flight.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from review_agent.errors import BadInput, Interrupted
from review_agent.graph.ports import GraphPorts
from review_agent.graph.pr_context import ReviewContext
from review_agent.patches import parse_patch, split_anchored
from review_agent.reviewers.base import Reviewer, ReviewRequest
from review_agent.sources.base import ChangedFile
from review_agent.state.identity import stable_digest
from review_agent.state.schemas import FileReview
from review_agent.storage.memory import Recalled

SYMLINK_REVIEWER = "symlink"  # a link is recorded as such, never read as source by a reviewer


class RunCapReached(Exception):
    """This run may send no more files to the reviewer (``--max-files``); the file waits for a
    later run. Not an error: the run ends with what it reviewed."""


def reuse_key(path: str, blob_sha: str | None, patch: str, reviewer: Reviewer, prefs: dict) -> str:
    """Same file content, same diff, same reviewer and model, same prompt, same preferences and
    learnings: same review. The reviewer's name carries the model (``openai:gpt-4o``), so a
    built-in result never stands in for a model's, nor one model's for another's.

    The pull request's context (title, description, the other changed files) is deliberately
    not part of the key: a new push changes the other files, and an edited description changes
    the text, yet a file whose own content and diff are unchanged is still reused, not sent to
    the model again."""
    return stable_digest(
        path,
        blob_sha or "",
        hashlib.sha256(patch.encode("utf-8", "replace")).hexdigest(),
        reviewer.name,
        str(getattr(reviewer, "prompt_version", "")),
        json.dumps(prefs, sort_keys=True, default=str),
        length=48,
    )


def is_done(review: FileReview | None, reviewer: Reviewer) -> bool:
    """Whether a saved review finishes this file for this run: reviewed (not failed), and by
    this run's reviewer (a model run does not accept an offline run's review, nor one model
    another's)."""
    return review is not None and review.ok and review.reviewer in (reviewer.name, SYMLINK_REVIEWER)


def symlink_review(changed: ChangedFile) -> FileReview:
    before, after = changed.previous_symlink_target, changed.symlink_target
    if before and after:
        summary = f"Symbolic link: target changed from `{before}` to `{after}`."
    elif after:
        summary = f"Symbolic link to `{after}`" + (
            " (was a regular file)." if changed.status != "added" else "."
        )
    else:
        summary = f"Symbolic link to `{before}` replaced by a regular file." if before else "Symbolic link."
    return FileReview(
        path=changed.path, summary=summary, reviewer=SYMLINK_REVIEWER, blob_sha=changed.blob_sha
    )


class FileReviewRun:
    """The per-file work of one run of the graph. Holds what belongs to the run, not to the
    review: how many files this run has sent to the reviewer (for ``--max-files``)."""

    def __init__(self, ports: GraphPorts, context: ReviewContext) -> None:
        self.ports = ports
        self.context = context
        self._sent = 0
        self._lock = threading.Lock()
        # --max-files takes files in plan order, whatever order the pool's threads reach their
        # decision in: a window's file i decides (send or not) only after files 0..i-1 did
        self._turn = threading.Condition(self._lock)
        self._next = 0
        # files whose review failed in this run: retried by the next run, not by a retry of the
        # same step (a window re-executed after another file's outage would ask again)
        self._failed: set[str] = set()

    def start_window(self) -> None:
        with self._lock:
            self._next = 0

    def _decide(self, index: int | None, send: bool) -> None:
        """File ``index`` of the window will (``send``) or will not need the reviewer. Raises
        RunCapReached when this run may send no more files."""
        cap = self.ports.run_cap
        if cap is None:
            return
        with self._turn:
            if index is not None:
                self._turn.wait_for(lambda: self._next >= index)
                self._next = max(self._next, index + 1)
                self._turn.notify_all()
            if send:
                if self._sent >= cap:
                    raise RunCapReached
                self._sent += 1

    def review(
        self, entry: dict[str, Any], prefs: dict[str, Any], emit: Callable[[dict[str, Any]], None],
        abort: threading.Event, index: int | None = None,
    ) -> FileReview:  # fmt: skip
        decided = [False]

        def decide(send: bool) -> None:
            decided[0] = True
            self._decide(index, send)

        try:
            return self._review(entry, prefs, emit, abort, decide)
        finally:
            if not decided[0]:  # a file that stopped early must not hold up the files after it
                self._decide(index, False)

    def _review(
        self, entry: dict[str, Any], prefs: dict[str, Any], emit: Callable[[dict[str, Any]], None],
        abort: threading.Event, decide: Callable[[bool], None],
    ) -> FileReview:  # fmt: skip
        ports, results, thread_id = self.ports, self.ports.results, self.ports.thread_id
        path = entry["path"]
        if (ports.stop is not None and ports.stop.is_set()) or abort.is_set():
            # files already in flight finish and are saved; this one waits for the rerun
            raise Interrupted("stopped before " + path)
        saved = results.get(thread_id, path)
        if is_done(saved, ports.reviewer):  # finished before a crash: never ask again
            assert saved is not None
            emit(_event(saved, "done"))
            return saved.model_copy(update={"model_calls": 0, "cost_usd": None})
        if saved is not None and path in self._failed:
            return saved.model_copy(update={"model_calls": 0, "cost_usd": None})
        changed = ports.source.get_file(path)
        if changed is None or changed.patch is None:
            raise BadInput(f"{path} is no longer part of the change; rerun with --fresh")
        if changed.is_symlink:
            review = symlink_review(changed)
            results.put(thread_id, review)
            emit(_event(review, "reviewed"))
            return review
        parsed = parse_patch(path, changed.patch)
        recalled = Recalled()
        if ports.recall is not None:  # the hunks: names, context and added lines
            recalled = ports.recall(path, parsed.numbered[:8000])
        rules, dismissed = recalled.rules, recalled.dismissed
        # the reuse key holds what shapes the reviewer's answer; dismissals only filter it, below
        key = reuse_key(
            path, changed.blob_sha, changed.patch, ports.reviewer, {"preferences": prefs, "learnings": rules}
        )
        cached = None if ports.fresh else results.get_cached(key)
        if cached is not None and cached.ok:
            earlier = cached.origin_thread != thread_id  # unknown origin (older entries): earlier
            raw = cached.model_copy(
                update={
                    "reused": earlier,
                    "reused_from": cached.origin_thread if earlier else None,
                    "model_calls": 0,
                    "learnings_recalled": recalled.ids,
                }
            )
            how = "reused" if earlier else "reviewed"
        else:
            decide(True)
            content = self.context.content(path)
            outcome = ports.reviewer.review(
                ReviewRequest(
                    path=path,
                    patch=parsed,
                    content=content,
                    preferences=prefs,
                    learnings=tuple(rules),
                    pr=self.context.get(),  # built once per review, by the plan step
                )
            )
            anchored, stray = split_anchored(outcome.comments, parsed)
            raw = FileReview(
                path=path,
                summary=outcome.summary,
                status="failed" if outcome.failed else "reviewed",
                error=outcome.failed,
                comments=[] if outcome.failed else anchored,
                unanchored=[] if outcome.failed else stray,
                model_calls=outcome.model_calls,
                usage=outcome.usage,
                reviewer=ports.reviewer.name,
                blob_sha=changed.blob_sha,
                learnings_used=len(rules),
                learnings_recalled=recalled.ids,
                cost_usd=ports.price(outcome.usage) if outcome.model_calls else None,
                origin_thread=thread_id,
            )
            if raw.ok:  # a failed review is never offered to a later review
                results.put_cached(key, raw)
            else:
                with self._lock:
                    self._failed.add(path)
            how = raw.status
        review = raw
        if dismissed and ports.similarity is not None and raw.ok:
            sim = ports.similarity

            def kept(comments: list) -> list:
                return [c for c in comments if all(sim(c.body, d) < ports.suppress_score for d in dismissed)]

            inline, body = kept(raw.comments), kept(raw.unanchored)
            dropped = len(raw.comments) + len(raw.unanchored) - len(inline) - len(body)
            review = raw.model_copy(update={"comments": inline, "unanchored": body, "suppressed": dropped})
        # saved the moment it is done, before this step's checkpoint: a kill loses at most the
        # files still in flight
        results.put(thread_id, review)
        emit(_event(review, how))
        return review


def _event(review: FileReview, how: str) -> dict[str, Any]:
    """What the service hears of each file (progress, the audit log): ``how`` is ``done``
    (saved by an earlier run of this review), ``reused`` (from an earlier review of the same
    change), ``reviewed`` or ``failed``."""
    return {
        "file_done": review.path,
        "how": how,
        "reused": how in ("done", "reused"),
        "comments": len(review.findings),
        "reviewer": review.reviewer,
        "reused_from": review.reused_from,
        "error": review.error,
    }
