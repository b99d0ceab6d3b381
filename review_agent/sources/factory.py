"""From what the user typed to a ``Source``: a pull request URL or a local repository path.

Its own module so that the read-only views (``status``, ``history``) and the review service build
sources the same way without one importing the other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from review_agent.config import Settings
from review_agent.sources.base import Source
from review_agent.sources.local import LocalGitSource

if TYPE_CHECKING:
    from review_agent.github.auth import GitHubCredentials

_URL_LIKE = re.compile(r"^(https?://)?[\w.-]+(:\d+)?/[^/\s]+/[^/\s]+/pulls?/\d+", re.I)


def is_pr_url(target: str) -> bool:
    if "://" in target:
        return True
    return bool(_URL_LIKE.match(target)) and not Path(target).exists()


def build_source(
    target: str,
    settings: Settings,
    base: str | None,
    head: str | None,
    *,
    retries: int | None = None,
    github: GitHubCredentials | None = None,
) -> Source:
    """``retries``: GitHub read retries, when not the configured number (a read-only command
    asks once more at most, then answers from local state). ``github``: credentials other than
    GITHUB_TOKEN, e.g. a GitHub App installation's (a worker)."""
    if is_pr_url(target):
        from review_agent.sources.github import GitHubSource

        token = settings.github_token.get_secret_value() if settings.github_token else None
        return GitHubSource(
            target,
            token=token,
            api_url=settings.github_api_url,
            credentials=github,
            retries=settings.github_retries if retries is None else retries,
        )
    return LocalGitSource(target, base=base, head=head)
