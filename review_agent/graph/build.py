"""The review workflow.

    START → start → load_preferences → plan → review_window ⟲ → summarise → walkthrough
          → publish → END

``start`` records the target and the user; ``load_preferences`` reads the user's, repository's
and organisation's rules once; ``plan`` lists the files to review (every file of the change, in
a stable order) and writes that plan once, to the results store, with the pull request's
context every file's prompt carries (built once per review, see ``pr_context``). Each
``review_window`` step
reviews the next window of the plan (one file at concurrency 1, concurrency × 4 otherwise) with a
pool that starts the next file as soon as one finishes, so a slow file holds up no batch; each
file's review is saved the moment it is done (see ``file_review``). ``summarise`` closes the walk
and counts what failed; ``walkthrough`` writes the review's walkthrough once, from the files'
summaries and findings (see ``walkthrough``); ``publish`` posts the review when asked, and is
safe to run twice.

The state keeps a cursor and counters only, so what one step writes does not grow with the
files already reviewed (docs/architecture.md, "State"). A window's fan-out happens inside one
node, so one superstep is one checkpoint however many files it holds.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from langgraph.types import RetryPolicy

from review_agent.errors import BudgetExhausted, Interrupted, ServiceUnavailable
from review_agent.graph.file_review import FileReviewRun, RunCapReached, is_done, reuse_key
from review_agent.graph.planning import plan_files
from review_agent.graph.ports import GraphPorts, PreferenceLoader
from review_agent.graph.pr_context import ReviewContext
from review_agent.graph.walkthrough import WalkthroughStep
from review_agent.sources.base import ResolvedTarget
from review_agent.state.graph_state import ReviewState
from review_agent.state.schemas import FileReview

WINDOW_ROUNDS = 4  # a superstep reviews up to concurrency × this many files, refilling the pool


def window_size(concurrency: int) -> int:
    width = max(1, concurrency)
    return 1 if width == 1 else width * WINDOW_ROUNDS


def is_posted(posted: dict[str, Any] | None) -> bool:
    """Posted for good: a read-only attempt (a fork PR's token) is tried again by a later run."""
    return bool(posted) and not posted.get("read_only")  # type: ignore[union-attr]


def first_to_review(plan: list[dict[str, Any]], saved: dict[str, FileReview], reviewer: Any) -> int | None:
    """Where a new walk of a saved review must start: the first planned file that this run's
    reviewer has not finished (never reviewed, failed, or reviewed by another reviewer or
    model); None when every file is done."""
    for i, entry in enumerate(plan):
        if not is_done(saved.get(entry["path"]), reviewer):
            return i
    return None


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


def build_graph(ports: GraphPorts, checkpointer: BaseCheckpointSaver | None, store: BaseStore):
    results = ports.results
    width = max(1, ports.concurrency)
    window = window_size(width)
    context = ReviewContext(ports)
    files = FileReviewRun(ports, context)
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
        changed = ports.source.list_files()
        planned, skipped = plan_files(changed, **options)
        entries = [p.model_dump(mode="json") for p in planned]
        # written once, to the store: a checkpoint then never carries the whole plan again; the
        # context first, so that a saved plan always has its context
        context.build(changed, [e["path"] for e in entries])
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

    def review_window(state: ReviewState) -> dict[str, Any]:
        """Review the window's files, up to ``concurrency`` at a time, starting the next file as
        soon as one finishes (a fixed batch would wait for its slowest file)."""
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
        outcomes = _run_window(files, todo, prefs, writer, width)
        reviews = [r for r in outcomes if isinstance(r, FileReview)]
        capped = [i for i, r in enumerate(outcomes) if isinstance(r, RunCapReached)]
        # the walk moves past every file up to the first one this run may not send (those after
        # it that finished are saved, and found saved by the next run)
        walked = capped[0] if capped else len(todo)
        nxt = cursor + walked
        return {
            "model_calls": sum(r.model_calls for r in reviews),
            "cost_usd": sum(r.cost_usd or 0.0 for r in reviews if r.model_calls),
            "cursor": nxt,
            "last_done": [e["path"] for e in todo[:walked]],
            "batch": [] if capped else [e["path"] for e in entries[nxt : nxt + window]],
            "capped": bool(capped),
        }

    def summarise(state: ReviewState) -> dict[str, Any]:
        entries = plan_of(ports.thread_id)
        saved = results.list(ports.thread_id)
        failed = sum(1 for e in entries if (r := saved.get(e["path"])) is not None and not r.ok)
        return {
            "finished": state.get("cursor", 0) >= len(entries),
            "failed_total": failed,
            "batch": [],
            "last_done": [],
        }

    write_walkthrough = WalkthroughStep(ports, context.get)

    def walkthrough(state: ReviewState) -> dict[str, Any]:
        return write_walkthrough(dict(state))

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
    g.add_node("walkthrough", walkthrough, retry_policy=model_retry)
    g.add_node("publish", publish)
    g.add_edge(START, "start")
    g.add_edge("start", "load_preferences")
    g.add_edge("load_preferences", "plan")
    g.add_conditional_edges("plan", route, ["review_window", "summarise"])
    g.add_conditional_edges("review_window", route, ["review_window", "summarise"])
    g.add_edge("summarise", "walkthrough")
    g.add_edge("walkthrough", "publish")
    g.add_edge("publish", END)
    return g.compile(checkpointer=checkpointer, store=store)


def _run_window(
    files: FileReviewRun, todo: list[dict[str, Any]], prefs: dict[str, Any], writer: Any, width: int
) -> list[FileReview | RunCapReached]:
    """Each file's outcome, in plan order: its review, or RunCapReached for the files this run
    may not send. Any other failure stops new files (those running finish and are saved), then
    is raised — an interruption only if nothing worse happened."""
    abort = threading.Event()
    files.start_window()
    if width == 1:
        out: list[FileReview | RunCapReached] = []
        for entry in todo:
            try:
                out.append(files.review(entry, prefs, writer, abort, None))
            except RunCapReached as cap:
                out.append(cap)
                break
        return out + [RunCapReached() for _ in range(len(todo) - len(out))]
    outcomes: dict[int, FileReview | RunCapReached] = {}
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="review") as pool:
        # each task runs in a copy of this node's context, where LangGraph keeps its config (the
        # stream writer needs it); one copy per task, as a context is entered by one thread at
        # a time
        futures: dict[Future[FileReview], int] = {
            pool.submit(contextvars.copy_context().run, files.review, e, prefs, writer, abort, i): i
            for i, e in enumerate(todo)
        }
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                try:
                    outcomes[futures[fut]] = fut.result()
                except RunCapReached as cap:
                    outcomes[futures[fut]] = cap
                except BaseException as exc:
                    abort.set()
                    if failure is None or isinstance(failure, Interrupted):
                        failure = exc
    if failure is not None:
        raise failure
    return [outcomes[i] for i in range(len(todo))]


__all__ = ["GraphPorts", "PreferenceLoader", "build_graph", "first_to_review", "is_posted", "reuse_key"]
