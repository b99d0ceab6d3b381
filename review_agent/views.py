"""Read-only views of a review: ``status`` (where is it now), ``history`` (what happened, run by
run: the audit trail) and ``history --at STEP`` (the state at one checkpoint). They read the saved
state and the audit log, and never run the graph.

``status`` reads the latest checkpoint (progress) and the audit log (who is running it, how the
last run ended, whether a requested post completed). ``history`` reads the audit log, which
survives ``db prune`` and ``--fresh``; the checkpoints still kept are listed beside it, as the
steps ``--at`` and ``--from-step`` can name.

A pull request's thread is named by its head commit, which only GitHub knows. When GitHub cannot
be reached, these commands answer from local state: the last head this machine's records know
for that pull request, said as such (they ask GitHub once more at most, quietly).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from review_agent.config import Settings
from review_agent.errors import ServiceUnavailable
from review_agent.sources.factory import build_source, is_pr_url
from review_agent.state.identity import FORK_MARK, fork_thread_id, pr_key, thread_id_for
from review_agent.storage import audit as ev
from review_agent.storage.audit import AuditEvent, RunRecord
from review_agent.storage.factory import Storage, open_storage
from review_agent.storage.results import ReviewResults
from review_agent.timetravel import StepState, checkpoints, state_at, step_of, thread_config
from review_agent.wording import plural

if TYPE_CHECKING:
    from review_agent.github.auth import GitHubCredentials

# A read-only command asks GitHub once more at most: its answer is also in local state.
VIEW_GITHUB_RETRIES = 1
log = logging.getLogger(__name__)


@dataclass
class ViewTarget:
    display: str
    head_sha: str
    thread_id: str
    offline_note: str | None = None  # set when GitHub was unreachable and local state answered


@dataclass
class StatusInfo:
    target: str
    thread_id: str
    head_sha: str
    started: bool
    state: str = "not reviewed yet"
    finished: bool = False  # every file reviewed (whether or not the review was posted)
    done: int = 0
    total: int = 0
    current: list[str] = field(default_factory=list)  # files of the current window not yet saved
    skipped: int = 0
    updated_at: str | None = None
    posted: dict[str, Any] | None = None
    runs: int = 0
    last_run: dict[str, Any] | None = None
    offline_note: str | None = None


@dataclass
class HistoryEvent:
    ts: str
    run: int | None  # the run's number in this thread (1 = first), None for thread-wide events
    event: str
    text: str  # the event in words
    step: int | None = None  # the checkpoint step that saved this file, while it is kept
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckpointEntry:
    step: int
    ts: str
    source: str
    checkpoint_id: str
    event: str


@dataclass
class HistoryView:
    target: str
    thread_id: str
    head_sha: str
    runs: list[RunRecord]
    events: list[HistoryEvent]
    checkpoints: list[CheckpointEntry]
    forks: list[str]
    offline_note: str | None = None


def short_ts(ts: str | datetime | None) -> str:
    """A time to the second, in UTC: microseconds help nobody reading a status line."""
    if ts is None or ts == "":
        return ""
    try:
        when = ts if isinstance(ts, datetime) else datetime.fromisoformat(ts)
    except ValueError:
        return str(ts)
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if when.tzinfo is not None else "")


# --------------------------------------------------------------------------------------------
# which thread


@contextmanager
def _thread_view(
    target: str,
    settings: Settings,
    base: str | None,
    head: str | None,
    from_step: int | None,
    github: GitHubCredentials | None = None,
) -> Iterator[tuple[ViewTarget, Storage]]:
    source = build_source(target, settings, base, head, retries=VIEW_GITHUB_RETRIES, github=github)
    unreachable: ServiceUnavailable | None = None
    view: ViewTarget | None = None
    try:
        resolved = source.resolve()
        view = ViewTarget(resolved.display, resolved.head_sha, thread_id_for(resolved))
    except ServiceUnavailable as exc:
        if not is_pr_url(target):
            raise
        unreachable = exc
    with open_storage(settings, read_only=True) as storage:
        if view is None:
            assert unreachable is not None
            view = _last_known(target, storage, unreachable)
        if from_step is not None:
            view.thread_id = fork_thread_id(view.thread_id, from_step)
        yield view, storage


def _last_known(target: str, storage: Storage, exc: ServiceUnavailable) -> ViewTarget:
    """The thread of the last head of this pull request that this machine's records know."""
    from review_agent.sources.github import parse_pr_url

    ref = parse_pr_url(target)
    prefix = pr_key(ref.host, ref.owner, ref.repo, ref.number) + "@"
    thread_id = next((t for t, _ in storage.audit.threads_like(prefix) if FORK_MARK not in t), None)
    if thread_id is None:
        thread_id = _last_checkpointed_thread(storage, prefix)
    if thread_id is None:
        raise ServiceUnavailable(f"{exc}; no earlier review of this pull request is known here")
    head_sha = thread_id.rsplit("@", 1)[1]
    note = f"GitHub unreachable; last known head {head_sha[:12]} (from local records, may be outdated)"
    return ViewTarget(ref.web_url, head_sha, thread_id, offline_note=note)


_SCAN_LIMIT = 5000


def _last_checkpointed_thread(storage: Storage, prefix: str) -> str | None:
    """For reviews older than the audit log: the newest checkpoint of a thread of this PR."""
    saver = getattr(storage.checkpointer, "durable", storage.checkpointer)
    best: tuple[str, str] | None = None
    for n, tup in enumerate(saver.list(None)):
        if n >= _SCAN_LIMIT:
            break
        thread_id = str(tup.config["configurable"]["thread_id"])
        if not thread_id.lower().startswith(prefix.lower()) or FORK_MARK in thread_id:
            continue
        ts = str(tup.checkpoint.get("ts", ""))
        if best is None or ts > best[0]:
            best = (ts, thread_id)
    return best[1] if best else None


# --------------------------------------------------------------------------------------------
# status


def _is_posted(posted: dict[str, Any] | None) -> bool:
    return bool(posted) and not (posted or {}).get("read_only")


def _state(values: dict[str, Any], runs: list[RunRecord]) -> str:
    last = runs[-1] if runs else None
    if values.get("finished"):
        posted = values.get("posted")
        if _is_posted(posted):
            return "finished"
        if posted and posted.get("read_only"):
            return "reviewed, not posted (the token may not write to the pull request)"
        if any(r.start.get("options", {}).get("post") for r in runs):
            return "reviewed, not posted (the post did not complete: rerun with --post)"
        return "finished"
    if last is None:
        return "in progress"
    if last.looks_alive():
        return f"in progress (pid {last.start.get('pid')})"
    outcome = last.outcome
    if outcome == ev.INTERRUPTED:
        return "interrupted"
    if outcome == ev.BUDGET:
        return "stopped at the budget"
    if outcome == ev.ERROR:
        return "stopped by an error"
    if outcome == ev.FINISHED:
        return "stopped"
    return "stopped without a word (killed?)"


def _run_summary(run: RunRecord) -> dict[str, Any]:
    return {
        "run": run.number,
        "run_id": run.run_id,
        "started_at": short_ts(run.started_at),
        "ended_at": short_ts(run.ended_at),
        "outcome": run.outcome,
        "message": run.end.get("message"),
        "by": run.start.get("by"),
        "user": run.start.get("user"),
        "reviewer": run.start.get("reviewer"),
        "model": run.start.get("model"),
        "options": run.start.get("options", {}),
        "pid": run.start.get("pid"),
        "host": run.start.get("host"),
    }


def review_status(
    target: str,
    settings: Settings,
    base: str | None = None,
    head: str | None = None,
    *,
    from_step: int | None = None,
    github: GitHubCredentials | None = None,  # an App installation (the App's /status); None: GITHUB_TOKEN
) -> StatusInfo:
    with _thread_view(target, settings, base, head, from_step, github) as (view, storage):
        tup = storage.checkpointer.get_tuple(thread_config(view.thread_id))
        runs = storage.audit.runs(view.thread_id)
        info = StatusInfo(
            view.display,
            view.thread_id,
            view.head_sha,
            started=tup is not None,
            runs=len(runs),
            last_run=_run_summary(runs[-1]) if runs else None,
            offline_note=view.offline_note,
        )
        if tup is None:
            return info
        values = tup.checkpoint.get("channel_values", {}) or {}
        saved = set(ReviewResults(storage.store).list(view.thread_id))
        info.finished = bool(values.get("finished"))
        info.state = _state(values, runs)
        info.total = int(values.get("files_total", 0))
        info.done = len(saved)
        info.current = [p for p in values.get("batch") or [] if p not in saved]
        info.skipped = int(values.get("skipped_total", 0))
        info.updated_at = short_ts(tup.checkpoint.get("ts"))
        info.posted = values.get("posted")
        return info


# --------------------------------------------------------------------------------------------
# history


def _checkpoint_event(values: dict[str, Any], prev: dict[str, Any] | None, source: str) -> str:
    """What happened at this checkpoint, judged against the one before it."""
    prev = prev or {}
    if source == "input":
        return "run started"
    if source == "fork":
        return "forked"
    if values.get("finished"):
        posted = values.get("posted")
        if posted and posted != prev.get("posted"):
            return f"posted review {posted.get('review_id')}"
        if not prev.get("finished"):
            return "summarised"
        return "finished"
    cursor = values.get("cursor")
    prev_cursor = prev.get("cursor")
    if cursor is not None and prev_cursor is not None and cursor > prev_cursor:
        return "reviewed " + ", ".join(values.get("last_done") or [])
    if cursor == 0 and prev_cursor is None and "files_total" in values:
        planned = plural(values.get("files_total", 0), "file")
        return f"planned {planned}, {values.get('skipped_total', 0)} skipped"
    if "preferences" in values and "preferences" not in prev:
        return "loaded " + plural(len(values["preferences"] or {}), "preference")
    if "target" in values and "target" not in prev:
        return "resolved " + str(values["target"].get("head_sha", ""))[:12]
    return "saved"


def describe(event: AuditEvent) -> str:
    """One audit event in words."""
    d = event.data
    name = event.event
    if name == ev.RUN_STARTED:
        who = d.get("by") or "?"
        parts = [f"started by {who}"]
        if d.get("user") and d.get("user") != who:
            parts.append(f"for {d['user']}")
        parts.append(f"reviewer {d.get('reviewer') or '?'}")
        parts.append(f"pid {d.get('pid')} on {d.get('host')}")
        opts = {k: v for k, v in (d.get("options") or {}).items() if v not in (None, False, "")}
        if opts:
            parts.append("options " + " ".join(f"{k}={v}" for k, v in sorted(opts.items())))
        if d.get("resumed_from"):
            parts.append(f"resuming at {d['resumed_from']}/{d.get('files_total', '?')} files")
        return ", ".join(parts)
    if name == ev.RUN_ENDED:
        outcome = d.get("outcome", "?")
        text = f"ended: {outcome}"
        if outcome == ev.KILLED:
            return "ended: killed (it never recorded an end; the next run found it)"
        if d.get("files_done") is not None and d.get("files_total") is not None:
            text += f", {d['files_done']}/{d['files_total']} files done"
        if d.get("message"):
            text += f" ({d['message']})"
        return text
    if name == ev.PLANNED:
        skipped = d.get("skipped") or []
        text = f"planned {d.get('files_total', 0)} files, {len(skipped)} skipped"
        if skipped:
            shown = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:20])
            text += f" ({shown}{'; …' if len(skipped) > 20 else ''})"
        return text
    if name == ev.FILE_REVIEWED:
        by = f" by {d['reviewer']}" if d.get("reviewer") else ""
        return f"reviewed {d.get('path')}{by}: {plural(int(d.get('comments', 0)), 'comment')}"
    if name == ev.FILE_REUSED:
        origin = f" from {d['from']}" if d.get("from") else " from an earlier review"
        return f"reused {d.get('path')}{origin}: {plural(int(d.get('comments', 0)), 'comment')}"
    if name == ev.FILE_FAILED:
        return f"failed {d.get('path')}: {d.get('reason', '')}"
    if name == ev.POSTED:
        if d.get("read_only"):
            return f"not posted: {d.get('message') or 'the token may not write'}"
        new = plural(int(d.get("comments_posted") or 0), "comment")
        return (
            f"posted review {d.get('review_id')}: {new} new, {d.get('comments_already_there') or 0} "
            f"already there, {d.get('moved_to_body') or 0} moved to the body"
        )
    if name == ev.WALKTHROUGH:
        why = f" ({d['note']})" if d.get("note") else ""
        return f"walkthrough written by {d.get('writer')}{why}"
    if name == ev.FRESH:
        return "--fresh: saved checkpoints and reviews of this change discarded (this log is kept)"
    if name == ev.FORKED:
        return (
            f"forked from {d.get('from_thread')} at step {d.get('from_step')} "
            f"({d.get('files_done', 0)}/{d.get('files_total', 0)} files done there)"
        )
    if name == ev.PRUNED:
        return (
            f"db prune: {d.get('checkpoints_before')} checkpoints -> {d.get('checkpoints_after')} "
            "(this log is kept)"
        )
    extra = ", ".join(f"{k}={v}" for k, v in sorted(d.items()))
    return f"{name}{': ' + extra if extra else ''}"


_FILE_EVENTS = (ev.FILE_REVIEWED, ev.FILE_REUSED)


def review_history(
    target: str,
    settings: Settings,
    base: str | None = None,
    head: str | None = None,
    *,
    from_step: int | None = None,
) -> HistoryView:
    with _thread_view(target, settings, base, head, from_step) as (view, storage):
        events = storage.audit.events(view.thread_id)
        runs = ev.runs_of(events)
        numbers = {r.run_id: r.number for r in runs}
        kept = checkpoints(storage, view.thread_id)
        entries: list[CheckpointEntry] = []
        saved_at: dict[str, int] = {}  # path -> the step whose checkpoint first holds it as done
        prev: dict[str, Any] | None = None
        for tup in kept:
            values = tup.checkpoint.get("channel_values", {}) or {}
            source = str((tup.metadata or {}).get("source", ""))
            event = _checkpoint_event(values, prev, source)
            if event.startswith("reviewed "):
                for path in values.get("last_done") or []:
                    saved_at.setdefault(path, step_of(tup))
            entries.append(
                CheckpointEntry(
                    step_of(tup), short_ts(tup.checkpoint.get("ts")), source, tup.checkpoint["id"], event
                )
            )
            prev = values
        lines = [
            HistoryEvent(
                ts=short_ts(e.ts),
                run=numbers.get(e.run_id) if e.run_id else None,
                event=e.event,
                text=describe(e),
                step=saved_at.get(e.data.get("path", "")) if e.event in _FILE_EVENTS else None,
                data=e.data,
            )
            for e in events
        ]
        forks = [t for t, _ in storage.audit.threads_like(view.thread_id + FORK_MARK)]
        return HistoryView(
            target=view.display,
            thread_id=view.thread_id,
            head_sha=view.head_sha,
            runs=runs,
            events=lines,
            checkpoints=entries,
            forks=sorted(forks),
            offline_note=view.offline_note,
        )


def history_json(h: HistoryView) -> dict[str, Any]:
    return {
        "target": h.target,
        "thread_id": h.thread_id,
        "head_sha": h.head_sha,
        "offline": h.offline_note,
        "runs": [_run_summary(r) for r in h.runs],
        "events": [
            {"ts": e.ts, "run": e.run, "event": e.event, "text": e.text, "step": e.step, **e.data}
            for e in h.events
        ],
        "checkpoints": [c.__dict__ for c in h.checkpoints],
        "forks": h.forks,
    }


def history_lines(h: HistoryView) -> list[str]:
    """The text form: the header, the kept steps, then the audit trail run by run."""
    out = [f"thread {h.thread_id}"]
    if h.offline_note:
        out.append(h.offline_note)
    steps = [c.step for c in h.checkpoints]
    if steps:
        span = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]} to {steps[-1]}"
        out.append(
            f"checkpoints kept: {span} (`history --at STEP` shows one; "
            "`review --from-step STEP` forks from it)"
        )
    if not h.events:
        out.append("no audit events recorded for this thread")
        out += [f"step {c.step:>4}  {c.ts}  {c.event}" for c in h.checkpoints]
    for e in h.events:
        who = f"run {e.run}" if e.run is not None else "      "
        step = f"  [step {e.step}]" if e.step is not None else ""
        out.append(f"{e.ts}  {who:<6}  {e.text}{step}")
    for fork in h.forks:
        out.append(f"fork: {fork} (`history --from-step {fork.rsplit(FORK_MARK, 1)[1]}` shows it)")
    return out


# --------------------------------------------------------------------------------------------
# history --at STEP


def review_state_at(
    target: str,
    settings: Settings,
    step: int,
    base: str | None = None,
    head: str | None = None,
    *,
    from_step: int | None = None,
) -> tuple[StepState, str | None]:
    """(the state at ``step``, the offline note if GitHub was unreachable)."""
    with _thread_view(target, settings, base, head, from_step) as (view, storage):
        state = state_at(storage, view.thread_id, step)
        state.ts = short_ts(state.ts)
        return state, view.offline_note


def state_lines(s: StepState) -> list[str]:
    out = [f"thread {s.thread_id}", f"step {s.step}  {s.ts}  (checkpoint {s.checkpoint_id})"]
    if s.forked_from:
        out.append(f"forked from {s.forked_from}")
    if not s.planned:
        out.append("files: not planned yet at this step")
    else:
        out.append(
            f"files: {len(s.done)}/{s.files_total} done, {s.skipped_total} skipped"
            + (", all reviewed" if s.finished else "")
        )
    if s.done:
        out.append("done: " + ", ".join(s.done))
    if s.in_flight:
        out.append("in flight: " + ", ".join(s.in_flight))
    out.append(f"model calls: {s.model_calls}, cost: ${s.cost_usd:.4f}")
    if s.posted:
        out.append(f"posted: review {s.posted.get('review_id')}")
    return out
