"""One review run: assemble the source, reviewer, storage and publisher, and run the graph.

Everything a terminal is not needed for lives here (and in ``views`` for status and history), so
tests call it directly. Order matters for
the promise "a bad input never leaves a half-written checkpoint": the target is resolved and its
files listed *before* storage is opened and the graph runs.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from review_agent.config import Settings
from review_agent.errors import BadInput, Interrupted
from review_agent.graph import GraphPorts, build_graph
from review_agent.graph.build import is_posted
from review_agent.memory_hooks import (
    learn_from_dismissals,
    learning_scopes,
    preference_loader,
    read_repo_config,
    recaller,
)
from review_agent.publish.base import Publisher
from review_agent.publish.report import ReviewReport
from review_agent.reviewers.base import Reviewer, ReviewRequest, ReviewResult
from review_agent.reviewers.pricing import cost_of, parse_price, price_for
from review_agent.sources.base import ResolvedTarget, Source
from review_agent.sources.factory import build_source
from review_agent.sources.local import LocalGitSource
from review_agent.state.identity import fork_thread_id, thread_id_for
from review_agent.state.schemas import FileReview, Skipped, Usage
from review_agent.storage.audit import FRESH, AuditRun
from review_agent.storage.factory import open_storage
from review_agent.storage.lease import thread_lease
from review_agent.storage.results import ReviewResults
from review_agent.timetravel import fork_config, fork_thread
from review_agent.wording import plural

if TYPE_CHECKING:
    from review_agent.github.auth import GitHubCredentials

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
    github: GitHubCredentials | None = None  # e.g. an App installation (a worker); None: GITHUB_TOKEN
    from_step: int | None = None  # fork a new review from this checkpoint step of this change's review


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


REVIEW_EVENTS = frozenset({"COMMENT", "APPROVE", "REQUEST_CHANGES"})


def resolved_kind(source: Source) -> str:
    return "local" if isinstance(source, LocalGitSource) else "github"


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


def _config(thread_id: str, files: int, concurrency: int = 1) -> dict[str, Any]:
    return {
        "configurable": {"thread_id": thread_id},
        # one superstep per file at worst, plus the fixed steps around them
        "recursion_limit": files + 20,
        # LangGraph's own pool (cpu + 4 threads by default) must not cap the review's
        "max_concurrency": concurrency + 4,
    }


def _validate(options: ReviewOptions) -> None:
    if options.concurrency < 1:
        raise BadInput("--concurrency must be at least 1")
    if options.max_cost is not None and options.max_cost <= 0:
        raise BadInput("--max-cost must be more than 0")
    if options.max_files is not None and options.max_files < 1:
        raise BadInput("--max-files must be at least 1")
    if options.review_event not in REVIEW_EVENTS:
        raise BadInput(f"--event must be one of {', '.join(sorted(REVIEW_EVENTS))}")


def run_review(
    options: ReviewOptions, settings: Settings, listener: ProgressListener | None = None
) -> ReviewReport:
    listener = listener or SilentListener()
    _validate(options)
    # Everything that can reject the input happens before storage is opened.
    source = build_source(options.target, settings, options.base, options.head, github=options.github)
    if options.post and resolved_kind(source) != "github":
        raise BadInput("--post needs a pull request URL; a local review is only reported")
    resolved = source.resolve()
    files = source.list_files()
    thread_id = thread_id_for(resolved)
    if options.from_step is not None:
        source_thread, thread_id = thread_id, fork_thread_id(thread_id, options.from_step)
    user = options.user or default_user(resolved)
    repo_config, config_problem = read_repo_config(source)
    reviewer = CountingReviewer(build_reviewer(settings, options.model or repo_config.model))
    offline = not settings.model_configured
    repository = repository_uri(source, resolved)
    with (
        thread_lease(settings, thread_id, options.wait, on_wait=listener.info),
        open_storage(settings) as storage,
        ExitStack() as run,
    ):
        results = ReviewResults(storage.store)
        if options.from_step is not None:
            fork_thread(storage, source_thread, options.from_step, fresh=options.fresh)
            listener.info(f"Fork of step {options.from_step}: {thread_id}")
        elif options.fresh:
            storage.checkpointer.delete_thread(thread_id)
            results.delete_thread(thread_id)
            storage.audit.record(thread_id, None, FRESH)
        audit = run.enter_context(
            storage.audit.run(thread_id, **_run_facts(options, user, reviewer, resolved))
        )
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
            retry_interval=settings.retry_interval,
            plan_options={"max_files": options.max_files} if options.max_files else {},
        )
        new_thread = storage.checkpointer.get_tuple(_config(thread_id, 0)) is None
        if resolved.kind == "github" and new_thread:
            learn_from_dismissals(source, storage.learnings(), resolved, listener)
        scopes = learning_scopes(user, resolved)
        if scopes:
            learnings = storage.learnings()
            ports.recall = recaller(learnings, scopes)
            ports.similarity = learnings.similarity

        def report_of(values: dict[str, Any], resumed: bool = False, done_before: int = 0) -> ReviewReport:
            return build_report(
                values,
                results.list(thread_id),
                *results.get_plan(thread_id),
                backend=storage.backend,
                reviewer=reviewer,
                resumed=resumed,
                done_before=done_before,
                offline=offline,
                repository_uri=repository,
            )

        if options.post:
            ports.publish = _publisher(source, report_of, options.review_event, listener, audit)
        graph = build_graph(ports, storage.checkpointer, storage.store)
        config = _config(thread_id, len(files), options.concurrency)
        snapshot = graph.get_state(config)
        values = snapshot.values or {}
        resumed = bool(values)
        done_before = results.count(thread_id) if resumed else 0
        if values.get("finished"):
            total = values.get("files_total", 0)
            listener.info(f"Already reviewed: {total}/{total} files done (use --fresh to start over)")
            if ports.publish is not None and not is_posted(values.get("posted")):
                # every file was saved, but the run stopped before (or while) posting
                graph.update_state(config, {"posted": ports.publish(dict(values))}, as_node="publish")
        else:
            if resumed:
                listener.info(resuming_message(done_before, values.get("files_total")))
            listener.begin(
                total=values.get("files_total", 0) if resumed else 0,
                done=done_before,
                resumed=resumed,
                offline=offline,
                reviewer=reviewer.name,
            )
            try:
                saved = set(results.list(thread_id)) if resumed else set()
                # a new fork runs from its copied checkpoint's id: LangGraph's time travel
                start = (
                    fork_config(thread_id, storage) if (snapshot.metadata or {}).get("forked_from") else {}
                )
                run_config = {
                    **config,
                    "configurable": {**config["configurable"], **start.get("configurable", {})},
                }
                graph_input = None if snapshot.next else {"thread_id": thread_id}
                _drive(graph, graph_input, run_config, listener, saved, audit, reviewer.name, results)
            except Interrupted:
                done = results.count(thread_id)
                total = graph.get_state(config).values.get("files_total", len(files))
                audit.end_data = {"files_done": done, "files_total": total}
                raise Interrupted(
                    f"stopped: {done}/{total} files saved; rerun the same command to resume"
                ) from None
            except BaseException:
                if not resumed and results.count(thread_id) == 0:
                    # nothing was reviewed: leave no checkpoint that would make the next run
                    # believe it had started
                    storage.checkpointer.delete_thread(thread_id)
                raise
        final = graph.get_state(config).values
        audit.end_data = {"files_done": results.count(thread_id), "files_total": final.get("files_total", 0)}
        return report_of(final, resumed, done_before)


def _run_facts(
    options: ReviewOptions, user: str | None, reviewer: Reviewer, target: ResolvedTarget
) -> dict[str, Any]:
    """What the audit log says of a run's start: names and options, never a secret."""
    return {
        "user": user,
        "reviewer": reviewer.name,
        "model": options.model,
        "target": target.display,
        "head_sha": target.head_sha,
        "options": {
            "concurrency": options.concurrency,
            "post": options.post,
            "fresh": options.fresh,
            "max_files": options.max_files,
            "max_cost": options.max_cost,
            "event": options.review_event,
            "from_step": options.from_step,
        },
    }


def resuming_message(done: int, total: int | None) -> str:
    """What a resumed run says first. "Resuming: 0/26" would claim progress there is none of."""
    if done:
        return f"Resuming: {done}/{plural(total or done, 'file')} done"
    planned = f" ({plural(total, 'file')} planned)" if total else ""
    return f"Resuming an earlier run of this review that had not finished a file yet{planned}"


def repository_uri(source: Source, resolved: ResolvedTarget) -> str:
    """The repository reviewed, as a URI (the SARIF report's repositoryUri): a pull request's
    https://HOST/OWNER/REPO, a local repository's remote URL or file:// URI."""
    if isinstance(source, LocalGitSource):
        return source.repository_uri()
    return resolved.display.rsplit("/pull/", 1)[0] if "/pull/" in resolved.display else resolved.display


def _publisher(
    source: Source,
    report_of: Callable[[dict[str, Any]], ReviewReport],
    event: str,
    listener: ProgressListener,
    audit: AuditRun,
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from review_agent.publish.github import GitHubPublisher
    from review_agent.sources.github import GitHubSource

    if not isinstance(source, GitHubSource):
        raise BadInput("--post needs a pull request URL; a local review is only reported")
    publisher: Publisher = GitHubPublisher(source)

    def publish(values: dict[str, Any]) -> dict[str, Any]:
        result = publisher.publish(report_of(values), event=event)
        listener.info(result.message)
        audit.posted(result.model_dump(mode="json"))
        return result.model_dump(mode="json")

    return publish


def _drive(
    graph,
    graph_input,
    config,
    listener: ProgressListener,
    saved: set[str],
    audit: AuditRun,
    reviewer: str,
    results: ReviewResults,
) -> None:
    """Run the graph, telling the listener about each file. ``saved``: files already counted as
    done when this run resumed (a re-executed step reports them again; they are not new)."""
    for mode, chunk in graph.stream(
        graph_input, config, stream_mode=["updates", "custom"], durability="sync"
    ):
        if mode == "updates" and isinstance(chunk, dict) and "plan" in chunk:
            update = chunk["plan"] or {}
            audit.planned(
                update.get("files_total", 0), results.get_plan(config["configurable"]["thread_id"])[1]
            )
            listener.begin(
                total=update.get("files_total", 0), done=0, resumed=False, offline=False, reviewer=""
            )
        elif mode == "custom" and isinstance(chunk, dict) and "file_done" in chunk:
            if chunk["file_done"] in saved:
                continue
            listener.file_done(chunk["file_done"], reused=chunk["reused"], comments=chunk["comments"])
            audit.file_done(
                chunk["file_done"],
                comments=chunk["comments"],
                reused=chunk["reused"],
                reviewer=None if chunk["reused"] else reviewer,
                reused_from=chunk.get("reused_from"),
            )


def _total_cost(files: list[FileReview]) -> float | None:
    costs = [f.cost_usd for f in files if f.model_calls or f.cost_usd]
    if any(c is None for c in costs):
        return None
    return round(sum(c for c in costs if c is not None), 6)


def build_report(
    values: dict[str, Any],
    reviews: dict[str, FileReview],
    plan: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    *,
    backend: str,
    reviewer: CountingReviewer,
    resumed: bool,
    done_before: int,
    offline: bool,
    repository_uri: str = "",
) -> ReviewReport:
    target = values.get("target") or {}
    plan_paths = [p["path"] for p in plan]
    files = [reviews[p] for p in plan_paths if p in reviews]
    notes = list(target.get("notes") or []) + list(values.get("notes") or [])
    suppressed = sum(f.suppressed for f in files)
    if suppressed:
        notes.append(f"{plural(suppressed, 'finding')} dropped: they match findings dismissed earlier")
    reused = [f.path for f in files if f.reused]
    if reused and len(reused) < len(files):
        notes.append(
            f"{plural(len(files) - len(reused), 'file')} new or changed since the last review; "
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
        skipped=[Skipped.model_validate(s) for s in skipped],
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
        repository_uri=repository_uri,
    )
