"""One review run, in three parts: **assemble** what the review is made of (the source, its
resolved target and files, the reviewer, the user) — everything that can reject the input, before
any storage is opened, so a bad input never leaves a half-written checkpoint; **run** the graph on
the review's thread (a new review, a resume after a crash, or a new walk over the files a saved
review still lacks); **finish** with the report.

Everything a terminal is not needed for lives here, so tests call it directly.
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
from review_agent.graph.build import first_to_review, is_posted, window_size
from review_agent.graph.file_review import is_done
from review_agent.memory_hooks import (
    learn_from_dismissals,
    learning_scopes,
    preference_loader,
    read_repo_config,
    recaller,
)
from review_agent.publish.base import Publisher
from review_agent.publish.report import ReviewReport, build_report
from review_agent.reviewers.base import Reviewer, ReviewRequest, ReviewResult, WalkthroughRequest
from review_agent.reviewers.builtin.walkthrough import deterministic_walkthrough
from review_agent.reviewers.pricing import cost_of, parse_price, price_for
from review_agent.sources.base import ResolvedTarget, Source
from review_agent.sources.factory import build_source
from review_agent.sources.local import LocalGitSource
from review_agent.state.identity import fork_thread_id, thread_id_for
from review_agent.state.schemas import Usage, Walkthrough
from review_agent.storage.audit import FRESH, AuditRun
from review_agent.storage.factory import Storage, open_storage
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
    # send at most this many files to the reviewer in this run; the rest wait for a later run
    max_files: int | None = None
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

    def write_walkthrough(self, request: WalkthroughRequest) -> Walkthrough:
        write = getattr(self.inner, "write_walkthrough", None)
        written = (
            write(request) if write is not None else deterministic_walkthrough(request, writer=self.name)
        )
        self.calls += written.model_calls
        return written


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
    if options.review_event != "COMMENT" and not options.post:
        raise BadInput("--event approve/request-changes needs --post: without it nothing is published")


# -- assemble ----------------------------------------------------------------------------------


@dataclass
class Assembled:
    """What a review is made of, known before any storage is opened."""

    source: Source
    target: ResolvedTarget
    files_listed: int
    thread_id: str
    user: str | None
    reviewer: CountingReviewer
    offline: bool
    load_preferences: Callable[..., dict[str, Any]]
    repository_uri: str
    source_thread: str | None = None  # --from-step: the review this one is forked from


def assemble(options: ReviewOptions, settings: Settings) -> Assembled:
    """Everything that can reject the input, before storage is opened: the target resolves, its
    files list, the reviewer can be built."""
    _validate(options)
    source = build_source(options.target, settings, options.base, options.head, github=options.github)
    if options.post and resolved_kind(source) != "github":
        raise BadInput("--post needs a pull request URL; a local review is only reported")
    resolved = source.resolve()
    files = source.list_files()
    repo_config, config_problem = read_repo_config(source)
    thread_id, source_thread = thread_id_for(resolved), None
    if options.from_step is not None:
        source_thread, thread_id = thread_id, fork_thread_id(thread_id, options.from_step)
    return Assembled(
        source=source,
        target=resolved,
        files_listed=len(files),
        thread_id=thread_id,
        source_thread=source_thread,
        repository_uri=repository_uri(source, resolved),
        user=options.user or default_user(resolved),
        reviewer=CountingReviewer(build_reviewer(settings, options.model or repo_config.model)),
        offline=not settings.model_configured,
        load_preferences=preference_loader(repo_config, config_problem),
    )


def run_review(
    options: ReviewOptions, settings: Settings, listener: ProgressListener | None = None
) -> ReviewReport:
    """Review a change, or resume its review. Returns the report; a report with failed files is
    returned too (the caller decides the exit code: files that could not be reviewed are exit 3)."""
    listener = listener or SilentListener()
    job = assemble(options, settings)
    lease = thread_lease(settings, job.thread_id, options.wait, on_wait=listener.info)
    with lease, open_storage(settings) as storage, ExitStack() as stack:
        if options.from_step is not None:
            assert job.source_thread is not None
            fork_thread(storage, job.source_thread, options.from_step, fresh=options.fresh)
            listener.info(f"Fork of step {options.from_step}: {job.thread_id}")
        elif options.fresh:
            storage.checkpointer.delete_thread(job.thread_id)
            ReviewResults(storage.store).delete_thread(job.thread_id)
            storage.audit.record(job.thread_id, None, FRESH)
            listener.info("--fresh: saved progress discarded; every file is sent to the reviewer again")
        audit = stack.enter_context(storage.audit.run(job.thread_id, **_run_facts(options, job)))
        return ReviewRun(job, options, settings, storage, listener, audit).execute()


# -- run -----------------------------------------------------------------------------------------


class ReviewRun:
    """One run of the graph on a review's thread, and the report it ends with."""

    def __init__(
        self,
        job: Assembled,
        options: ReviewOptions,
        settings: Settings,
        storage: Storage,
        listener: ProgressListener,
        audit: AuditRun,
    ) -> None:
        self.job, self.options, self.storage, self.listener = job, options, storage, listener
        self.audit = audit
        self.results = ReviewResults(storage.store)
        new_thread = storage.checkpointer.get_tuple(_config(job.thread_id, 0)) is None
        if job.target.kind == "github" and new_thread:
            # before the recall is built: what people dismissed is part of this review's memory
            learn_from_dismissals(job.source, storage.learnings(), job.target, listener)
        self.ports = self._ports(settings)
        self.graph = build_graph(self.ports, storage.checkpointer, storage.store)
        self.config = _config(job.thread_id, job.files_listed, options.concurrency)

    def _ports(self, settings: Settings) -> GraphPorts:
        job, options, listener = self.job, self.options, self.listener
        ports = GraphPorts(
            source=job.source,
            reviewer=job.reviewer,
            results=self.results,
            target=job.target,
            thread_id=job.thread_id,
            user=job.user,
            concurrency=options.concurrency,
            load_preferences=job.load_preferences,
            stop=options.stop,
            price=pricer(settings, job.reviewer.name),
            max_cost=options.max_cost,
            run_cap=options.max_files,
            fresh=options.fresh,
            retry_interval=settings.retry_interval,
            walkthrough=job.reviewer,
        )
        scopes = learning_scopes(job.user, job.target)
        if scopes:
            learnings = self.storage.learnings()
            ports.recall = recaller(learnings, scopes)
            ports.similarity = learnings.similarity
        if options.post:
            ports.publish = _publisher(job.source, self.report, options.review_event, listener, self.audit)
        return ports

    def execute(self) -> ReviewReport:
        job, listener = self.job, self.listener
        snapshot = self.graph.get_state(self.config)
        values = snapshot.values or {}
        if not values:
            self._drive({"thread_id": job.thread_id}, resumed=False, done_before=0)
            return self.report(self._values(), resumed=False)
        if snapshot.next:  # stopped mid-walk: a crash, a kill, an interrupt, a budget
            done_before = self._done_count()
            total = values.get("files_total", job.files_listed)
            if values.get("finished"):  # every file was saved; it stopped before or while posting
                listener.info(f"Already reviewed: {done_before}/{total} files done; finishing")
            elif not (snapshot.metadata or {}).get("forked_from"):
                listener.info(resuming_message(done_before, total))
            self._drive(None, resumed=True, done_before=done_before, fork=snapshot)
            return self.report(self._values(), resumed=True, done_before=done_before)
        return self._walk_again_or_finish(values)

    def _walk_again_or_finish(self, values: dict[str, Any]) -> ReviewReport:
        """A saved review whose graph ran to its end. Walk again over the files it still lacks
        for this run's reviewer — failed, reviewed by another reviewer or model, or never reached
        (an earlier run's --max-files) — or, when there are none, post what was not posted."""
        job, listener = self.job, self.listener
        plan = self.results.get_plan(job.thread_id)[0]
        saved = self.results.list(job.thread_id)
        start_at = first_to_review(plan, saved, job.reviewer)
        total = values.get("files_total", len(plan))
        if start_at is None:
            listener.info(f"Already reviewed: {total}/{total} files done (use --fresh to start over)")
            if self.ports.publish is not None and not is_posted(values.get("posted")):
                # every file was saved, but the run stopped before (or while) posting
                posted = self.ports.publish(dict(values))
                self.graph.update_state(self.config, {"posted": posted}, as_node="publish")
            elif self.ports.publish is not None:  # --post, and an earlier run posted it all
                listener.info(already_posted_message(values["posted"]))
            return self.report(self._values(), resumed=True, done_before=total)
        done_before = self._done_count()
        listener.info(_walk_again_message(plan[start_at:], saved, job.reviewer.name, done_before, total))
        window = window_size(self.options.concurrency)
        self.graph.update_state(
            self.config,
            {
                "cursor": start_at,
                "batch": [e["path"] for e in plan[start_at : start_at + window]],
                "last_done": [],
                "finished": False,
                "capped": False,
                "posted": None,
            },
            as_node="plan",
        )
        self._drive(None, resumed=True, done_before=done_before)
        # "resumed" only when this run kept files of the earlier ones (not when another reviewer's
        # files were all asked again)
        return self.report(self._values(), resumed=done_before > 0, done_before=done_before)

    def _values(self) -> dict[str, Any]:
        return self.graph.get_state(self.config).values or {}

    def _done_count(self) -> int:
        return sum(1 for r in self.results.list(self.job.thread_id).values() if is_done(r, self.job.reviewer))

    def _drive(
        self, graph_input: dict[str, Any] | None, *, resumed: bool, done_before: int, fork: Any = None
    ) -> None:
        """Run the graph to its end, telling the listener and the audit log about each file; on a
        failure that reviewed nothing in a new review, leave no checkpoint behind."""
        job, listener, audit = self.job, self.listener, self.audit
        values = self._values()
        listener.begin(
            total=values.get("files_total", 0) if resumed else 0,
            done=done_before,
            resumed=resumed,
            offline=job.offline,
            reviewer=job.reviewer.name,
        )
        # files already counted as done when this run began: a re-executed step reports them again
        saved = self.results.list(job.thread_id) if resumed else {}
        counted = {p for p, r in saved.items() if is_done(r, job.reviewer)}
        config = self.config
        if fork is not None and (fork.metadata or {}).get("forked_from"):
            # a new fork runs from its copied checkpoint's id: LangGraph's time travel (get_state
            # keeps the plain config, or it would read the old checkpoint)
            start = fork_config(job.thread_id, self.storage).get("configurable", {})
            config = {**config, "configurable": {**config["configurable"], **start}}
        try:
            for mode, chunk in self.graph.stream(
                graph_input, config, stream_mode=["updates", "custom"], durability="sync"
            ):
                if mode == "updates" and isinstance(chunk, dict) and "plan" in chunk:
                    update = chunk["plan"] or {}
                    audit.planned(update.get("files_total", 0), self.results.get_plan(job.thread_id)[1])
                    listener.begin(
                        total=update.get("files_total", 0), done=0, resumed=False, offline=False, reviewer=""
                    )
                elif mode == "custom" and isinstance(chunk, dict) and "file_done" in chunk:
                    self._file_event(chunk, counted)
                elif mode == "custom" and isinstance(chunk, dict) and "walkthrough" in chunk:
                    audit.walkthrough(chunk["walkthrough"], chunk.get("model_calls", 0), chunk.get("note"))
                    listener.info(f"walkthrough written by {chunk['walkthrough']}")
        except Interrupted:
            done = self._done_count()
            total = self._values().get("files_total", job.files_listed)
            audit.end_data = {"files_done": done, "files_total": total}
            raise Interrupted(
                f"stopped: {done}/{total} files saved; rerun the same command to resume"
            ) from None
        except BaseException:
            if not resumed and not self.results.list(job.thread_id):
                # nothing was reviewed: leave no checkpoint that would make the next run believe
                # it had started
                self.storage.checkpointer.delete_thread(job.thread_id)
            raise

    def _file_event(self, event: dict[str, Any], counted: set[str]) -> None:
        path, how = event["file_done"], event.get("how")
        if path in counted:  # done before this run, or already reported by it (a retried step)
            return
        counted.add(path)
        if how == "failed":
            reason = event.get("error") or "the review failed"
            self.listener.info(f"{path}: not reviewed: {reason}")
            self.audit.file_failed(path, reason)
        else:
            self.audit.file_done(
                path,
                comments=event["comments"],
                reused=event["reused"],
                reviewer=None if how == "reused" else event.get("reviewer"),
                reused_from=event.get("reused_from"),
            )
        self.listener.file_done(path, reused=event["reused"], comments=event["comments"])

    # -- finish ----------------------------------------------------------------------------------

    def report(self, values: dict[str, Any], resumed: bool = False, done_before: int = 0) -> ReviewReport:
        plan, skipped = self.results.get_plan(self.job.thread_id)
        cap = self.options.max_files
        self.audit.end_data = {"files_done": self._done_count(), "files_total": values.get("files_total", 0)}
        return build_report(
            values,
            self.results.list(self.job.thread_id),
            plan,
            skipped,
            backend=self.storage.backend,
            reviewer=self.job.reviewer.name,
            model_calls=self.job.reviewer.calls,
            resumed=resumed,
            done_before=done_before,
            offline=self.job.offline,
            repository_uri=self.job.repository_uri,
            walkthrough=self.results.get_walkthrough(self.job.thread_id),
            not_reached_reason=(
                f"not reviewed in this run (--max-files {cap}); rerun without it to review this file"
                if cap and values.get("capped")
                else None
            ),
        )


def _walk_again_message(
    todo: list[dict[str, Any]], saved: dict[str, Any], reviewer: str, done: int, total: int
) -> str:
    failed = sum(1 for e in todo if (r := saved.get(e["path"])) is not None and not r.ok)
    other = sum(
        1 for e in todo if (r := saved.get(e["path"])) is not None and r.ok and r.reviewer != reviewer
    )
    never = sum(1 for e in todo if e["path"] not in saved)
    parts = [
        f"{failed} failed" if failed else "",
        f"{other} reviewed by another reviewer than {reviewer}" if other else "",
        f"{never} not reviewed yet" if never else "",
    ]
    why = ", ".join(p for p in parts if p)
    # claims nothing about model calls: this reviewer's earlier answer for an unchanged file is
    # still served from the cache (offline, then a model, then offline again asks nothing)
    if not done:
        return f"Going over all {plural(total, 'file')} again ({why})"
    return f"Continuing: {done}/{total} files done; going over the other {total - done} ({why})"


def _run_facts(options: ReviewOptions, job: Assembled) -> dict[str, Any]:
    """What the audit log says of a run's start: names and options, never a secret."""
    return {
        "user": job.user,
        "reviewer": job.reviewer.name,
        "model": options.model,
        "target": job.target.display,
        "head_sha": job.target.head_sha,
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


def already_posted_message(posted: dict[str, Any]) -> str:
    """What a rerun with --post says when this review was posted by an earlier run: silence
    would leave the user wondering whether --post was heard."""
    where = f"review {posted.get('review_id')}"
    if posted.get("review_url"):
        where += f", {posted['review_url']}"
    return f"nothing to post: an earlier run of this review posted it ({where})"


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
