"""Setting a fake GitHub up (tokens, Apps, repositories, pull requests, pushes, contents,
comments, reactions, the rate limit) and reading back what landed on a pull request."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

from tests.fakes.github.base import FakeBase
from tests.fakes.github.builders import _as_bytes, git_blob_sha
from tests.fakes.github.state import FakeApp, FakeInstallation, FakePullRequest, FakeRepo, _now_iso


class ConfigureMixin(FakeBase):
    # ---- configuration -----------------------------------------------------------------

    def add_token(self, token: str, login: str, *, can_write: bool = True) -> None:
        """Another valid token. A read-only one gets 403 on writes, like a GitHub Actions token
        without ``pull-requests: write``."""
        with self._lock:
            self._tokens[token] = (login, can_write)

    def add_app(self, app_id: int | str, public_key: str | bytes, *, slug: str = "review-agent") -> FakeApp:
        """A GitHub App whose JWTs are verified with ``public_key`` (PEM)."""
        with self._lock:
            app = FakeApp(str(app_id), _as_bytes(public_key), slug)
            self._apps[app.app_id] = app
            return app

    def add_installation(
        self,
        app_id: int | str,
        account: str,
        repos: Iterable[str] | None = None,
        *,
        can_write: bool = True,
    ) -> int:
        """An installation of the App on ``account``: on the repositories ``repos`` ("OWNER/REPO"),
        or on all of the account's when None. Returns its id."""
        with self._lock:
            inst = FakeInstallation(
                next(self._ids),
                str(app_id),
                account,
                None if repos is None else {tuple(r.lower().split("/", 1)) for r in repos},  # type: ignore[misc]
                can_write,
            )
            self._installations[inst.id] = inst
            return inst.id

    def add_repo(
        self, owner: str, repo: str, *, private: bool = False, default_branch: str = "main"
    ) -> FakeRepo:
        with self._lock:
            key = (owner.lower(), repo.lower())
            if key not in self._repos:
                self._repos[key] = FakeRepo(
                    owner, repo, next(self._ids), private=private, default_branch=default_branch
                )
            return self._repos[key]

    def add_pr(
        self,
        owner: str,
        repo: str,
        number: int,
        files: Iterable[Mapping[str, Any]] = (),
        *,
        head_sha: str | None = None,
        base_sha: str | None = None,
        author: str = "octocat",
        title: str | None = None,
        body: str = "",
        head_ref: str = "feature",
        base_ref: str = "main",
        changed_files: int | None = None,
        contents: Mapping[str, str | bytes] | None = None,
        base_contents: Mapping[str, str | bytes] | None = None,
        private: bool = False,
        draft: bool = False,
    ) -> FakePullRequest:
        """A pull request. ``files`` are listing entries (see ``make_file``); an entry's
        ``content`` key and ``contents`` give the files' text at head, ``base_contents`` at base.
        ``changed_files`` lets the PR claim more files than it lists (GitHub's 3000 cap)."""
        with self._lock:
            r = self.add_repo(owner, repo, private=private)
            head_sha = head_sha or hashlib.sha1(f"head {owner}/{repo}#{number}".encode()).hexdigest()
            base_sha = base_sha or hashlib.sha1(f"base {owner}/{repo}#{number}".encode()).hexdigest()
            pr = FakePullRequest(
                repo=r,
                number=number,
                id=next(self._ids),
                title=title if title is not None else f"Pull request {number}",
                author=author,
                head_sha=head_sha,
                base_sha=base_sha,
                head_ref=head_ref,
                base_ref=base_ref,
                files=[],
                changed_files=changed_files,
                body=body,
                draft=draft,
                commits=[head_sha],
            )
            self._prs[(owner.lower(), repo.lower(), number)] = pr
            r.commits.setdefault(base_sha, {"message": f"{base_ref} tip", "parents": []})
            self._set_files(pr, files, contents)
            for path, content in (base_contents or {}).items():
                self.set_content(owner, repo, path, content, ref=base_sha, also_ref=base_ref)
            return pr

    def push(
        self,
        owner: str,
        repo: str,
        number: int,
        head_sha: str,
        files: Iterable[Mapping[str, Any]] | None = None,
        *,
        contents: Mapping[str, str | bytes] | None = None,
        changed_files: int | None = None,
    ) -> FakePullRequest:
        """A new push to the PR: a new head (and, if given, a new file list). Earlier heads stay
        valid ``commit_id`` values for reviews, as on GitHub."""
        with self._lock:
            pr = self.pr(owner, repo, number)
            previous = pr.head_sha
            pr.head_sha = head_sha
            pr.commits.append(head_sha)
            pr.repo.commits[head_sha] = {"message": f"push {len(pr.commits)}", "parents": [previous]}
            if changed_files is not None:
                pr.changed_files = changed_files
            if files is not None:
                pr.files = []
                self._set_files(pr, files, contents)
            elif contents:
                for path, content in contents.items():
                    self.set_content(owner, repo, path, content, ref=head_sha, also_ref=pr.head_ref)
            return pr

    def _set_files(
        self,
        pr: FakePullRequest,
        files: Iterable[Mapping[str, Any]],
        contents: Mapping[str, str | bytes] | None,
    ) -> None:
        r = pr.repo
        r.commits[pr.head_sha] = r.commits.get(pr.head_sha, {"message": pr.title, "parents": [pr.base_sha]})
        for entry in files:
            e = dict(entry)
            content = e.pop("content", None)
            target = e.pop("symlink", None)
            if target is not None:
                name = e["filename"]
                self.set_symlink(r.owner, r.name, name, target, ref=pr.head_sha, also_ref=pr.head_ref)
            if content is not None:
                self.set_content(
                    r.owner, r.name, e["filename"], content, ref=pr.head_sha, also_ref=pr.head_ref
                )
            pr.files.append(e)
        for path, content in (contents or {}).items():
            self.set_content(r.owner, r.name, path, content, ref=pr.head_sha, also_ref=pr.head_ref)

    def set_content(
        self,
        owner: str,
        repo: str,
        path: str,
        content: str | bytes,
        *,
        ref: str,
        also_ref: str | None = None,
    ) -> str:
        """Store a file's bytes at a ref (and its blob); returns the blob SHA."""
        data = _as_bytes(content)
        with self._lock:
            r = self.add_repo(owner, repo)
            sha = git_blob_sha(data)
            r.blobs[sha] = data
            for key in filter(None, (ref, also_ref)):
                r.contents.setdefault(key, {})[path] = data
                r.symlinks.get(key, {}).pop(path, None)
            return sha

    def set_symlink(
        self, owner: str, repo: str, path: str, target: str, *, ref: str, also_ref: str | None = None
    ) -> str:
        """Make ``path`` a symbolic link to ``target`` at a ref; returns its blob SHA (the blob
        of a link is its target)."""
        data = target.encode()
        with self._lock:
            r = self.add_repo(owner, repo)
            sha = git_blob_sha(data)
            r.blobs[sha] = data
            for key in filter(None, (ref, also_ref)):
                r.contents.get(key, {}).pop(path, None)
                r.symlinks.setdefault(key, {})[path] = target
            return sha

    def pr(self, owner: str, repo: str, number: int) -> FakePullRequest:
        with self._lock:
            return self._prs[(owner.lower(), repo.lower(), number)]

    def reviews(self, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
        """Reviews of the PR as GitHub would list them (a copy, safe to keep)."""
        with self._lock:
            return [dict(r) for r in self.pr(owner, repo, number).reviews]

    def review_comments(self, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self.pr(owner, repo, number).review_comments]

    def issue_comments(self, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self.pr(owner, repo, number).issue_comments]

    def add_review_comment(
        self,
        owner: str,
        repo: str,
        number: int,
        path: str,
        line: int,
        body: str,
        *,
        side: str = "RIGHT",
        user: str | None = None,
    ) -> dict[str, Any]:
        """A comment already on the PR (e.g. left by an earlier, interrupted run or a human)."""
        with self._lock:
            pr = self.pr(owner, repo, number)
            review = self._new_review(pr, user or self.login, "", "COMMENTED", pr.head_sha)
            pr.reviews.append(review)
            comment = self._new_comment(
                pr,
                review["id"],
                user or self.login,
                pr.head_sha,
                {"path": path, "line": line, "side": side, "body": body},
            )
            pr.review_comments.append(comment)
            return comment

    def add_issue_comment(
        self, owner: str, repo: str, number: int, body: str, *, user: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            pr = self.pr(owner, repo, number)
            comment = self._new_issue_comment(pr, user or self.login, body)
            pr.issue_comments.append(comment)
            return comment

    def add_reaction(self, comment_id: int, content: str, user: str = "octocat") -> dict[str, Any]:
        """A reaction on a review comment (e.g. a 👎 that marks a finding as dismissed)."""
        with self._lock:
            reaction = {
                "id": next(self._ids),
                "node_id": f"REA_{comment_id}",
                "user": self._user_json(user),
                "content": content,
                "created_at": _now_iso(),
            }
            self._reactions.setdefault(comment_id, []).append(reaction)
            return reaction

    def set_rate_limit(self, remaining: int, *, reset_in: int = 3600, limit: int | None = None) -> None:
        """The primary rate limit's state: at 0, every counted request gets GitHub's 403
        "API rate limit exceeded" until the reset time passes."""
        with self._lock:
            if limit is not None:
                self._rate_limit = limit
            self._rate_remaining = remaining
            self._rate_reset = int(time.time()) + reset_in
