"""What a model server's refusal means for the run: rerun, fix the settings, or skip the file.

Errors end the run only when rerunning can help or the user must act: unreachable, timing out,
5xx and 429 after the openai client's own retries (which honour ``Retry-After``) become
:class:`ServiceUnavailable` (exit 3, state saved, rerun resumes); a refused key or an unknown
model become :class:`BadInput` (exit 2). A prompt the server refuses by itself (too long for
the model's context, filtered) is not an error of the run: that one file gets a summary saying
so. No message ever contains the API key, even when the server echoes it back: every piece of
server text passes through ``scrub``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import openai

from review_agent.errors import BadInput, ServiceUnavailable

_REFUSED_PROMPT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "prompt is too long",
    "too many tokens",
    "content_filter",
    "content management policy",
)


def refused_prompt(exc: openai.APIError) -> bool:
    """True when the server refused this prompt itself, which another file's would not trigger."""
    if not isinstance(exc, openai.BadRequestError):
        return False
    text = f"{exc.code or ''} {exc.message}".lower()
    return any(marker in text for marker in _REFUSED_PROMPT_MARKERS)


@dataclass(frozen=True)
class ServerErrors:
    """Maps the openai client's errors to the run-ending errors of ``review_agent.errors``, whose
    exit codes the CLI documents."""

    url: str  # the server's base URL, already redacted
    model: str
    timeout: float
    scrub: Callable[[str], str]  # removes this process's secrets from server text

    def server_said(self, exc: openai.APIError) -> str:
        message = exc.message if isinstance(exc.message, str) else str(exc)
        return self.scrub(" ".join(message.split()))[:200]

    def translate(self, exc: openai.APIError, requests: int) -> Exception:
        url = self.url
        rerun = "rerun the same command to resume"
        tries = f"{requests} attempt{'s' if requests != 1 else ''}"
        if isinstance(exc, openai.APITimeoutError):
            return ServiceUnavailable(
                f"model server at {url} unreachable: no answer within {self.timeout:g}s ({tries}); {rerun}"
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            while cause is not None and (cause.__cause__ or cause.__context__) is not None:
                cause = cause.__cause__ or cause.__context__
            reason = self.scrub(str(cause or exc.message))[:200] or "connection failed"
            return ServiceUnavailable(f"model server at {url} unreachable: {reason} ({tries}); {rerun}")
        if isinstance(exc, openai.AuthenticationError):
            return BadInput("the model server rejected the API key (401): check OPENAI_API_KEY")
        if isinstance(exc, openai.PermissionDeniedError):
            return BadInput(
                f"the model server refused access (403) to model {self.model!r}: check "
                "OPENAI_API_KEY and that it may use this model"
            )
        if isinstance(exc, openai.NotFoundError):
            return BadInput(
                f"the model server at {url} has no model {self.model!r} (404): check --model "
                f"/ REVIEW_AGENT_MODEL and OPENAI_BASE_URL ({self.server_said(exc)})"
            )
        if isinstance(exc, openai.RateLimitError):
            return ServiceUnavailable(
                f"model server at {url} unreachable: still rate-limited (429) after {tries} "
                f"({self.server_said(exc)}); {rerun}"
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status >= 500 or status in (408, 409):
                return ServiceUnavailable(
                    f"model server at {url} unreachable: HTTP {status} after {tries} "
                    f"({self.server_said(exc)}); {rerun}"
                )
            return BadInput(
                f"the model server at {url} refused the request (HTTP {status}): {self.server_said(exc)}"
            )
        return BadInput(
            f"the server at {url} did not answer like an OpenAI-compatible API "
            f"({type(exc).__name__}: {self.server_said(exc)}): check OPENAI_BASE_URL"
        )
