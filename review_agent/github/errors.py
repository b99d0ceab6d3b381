"""GitHub failures as the project's errors, and GitHub's rate-limit answers read once.

Every PyGithub / requests failure becomes BadInput (exit 2: fix the URL or the credentials) or
ServiceUnavailable (exit 3: rerun later), with one line that never contains a token. A rate
limit is read in one place: when it resets (``rate_limit_reset``), how long to wait
(``rate_wait``), and the message that says when to rerun (``rate_limited_error``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from github import GithubException
from github.GithubException import (
    BadCredentialsException,
    RateLimitExceededExceedsMaxWait,
    RateLimitExceededException,
    UnknownObjectException,
)

from review_agent.errors import BadInput, ServiceUnavailable

SECONDARY_DEFAULT_WAIT = 60.0  # GitHub: without Retry-After, wait at least a minute


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A response header by case-insensitive name (PyGithub keeps urllib3's spelling)."""
    for k, v in (headers or {}).items():
        if k.lower() == name.lower():
            return str(v)
    return None


def message_of(exc: GithubException) -> str:
    """GitHub's own message (and its ``errors`` details) on one line, bounded."""
    data = exc.data
    if isinstance(data, dict):
        msg = str(data.get("message") or "").strip()
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            details = [
                e if isinstance(e, str) else str(e.get("message") or e.get("code") or e) for e in errors
            ]
            msg = f"{msg} ({'; '.join(details)})" if msg else "; ".join(details)
        if msg:
            return msg.splitlines()[0][:200]
    return exc.message or f"HTTP {exc.status}"


def is_rate_limited(exc: GithubException) -> bool:
    if isinstance(exc, RateLimitExceededException):
        return True
    if exc.status not in (403, 429):
        return False
    if header(exc.headers, "x-ratelimit-remaining") == "0" or header(exc.headers, "retry-after"):
        return True
    return "rate limit" in message_of(exc).lower() or exc.status == 429


def rate_limit_reset(exc: GithubException, now: float | None = None) -> float | None:
    """When GitHub will take requests again (epoch seconds), if it said: ``Retry-After`` first
    (secondary limits), else ``x-ratelimit-reset`` when the budget is spent."""
    now = time.time() if now is None else now
    retry_after = header(exc.headers, "retry-after")
    if retry_after:
        try:
            return now + max(0.0, float(retry_after))
        except ValueError:
            pass
    if header(exc.headers, "x-ratelimit-remaining") == "0":
        value = header(exc.headers, "x-ratelimit-reset")
        if value and value.isdigit():
            return float(value)
    if isinstance(exc, RateLimitExceededExceedsMaxWait) and exc.wait:
        return now + exc.wait
    return None


def rate_wait(exc: GithubException, now: float | None = None) -> float:
    """Seconds to wait before trying again: until the reset GitHub names (plus a second, for the
    clock skew), else a minute (GitHub's advice for secondary limits without Retry-After)."""
    now = time.time() if now is None else now
    reset = rate_limit_reset(exc, now)
    if reset is None:
        return SECONDARY_DEFAULT_WAIT
    has_retry_after = header(exc.headers, "retry-after") is not None
    return max(0.0, reset - now) + (0.0 if has_retry_after else 1.0)


def rate_limited_error(exc: GithubException, api_url: str, now: float | None = None) -> ServiceUnavailable:
    """Exit 3, saying which limit and when to rerun (the checkpoint makes the rerun resume)."""
    now = time.time() if now is None else now
    reset = rate_limit_reset(exc, now)
    if reset is None:
        when = "in a few minutes"
    else:
        at = datetime.fromtimestamp(reset, UTC).strftime("%H:%M:%S UTC")
        minutes = max(1, round((reset - now) / 60))
        when = f"after {at} (in about {minutes} min)"
    reason = message_of(exc).split(". ")[0].rstrip(".")  # GitHub's first sentence says which limit
    return ServiceUnavailable(
        f"GitHub rate limit exceeded at {api_url} ({reason}): rerun {when}; finished files are kept"
    )


def connection_reason(exc: requests.exceptions.RequestException) -> str:
    """A short cause for a network failure (the exception's text repeats the pool and URL)."""
    cause: Any = exc.args[0] if exc.args else exc
    reason = getattr(cause, "reason", None) or cause
    text = str(reason)
    if isinstance(exc, requests.exceptions.Timeout) or "timed out" in text.lower():
        return "timed out"
    m = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if m:
        return m.group(0).strip()
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host name not found"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed without an answer"
    return type(reason).__name__ if len(text) > 160 else text


def may_have_landed(exc: Exception) -> bool:
    """A failure after which a POST may have been applied: a 5xx, a timeout, a connection lost
    while waiting for the answer. (A refused connection has not landed, but listing again is
    harmless, so it is treated the same.)"""
    if isinstance(exc, GithubException):
        return exc.status >= 500
    return isinstance(exc, requests.exceptions.RequestException)


def describe(exc: Exception) -> str:
    """A failure in three words, for "did not confirm … (HTTP 502)"."""
    if isinstance(exc, GithubException):
        return f"HTTP {exc.status}"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    return "connection lost"


@dataclass(frozen=True)
class ErrorContext:
    """What a message about a failed call names: where, about what, with which credentials."""

    api_url: str
    host: str
    subject: str  # "OWNER/REPO#N"
    attempts: int
    timeout: float
    credential: str  # "GITHUB_TOKEN", or "the GitHub App installation 42"
    rejected: str  # the whole message for a 401

    def translate(self, exc: Exception) -> Exception:
        """The project error for a PyGithub / requests failure; ``exc`` itself for anything else."""
        if isinstance(exc, GithubException):
            if is_rate_limited(exc):
                return rate_limited_error(exc, self.api_url)
            if isinstance(exc, BadCredentialsException) or exc.status == 401:
                return BadInput(self.rejected)
            if isinstance(exc, UnknownObjectException) or exc.status == 404:
                return BadInput(
                    f"pull request {self.subject} not found at {self.host} "
                    f"(check the URL, and that {self.credential} can read the repository)"
                )
            if exc.status == 403:
                return BadInput(
                    f"GitHub refused access to {self.subject} (403: {message_of(exc)}): "
                    f"check that {self.credential} can read the repository"
                )
            if exc.status >= 500:
                return ServiceUnavailable(
                    f"GitHub at {self.api_url} unreachable: HTTP {exc.status} after {self.attempts} attempts"
                )
            return BadInput(f"GitHub answered {exc.status} for {self.subject}: {message_of(exc)}")
        if isinstance(exc, requests.exceptions.RequestException):
            reason = connection_reason(exc)
            if reason == "timed out":
                reason = f"no answer within {self.timeout:g}s"
            return ServiceUnavailable(f"GitHub at {self.api_url} unreachable: {reason}")
        return exc
