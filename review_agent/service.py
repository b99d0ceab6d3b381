"""One review run, and the read-only views of a run (status, history).

Everything a terminal is not needed for lives here, so tests call it directly. Order matters for
the promise "a bad input never leaves a half-written checkpoint": the target is resolved and its
files listed *before* storage is opened and the graph runs.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from langgraph.store.base import BaseStore

from review_agent.config import Settings
from review_agent.errors import BadInput, Interrupted, ReviewAgentError
from review_agent.graph import GraphPorts, build_graph
from review_agent.graph.build import PreferenceLoader, is_posted
from review_agent.publish.report import ReviewReport
from review_agent.repo_config import FILENAME as REPO_CONFIG_FILE
from review_agent.repo_config import RepoConfig, parse_repo_config
from review_agent.reviewers.base import Reviewer, ReviewRequest, ReviewResult
from review_agent.reviewers.pricing import cost_of, parse_price, price_for
from review_agent.sources.base import ResolvedTarget, Source
from review_agent.sources.local import LocalGitSource
from review_agent.state.identity import github_thread_id, local_thread_id
from review_agent.state.schemas import FileReview, Skipped, Usage
from review_agent.storage.factory import Storage, open_storage
from review_agent.storage.lease import thread_lease
from review_agent.storage.memory import Learnings
from review_agent.storage.preferences import Preferences
from review_agent.storage.results import ReviewResults

DEFAULT_CONCURRENCY = 4
log = logging.getLogger(__name__)


@dataclass
class ReviewOptions:
    target: str
    base: str | None = None
    head: str | None = None
    user: str | None = None
    model: str | None = None
    fresh: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    post: bool = False
    max_cost: float | None = None  # USD over the review's life; stop with state saved beyond it
    max_files: int | None = None  # review at most this many files; the rest are skipped, said
    review_event: str = "COMMENT"  # only this flag may approve or request changes, never the model
    wait: float = 0.0  # seconds to wait for another process that holds this review
    stop: threading.Event | None = None  # set on SIGINT/SIGTERM: finish the files in flight, stop


class ProgressListener(Protocol):
    def begin(self, *, total: int, done: int, resumed: bool, offline: bool, reviewer: str) -> None: ...

    def file_done(self, path: str, *, reused: bool, comments: int) -> None: ...

    def info(self, message: str) -> None: ...


class SilentListener:
    def begin(self, *, total: int, done: int, resumed: bool, offline: bool, reviewer: str) -> None:
        pass

    def file_done(self, path: str, *, reused: bool, comments: int) -> None:
        pass

    def info(self, message: str) -> None:
        pass


_URL_LIKE = re.compile(r"^(https?://)?[\w.-]+(:\d+)?/[^/\s]+/[^/\s]+/pulls?/\d+", re.I)


def is_pr_url(target: str) -> bool:
    if "://" in target:
        return True
    return bool(_URL_LIKE.match(target)) and not Path(target).exists()


def build_source(target: str, settings: Settings, base: str | None, head: str | None) -> Source:
    if is_pr_url(target):
        from review_agent.sources.github import GitHubSource

        token = settings.github_token.get_secret_value() if settings.github_token else None
        return GitHubSource(
            target, token=token, api_url=settings.github_api_url, retries=settings.github_retries
        )
    return LocalGitSource(target, base=base, head=head)


REVIEW_EVENTS = frozenset({"COMMENT", "APPROVE", "REQUEST_CHANGES"})


def resolved_kind(source: Source) -> str:
    return "local" if isinstance(source, LocalGitSource) else "github"


def thread_id_for(t: ResolvedTarget) -> str:
    if t.kind == "github":
        owner, repo = (t.repo_slug or "/").split("/", 1)
        return github_thread_id(t.host or "github.com", owner, repo, t.number or 0, t.head_sha)
    return local_thread_id(t.path or t.display, t.base_sha, t.head_sha)


def build_reviewer(settings: Settings, model: str | None = None) -> Reviewer:
    if settings.model_configured:
        from review_agent.reviewers.model import ModelReviewer

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return ModelReviewer(
            model or settings.model,
            api_key=key,
            base_url=settings.openai_base_url,
            timeout=settings.model_timeout,
            max_retries=settings.model_max_retries,
        )
    from review_agent.reviewers.builtin import BuiltinReviewer

    return BuiltinReviewer()


class CountingReviewer:
    """Counts the model calls of this process, whatever the checkpoints say of earlier ones."""

    def __init__(self, inner: Reviewer) -> None:
        self.inner = inner
        self.name = inner.name
        self.prompt_version = getattr(inner, "prompt_version", getattr(inner, "PROMPT_VERSION", ""))
        self.calls = 0

    def review(self, request: ReviewRequest) -> ReviewResult:
        result = self.inner.review(request)
        self.calls += result.model_calls
        return result


def default_user(target: ResolvedTarget) -> str | None:
    if target.author:
        return target.author
    if target.path:
        proc = subprocess.run(
            ["git", "-C", target.path, "config", "user.email"], capture_output=True, text=True
        )
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    return None


def pricer(settings: Settings, reviewer_name: str) -> Callable[[Usage], float | None]:
    try:
        override = parse_price(settings.price)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    price = price_for(reviewer_name, override) if reviewer_name.startswith("openai:") else None
    return lambda usage: cost_of(usage, price)


def read_repo_config(source: Source) -> tuple[RepoConfig, str | None]:
    try:
        text = source.get_content(REPO_CONFIG_FILE)
    except ReviewAgentError:
        text = None
    return parse_repo_config(text)


def preference_loader(repo_config: RepoConfig, problem: str | None) -> PreferenceLoader:
    """Repository rules from .review-agent.toml, then the user's own preferences over them."""

    def load(store: BaseStore, user: str | None, target: ResolvedTarget) -> dict[str, Any]:
        prefs: dict[str, Any] = repo_config.as_preferences()
        if user:
            prefs.update(Preferences(store).all(user))
        if problem:
            prefs["_notes"] = [problem]
        return prefs

    return load


def learn_from_dismissals(
    source: Source, learnings: Learnings, target: ResolvedTarget, listener: ProgressListener
) -> int:
    """Findings people dismissed on this PR (👎 or a "dismiss" reply) become repository learnings
    before a new review of it starts. Feedback helps; it never stops a review."""
    from review_agent.publish.feedback import dismissed_findings

    try:
        dismissals = dismissed_findings(source)  # type: ignore[arg-type]
    except Exception as exc:
        log.warning("could not read feedback on earlier comments: %s", str(exc).splitlines()[0])
        return 0
    for d in dismissals:
        learnings.add(
            ("repo", target.repo_slug or ""),
            f"Dismissed on {d.path}, do not report again: {d.finding[:300]}",
            {"by": d.by, "pr": target.display, "path": d.path, "via": d.how, "dismissed_finding": d.finding},
        )
    if dismissals:
        listener.info(f"learned from {len(dismissals)} dismissed finding(s) on this pull request")
    return len(dismissals)


def learning_scopes(user: str | None, target: ResolvedTarget) -> list[tuple[str, str]]:
    scopes: list[tuple[str, str]] = []
    if user:
        scopes.append(("user", user))
    if target.repo_slug:
        scopes.append(("repo", target.repo_slug))
    return scopes


def recaller(
    learnings: Learnings, scopes: list[tuple[str, str]]
) -> Callable[[str, str], tuple[list[str], list[str]]]:
    has_any = learnings.any(scopes)
    warned: list[bool] = []

    def recall(path: str, query: str) -> tuple[list[str], list[str]]:
        # Memory helps a review; it must never stop one. A failing embedding server costs the
        # learnings of this run (with one warning), not the review.
        try:
            found = learnings.search(scopes, query, limit=10) if has_any else []
        except Exception as exc:
            if not warned:
                warned.append(True)
                log.warning("learnings unavailable for this review: %s", str(exc).splitlines()[0])
            return [], []
        # A dismissal says "not this, here": it applies to the file it was made on. Broader
        # rules are taught with `review-agent learn`.
        here = [lr for lr in found if not lr.dismissed_finding or lr.origin.get("path") == path]
        rules = [lr.text for lr in here]
        dismissed = [lr.dismissed_finding for lr in here if lr.dismissed_finding]
        return rules, dismissed

    return recall


def _config(thread_id: str, files: int) -> dict[str, Any]:
    # two supersteps a file at worst (review, collect), plus the fixed steps around them
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 2 * files + 20}


def run_review(
    options: ReviewOptions, settings: Settings, listener: ProgressListener | None = None
) -> ReviewReport:
    listener = listener or SilentListener()
    if options.concurrency < 1:
        raise BadInput("--concurrency must be at least 1")
    if options.max_cost is not None and options.max_cost <= 0:
        raise BadInput("--max-cost must be more than 0")
    if options.max_files is not None and options.max_files < 1:
        raise BadInput("--max-files must be at least 1")
    source = build_source(options.target, settings, options.base, options.head)
    if options.post and resolved_kind(source) != "github":
        raise BadInput("--post needs a pull request URL; a local review is only reported")
    if options.review_event not in REVIEW_EVENTS:
        raise BadInput(f"--event must be one of {', '.join(sorted(REVIEW_EVENTS))}")
    resolved = source.resolve()
    files = source.list_files()
    thread_id = thread_id_for(resolved)
    user = options.user or default_user(resolved)
    repo_config, config_problem = read_repo_config(source)
    reviewer = CountingReviewer(build_reviewer(settings, options.model or repo_config.model))
    with thread_lease(settings, thread_id, options.wait), open_storage(settings) as storage:
        results = ReviewResults(storage.store)
        if options.fresh:
            storage.checkpointer.delete_thread(thread_id)
            results.delete_thread(thread_id)
        ports = GraphPorts(
            source=source,
            reviewer=reviewer,
            target=resolved,
            thread_id=thread_id,
            user=user,
            concurrency=options.concurrency,
            load_preferences=preference_loader(repo_config, config_problem),
            stop=options.stop,
            price=pricer(settings, reviewer.name),
            max_cost=options.max_cost,
            retry_attempts=2,
            retry_interval=settings.retry_interval,
            plan_options={"max_files": options.max_files} if options.max_files else {},
        )
        scopes = learning_scopes(user, resolved)
        new_thread = storage.checkpointer.get_tuple(_config(thread_id, 0)) is None
        if resolved.kind == "github" and new_thread:
            learn_from_dismissals(source, storage.learnings(), resolved, listener)
        if scopes:
            learnings = storage.learnings()
            ports.recall = recaller(learnings, scopes)
            ports.similarity = learnings.similarity
        offline = not settings.model_configured

        def report_of(values: dict[str, Any], resumed: bool = False, done_before: int = 0) -> ReviewReport:
            return build_report(
                values,
                results.list(thread_id),
                backend=storage.backend,
                reviewer=reviewer,
                resumed=resumed,
                done_before=done_before,
                offline=offline,
            )

        if options.post:
            from review_agent.publish.github import GitHubPublisher

            publisher = GitHubPublisher(source)  # type: ignore[arg-type]

            def publish(values: dict[str, Any]) -> dict[str, Any]:
                result = publisher.publish(report_of(values), event=options.review_event)
                listener.info(result.message)
                return result.model_dump(mode="json")

            ports.publish = publish
        graph = build_graph(ports, storage.checkpointer, storage.store)
        config = _config(thread_id, len(files))
        snapshot = graph.get_state(config)
        values = snapshot.values or {}
        resumed = bool(values)
        done_before = results.count(thread_id) if resumed else 0
        if values.get("finished"):
            total = values.get("files_total", 0)
            listener.info(f"Already reviewed: {total}/{total} files done (use --fresh to start over)")
            if ports.publish is not None and not is_posted(values.get("posted")):
                posted = ports.publish(dict(values))
                graph.update_state(config, {"posted": posted}, as_node="publish")
                values = graph.get_state(config).values
        else:
            if resumed:
                total = values.get("files_total", len(files))
                listener.info(f"Resuming: {done_before}/{total} files done")
            listener.begin(
                total=values.get("files_total", 0) if resumed else 0,
                done=done_before,
                resumed=resumed,
                offline=offline,
                reviewer=reviewer.name,
            )
            graph_input = None if snapshot.next else {"thread_id": thread_id}
            try:
                _drive(graph, graph_input, config, listener)
            except Interrupted:
                done = results.count(thread_id)
                total = graph.get_state(config).values.get("files_total", len(files))
                raise Interrupted(
                    f"stopped: {done}/{total} files saved; rerun the same command to resume"
                ) from None
            except BaseException:
                if not resumed and results.count(thread_id) == 0:
                    # nothing was reviewed: leave no checkpoint that would make the next run
                    # believe it had started
                    storage.checkpointer.delete_thread(thread_id)
                raise
            values = graph.get_state(config).values
        return report_of(values, resumed, done_before)


def _drive(graph, graph_input, config, listener: ProgressListener) -> None:
    for mode, chunk in graph.stream(
        graph_input, config, stream_mode=["updates", "custom"], durability="sync"
    ):
        if mode == "updates" and isinstance(chunk, dict) and "plan" in chunk:
            update = chunk["plan"] or {}
            listener.begin(
                total=update.get("files_total", 0), done=0, resumed=False, offline=False, reviewer=""
            )
        elif mode == "custom" and isinstance(chunk, dict) and "file_done" in chunk:
            listener.file_done(chunk["file_done"], reused=chunk["reused"], comments=chunk["comments"])


def _total_cost(files: list[FileReview]) -> float | None:
    costs = [f.cost_usd for f in files if f.model_calls or f.cost_usd]
    if any(c is None for c in costs):
        return None
    return round(sum(c for c in costs if c is not None), 6)


def build_report(
    values: dict[str, Any],
    reviews: dict[str, FileReview],
    *,
    backend: str,
    reviewer: CountingReviewer,
    resumed: bool,
    done_before: int,
    offline: bool,
) -> ReviewReport:
    target = values.get("target") or {}
    plan_paths = [p["path"] for p in values.get("plan", [])]
    files = [reviews[p] for p in plan_paths if p in reviews]
    notes = list(target.get("notes") or []) + list(values.get("notes") or [])
    suppressed = sum(f.suppressed for f in files)
    if suppressed:
        notes.append(f"{suppressed} finding(s) dropped: they match findings dismissed earlier")
    reused = [f.path for f in files if f.reused]
    if reused and len(reused) < len(files):
        notes.append(
            f"{len(files) - len(reused)} file(s) new or changed since the last review; "
            f"{len(reused)} unchanged, taken from it"
        )
    return ReviewReport(
        target=target.get("display", ""),
        thread_id=values.get("thread_id", ""),
        head_sha=target.get("head_sha", ""),
        base_sha=target.get("base_sha", ""),
        title=target.get("title", ""),
        resumed=resumed,
        resumed_from=done_before,
        files_total=values.get("files_total", len(plan_paths)),
        files=files,
        skipped=[Skipped.model_validate(s) for s in values.get("skipped", [])],
        model_calls=reviewer.calls,
        model_calls_total=values.get("model_calls", 0),
        cost_usd=_total_cost(files),
        reviewer=reviewer.name,
        offline=offline,
        backend=backend,
        user=values.get("user"),
        preferences=values.get("preferences") or {},
        notes=notes,
        posted=values.get("posted"),
    )


# -- read-only views ---------------------------------------------------------------------------


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
        info.skipped = len(values.get("skipped") or [])
        info.updated_at = tup.checkpoint.get("ts")
        return info


def _event(values: dict[str, Any], prev: dict[str, Any] | None) -> str:
    """What happened at this checkpoint, judged against the one before it."""
    if values.get("finished"):
        return "finished"
    cursor = values.get("cursor")
    prev_cursor = (prev or {}).get("cursor")
    if cursor is not None and prev_cursor is not None and cursor > prev_cursor:
        return "reviewed " + ", ".join(values.get("last_done") or [])
    if cursor == 0 and prev_cursor is None and "plan" in values:
        skipped = len(values.get("skipped") or [])
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
            event = _event(values, prev)
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
