"""The review workflow.

    START → start → load_preferences → plan ─→ review_window ⟲ ─→ summarise → publish → END

``plan`` writes the plan once, to the store. Each ``review_window`` superstep reviews the next
window of files (one file at concurrency 1; concurrency × 4 files otherwise) with a pool that
starts the next file as soon as one finishes, so a slow file holds up no batch. Every file's
review is written to the store the moment it is done — before the superstep is checkpointed —
and a re-executed window skips the files already there, so a kill loses at most the files in
flight and a finished file is never sent to the model again.

``plan`` and ``collect`` choose the next batch; the fan-out leaves from one node per superstep
(DESIGN.md §9: attached to the parallel node, every branch would fan out again). Each
``review_file`` branch writes its result to the store before its superstep is checkpointed, and
skips the model when that result is already there, so a re-executed step never pays twice.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from langgraph.types import RetryPolicy

from review_agent.errors import BadInput, BudgetExhausted, Interrupted, ServiceUnavailable
from review_agent.graph.planning import plan_files
from review_agent.patches import fold_into_summary, parse_patch, split_anchored
from review_agent.reviewers.base import Reviewer, ReviewRequest
from review_agent.sources.base import ResolvedTarget, Source
from review_agent.state.graph_state import ReviewState
from review_agent.state.identity import stable_digest
from review_agent.state.schemas import FileReview, Usage
from review_agent.storage.results import ReviewResults

PreferenceLoader = Callable[[BaseStore, str | None, ResolvedTarget], dict[str, Any]]


def _no_preferences(store: BaseStore, user: str | None, target: ResolvedTarget) -> dict[str, Any]:
    return {}


@dataclass
class GraphPorts:
    source: Source
    reviewer: Reviewer
    target: ResolvedTarget
    thread_id: str
    user: str | None = None
    concurrency: int = 1
    load_preferences: PreferenceLoader = _no_preferences
    plan_options: dict[str, Any] = field(default_factory=dict)
    stop: threading.Event | None = None  # set by SIGINT/SIGTERM: start no new file
    # the learnings relevant to a file: given its path and added text, returns
    # (rules for the prompt, dismissed findings that suppress a similar comment)
    recall: Callable[[str, str], tuple[list[str], list[str]]] | None = None
    # how alike two texts are (0..1): a comment close to a dismissed finding is dropped
    similarity: Callable[[str, str], float] | None = None
    suppress_score: float = 0.6
    # the cost of one file's model usage in USD, or None when the price is unknown
    price: Callable[[Usage], float | None] = lambda usage: None
    max_cost: float | None = None  # stop (state saved) once the review's cost reaches this
    retry_attempts: int = 2  # a file whose model server is unreachable is tried again this often
    retry_interval: float = 5.0
    # posts the finished review (GitHub); given the final state, returns what was posted
    publish: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def reuse_key(path: str, blob_sha: str | None, patch: str, reviewer: Reviewer, prefs: dict) -> str:
    """Same file content, same diff, same reviewer and prompt, same preferences: same review."""
    return stable_digest(
        path,
        blob_sha or "",
        hashlib.sha256(patch.encode("utf-8", "replace")).hexdigest(),
        reviewer.name,
        str(getattr(reviewer, "prompt_version", "")),
        json.dumps(prefs, sort_keys=True, default=str),
        length=48,
    )


def is_posted(posted: dict[str, Any] | None) -> bool:
    """Posted for good: a read-only attempt (a fork PR's token) is tried again by a later run."""
    return bool(posted) and not posted.get("read_only")  # type: ignore[union-attr]


def _target_summary(t: ResolvedTarget) -> dict[str, Any]:
    return {
        "kind": t.kind,
        "display": t.display,
        "head_sha": t.head_sha,
        "base_sha": t.base_sha,
        "title": t.title,
        "author": t.author,
        "repo_slug": t.repo_slug,
        "number": t.number,
        "notes": list(t.notes),
    }


WINDOW_ROUNDS = 4  # a superstep reviews up to concurrency × this many files, refilling the pool


def build_graph(
    ports: GraphPorts, checkpointer: BaseCheckpointSaver | None, store: BaseStore
):  # -> CompiledStateGraph
    results = ReviewResults(store)
    width = max(1, ports.concurrency)
    window = 1 if width == 1 else width * WINDOW_ROUNDS
    plans: dict[str, list[dict[str, Any]]] = {}  # the plan, read from the store once per process

    def plan_of(thread_id: str) -> list[dict[str, Any]]:
        if thread_id not in plans:
            plans[thread_id] = results.get_plan(thread_id)[0]
        return plans[thread_id]

    def start(state: ReviewState) -> dict[str, Any]:
        return {
            "thread_id": ports.thread_id,
            "target": _target_summary(ports.target),
            "user": ports.user,
            "model_calls": 0,
            "cost_usd": 0.0,
        }

    def load_preferences(state: ReviewState) -> dict[str, Any]:
        prefs = dict(ports.load_preferences(store, ports.user, ports.target))
        notes = prefs.pop("_notes", [])
        return {"preferences": prefs, "notes": notes}

    def plan(state: ReviewState) -> dict[str, Any]:
        prefs = state.get("preferences") or {}
        options = dict(ports.plan_options)
        for key in ("exclude", "include", "max_files"):
            if key in prefs and key not in options:
                options[key] = prefs[key]
        planned, skipped = plan_files(ports.source.list_files(), **options)
        entries = [p.model_dump(mode="json") for p in planned]
        # written once, to the store: a checkpoint then never carries the whole plan again
        results.put_plan(ports.thread_id, entries, [s.model_dump(mode="json") for s in skipped])
        plans[ports.thread_id] = entries
        return {
            "files_total": len(planned),
            "skipped_total": len(skipped),
            "cursor": 0,
            "batch": [e["path"] for e in entries[:window]],
            "last_done": [],
            "finished": False,
        }

    def route(state: ReviewState) -> str:
        return "review_window" if state.get("batch") else "summarise"

    def review_one(
        entry: dict[str, Any], prefs: dict[str, Any], writer: Any, abort: threading.Event
    ) -> FileReview:
        path = entry["path"]
        if (ports.stop is not None and ports.stop.is_set()) or abort.is_set():
            # files already in flight finish and are saved; this one waits for the rerun
            raise Interrupted("stopped before " + path)
        done = results.get(ports.thread_id, path)
        if done is not None:  # finished before a crash: never ask the model again
            writer({"file_done": path, "comments": len(done.comments), "reused": True})
            return done.model_copy(update={"model_calls": 0, "cost_usd": None})
        changed = ports.source.get_file(path)
        if changed is None or changed.patch is None:
            raise BadInput(f"{path} is no longer part of the change; rerun with --fresh")
        parsed = parse_patch(path, changed.patch)
        rules: list[str] = []
        dismissed: list[str] = []
        if ports.recall is not None:
            query = path + "\n" + "\n".join(parsed.added.values())
            rules, dismissed = ports.recall(path, query[:4000])
        # the reuse key holds what shapes the model's answer; dismissals only filter it, below
        key = reuse_key(
            path,
            changed.blob_sha,
            changed.patch,
            ports.reviewer,
            {"preferences": prefs, "learnings": rules},
        )
        raw = results.get_cached(key)
        if raw is None:
            content = ports.source.get_content(path)
            outcome = ports.reviewer.review(
                ReviewRequest(
                    path=path,
                    patch=parsed,
                    content=content,
                    preferences=prefs,
                    learnings=tuple(rules),
                )
            )
            anchored, stray = split_anchored(outcome.comments, parsed)
            raw = FileReview(
                path=path,
                summary=fold_into_summary(outcome.summary, stray),
                comments=anchored,
                model_calls=outcome.model_calls,
                usage=outcome.usage,
                reviewer=ports.reviewer.name,
                blob_sha=changed.blob_sha,
                learnings_used=len(rules),
                cost_usd=ports.price(outcome.usage) if outcome.model_calls else None,
            )
            results.put_cached(key, raw)
        else:
            raw = raw.model_copy(update={"reused": True, "model_calls": 0})
        review = raw
        if dismissed and ports.similarity is not None:
            sim = ports.similarity
            kept = [c for c in raw.comments if all(sim(c.body, d) < ports.suppress_score for d in dismissed)]
            review = raw.model_copy(update={"comments": kept, "suppressed": len(raw.comments) - len(kept)})
        # saved the moment it is done, before this superstep's checkpoint: a kill loses at most
        # the files still in flight
        results.put(ports.thread_id, review)
        writer({"file_done": path, "comments": len(review.comments), "reused": review.reused})
        return review

    def review_window(state: ReviewState) -> dict[str, Any]:
        """Review the window's files, up to ``concurrency`` at a time, starting the next file as
        soon as one finishes (a fixed batch would wait for its slowest file: DESIGN.md §9)."""
        entries = plan_of(ports.thread_id)
        cursor = state.get("cursor", 0)
        spent = state.get("cost_usd", 0.0)
        if ports.max_cost is not None and spent >= ports.max_cost:
            # raised before any work: the saved state stays at the last finished window
            raise BudgetExhausted(
                f"budget reached: ${spent:.4f} of --max-cost ${ports.max_cost:g} spent, "
                f"{cursor}/{len(entries)} files saved; rerun with a higher --max-cost to continue"
            )
        todo = entries[cursor : cursor + len(state.get("batch") or [])]
        prefs = state.get("preferences") or {}
        writer = get_stream_writer()
        abort = threading.Event()
        reviews: list[FileReview] = []
        if width == 1:
            reviews = [review_one(e, prefs, writer, abort) for e in todo]
        else:
            with ThreadPoolExecutor(max_workers=width, thread_name_prefix="review") as pool:
                # each task runs in a copy of this node's context, where LangGraph keeps its
                # config (the stream writer needs it); one copy per task, as a context can be
                # entered by one thread at a time
                futures = [
                    pool.submit(contextvars.copy_context().run, review_one, e, prefs, writer, abort)
                    for e in todo
                ]
                failure: BaseException | None = None
                for fut in as_completed(futures):
                    try:
                        reviews.append(fut.result())
                    except BaseException as exc:  # the first failure stops new files; those running finish
                        abort.set()
                        if failure is None or isinstance(failure, Interrupted):
                            failure = exc
                if failure is not None:
                    raise failure
        nxt = cursor + len(todo)
        return {
            "model_calls": sum(r.model_calls for r in reviews),
            "cost_usd": sum(r.cost_usd or 0.0 for r in reviews if r.model_calls),
            "cursor": nxt,
            "last_done": [e["path"] for e in todo],
            "batch": [e["path"] for e in entries[nxt : nxt + window]],
        }

    def summarise(state: ReviewState) -> dict[str, Any]:
        return {"finished": True, "batch": [], "last_done": []}

    def publish(state: ReviewState) -> dict[str, Any]:
        # Safe to run again after a crash: the publisher skips what is already on the PR.
        if ports.publish is None or is_posted(state.get("posted")):
            return {}
        return {"posted": ports.publish(dict(state))}

    # Transient failures (timeouts, 429 with Retry-After, 5xx) are first retried by the model
    # client itself; a ServiceUnavailable that still escapes is retried here once more after a
    # pause (a server restarting): the files already saved are not reviewed again. Then the run
    # ends with state saved, and the rerun resumes here.
    model_retry = RetryPolicy(
        max_attempts=max(1, ports.retry_attempts),
        initial_interval=ports.retry_interval,
        backoff_factor=2.0,
        jitter=True,
        retry_on=lambda exc: isinstance(exc, ServiceUnavailable),
    )
    g = StateGraph(ReviewState)
    g.add_node("start", start)
    g.add_node("load_preferences", load_preferences)
    g.add_node("plan", plan)
    g.add_node("review_window", review_window, retry_policy=model_retry)
    g.add_node("summarise", summarise)
    g.add_node("publish", publish)
    g.add_edge(START, "start")
    g.add_edge("start", "load_preferences")
    g.add_edge("load_preferences", "plan")
    g.add_conditional_edges("plan", route, ["review_window", "summarise"])
    g.add_conditional_edges("review_window", route, ["review_window", "summarise"])
    g.add_edge("summarise", "publish")
    g.add_edge("publish", END)
    return g.compile(checkpointer=checkpointer, store=store)


__all__ = ["GraphPorts", "build_graph", "reuse_key"]
