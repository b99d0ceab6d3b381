"""Time travel: read a review's state at one checkpoint (``history --at STEP``), and fork a new
review from it (``review --from-step STEP``).

LangGraph's own time travel replays or forks *inside* one thread: invoking with a
``checkpoint_id`` re-runs the nodes after that checkpoint and saves the new branch on the same
thread. Ours must leave the original thread untouched (its checkpoints, its saved reviews, its
audit trail), so the fork is a thread of its own: the checkpoint at STEP is copied into the new
thread (with the saver's own ``put``, as it was saved; our graph keeps no delta channels, so one
checkpoint is a complete state), with the plan and the reviews of the files done by that step.
The service then runs the new thread from that checkpoint id — LangGraph's "run from a
checkpoint" — and everything after STEP is done again, by the reviewer of this run.

The fork's id is stable (``<thread>~from-step-<STEP>``): rerunning the same command after a crash
resumes the fork; rerunning it once the fork finished (say, with another ``--model``) forks again.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.base import CheckpointTuple

from review_agent.errors import BadInput
from review_agent.state.identity import fork_thread_id
from review_agent.storage.audit import FORKED
from review_agent.storage.factory import Storage
from review_agent.storage.results import ReviewResults


def thread_config(thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def step_of(tup: CheckpointTuple) -> int:
    return int((tup.metadata or {}).get("step", -1))


def checkpoints(storage: Storage, thread_id: str) -> list[CheckpointTuple]:
    """Every checkpoint still kept for the thread, oldest first."""
    return sorted(
        storage.checkpointer.list(thread_config(thread_id)),
        key=lambda t: (step_of(t), t.checkpoint["id"]),
    )


def checkpoint_at(storage: Storage, thread_id: str, step: int) -> CheckpointTuple:
    """The thread's checkpoint at ``step``; BadInput (exit 2) when there is none, saying which
    steps there are (``db prune`` keeps only the latest)."""
    kept = checkpoints(storage, thread_id)
    found = [t for t in kept if step_of(t) == step]
    if found:
        return found[-1]
    if not kept:
        raise BadInput(
            f"no checkpoints for {thread_id}: it was never reviewed here, or --fresh discarded them"
        )
    steps = [step_of(t) for t in kept]
    pruned = " (older steps were pruned by `db prune`)" if steps[0] > 0 and step < steps[0] else ""
    raise BadInput(f"no checkpoint at step {step}; this review has {_ranges(steps)}{pruned}")


def _ranges(steps: list[int]) -> str:
    if len(steps) == 1:
        return f"step {steps[0]} only"
    if steps == list(range(steps[0], steps[-1] + 1)):
        return f"steps {steps[0]} to {steps[-1]}"
    return "steps " + ", ".join(str(s) for s in steps)


@dataclass
class StepState:
    """What a review looked like at one checkpoint."""

    thread_id: str
    step: int
    checkpoint_id: str
    ts: str
    source: str  # "input", "loop", "update", "fork"
    files_total: int = 0
    skipped_total: int = 0
    done: list[str] = field(default_factory=list)  # files finished by this step, in plan order
    in_flight: list[str] = field(default_factory=list)  # the window the next step reviews
    model_calls: int = 0
    cost_usd: float = 0.0
    planned: bool = False
    finished: bool = False
    posted: dict[str, Any] | None = None
    forked_from: str | None = None


def state_at(storage: Storage, thread_id: str, step: int) -> StepState:
    tup = checkpoint_at(storage, thread_id, step)
    values = tup.checkpoint.get("channel_values", {}) or {}
    meta = tup.metadata or {}
    plan, _skipped = ReviewResults(storage.store).get_plan(thread_id)
    cursor = int(values.get("cursor") or 0)
    return StepState(
        thread_id=thread_id,
        step=step_of(tup),
        checkpoint_id=tup.checkpoint["id"],
        ts=str(tup.checkpoint.get("ts", "")),
        source=str(meta.get("source", "")),
        files_total=int(values.get("files_total") or 0),
        skipped_total=int(values.get("skipped_total") or 0),
        done=[e["path"] for e in plan[:cursor]],
        in_flight=list(values.get("batch") or []),
        model_calls=int(values.get("model_calls") or 0),
        cost_usd=float(values.get("cost_usd") or 0.0),
        planned="cursor" in values,
        finished=bool(values.get("finished")),
        posted=values.get("posted"),
        forked_from=meta.get("forked_from"),
    )


def fork_thread(storage: Storage, thread_id: str, step: int, *, fresh: bool = False) -> str:
    """A thread that starts as ``thread_id`` was at ``step``: returns its id.

    An unfinished fork from the same step is resumed as it is (a rerun after a crash); a finished
    one, or any with ``fresh``, is replaced by a new copy (its audit trail stays). The original
    thread is only read. Call it while holding the lease of the fork's id
    (``state.identity.fork_thread_id``)."""
    new_id = fork_thread_id(thread_id, step)
    saver = storage.checkpointer
    results = ReviewResults(storage.store)
    existing = saver.get_tuple(thread_config(new_id))
    finished = bool(existing and (existing.checkpoint.get("channel_values") or {}).get("finished"))
    if existing is not None and not fresh and not finished:
        return new_id
    source = checkpoint_at(storage, thread_id, step)
    values = source.checkpoint.get("channel_values") or {}
    if values.get("finished"):
        raise BadInput(
            f"at step {step} every file was already reviewed: fork from an earlier step "
            "(`history TARGET` lists them)"
        )
    if existing is not None:
        saver.delete_thread(new_id)
        results.delete_thread(new_id)

    plan, skipped = results.get_plan(thread_id)
    cursor = int(values.get("cursor") or 0)
    if plan:
        results.put_plan(new_id, plan, skipped)
    saved = results.list(thread_id)
    copied = 0
    for entry in plan[:cursor]:
        review = saved.get(entry["path"])
        if review is not None:
            results.put(new_id, review)
            copied += 1

    checkpoint = copy.deepcopy(source.checkpoint)
    if "thread_id" in checkpoint["channel_values"]:
        checkpoint["channel_values"]["thread_id"] = new_id
    metadata = {**(source.metadata or {}), "forked_from": thread_id, "forked_step": step}
    # the checkpoint goes in last: a fork killed while copying has none, so the rerun copies again
    saver.put(thread_config(new_id), checkpoint, metadata, dict(checkpoint["channel_versions"]))  # type: ignore[arg-type]
    storage.audit.record(
        new_id,
        None,
        FORKED,
        {
            "from_thread": thread_id,
            "from_step": step,
            "checkpoint_id": source.checkpoint["id"],
            "files_done": copied,
            "files_total": int(values.get("files_total") or 0),
            "replaced": existing is not None,
        },
    )
    return new_id


def fork_config(thread_id: str, storage: Storage) -> dict[str, Any]:
    """The config that runs a new fork from its copied checkpoint id (LangGraph time travel);
    the service merges it into its own run config for the fork's first run."""
    tup = storage.checkpointer.get_tuple(thread_config(thread_id))
    if tup is None:
        raise BadInput(f"{thread_id} has no checkpoint to run from")
    return thread_config(thread_id, tup.checkpoint["id"])


__all__ = ["StepState", "checkpoint_at", "checkpoints", "fork_config", "fork_thread", "state_at"]
