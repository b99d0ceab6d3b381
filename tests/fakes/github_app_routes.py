"""Routes of the fake GitHub that the App's workers need and the base fake does not serve.

Kept in a module of their own (a subclass) so that the base fake stays as it is:

* ``GET /repos/{owner}/{repo}/pulls?state=open``: the periodic reconcile lists open pull
  requests (paginated, newest update first, like GitHub);
* ``GET /repos/{owner}/{repo}/issues/comments/{id}``: ``/learn`` reads its command comment by id.

Usage is the base fake's: ``with FakeGitHubApp() as gh: gh.add_pr(...)``.
"""

from __future__ import annotations

import re

from tests.fakes.github_server import FakeGitHub, _Context, _HTTPError, _Response


class FakeGitHubApp(FakeGitHub):
    def _register_routes(self) -> None:
        super()._register_routes()
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        extra = [
            ("GET", repo + r"/pulls", self._list_pulls),
            ("GET", repo + r"/issues/comments/(?P<comment_id>\d+)", self._get_issue_comment),
        ]
        self._routes = self._routes + [(m, re.compile(p), fn) for m, p, fn in extra]

    def close_pr(self, owner: str, repo: str, number: int) -> None:
        with self._lock:
            self.pr(owner, repo, number).state = "closed"

    def _list_pulls(self, ctx: _Context, owner: str, repo: str) -> _Response:
        r = self._find_repo(ctx, owner, repo)
        state = ctx.query.get("state", "open")
        with self._lock:
            prs = [
                p
                for (o, n, _), p in self._prs.items()
                if (o, n) == (r.owner.lower(), r.name.lower()) and (state == "all" or p.state == state)
            ]
            items = [self._pr_json(p) for p in sorted(prs, key=lambda p: p.number, reverse=True)]
        return self._paginate(ctx, items)

    def _get_issue_comment(self, ctx: _Context, owner: str, repo: str, comment_id: str) -> _Response:
        r = self._find_repo(ctx, owner, repo)
        with self._lock:
            for (o, n, _), p in self._prs.items():
                if (o, n) != (r.owner.lower(), r.name.lower()):
                    continue
                for c in p.issue_comments:
                    if c["id"] == int(comment_id):
                        return _Response(200, dict(c))
        raise _HTTPError(404, "Not Found")
