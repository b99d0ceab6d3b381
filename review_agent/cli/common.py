"""What every command shares: the typer apps, settings, the one-line error contract, the shared options."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from review_agent import __version__
from review_agent.config import Settings, load_settings
from review_agent.console import stderr_console
from review_agent.errors import Interrupted, ReviewAgentError
from review_agent.redaction import RedactingFilter
from review_agent.textsafe import printable

if TYPE_CHECKING:
    pass

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
