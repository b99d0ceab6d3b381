"""Read-only views of a review's checkpoints: ``status`` (where is it) and ``history`` (what
happened, step by step — the audit trail). They read the saved state and never run the graph."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from review_agent.config import Settings
from review_agent.service import build_source, thread_id_for
from review_agent.sources.base import ResolvedTarget
from review_agent.state.schemas import FileReview
from review_agent.storage.factory import Storage, open_storage
from review_agent.storage.results import ReviewResults


@dataclass
class StatusInfo:
    target: str
    thread_id: str
    head_sha: str
    started: bool
    finished: bool = False
    done: int = 0
    total: int = 0
    current: list[str] = field(default_factory=list)
    skipped: int = 0
    updated_at: str | None = None


@dataclass
class HistoryEntry:
    step: int
    ts: str
    source: str
    checkpoint_id: str
    event: str
    files: list[FileReview] = field(default_factory=list)


@contextmanager
def _thread_view(
    target: str, settings: Settings, base: str | None, head: str | None
) -> Iterator[tuple[ResolvedTarget, str, Storage]]:
    source = build_source(target, settings, base, head)
    resolved = source.resolve()
    with open_storage(settings) as storage:
        yield resolved, thread_id_for(resolved), storage


def review_status(
    target: str, settings: Settings, base: str | None = None, head: str | None = None
) -> StatusInfo:
    with _thread_view(target, settings, base, head) as (resolved, thread_id, storage):
        cfg = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        tup = storage.checkpointer.get_tuple(cfg)
        info = StatusInfo(resolved.display, thread_id, resolved.head_sha, started=tup is not None)
        if tup is None:
            return info
        values = tup.checkpoint.get("channel_values", {})
        info.finished = bool(values.get("finished"))
        info.total = int(values.get("files_total", 0))
        info.done = ReviewResults(storage.store).count(thread_id)
        info.current = [] if info.finished else list(values.get("batch") or [])
        info.skipped = int(values.get("skipped_total", 0))
        info.updated_at = tup.checkpoint.get("ts")
        return info


def _event(values: dict[str, Any], prev: dict[str, Any] | None) -> str:
    """What happened at this checkpoint, judged against the one before it."""
    if values.get("finished"):
        if not (prev or {}).get("finished"):
            return "summarised"
        posted = values.get("posted")
        if posted and posted != (prev or {}).get("posted"):
            return f"posted review {posted.get('review_id')}: {posted.get('message', '')}".rstrip(": ")
        return "finished"
    cursor = values.get("cursor")
    prev_cursor = (prev or {}).get("cursor")
    if cursor is not None and prev_cursor is not None and cursor > prev_cursor:
        return "reviewed " + ", ".join(values.get("last_done") or [])
    if cursor == 0 and prev_cursor is None and "files_total" in values:
        skipped = values.get("skipped_total", 0)
        return f"planned {values.get('files_total', 0)} files, {skipped} skipped"
    if values.get("batch") and cursor == prev_cursor:
        return "reviewing " + ", ".join(values["batch"])
    if "preferences" in values and "preferences" not in (prev or {}):
        return f"loaded {len(values['preferences'] or {})} preference(s)"
    if "target" in values and "target" not in (prev or {}):
        return "resolved " + str(values["target"].get("head_sha", ""))[:12]
    return "started"


def review_history(
    target: str, settings: Settings, base: str | None = None, head: str | None = None
) -> tuple[str, list[HistoryEntry]]:
    with _thread_view(target, settings, base, head) as (_resolved, thread_id, storage):
        reviews = ReviewResults(storage.store).list(thread_id)
        cfg = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        tuples = sorted(
            storage.checkpointer.list(cfg),
            key=lambda t: (int((t.metadata or {}).get("step", -1)), t.checkpoint["id"]),
        )
        entries: list[HistoryEntry] = []
        prev: dict[str, Any] | None = None
        for tup in tuples:
            values = tup.checkpoint.get("channel_values", {})
            meta = tup.metadata or {}
            event = "run started" if meta.get("source") == "input" else _event(values, prev)
            done = values.get("last_done") or [] if event.startswith("reviewed") else []
            entries.append(
                HistoryEntry(
                    step=int(meta.get("step", -1)),
                    ts=_short_ts(tup.checkpoint.get("ts", "")),
                    source=str(meta.get("source", "")),
                    checkpoint_id=tup.checkpoint["id"],
                    event=event,
                    files=[reviews[p] for p in done if p in reviews],
                )
            )
            prev = values
        return thread_id, entries


def _short_ts(ts: str) -> str:
    try:
        return datetime.fromisoformat(ts).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return ts
