"""A pull request on GitHub as our code holds it: one PyGithub client (its credentials, its
read-only retry), the pull request read once, and the error mapping for everything done to it.

The source reads through it and the publisher writes through it, so both see the same head, map
failures the same way, and share one connection pool and one installation token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import requests
from github import Github, GithubException
from github.PullRequest import PullRequest
from github.Repository import Repository

from review_agent.github.auth import GitHubCredentials, TokenCredentials, github_client
from review_agent.github.errors import ErrorContext, rate_limited_error
from review_agent.github.refs import PullRequestRef, api_url_for, parse_pr_url
from review_agent.github.retry import read_retry

T = TypeVar("T")


class PullRequestHandle:
    """One pull request and the client to reach it.

    ``retries``, ``backoff`` and the rate-limit waits are configurable so that tests can run the
    real retry code against a fake server in milliseconds; the defaults suit a CLI and CI.
    """

    def __init__(
        self,
        url_target: str,
        credentials: GitHubCredentials | None = None,
        api_url: str | None = None,
        *,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: int = 30,
        max_rate_limit_wait: float = 120.0,
        secondary_rate_wait: float = 60.0,
        seconds_between_requests: float | None = None,
        per_page: int = 100,
    ) -> None:
        self.ref: PullRequestRef = parse_pr_url(url_target)
        self.api_url = api_url_for(self.ref, api_url)
        self.credentials = credentials
        self.retries = max(0, retries)
        self.timeout = timeout
        self.max_rate_limit_wait = max_rate_limit_wait
        self.github: Github = github_client(
            self.api_url,
            credentials,
            retry=read_retry(
                self.retries,
                backoff,
                max_rate_limit_wait=max_rate_limit_wait,
                secondary_rate_wait=secondary_rate_wait,
            ),
            timeout=timeout,
            per_page=per_page,
            seconds_between_requests=seconds_between_requests,
        )
        self._lock = threading.RLock()
        self._pull: PullRequest | None = None
        named = credentials if credentials is not None else TokenCredentials("")
        self.errors = ErrorContext(
            api_url=self.api_url,
            host=self.ref.host,
            subject=self.ref.name,
            attempts=self.retries + 1,
            timeout=timeout,
            credential=named.described,
            rejected=named.rejected,
        )

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def repo(self) -> Repository:
        return self.github.get_repo(self.ref.slug)  # lazy: no request

    @property
    def pull_request(self) -> PullRequest:
        """The pull request, read once (all later calls see the same head)."""
        with self._lock:
            if self._pull is None:
                with self.calling():
                    self._pull = self.repo.get_pull(self.ref.number).complete()
            return self._pull

    @property
    def loaded(self) -> bool:
        return self._pull is not None

    def translate(self, exc: Exception) -> Exception:
        """The BadInput / ServiceUnavailable for a PyGithub or requests failure (``exc`` itself
        for anything else)."""
        return self.errors.translate(exc)

    def rate_limited(self, exc: GithubException) -> Exception:
        return rate_limited_error(exc, self.api_url)

    @contextmanager
    def calling(self) -> Iterator[None]:
        """Run calls to GitHub; their failures leave as the project's errors."""
        try:
            yield
        except (GithubException, requests.exceptions.RequestException) as exc:
            raise self.translate(exc) from exc

    def read(self, fn: Callable[[], T]) -> T:
        with self.calling():
            return fn()
