"""``FakeGitHub``: the fake GitHub REST API, put together from its parts (see the package's
docstring for what it models and why)."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.fakes.github.routes_app import AppRoutes
from tests.fakes.github.routes_contents import ContentRoutes
from tests.fakes.github.routes_pulls import PullRoutes
from tests.fakes.github.state import _Response
from tests.fakes.github.transport import TransportMixin


class FakeGitHub(TransportMixin, AppRoutes, PullRoutes, ContentRoutes):
    """A fake GitHub REST API on 127.0.0.1 with scriptable faults and a record of every request.

    Typical use::

        with FakeGitHub(token="t0k") as gh:
            gh.add_pr("octo", "demo", 7, files=[make_file("a.py", "@@ -1 +1 @@\\n-x\\n+y")])
            source = GitHubSource("https://github.com/octo/demo/pull/7", "t0k", gh.url)
            ...
            assert len(gh.reviews("octo", "demo", 7)) == 1

    ``url`` is the API base to give PyGithub (``base_url``) or ``GITHUB_API_URL``; it ends in
    ``/api/v3`` like a GitHub Enterprise server, and the server also answers without the prefix.
    """

    def _register_routes(self) -> None:
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        pull = repo + r"/pulls/(?P<number>\d+)"
        table: list[tuple[str, str, Callable[..., _Response]]] = [
            ("GET", r"/user", self._get_user),
            ("GET", r"/app", self._get_app),
            ("GET", r"/app/installations", self._get_app_installations),
            ("GET", r"/app/installations/(?P<installation_id>\d+)", self._get_app_installation),
            ("POST", r"/app/installations/(?P<installation_id>\d+)/access_tokens", self._post_access_token),
            ("GET", repo + r"/installation", self._get_repo_installation),
            ("GET", r"/installation/repositories", self._get_installation_repositories),
            ("GET", r"/rate_limit", self._get_rate_limit),
            ("GET", repo, self._get_repo),
            ("GET", pull, self._get_pull),
            ("GET", pull + r"/files", self._get_pull_files),
            ("GET", pull + r"/reviews", self._get_reviews),
            ("POST", pull + r"/reviews", self._post_review),
            ("GET", pull + r"/reviews/(?P<review_id>\d+)", self._get_review),
            ("GET", pull + r"/reviews/(?P<review_id>\d+)/comments", self._get_review_comments_of),
            ("GET", pull + r"/comments", self._get_review_comments),
            ("POST", pull + r"/comments", self._post_review_comment),
            ("GET", repo + r"/pulls/comments/(?P<comment_id>\d+)", self._get_review_comment),
            ("GET", repo + r"/pulls/comments/(?P<comment_id>\d+)/reactions", self._get_reactions),
            ("GET", repo + r"/issues/(?P<number>\d+)/comments", self._get_issue_comments),
            ("POST", repo + r"/issues/(?P<number>\d+)/comments", self._post_issue_comment),
            ("GET", repo + r"/contents/(?P<path>.+)", self._get_contents),
            ("GET", repo + r"/git/blobs/(?P<sha>[0-9a-fA-F]+)", self._get_blob),
            ("GET", repo + r"/commits/(?P<ref>[^/]+)", self._get_commit),
        ]
        self._routes = [(m, re.compile(p), fn) for m, p, fn in table]
