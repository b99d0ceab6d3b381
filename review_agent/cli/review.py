"""`review`, `status`, `history`: a review, where it stands, what happened."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from review_agent.cli.common import (
    BaseOpt,
    Format,
    FromStepOpt,
    HeadOpt,
    TargetArg,
    _fail,
    _graceful_stop,
    _quiet_reads,
    _review_event,
    _run,
    _say,
    _settings,
    app,
    err,
)
from review_agent.console import make_listener
from review_agent.errors import FilesFailed
from review_agent.publish.report import files_failed_message, render
from review_agent.textsafe import printable

if TYPE_CHECKING:
    pass


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
