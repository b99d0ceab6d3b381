"""The one retry policy of every GitHub client: PyGithub's ``GithubRetry``, for reads only, with
every wait bounded.

* **Reads only.** PyGithub's stock ``GithubRetry`` also retries POST, which posts a review twice
  when a POST lands but its answer is lost. Our clients retry GET/HEAD; the publisher decides
  itself, after listing what landed, whether a write is repeated.
* **Bounded waits.** A ``Retry-After`` longer than ``max_rate_limit_wait`` stops the run instead of
  sleeping (urllib3 would sleep it in full, and GitHub's secondary limits may ask for minutes).
  Primary limits are already bounded by ``GithubRetry`` itself through ``max_rate_limit_wait``.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

from github import GithubException, GithubRetry
from github.GithubException import RateLimitExceededExceedsMaxWait, RateLimitExceededException
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError
from urllib3.response import BaseHTTPResponse

READ_METHODS = frozenset({"GET", "HEAD"})


class BoundedRetry(GithubRetry):
    """``GithubRetry`` whose waits never exceed ``max_rate_limit_wait``; build it with
    ``read_retry`` so that it retries reads only."""

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> GithubRetry:
        if response is not None and self.max_rate_limit_wait is not None:
            header = response.headers.get("Retry-After")
            wait = self.parse_retry_after(header) if header else None
            if wait is not None and wait > self.max_rate_limit_wait:
                content: Any = None
                try:
                    content = GithubRetry.get_content(response, url or "")
                    content = json.loads(content)
                except Exception:
                    content = {"message": f"HTTP {response.status} with Retry-After: {header}"}
                if response.status in (403, 429):
                    raise RateLimitExceededExceedsMaxWait(
                        response.status, content, dict(response.headers), wait=wait
                    )
                raise GithubException(response.status, content, dict(response.headers))
        try:
            return super().increment(method, url, response, error, _pool, _stacktrace)  # type: ignore[return-value]
        except MaxRetryError:
            # GithubRetry retries a 403/429 only when it is a rate limit, and it has already read
            # the body to decide so: PyGithub would get an empty 403 and report it as "forbidden".
            if response is not None and response.status in (403, 429):
                raise RateLimitExceededException(
                    response.status,
                    {"message": f"rate limit still exceeded after {len(self.history) + 1} attempts"},
                    dict(response.headers),
                ) from None
            raise


def read_retry(
    retries: int, backoff: float, *, max_rate_limit_wait: float, secondary_rate_wait: float
) -> BoundedRetry:
    """The retry for a PyGithub client: GET/HEAD only, then the answer goes to PyGithub (which
    raises the precise exception)."""
    return BoundedRetry(
        total=max(0, retries),
        backoff_factor=backoff,
        allowed_methods=READ_METHODS,
        raise_on_status=False,
        secondary_rate_wait=secondary_rate_wait,
        max_rate_limit_wait=max_rate_limit_wait,
    )
