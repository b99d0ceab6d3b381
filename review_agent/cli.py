"""The command line: parse, build settings, call the service, render. Nothing else lives here."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from review_agent import __version__
from review_agent.config import Settings, load_settings
from review_agent.console import make_listener, stderr_console
from review_agent.errors import FilesFailed, Interrupted, ReviewAgentError
from review_agent.publish.report import files_failed_message, render
from review_agent.redaction import RedactingFilter
from review_agent.textsafe import printable
from review_agent.wording import plural

if TYPE_CHECKING:
    from review_agent.memory_admin import Memory

app = typer.Typer(
    name="review-agent",
    help="A fault-tolerant AI code reviewer: reviews a pull request or a local branch file by "
    "file, saves every step, and resumes after a crash without reviewing or posting twice.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
prefs_app = typer.Typer(help="Manage a user's style preferences (cross-review memory).", no_args_is_help=True)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
app.add_typer(prefs_app, name="prefs")
app.add_typer(db_app, name="db")

err = stderr_console()


class Format(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"
    sarif = "sarif"


REVIEW_EVENT_CHOICES = ("comment", "request-changes", "approve")


def _review_event(value: str) -> str:
    """``--event`` as the review API spells it. The Action's spelling (``COMMENT``,
    ``REQUEST_CHANGES``) is accepted too, in any case, so one value works in both places."""
    event = value.strip().upper().replace("-", "_")
    if event.lower().replace("_", "-") not in REVIEW_EVENT_CHOICES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(REVIEW_EVENT_CHOICES)}")
    return event


# --env-file, a global option: the .env of the user's choosing (never the working directory's)
_ENV_FILE: list[Path] = []


def _settings(**overrides: object) -> Settings:
    explicit = _ENV_FILE[-1] if _ENV_FILE else None
    if explicit is not None and not explicit.is_file():
        _fail(f"--env-file {explicit}: no such file", 2)
    try:
        settings = load_settings(explicit, **overrides)
    except Exception as exc:  # pydantic's ValidationError: a bad environment value
        _fail(f"invalid configuration: {exc}", 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter(settings.secrets()))
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    # Libraries that narrate their own retries and teardown: what matters reaches the user as
    # our one-line error, not as their log lines.
    for noisy in ("psycopg", "psycopg.pool", "github", "httpx", "openai"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    return settings


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"error: {printable(message)}", highlight=False, markup=False)
    raise typer.Exit(code)


def _run(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Call the service, mapping its errors to one line and an exit code (README: exit codes)."""
    try:
        return fn(*args, **kwargs)
    except Interrupted as exc:
        err.print(f"interrupted: {printable(str(exc))}", highlight=False, markup=False)
        raise typer.Exit(exc.exit_code) from None
    except ReviewAgentError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted: progress is saved; rerun the same command to resume", highlight=False)
        raise typer.Exit(130) from None
    except Exception as exc:
        # A bug, or a failure we have not mapped yet: one line, and the traceback on demand.
        if os.environ.get("REVIEW_AGENT_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        _fail(
            f"unexpected {type(exc).__name__}: {first} (progress so far is saved; set "
            "REVIEW_AGENT_DEBUG=1 for the traceback, and please report it)",
            1,
        )


def _graceful_stop() -> threading.Event:
    """First SIGINT/SIGTERM: start no new file, let those in flight finish and be saved.
    A second one stops at once (progress up to the last saved file is kept either way)."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        again = "send SIGTERM or press Ctrl-C" if signum == signal.SIGTERM else "press Ctrl-C"
        err.print(
            f"stopping after the files in flight are saved ({again} again to stop now)",
            highlight=False,
            markup=False,
        )

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _version(value: bool) -> None:
    if value:
        typer.echo(f"review-agent {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            help="Read settings from this .env file. Without it: $REVIEW_AGENT_HOME/.env or the "
            "config directory's .env. A .env in the working directory (the repository under "
            "review) is never read.",
        ),
    ] = None,
) -> None:
    if env_file is not None:
        _ENV_FILE.append(env_file)


TargetArg = Annotated[
    str,
    typer.Argument(
        help="A pull request URL (https://HOST/OWNER/REPO/pull/N) or a path to a local git repository."
    ),
]
BaseOpt = Annotated[
    str | None, typer.Option("--base", help="Local target: base ref (default: upstream, else main).")
]
HeadOpt = Annotated[str | None, typer.Option("--head", help="Local target: head ref (default: HEAD).")]


@app.command()
def review(
    target: TargetArg,
    base: BaseOpt = None,
    head: HeadOpt = None,
    user: Annotated[
        str | None, typer.Option(help="Whose preferences apply (default: PR author or git user).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model name (default: $REVIEW_AGENT_MODEL or gpt-4o-mini).")
    ] = None,
    post: Annotated[
        bool, typer.Option("--post/--no-post", help="Publish the review on the pull request.")
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.text,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to FILE instead of stdout.")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Discard saved progress for this change and start over.")
    ] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-j", min=1, max=64, help="Files reviewed at a time.")
    ] = 4,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to wait for another run of this review.")
    ] = 0.0,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", help="Stop (state saved) once the review's model cost reaches USD."),
    ] = None,
    max_files: Annotated[
        int | None,
        typer.Option("--max-files", help="Review at most N files; the rest are listed as skipped."),
    ] = None,
    from_step: Annotated[
        int | None,
        typer.Option(
            "--from-step",
            min=-1,
            help="Fork a new review from this checkpoint step of this change's review (see "
            "`history`): the original is left as it is.",
        ),
    ] = None,
    event: Annotated[
        str,
        typer.Option(
            "--event",
            metavar="EVENT",
            callback=_review_event,
            help="With --post: the review's event, comment, request-changes or approve (the "
            "Action's COMMENT, REQUEST_CHANGES, APPROVE work too). Only this flag can approve or "
            "request changes.",
        ),
    ] = "comment",
) -> None:
    """Review a pull request or a local branch; rerun the same command to resume after a crash."""
    from review_agent.service import ReviewOptions, run_review

    settings = _settings()
    listener = make_listener(err)
    options = ReviewOptions(
        target=target,
        base=base,
        head=head,
        user=user,
        model=model,
        fresh=fresh,
        concurrency=concurrency,
        post=post,
        wait=wait,
        max_cost=max_cost,
        max_files=max_files,
        review_event=event,
        stop=_graceful_stop(),
        from_step=from_step,
    )
    try:
        report = _run(run_review, options, settings, listener)
    finally:
        listener.close()
    text = render(report, fmt.value)
    if output:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot write {output}: {exc.strerror or exc}", 2)
        err.print(f"report written to {printable(str(output))}", highlight=False, markup=False)
    else:
        sys.stdout.write(text)
    if report.failed:
        _fail(files_failed_message(report), FilesFailed.exit_code)


FromStepOpt = Annotated[
    int | None,
    typer.Option(
        "--from-step",
        min=-1,
        help="The review forked from this step (`review --from-step STEP`) instead of the original.",
    ),
]


def _say(line: str) -> None:
    """One line of a view for a person: names and messages come from the reviewed change and the
    model, so control characters are shown escaped, never sent to the terminal."""
    typer.echo(printable(line))


def _quiet_reads() -> None:
    """Read-only commands answer from local state when GitHub is down: no retry chatter."""
    logging.getLogger("urllib3").setLevel(logging.ERROR)


@app.command()
def status(
    target: TargetArg,
    base: BaseOpt = None,
    head: HeadOpt = None,
    from_step: FromStepOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Progress of the latest review of TARGET: files done out of total, the files in flight."""
    from review_agent.views import review_status

    settings = _settings()
    _quiet_reads()
    info = _run(review_status, target, settings, base, head, from_step=from_step)
    if as_json:
        typer.echo(json.dumps(info.__dict__, indent=2))
        return
    if info.offline_note:
        _say(info.offline_note)
    if not info.started:
        _say(f"{info.target} @ {info.head_sha[:12]}: not reviewed yet")
        return
    _say(
        f"{info.target} @ {info.head_sha[:12]}: {info.state}, {info.done}/{info.total} files done"
        + (f", {info.skipped} skipped" if info.skipped else "")
    )
    if info.current:
        _say("current: " + ", ".join(info.current))
    if info.posted and info.posted.get("review_id"):
        _say(f"posted: review {info.posted['review_id']}")
    if info.last_run:
        r = info.last_run
        ended = f"ended {r['ended_at']}: {r['outcome']}" if r["outcome"] else "no end recorded"
        _say(f"last run: run {r['run']} started {r['started_at']} by {r['by']}, {ended}")
    _say(f"thread: {info.thread_id}")
    if info.updated_at:
        _say(f"last checkpoint: {info.updated_at}")


@app.command()
def history(
    target: TargetArg,
    base: BaseOpt = None,
    head: HeadOpt = None,
    at: Annotated[
        int | None,
        typer.Option(
            "--at", min=-1, help="Show the state at this checkpoint step: files done, in flight, counters."
        ),
    ] = None,
    from_step: FromStepOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The audit trail of TARGET's review: every run, how it ended, every file decision, postings,
    --fresh and prune. It survives `db prune` and `--fresh`."""
    from review_agent.views import history_json, history_lines, review_history, review_state_at, state_lines

    settings = _settings()
    _quiet_reads()
    if at is not None:
        state, note = _run(review_state_at, target, settings, at, base, head, from_step=from_step)
        if as_json:
            typer.echo(json.dumps({**state.__dict__, "offline": note}, indent=2))
            return
        for line in ([note] if note else []) + state_lines(state):
            _say(line)
        return
    view = _run(review_history, target, settings, base, head, from_step=from_step)
    if as_json:
        typer.echo(json.dumps(history_json(view), indent=2, default=str))
        return
    for line in history_lines(view):
        _say(line)


@contextlib.contextmanager
def _memory(*, read_only: bool = False) -> Iterator[Memory]:
    from review_agent.memory_admin import open_memory

    settings = _settings()
    cm = open_memory(settings, read_only=read_only)
    memory = _run(cm.__enter__)
    try:
        yield memory
    finally:
        cm.__exit__(None, None, None)


def _parse_value(value: str) -> object:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _scope(user: str | None, repo: str | None) -> tuple[str, str]:
    if bool(user) == bool(repo):
        _fail("name exactly one of --user LOGIN or --repo OWNER/REPO", 2)
    return ("user", user) if user else ("repo", repo)  # type: ignore[return-value]


OrgOpt = Annotated[
    str | None, typer.Option("--org", help="An organisation's defaults (under its users' own).")
]
OptUser = Annotated[str | None, typer.Option("--user", help="The user whose memory this is.")]


def _owner(user: str | None, org: str | None) -> tuple[str, str]:
    if bool(user) == bool(org):
        _fail("name exactly one of --user LOGIN or --org ORG", 2)
    return ("user", user) if user else ("org", org)  # type: ignore[return-value]


@prefs_app.command("set")
def prefs_set(
    key: str,
    value: Annotated[str, typer.Argument(help="A string, or JSON (a list, a number, true).")],
    user: OptUser = None,
    org: OrgOpt = None,
) -> None:
    """Set one preference, e.g. `prefs set style "prefer early returns" --user alice`."""
    scope, name = _owner(user, org)
    with _memory() as m:
        _run(m.preferences.set, name, key, _parse_value(value), scope=scope)
    typer.echo(f"{name}: {key} set")


@prefs_app.command("get")
def prefs_get(key: str, user: OptUser = None, org: OrgOpt = None) -> None:
    """Print one preference."""
    scope, name = _owner(user, org)
    with _memory(read_only=True) as m:
        value = _run(m.preferences.get, name, key, scope=scope)
    if value is None:
        _fail(f"{name} has no preference {key!r}", 2)
    typer.echo(value if isinstance(value, str) else json.dumps(value))


@prefs_app.command("list")
def prefs_list(user: OptUser = None, org: OrgOpt = None) -> None:
    """List the preferences (and a user's learnings)."""
    scope, name = _owner(user, org)
    with _memory(read_only=True) as m:
        values = _run(m.preferences.all, name, scope=scope)
        learned = _run(m.learnings.list, ("user", name)) if scope == "user" else []
    if not values and not learned:
        typer.echo(f"{name} has no preferences")
    for k, v in values.items():
        typer.echo(f"{k} = {v if isinstance(v, str) else json.dumps(v)}")
    for lr in learned:
        typer.echo(f"learning {lr.key}: {lr.text}")


@prefs_app.command("forget")
def prefs_forget(
    key: Annotated[
        str | None, typer.Argument(help="One key (or learning id); everything of theirs if omitted.")
    ] = None,
    user: OptUser = None,
    org: OrgOpt = None,
) -> None:
    """Delete one preference or learning, or all of a user's (or organisation's) memory."""
    scope, name = _owner(user, org)
    with _memory() as m:
        n = _run(m.preferences.forget, name, key, scope=scope)
        if scope == "user":
            n += _run(m.learnings.forget, ("user", name), key)
    typer.echo(f"{name}: {plural(n, 'item')} deleted")


@prefs_app.command("export")
def prefs_export(
    user: Annotated[str | None, typer.Option("--user")] = None,
    repo: Annotated[str | None, typer.Option("--repo")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every user's and repository's memory.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Export memory as JSON (to move it to another backend with `prefs import`)."""
    from review_agent.memory_admin import export_memory, known_scopes

    with _memory(read_only=True) as m:
        scopes = _run(known_scopes, m) if everything else [_scope(user, repo)]
        text = json.dumps(_run(export_memory, m, scopes), indent=2, ensure_ascii=False)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        typer.echo(text)


@prefs_app.command("import")
def prefs_import(path: Annotated[Path, typer.Argument(help="A file written by `prefs export`.")]) -> None:
    """Import memory exported by `prefs export` (idempotent)."""
    from review_agent.memory_admin import import_memory

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {path}: {exc}", 2)
    with _memory() as m:
        n_prefs, n_learn = _run(import_memory, m, data)
    typer.echo(f"imported {plural(n_prefs, 'preference')} and {plural(n_learn, 'learning')}")


@app.command()
def learn(
    text: Annotated[
        str, typer.Argument(help='A short rule, e.g. "don\'t flag missing docstrings in tests".')
    ],
    user: Annotated[str | None, typer.Option("--user", help="Whose rule this is.")] = None,
    repo: Annotated[str | None, typer.Option("--repo", help="A repository's rule (OWNER/REPO).")] = None,
) -> None:
    """Teach the reviewer a rule; it is recalled for related files in later reviews."""
    scope = _scope(user, repo)
    with _memory() as m:
        lr = _run(m.learnings.add, scope, text, {"by": user or "cli", "via": "review-agent learn"})
    typer.echo(f"learned ({scope[0]} {scope[1]}): {lr.text}  [id {lr.key}]")


@db_app.command("init")
def db_init() -> None:
    """Create tables, extensions, indexes and the App's queue schema (idempotent)."""
    from review_agent.storage.factory import open_storage

    settings = _settings()

    def _init() -> tuple[str, list[str], str | None]:
        with open_storage(settings, setup=True) as storage:
            backend, migrated, note = storage.backend, storage.migrated, storage.memory_note
        if settings.database_url and settings.database_url.startswith(("postgres://", "postgresql://")):
            from review_agent.worker.schema import ensure_app_schema

            ensure_app_schema(settings.database_url)  # the GitHub App's queue and bookkeeping
        return backend, migrated, note

    backend, migrated, memory_note = _run(_init)
    typer.echo(f"database ready: {backend}")
    typer.echo(f"migrations applied: {', '.join(migrated)}" if migrated else "migrations: up to date")
    if memory_note:  # Postgres without pgvector: memory works (vectors compared in Python)
        typer.echo(f"note: memory compares vectors in Python, not pgvector: {memory_note}", err=True)


@db_app.command("prune")
def db_prune() -> None:
    """Keep only the latest checkpoint of every review (reviews and the audit log are kept)."""
    from review_agent.storage.factory import open_storage
    from review_agent.storage.retention import prune_to_latest

    settings = _settings()

    def _prune():  # type: ignore[no-untyped-def]
        with open_storage(settings) as storage:
            return prune_to_latest(storage.checkpointer, storage.audit)

    r = _run(_prune)
    if r.removed:
        reviews = plural(r.threads, "review")
        typer.echo(f"pruned {reviews}: {r.checkpoints_before} checkpoints -> {r.checkpoints_after}")
    else:
        kept = plural(r.checkpoints_after, "checkpoint")
        typer.echo(f"nothing to prune: {kept}, each the latest of its review")
    if r.bytes_before is not None and r.bytes_after is not None:
        typer.echo(f"database file: {_mb(r.bytes_before)} -> {_mb(r.bytes_after)}")


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n / 1000:.0f} kB"


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8080,
) -> None:
    """The GitHub App's webhook receiver: verify, record, queue (needs DATABASE_URL on Postgres)."""
    from review_agent.server.app import serve as run_server

    settings = _settings()
    err.print(f"serving webhooks on http://{host}:{port}/webhook", highlight=False)
    _run(run_server, settings, host, port)


@app.command()
def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-j", min=1, max=64, help="Files reviewed at a time, per review.")
    ] = 4,
    jobs: Annotated[
        int, typer.Option("--jobs", min=1, max=32, help="Reviews run at a time by this process.")
    ] = 1,
) -> None:
    """A queue worker of the GitHub App: runs queued reviews until SIGINT/SIGTERM."""
    from review_agent.worker.runner import run_worker

    settings = _settings()
    logging.getLogger("review_agent").setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:  # a long-running process: say when
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
    raise typer.Exit(_run(run_worker, settings, concurrency=concurrency, jobs=jobs))


@app.command(hidden=True)
def action() -> None:
    """Entry point of the GitHub Action (action.yml): reads the event payload and INPUT_* variables."""
    from review_agent.action import run_action

    raise typer.Exit(run_action(os.environ))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
