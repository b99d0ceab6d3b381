"""The fake GitHub's state and what every route shares: lookups with GitHub's visibility rules,
pagination with ``Link`` headers, and the JSON shapes of users, repositories, pull requests,
files, reviews and comments. The routes are mixins over this class (``routes_*.py``)."""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from http.server import ThreadingHTTPServer
from typing import Any

from tests.fakes.github.builders import DiffMap
from tests.fakes.github.state import (
    API_PREFIX,
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    MAX_PR_FILES,
    FakeApp,
    FakeInstallation,
    FakePullRequest,
    FakeRepo,
    Fault,
    RecordedRequest,
    _Context,
    _HTTPError,
    _now_iso,
    _Response,
)


class FakeBase:
    """State and shared helpers; ``FakeGitHub`` (``server.py``) adds the routes and the HTTP server."""

    def __init__(
        self,
        token: str | None = "test-token",
        login: str = "review-bot",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: int = 5000,
    ) -> None:
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._tokens: dict[str, tuple[str, bool]] = {}
        if token is not None:
            self._tokens[token] = (login, True)
        self.login = login
        self._repos: dict[tuple[str, str], FakeRepo] = {}
        self._prs: dict[tuple[str, str, int], FakePullRequest] = {}
        self._reactions: dict[int, list[dict[str, Any]]] = {}
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._rate_limit = rate_limit
        self._rate_remaining = rate_limit
        self._rate_reset = int(time.time()) + 3600
        self._apps: dict[str, FakeApp] = {}
        self._installations: dict[int, FakeInstallation] = {}
        self._installation_tokens: dict[str, tuple[int, float]] = {}  # token -> (id, expires)
        self.minted_tokens: list[str] = []  # every installation token handed out, oldest first
        self.installation_token_ttl = 3600.0  # GitHub: one hour
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., _Response]]] = []
        self._register_routes()

    def _register_routes(self) -> None:
        """Fill ``self._routes``: (method, compiled path pattern, handler). ``FakeGitHub`` lists
        them; a subclass may call ``super()._register_routes()`` and append its own."""
        self._routes = []

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeGitHub is not started")
        return int(self._server.server_address[1])

    @property
    def root(self) -> str:
        """``http://127.0.0.1:PORT``: the host's web root (used in ``html_url`` fields)."""
        return f"http://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """The API base URL: give it to PyGithub as ``base_url`` or set ``GITHUB_API_URL``."""
        return self.root + API_PREFIX

    # ---- lookups ------------------------------------------------------------------------

    def _find_repo(self, ctx: _Context, owner: str, repo: str) -> FakeRepo:
        with self._lock:
            r = self._repos.get((owner.lower(), repo.lower()))
            inst = self._installations.get(ctx.installation) if ctx.installation is not None else None
        if r is None or (r.private and ctx.login is None):
            raise _HTTPError(404, "Not Found")
        if inst is not None and not inst.covers(r.owner, r.name):
            # another installation's repository: invisible if private, read-only if public
            if r.private:
                raise _HTTPError(404, "Not Found")
            ctx.can_write = False
        return r

    def _find_pr(self, ctx: _Context, owner: str, repo: str, number: str) -> FakePullRequest:
        self._find_repo(ctx, owner, repo)
        with self._lock:
            pr = self._prs.get((owner.lower(), repo.lower(), int(number)))
        if pr is None:
            raise _HTTPError(404, "Not Found")
        return pr

    def _require_write(self, ctx: _Context) -> str:
        if ctx.login is None:
            raise _HTTPError(401, "Requires authentication")
        if not ctx.can_write:
            raise _HTTPError(403, "Resource not accessible by integration")
        return ctx.login

    def _paginate(self, ctx: _Context, items: list[Any]) -> _Response:
        try:
            per_page = max(1, min(int(ctx.query.get("per_page", DEFAULT_PER_PAGE)), MAX_PER_PAGE))
            page = max(1, int(ctx.query.get("page", 1)))
        except ValueError as e:
            raise _HTTPError(422, "Invalid pagination parameters") from e
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []

        def link(n: int, rel: str) -> str:
            q = dict(ctx.query, per_page=str(per_page), page=str(n))
            return f'<{self.url}{ctx.route}?{urllib.parse.urlencode(q)}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        headers = {"Link": ", ".join(links)} if links else {}
        return _Response(200, chunk, headers)

    # ---- JSON shapes -------------------------------------------------------------------

    def _user_json(self, login: str) -> dict[str, Any]:
        uid = int(hashlib.sha1(login.encode()).hexdigest()[:7], 16)
        return {
            "login": login,
            "id": uid,
            "node_id": f"U_{uid}",
            "type": "Bot" if login.endswith("[bot]") else "User",
            "site_admin": False,
            "url": f"{self.url}/users/{login}",
            "html_url": f"{self.root}/{login}",
            "avatar_url": f"{self.root}/avatars/{login}",
        }

    def _repo_json(self, r: FakeRepo) -> dict[str, Any]:
        return {
            "id": r.id,
            "node_id": f"R_{r.id}",
            "name": r.name,
            "full_name": r.full_name,
            "owner": self._user_json(r.owner),
            "private": r.private,
            "visibility": "private" if r.private else "public",
            "fork": False,
            "default_branch": r.default_branch,
            "url": f"{self.url}/repos/{r.full_name}",
            "html_url": f"{self.root}/{r.full_name}",
            "pulls_url": f"{self.url}/repos/{r.full_name}/pulls{{/number}}",
        }

    def _pr_json(self, pr: FakePullRequest) -> dict[str, Any]:
        r = pr.repo
        api = f"{self.url}/repos/{r.full_name}"
        url = f"{api}/pulls/{pr.number}"
        html = f"{self.root}/{r.full_name}/pull/{pr.number}"
        listed = pr.files[:MAX_PR_FILES]
        return {
            "url": url,
            "id": pr.id,
            "node_id": f"PR_{pr.id}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{api}/issues/{pr.number}",
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{pr.number}/comments",
            "statuses_url": f"{api}/statuses/{pr.head_sha}",
            "number": pr.number,
            "state": pr.state,
            "locked": False,
            "title": pr.title,
            "user": self._user_json(pr.author),
            "body": pr.body,
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": _now_iso(),
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": None,
            "draft": pr.draft,
            "head": {
                "label": f"{r.owner}:{pr.head_ref}",
                "ref": pr.head_ref,
                "sha": pr.head_sha,
                "user": self._user_json(r.owner),
                "repo": self._repo_json(r),
            },
            "base": {
                "label": f"{r.owner}:{pr.base_ref}",
                "ref": pr.base_ref,
                "sha": pr.base_sha,
                "user": self._user_json(r.owner),
                "repo": self._repo_json(r),
            },
            "_links": {
                "self": {"href": url},
                "html": {"href": html},
                "issue": {"href": f"{api}/issues/{pr.number}"},
                "comments": {"href": f"{api}/issues/{pr.number}/comments"},
                "review_comments": {"href": f"{url}/comments"},
                "commits": {"href": f"{url}/commits"},
            },
            "author_association": "CONTRIBUTOR",
            "merged": False,
            "mergeable": True,
            "comments": len(pr.issue_comments),
            "review_comments": len(pr.review_comments),
            "commits": len(pr.commits),
            "additions": sum(int(f.get("additions", 0)) for f in listed),
            "deletions": sum(int(f.get("deletions", 0)) for f in listed),
            "changed_files": pr.claimed_changed_files,
        }

    def _file_json(self, pr: FakePullRequest, f: Mapping[str, Any]) -> dict[str, Any]:
        full = pr.repo.full_name
        quoted = urllib.parse.quote(f["filename"])
        out = {
            "sha": f.get("sha"),
            "filename": f["filename"],
            "status": f.get("status", "modified"),
            "additions": int(f.get("additions", 0)),
            "deletions": int(f.get("deletions", 0)),
            "changes": int(f.get("changes", int(f.get("additions", 0)) + int(f.get("deletions", 0)))),
            "blob_url": f"{self.root}/{full}/blob/{pr.head_sha}/{quoted}",
            "raw_url": f"{self.root}/{full}/raw/{pr.head_sha}/{quoted}",
            "contents_url": f"{self.url}/repos/{full}/contents/{quoted}?ref={pr.head_sha}",
        }
        for key in ("patch", "previous_filename"):
            if f.get(key) is not None:
                out[key] = f[key]
        return out

    def _new_review(
        self, pr: FakePullRequest, login: str, body: str, state: str, commit_id: str
    ) -> dict[str, Any]:
        rid = next(self._ids)
        full = pr.repo.full_name
        html = f"{self.root}/{full}/pull/{pr.number}"
        review: dict[str, Any] = {
            "id": rid,
            "node_id": f"PRR_{rid}",
            "user": self._user_json(login),
            "body": body,
            "state": state,
            "html_url": f"{html}#pullrequestreview-{rid}",
            "pull_request_url": f"{self.url}/repos/{full}/pulls/{pr.number}",
            "author_association": "NONE",
            "_links": {
                "html": {"href": f"{html}#pullrequestreview-{rid}"},
                "pull_request": {"href": f"{self.url}/repos/{full}/pulls/{pr.number}"},
            },
            "commit_id": commit_id,
        }
        if state != "PENDING":
            review["submitted_at"] = _now_iso()
        return review

    def _new_comment(
        self,
        pr: FakePullRequest,
        review_id: int | None,
        login: str,
        commit_id: str,
        c: Mapping[str, Any],
    ) -> dict[str, Any]:
        cid = next(self._ids)
        full = pr.repo.full_name
        side = c.get("side", "RIGHT")
        line = c.get("line")
        f = pr.file(c["path"])
        diff = DiffMap.parse(f.get("patch") if f else None)
        target = diff.find(side, line) if isinstance(line, int) else None
        start_line = c.get("start_line")
        now = _now_iso()
        comment: dict[str, Any] = {
            "id": cid,
            "node_id": f"PRRC_{cid}",
            "url": f"{self.url}/repos/{full}/pulls/comments/{cid}",
            "pull_request_review_id": review_id,
            "diff_hunk": diff.hunk_until(target) if target else "",
            "path": c["path"],
            "position": target.position if target else None,
            "original_position": target.position if target else None,
            "commit_id": commit_id,
            "original_commit_id": commit_id,
            "user": self._user_json(login),
            "body": c.get("body", ""),
            "created_at": now,
            "updated_at": now,
            "html_url": f"{self.root}/{full}/pull/{pr.number}#discussion_r{cid}",
            "pull_request_url": f"{self.url}/repos/{full}/pulls/{pr.number}",
            "author_association": "NONE",
            "_links": {
                "self": {"href": f"{self.url}/repos/{full}/pulls/comments/{cid}"},
                "html": {"href": f"{self.root}/{full}/pull/{pr.number}#discussion_r{cid}"},
                "pull_request": {"href": f"{self.url}/repos/{full}/pulls/{pr.number}"},
            },
            "line": line,
            "original_line": line,
            "side": side,
            "start_line": start_line,
            "original_start_line": start_line,
            "start_side": (c.get("start_side") or side) if start_line is not None else None,
            "subject_type": "line",
        }
        if c.get("in_reply_to") is not None:
            comment["in_reply_to_id"] = c["in_reply_to"]
        return comment

    def _new_issue_comment(self, pr: FakePullRequest, login: str, body: str) -> dict[str, Any]:
        cid = next(self._ids)
        full = pr.repo.full_name
        now = _now_iso()
        return {
            "id": cid,
            "node_id": f"IC_{cid}",
            "url": f"{self.url}/repos/{full}/issues/comments/{cid}",
            "html_url": f"{self.root}/{full}/pull/{pr.number}#issuecomment-{cid}",
            "issue_url": f"{self.url}/repos/{full}/issues/{pr.number}",
            "body": body,
            "user": self._user_json(login),
            "created_at": now,
            "updated_at": now,
            "author_association": "NONE",
        }
