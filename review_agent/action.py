"""The GitHub Action's entry point: ``run_action(env)`` reviews the pull request of the event.

It is a function of an environment mapping (not of ``os.environ``, not of a terminal), so a test
can drive it with a payload file and fake servers; ``python -m review_agent action`` calls it with
``os.environ`` and exits with what it returns.

Environment contract
--------------------

GitHub sets (the tests set them too):

* ``GITHUB_EVENT_PATH`` (required): the event payload file. ``GITHUB_EVENT_NAME`` names the event;
  when it is absent the event is inferred from the payload.
* ``GITHUB_SERVER_URL`` (default ``https://github.com``) and ``GITHUB_REPOSITORY``: used to build a
  pull request URL when the payload has none (a ``pr`` number), so GitHub Enterprise hosts work.
* ``GITHUB_API_URL``: the REST API base (GitHub sets it on github.com and on Enterprise Server).
* ``GITHUB_STEP_SUMMARY`` / ``GITHUB_OUTPUT``: files to append the Markdown report and the outputs
  to; either may be absent (a local try), then the report and outputs only go to the log.

Action inputs arrive as ``INPUT_<NAME>`` variables. A composite action does not export its inputs
by itself, so ``action.yml`` maps each one explicitly with underscores (``INPUT_FAIL_ON_FINDINGS``,
shell-friendly); the runner's own spelling for JavaScript and Docker actions, which keeps the
hyphen (``INPUT_FAIL-ON-FINDINGS``), is accepted too. An empty input counts as not given (GitHub
passes an empty string for an input without a value). Inputs, and where they go:

- ``model``: the model name, as ``--model`` gives it (so it wins over ``REVIEW_AGENT_MODEL`` and
  over the ``model`` of the repository's ``.review-agent.toml``);
- ``base-url`` → ``OPENAI_BASE_URL``; ``api-key`` →
  ``OPENAI_API_KEY`` (no key and no base URL: the built-in offline reviewer); ``github-token`` →
  ``GITHUB_TOKEN``; ``database-url`` → ``DATABASE_URL`` (unset: SQLite under
  ``REVIEW_AGENT_HOME``); ``redis-url`` → ``REDIS_URL``;
- ``user``: whose preferences apply (default: the pull request's author);
- ``concurrency``: files reviewed at a time, 1..64 (default 4);
- ``fail-on-findings``: ``none`` (default) | ``info`` | ``warning`` | ``error``: exit 1 when a
  finding at or above that severity exists;
- ``review-event``: ``COMMENT`` (default) | ``REQUEST_CHANGES`` | ``APPROVE``, in any case and
  with ``-`` for ``_`` too (the CLI's ``request-changes``);
- ``pr``: a pull request number or URL to review, whatever the event.

An input wins over the plain variable it maps to, which also works (``OPENAI_API_KEY`` in a step's
``env:``); every other ``Settings`` variable (``REVIEW_AGENT_HOME``, ``REVIEW_AGENT_MODEL_TIMEOUT``,
…) is read from the mapping as the CLI reads it. A ``.env`` file is *not* read: in CI the working
directory is the checked-out repository, often the pull request's own code, and a ``.env`` there
could point ``OPENAI_BASE_URL`` at a server of the author's choosing and collect the API key.

Which pull request
------------------

``pull_request`` / ``pull_request_target`` (and any event whose payload has ``pull_request``):
``pull_request.html_url``. ``issue_comment``: the pull request the comment is on. ``workflow_dispatch``:
its ``pr`` input. The ``pr`` action input overrides all of them. An event that is not about a pull
request (a push, a schedule, a comment on an issue, a closed pull request) is reported with a
``::notice::`` and exit 0: nothing to review is not a failure, and a workflow shared with other
triggers must not go red. When the user named a pull request explicitly (the ``pr`` input, or a
``workflow_dispatch`` run, which exists only to be asked) and it cannot be used, that is bad input:
exit 2.

Exit codes: 0 reviewed (or nothing to review); 1 findings at or above ``fail-on-findings``; the
service error's own code otherwise (2 bad input, 3 unreachable service, 130 cancelled), always with
an ``::error::`` annotation. Secrets (API key, token) are registered with ``::add-mask::`` before
anything else is printed, and are replaced by ``***`` in everything this module writes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import signal
import sys
import threading
import traceback
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from rich.console import Console

from review_agent.config import Settings
from review_agent.console import PlainListener
from review_agent.errors import BadInput, FilesFailed, ReviewAgentError
from review_agent.publish.report import ReviewReport, files_failed_message, render
from review_agent.redaction import redact_known
from review_agent.state.schemas import SEVERITY_ORDER
from review_agent.textsafe import md_text, printable, printable_block
from review_agent.wording import plural

if TYPE_CHECKING:
    from review_agent.service import ReviewOptions

FAIL_LEVELS = ("none", *sorted(SEVERITY_ORDER, key=SEVERITY_ORDER.__getitem__))  # none info warning error
REVIEW_EVENTS = ("COMMENT", "REQUEST_CHANGES", "APPROVE")
DEFAULT_SERVER_URL = "https://github.com"
MAX_CONCURRENCY = 64

# action input -> the Settings variable it sets
SETTING_INPUTS: dict[str, str] = {
    "base-url": "OPENAI_BASE_URL",
    "api-key": "OPENAI_API_KEY",
    "github-token": "GITHUB_TOKEN",
    "database-url": "DATABASE_URL",
    "redis-url": "REDIS_URL",
}
OPTION_INPUTS = ("model", "user", "concurrency", "fail-on-findings", "review-event", "pr")
INPUTS = (*SETTING_INPUTS, *OPTION_INPUTS)  # every input run_action reads; action.yml maps each
OUTPUTS = ("thread-id", "files-reviewed", "files-total", "comment-count", "resumed", "review-id")
_SECRET_VARS = ("OPENAI_API_KEY", "GITHUB_TOKEN")
_SECRET_INPUTS = ("api-key", "github-token")


class NothingToReview(Exception):
    """The event is not about a pull request: say why and succeed."""


@dataclasses.dataclass(frozen=True)
class PullRequestTarget:
    """What the event asks to review: the PR's web URL and, when the payload says, its author."""

    url: str
    author: str | None
    event: str


@dataclasses.dataclass(frozen=True)
class ActionInputs:
    """The validated inputs that are not settings."""

    model: str | None
    user: str | None
    concurrency: int
    fail_on: str
    review_event: str
    pr: str | None


# -- reading the environment -----------------------------------------------------------------


def input_value(env: Mapping[str, str], name: str) -> str | None:
    """An action input, trimmed; None when absent or empty (GitHub passes "" for no value)."""
    upper = name.upper().replace(" ", "_")
    for key in (f"INPUT_{upper.replace('-', '_')}", f"INPUT_{upper}"):
        value = env.get(key)
        if value is not None and value.strip():
            return value.strip()
    return None


def read_inputs(env: Mapping[str, str]) -> ActionInputs:
    """Parse and check the option inputs before anything is opened, so a typo costs no review."""
    raw = input_value(env, "concurrency")
    try:
        concurrency = int(raw) if raw is not None else 4
    except ValueError:
        raise BadInput(
            f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, not {raw!r}"
        ) from None
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise BadInput(f"concurrency must be from 1 to {MAX_CONCURRENCY}, not {concurrency}")
    fail_on = (input_value(env, "fail-on-findings") or "none").lower()
    if fail_on not in FAIL_LEVELS:
        raise BadInput(f"fail-on-findings must be one of {', '.join(FAIL_LEVELS)}, not {fail_on!r}")
    event = (input_value(env, "review-event") or "COMMENT").upper().replace("-", "_")
    if event not in REVIEW_EVENTS:
        raise BadInput(f"review-event must be one of {', '.join(REVIEW_EVENTS)}, not {event!r}")
    return ActionInputs(
        model=input_value(env, "model"),
        user=input_value(env, "user"),
        concurrency=concurrency,
        fail_on=fail_on,
        review_event=event,
        pr=input_value(env, "pr"),
    )


def raw_secrets(env: Mapping[str, str]) -> list[str]:
    """Every secret value the run may use, as given, so it can be masked before any output."""
    values = [input_value(env, name) for name in _SECRET_INPUTS]
    values += [(env.get(var) or "").strip() for var in _SECRET_VARS]
    out: list[str] = []
    for v in values:
        if v and v not in out:
            out.append(v)
    return out


class _MappingSettings(Settings):
    """Settings from the keyword arguments only: not from ``os.environ`` (run_action is a function
    of the mapping it is given) and not from a ``.env`` in the working directory (see above)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def build_settings(env: Mapping[str, str]) -> Settings:
    """Settings from the plain variables of ``env``, overridden by the action inputs."""
    aliases = [f.alias for f in Settings.model_fields.values() if f.alias]
    values: dict[str, Any] = {a: env[a].strip() for a in aliases if (env.get(a) or "").strip()}
    for name, alias in SETTING_INPUTS.items():
        value = input_value(env, name)
        if value is not None:
            values[alias] = value
    try:
        return _MappingSettings(**values)
    except ValidationError as exc:
        # name the variable and the problem, never the value (it could be a secret)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise BadInput(f"invalid configuration: {problems}") from None


# -- the event -------------------------------------------------------------------------------


def load_event(env: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """(event name, payload). Without a readable payload there is nothing to go on: bad input."""
    path = (env.get("GITHUB_EVENT_PATH") or "").strip()
    if not path:
        raise BadInput(
            "GITHUB_EVENT_PATH is not set: this command runs inside a GitHub Actions job "
            "(to review a pull request from a terminal, use `review-agent review URL`)"
        )
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"cannot read the event payload {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise BadInput(f"the event payload {path} is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadInput(f"the event payload {path} is not a JSON object")
    name = (env.get("GITHUB_EVENT_NAME") or "").strip()
    if not name:
        if isinstance(payload.get("pull_request"), dict):
            name = "pull_request"
        elif isinstance(payload.get("issue"), dict) and isinstance(payload.get("comment"), dict):
            name = "issue_comment"
        elif isinstance(payload.get("inputs"), dict):
            name = "workflow_dispatch"
        else:
            name = "unknown"
    return name, payload


def _login(obj: Any) -> str | None:
    user = obj.get("user") if isinstance(obj, dict) else None
    login = user.get("login") if isinstance(user, dict) else None
    return login if isinstance(login, str) and login else None


def _pr_url(value: str, env: Mapping[str, str], payload: Mapping[str, Any], what: str) -> str:
    """A PR URL from a number (``12`` or ``#12``, in this repository) or a URL given as is."""
    text = value.strip()
    number = text.lstrip("#")
    if number.isdigit():
        if int(number) <= 0:
            raise BadInput(f"{what}: pull request numbers start at 1, not {text!r}")
        repo = (env.get("GITHUB_REPOSITORY") or "").strip()
        if not repo:
            full = (payload.get("repository") or {}).get("full_name")
            repo = full if isinstance(full, str) else ""
        if not repo:
            raise BadInput(f"{what}: a pull request number needs GITHUB_REPOSITORY to name the repository")
        server = (env.get("GITHUB_SERVER_URL") or "").strip().rstrip("/") or DEFAULT_SERVER_URL
        return f"{server}/{repo}/pull/{int(number)}"
    if "/pull/" in text or "/pulls/" in text:
        return text  # the service parses it and says precisely what is wrong with it
    raise BadInput(f"{what}: expected a pull request number or URL, not {text!r}")


def find_pull_request(
    env: Mapping[str, str], event: str, payload: Mapping[str, Any], explicit: str | None
) -> PullRequestTarget:
    """The pull request to review. Raises NothingToReview (exit 0) or BadInput (exit 2)."""
    if explicit is not None:
        return PullRequestTarget(_pr_url(explicit, env, payload, "the pr input"), None, event)
    pr = payload.get("pull_request")
    if isinstance(pr, dict):
        number = pr.get("number")
        if payload.get("action") == "closed" or pr.get("state") == "closed":
            raise NothingToReview(f"pull request #{number} is closed: nothing to review")
        url = pr.get("html_url")
        if not isinstance(url, str) or not url:
            if not isinstance(number, int):
                raise BadInput(f"the {event} payload has a pull request without html_url or number")
            url = _pr_url(str(number), env, payload, f"the {event} payload")
        return PullRequestTarget(url, _login(pr), event)
    if event == "issue_comment":
        issue = payload.get("issue") if isinstance(payload.get("issue"), dict) else {}
        link = issue.get("pull_request")
        if not isinstance(link, dict):
            raise NothingToReview(
                f"the comment is on issue #{issue.get('number')}, not on a pull request: nothing to review"
            )
        url = link.get("html_url")
        if not isinstance(url, str) or not url:
            url = _pr_url(str(issue.get("number")), env, payload, "the issue_comment payload")
        return PullRequestTarget(url, _login(issue), event)
    if event == "workflow_dispatch":
        inputs = payload.get("inputs") if isinstance(payload.get("inputs"), dict) else {}
        given = inputs.get("pr")
        if given is None or not str(given).strip():
            raise BadInput(
                "workflow_dispatch needs a `pr` input (a pull request number or URL) naming what to review"
            )
        return PullRequestTarget(
            _pr_url(str(given), env, payload, "the workflow_dispatch pr input"), None, event
        )
    raise NothingToReview(
        f"the {event} event is not about a pull request: nothing to review "
        "(run on pull_request, or give the `pr` input)"
    )


# -- writing to the runner -------------------------------------------------------------------


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as the runner expects (it unescapes ``%``, CR and
    LF); any other control character (an escape sequence in a file name) shown as a visible
    escape, so it never reaches the log raw."""
    return printable_block(text).replace("%", "%25").replace("\n", "%0A")


class _Redacting(io.TextIOBase):
    """A text stream that replaces every secret by ``***`` before it reaches the log. The runner
    masks registered secrets too; this also covers a local run and a secret the runner was not
    told of, and messages that echo a key (some servers do, in full)."""

    def __init__(self, stream: TextIO, secrets: list[str]) -> None:
        super().__init__()
        self._stream = stream
        # longest first, so a secret that contains another is replaced whole
        self._secrets = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def redact(self, text: str) -> str:
        return redact_known(text, self._secrets)

    def write(self, text: str) -> int:
        self._stream.write(self.redact(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def writable(self) -> bool:
        return True


class _AnnotationHandler(logging.Handler):
    """Library warnings (a Redis fallback, a retry) as ``::warning::`` annotations, so they are
    seen on the run's page and not only deep in the log."""

    def __init__(self, out: _Redacting) -> None:
        super().__init__(level=logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            kind = "error" if record.levelno >= logging.ERROR else "warning"
            self.out.write(f"::{kind}::{escape_data(record.getMessage())}\n")
        except Exception:
            self.handleError(record)


@contextmanager
def _annotated_logging(out: _Redacting) -> Iterator[None]:
    root = logging.getLogger()
    handler = _AnnotationHandler(out)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


@contextmanager
def _graceful_stop(out: _Redacting) -> Iterator[threading.Event]:
    """A cancelled job gets SIGINT, then SIGTERM a few seconds later: the first one stops taking
    new files (those in flight are saved), the second stops at once. Handlers are installed only
    in the main thread (Python allows no other) and restored after, so a test process keeps its own."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        out.write("::warning::cancelled: stopping after the files in flight are saved\n")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _field(obj: Any, name: str) -> Any:
    """``posted`` is a dict; tolerate an object with attributes as well."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def outputs_of(report: ReviewReport) -> dict[str, str]:
    """The step outputs. ``review-id`` only when a review was posted (or found already there)."""
    values = {
        "thread-id": report.thread_id,
        "files-reviewed": str(len(report.files)),
        "files-total": str(report.files_total),
        "comment-count": str(report.comment_count),
        "resumed": "true" if report.resumed else "false",
    }
    review_id = _field(report.posted, "review_id")
    if review_id is not None:
        values["review-id"] = str(review_id)
    return values


def _write_outputs(path: str, values: Mapping[str, str]) -> None:
    """Append outputs in the runner's delimiter form, which is safe for any value (a newline in a
    value could otherwise inject another output)."""
    with open(path, "a", encoding="utf-8") as fh:
        for name, value in values.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def _posted_summary(posted: Any) -> str | None:
    """One line on what was posted; the publisher's own message when it wrote one."""
    if posted is None:
        return None
    message = _field(posted, "message")
    if _field(posted, "read_only"):
        return message or (
            "the token cannot write to this pull request: the review was not posted "
            "(give the workflow `permissions: pull-requests: write`)"
        )
    review = f"review {_field(posted, 'review_id')}"
    if message:  # the publisher's message names the review it posted or found
        return message if str(_field(posted, "review_id")) in message else f"{message} ({review})"
    parts = [f"posted {review}"]
    for key, noun, label in (
        ("comments_posted", "comment", " posted"),
        ("comments_already_there", "comment", " already there"),
        ("moved_to_body", "comment", " moved to the review body"),
    ):
        value = _field(posted, key)
        if value:
            parts.append(plural(int(value), noun) + label)
    return ", ".join(parts)


def job_summary(report: ReviewReport, posted_line: str | None) -> str:
    """The Markdown for ``GITHUB_STEP_SUMMARY``: the report, then what was posted (escaped like
    any text we did not wholly write: it can name the repository)."""
    markdown = render(report, "markdown")
    if posted_line:
        markdown += f"\n{md_text(posted_line)}\n"
    return markdown


def findings_at_or_above(report: ReviewReport, level: str) -> int:
    if level == "none":
        return 0
    floor = SEVERITY_ORDER[level]
    return sum(n for sev, n in report.severity_counts().items() if SEVERITY_ORDER[sev] >= floor)


def _review_options(target: PullRequestTarget, inputs: ActionInputs, stop: threading.Event) -> ReviewOptions:
    from review_agent.service import ReviewOptions

    return ReviewOptions(
        target=target.url,
        model=inputs.model,
        user=inputs.user or target.author,
        concurrency=inputs.concurrency,
        post=True,
        review_event=inputs.review_event,
        stop=stop,
    )


# -- the entry point -------------------------------------------------------------------------


def run_action(env: Mapping[str, str], *, stdout: TextIO | None = None) -> int:
    """Review the event's pull request, post the review, write the summary and outputs; return
    the exit code. Everything goes to ``stdout`` (the job log; workflow commands are read there)."""
    stream = stdout if stdout is not None else sys.stdout
    secrets = raw_secrets(env)
    for secret in secrets:  # first, before any line that could carry one
        for line in secret.splitlines():
            if line.strip():
                stream.write(f"::add-mask::{line}\n")
    out = _Redacting(stream, secrets)
    try:
        with _annotated_logging(out):
            return _run(env, out)
    except Exception as exc:  # a bug: say so in one annotation, keep the (redacted) traceback
        out.write(
            f"::error::review-agent failed unexpectedly: {escape_data(f'{type(exc).__name__}: {exc}')}\n"
        )
        out.write(traceback.format_exc())
        return 1
    finally:
        out.flush()


def _fail(out: _Redacting, message: str, code: int) -> int:
    out.write(f"::error title=review-agent::{escape_data(message)}\n")
    return code


def _run(env: Mapping[str, str], out: _Redacting) -> int:
    from review_agent.service import run_review

    try:
        inputs = read_inputs(env)
        event, payload = load_event(env)
        try:
            target = find_pull_request(env, event, payload, inputs.pr)
        except NothingToReview as exc:
            out.write(f"::notice title=review-agent::{escape_data(str(exc))}\n")
            return 0
        settings = build_settings(env)
        out.write(f"review-agent: reviewing {printable(target.url)} ({printable(target.event)})\n")
        console = Console(file=out, force_terminal=False, no_color=True, soft_wrap=True, highlight=False)
        listener = PlainListener(console)
        with _graceful_stop(out) as stop:
            report = run_review(_review_options(target, inputs, stop), settings, listener)
    except ReviewAgentError as exc:
        return _fail(out, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return _fail(out, "cancelled: progress is saved; re-run the job to resume", 130)

    out.write("\n" + render(report, "text"))
    posted = report.posted
    posted_line = _posted_summary(posted)
    if posted_line and _field(posted, "read_only"):
        out.write(f"::warning title=review-agent::{escape_data(posted_line)}\n")
    elif posted_line:
        out.write(printable(posted_line) + "\n")

    summary_path = (env.get("GITHUB_STEP_SUMMARY") or "").strip()
    if summary_path:
        markdown = job_summary(report, posted_line)
        try:
            with open(summary_path, "a", encoding="utf-8") as fh:
                fh.write(out.redact(markdown) + "\n")
        except OSError as exc:
            out.write(f"::warning::cannot write the step summary: {escape_data(exc.strerror or str(exc))}\n")

    values = outputs_of(report)
    out.write("outputs: " + printable(", ".join(f"{k}={v}" for k, v in values.items())) + "\n")
    output_path = (env.get("GITHUB_OUTPUT") or "").strip()
    if output_path:
        try:
            _write_outputs(output_path, {k: out.redact(v) for k, v in values.items()})
        except OSError as exc:
            out.write(f"::warning::cannot write the step outputs: {escape_data(exc.strerror or str(exc))}\n")

    if report.failed:
        return _fail(out, files_failed_message(report), FilesFailed.exit_code)
    over = findings_at_or_above(report, inputs.fail_on)
    if over:
        return _fail(
            out,
            f"{plural(over, 'finding')} at or above {inputs.fail_on} (fail-on-findings: {inputs.fail_on})",
            1,
        )
    return 0
