"""Routes of the fake GitHub for a repository's pull requests: the pull request and its files,
reviews (with GitHub's validation of inline comments: one bad comment refuses the whole
review), review comments, reactions and issue comments."""

from __future__ import annotations

from typing import Any

from tests.fakes.github.base import FakeBase
from tests.fakes.github.builders import DiffMap
from tests.fakes.github.state import (
    MAX_PR_FILES,
    REVIEW_EVENTS,
    FakePullRequest,
    _Context,
    _HTTPError,
    _Response,
)


class PullRoutes(FakeBase):
    def _get_repo(self, ctx: _Context, owner: str, repo: str) -> _Response:
        return _Response(200, self._repo_json(self._find_repo(ctx, owner, repo)))

    def _get_pull(self, ctx: _Context, owner: str, repo: str, number: str) -> _Response:
        pr = self._find_pr(ctx, owner, repo, number)
        with self._lock:
            return _Response(200, self._pr_json(pr))

    def _get_pull_files(self, ctx: _Context, owner: str, repo: str, number: str) -> _Response:
        pr = self._find_pr(ctx, owner, repo, number)
        with self._lock:
            files = [self._file_json(pr, f) for f in pr.files[:MAX_PR_FILES]]
        return self._paginate(ctx, files)

    def _get_reviews(self, ctx: _Context, owner: str, repo: str, number: str) -> _Response:
        pr = self._find_pr(ctx, owner, repo, number)
        with self._lock:
            # a pending review is visible to its author only
            reviews = [
                dict(r) for r in pr.reviews if r["state"] != "PENDING" or r["user"]["login"] == ctx.login
            ]
        return self._paginate(ctx, reviews)

    def _get_review(self, ctx: _Context, owner: str, repo: str, number: str, review_id: str) -> _Response:
        pr = self._find_pr(ctx, owner, repo, number)
        with self._lock:
            for r in pr.reviews:
                if r["id"] == int(review_id):
                    return _Response(200, dict(r))
        raise _HTTPError(404, "Not Found")

    def _get_review_comments_of(
        self, ctx: _Context, owner: str, repo: str, number: str, review_id: str
    ) -> _Response:
        pr = self._find_pr(ctx, owner, repo, number)
        with self._lock:
            items = [dict(c) for c in pr.review_comments if c["pull_request_review_id"] == int(review_id)]
        return self._paginate(ctx, items)

    def _validate_comment(self, pr: FakePullRequest, c: Any) -> dict[str, Any]:
        """GitHub's checks on one inline comment; returns it with ``line``/``side`` resolved."""
        if not isinstance(c, dict) or not isinstance(c.get("path"), str):
            raise _HTTPError(422, "Unprocessable Entity", ["Path could not be resolved"])
        if not c.get("body"):
            raise _HTTPError(422, "Unprocessable Entity", ["Body can't be blank"])
        f = pr.file(c["path"])
        if f is None:
            raise _HTTPError(422, "Unprocessable Entity", ["Path could not be resolved"])
        diff = DiffMap.parse(f.get("patch"))
        out = dict(c)
        if c.get("line") is None and c.get("position") is not None:
            target = diff.at_position(int(c["position"]))
            if target is None:
                raise _HTTPError(422, "Unprocessable Entity", ["Position could not be resolved"])
            side = "LEFT" if target.kind == "-" else "RIGHT"
            out["side"], out["line"] = side, target.new if side == "RIGHT" else target.old
            return out
        side = c.get("side") or "RIGHT"
        if side not in ("LEFT", "RIGHT"):
            raise _HTTPError(422, "Unprocessable Entity", [f"Side {side} is not valid"])
        line = c.get("line")
        if not isinstance(line, int) or isinstance(line, bool):
            raise _HTTPError(422, "Unprocessable Entity", ["Line could not be resolved"])
        target = diff.find(side, line)
        if target is None:
            raise _HTTPError(422, "Unprocessable Entity", ["Line could not be resolved"])
        start_line = c.get("start_line")
        if start_line is not None:
            start_side = c.get("start_side") or side
            if not isinstance(start_line, int) or (start_line >= line and start_side == side):
                raise _HTTPError(422, "Unprocessable Entity", ["start_line must precede the end line"])
            start = diff.find(start_side, start_line)
            if start is None or start.hunk != target.hunk or start.position > target.position:
                raise _HTTPError(422, "Unprocessable Entity", ["Start line could not be resolved"])
            out["start_side"] = start_side
        out["side"] = side
        return out

    def _post_review(self, ctx: _Context, owner: str, repo: str, number: str) -> _Response:
        pr = self._find_pr(ctx, owner, repo, number)
        login = self._require_write(ctx)
        data = ctx.json if isinstance(ctx.json, dict) else {}
        event = data.get("event")
        body = data.get("body") or ""
        comments = data.get("comments") or []
        with self._lock:
            commit_id = data.get("commit_id") or pr.head_sha
            if commit_id not in pr.commits:
                raise _HTTPError(422, "Unprocessable Entity", ["commit_id is not part of the pull request"])
            if event is None:
                state = "PENDING"
                if any(r["state"] == "PENDING" and r["user"]["login"] == login for r in pr.reviews):
                    raise _HTTPError(
                        422,
                        "Unprocessable Entity",
                        ["User can only have one pending review per pull request"],
                    )
            elif event in REVIEW_EVENTS:
                state = REVIEW_EVENTS[event]
            else:
                raise _HTTPError(422, "Unprocessable Entity", [f"Event {event} is not valid"])
            if state in ("APPROVED", "CHANGES_REQUESTED") and login == pr.author:
                verb = "approve" if state == "APPROVED" else "request changes on"
                raise _HTTPError(422, "Unprocessable Entity", [f"Can not {verb} your own pull request"])
            if state == "CHANGES_REQUESTED" and not body:
                raise _HTTPError(422, "Unprocessable Entity", ["Body is required when requesting changes"])
            if not isinstance(comments, list):
                raise _HTTPError(422, "Invalid request", ["comments must be an array"])
            # validate everything first: one bad comment rejects the whole review
            resolved = [self._validate_comment(pr, c) for c in comments]
            review = self._new_review(pr, login, body, state, commit_id)
            pr.reviews.append(review)
            for c in resolved:
                pr.review_comments.append(self._new_comment(pr, review["id"], login, commit_id, c))
            return _Response(200, dict(review))

    def _get_review_comments(self, ctx: _Context, owner: str, repo: str, number: str) -> _Response:
        pr = self._find_pr(ctx, owner, repo, number)
        with self._lock:
            pending = {
                r["id"] for r in pr.reviews if r["state"] == "PENDING" and r["user"]["login"] != ctx.login
            }
            items = [dict(c) for c in pr.review_comments if c["pull_request_review_id"] not in pending]
        return self._paginate(ctx, items)

    def _post_review_comment(self, ctx: _Context, owner: str, repo: str, number: str) -> _Response:
        pr = self._find_pr(ctx, owner, repo, number)
        login = self._require_write(ctx)
        data = ctx.json if isinstance(ctx.json, dict) else {}
        with self._lock:
            commit_id = data.get("commit_id") or pr.head_sha
            if commit_id not in pr.commits:
                raise _HTTPError(422, "Unprocessable Entity", ["commit_id is not part of the pull request"])
            if data.get("in_reply_to") is not None:
                parent = next((c for c in pr.review_comments if c["id"] == data["in_reply_to"]), None)
                if parent is None:
                    raise _HTTPError(404, "Not Found")
                c = {**data, "path": parent["path"], "line": parent["line"], "side": parent["side"]}
            else:
                c = self._validate_comment(pr, data)
            review = self._new_review(pr, login, "", "COMMENTED", commit_id)
            pr.reviews.append(review)
            comment = self._new_comment(pr, review["id"], login, commit_id, c)
            pr.review_comments.append(comment)
            return _Response(201, dict(comment))

    def _get_review_comment(self, ctx: _Context, owner: str, repo: str, comment_id: str) -> _Response:
        self._find_repo(ctx, owner, repo)
        with self._lock:
            for pr in self._prs.values():
                if pr.repo.full_name.lower() != f"{owner}/{repo}".lower():
                    continue
                for c in pr.review_comments:
                    if c["id"] == int(comment_id):
                        return _Response(200, dict(c))
        raise _HTTPError(404, "Not Found")

    def _get_reactions(self, ctx: _Context, owner: str, repo: str, comment_id: str) -> _Response:
        self._get_review_comment(ctx, owner, repo, comment_id)
        with self._lock:
            items = [dict(r) for r in self._reactions.get(int(comment_id), [])]
        return self._paginate(ctx, items)

    def _get_issue_comments(self, ctx: _Context, owner: str, repo: str, number: str) -> _Response:
        pr = self._find_pr(ctx, owner, repo, number)
        with self._lock:
            items = [dict(c) for c in pr.issue_comments]
        return self._paginate(ctx, items)

    def _post_issue_comment(self, ctx: _Context, owner: str, repo: str, number: str) -> _Response:
        pr = self._find_pr(ctx, owner, repo, number)
        login = self._require_write(ctx)
        data = ctx.json if isinstance(ctx.json, dict) else {}
        if not data.get("body"):
            raise _HTTPError(422, "Invalid request", ["body wasn't supplied"])
        with self._lock:
            comment = self._new_issue_comment(pr, login, data["body"])
            pr.issue_comments.append(comment)
            return _Response(201, dict(comment))
