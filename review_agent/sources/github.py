"""A GitHub pull request as a review source, read with PyGithub through the shared client
(``review_agent.github``: credentials, read-only bounded retries, error mapping).

Why it is built the way it is:

* **Pinned to one head.** ``resolve()`` reads the pull request once and every later call uses
  that head SHA (contents are read ``?ref=<head sha>``), because the thread id is derived from it
  and a resumed process must see the same change again (docs/architecture.md, "State").
* **Cheap to ask twice.** The graph asks ``get_file`` once per file; the whole file list is read
  once (all pages, up to GitHub's 3000-file cap) and kept in the instance.
* **A symlink is a symlink.** The files API gives no file mode. A symlink's diff is one line (the
  target) without a trailing newline, so only files whose patch has that shape are checked, with
  one contents API call at head (GitHub answers a symlink as ``type: symlink``, or follows it to
  the file it names), and one at base for the previous target. The targets are the patch lines.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import threading
from typing import Any

from github import GithubException
from github.ContentFile import ContentFile
from github.PullRequest import PullRequest

from review_agent.github.auth import GitHubCredentials, InstallationCredentials, TokenCredentials
from review_agent.github.client import PullRequestHandle
from review_agent.github.errors import is_rate_limited
from review_agent.github.refs import PullRequestRef, is_safe_repo_path, parse_pr_url
from review_agent.sources.base import ChangedFile, ResolvedTarget

__all__ = [
    "EMPTY_BLOB_SHA",
    "MAX_LISTED_FILES",
    "GitHubSource",
    "PullRequestRef",
    "is_safe_repo_path",
    "parse_pr_url",
]

MAX_LISTED_FILES = 3000  # GitHub's cap on GET /pulls/{n}/files
EMPTY_BLOB_SHA = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's id of an empty file
NO_NEWLINE = "\\ No newline at end of file"
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class GitHubSource:
    """The files of one GitHub pull request, pinned to the head SHA seen by ``resolve()``.

    Authenticated with ``token`` (the CLI, the Action) or ``credentials`` (a GitHub App
    installation: ``InstallationCredentials``); ``for_installation`` builds the latter."""

    def __init__(
        self,
        url_target: str,
        token: str | None = None,
        api_url: str | None = None,
        *,
        credentials: GitHubCredentials | None = None,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: int = 30,
        max_rate_limit_wait: float = 120.0,
        secondary_rate_wait: float = 60.0,
        seconds_between_requests: float | None = None,
        max_content_bytes: int = 10 * 1024 * 1024,
        per_page: int = 100,
    ) -> None:
        if credentials is None and token:
            credentials = TokenCredentials(token)
        self.pull = PullRequestHandle(
            url_target,
            credentials,
            api_url,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            max_rate_limit_wait=max_rate_limit_wait,
            secondary_rate_wait=secondary_rate_wait,
            seconds_between_requests=seconds_between_requests,
            per_page=per_page,
        )
        self.max_content_bytes = max_content_bytes
        self._notes: list[str] = []
        # the graph may ask for files from several workers: read the PR and its list once
        self._lock = threading.RLock()
        self._target_cache: ResolvedTarget | None = None
        self._files_cache: dict[str, ChangedFile] | None = None

    @classmethod
    def for_installation(
        cls, url_target: str, credentials: InstallationCredentials, api_url: str | None = None, **kw: Any
    ) -> GitHubSource:
        """The pull request as a GitHub App installation sees it (the App's workers)."""
        return cls(url_target, None, api_url, credentials=credentials, **kw)

    @property
    def ref(self) -> PullRequestRef:
        return self.pull.ref

    @property
    def api_url(self) -> str:
        return self.pull.api_url

    # -- reading ---------------------------------------------------------------------------

    @property
    def _target(self) -> ResolvedTarget:
        with self._lock:
            if self._target_cache is None:
                self._target_cache = self._load_target()
            return self._target_cache

    def _load_target(self) -> ResolvedTarget:
        pr = self.pull.pull_request
        with self.pull.calling():
            base_repo = pr.base.repo
            slug = base_repo.full_name if base_repo is not None and base_repo.full_name else self.ref.slug
            author = pr.user.login if pr.user is not None else None
            changed = pr.changed_files
            target = ResolvedTarget(
                kind="github",
                # canonical: the repository's own spelling, so a differently cased URL names the
                # same thread
                display=f"{self.ref.scheme}://{self.ref.host}/{slug}/pull/{pr.number}",
                head_sha=pr.head.sha,
                base_sha=pr.base.sha,
                title=pr.title or "",
                description=pr.body or "",
                author=author,
                repo_slug=slug,
                host=self.ref.host,
                number=pr.number,
                base_ref=pr.base.ref,
                head_ref=pr.head.ref,
                changed_files=changed,
            )
        if changed is not None and changed > MAX_LISTED_FILES:
            self._add_note(
                f"file list truncated: GitHub lists at most {MAX_LISTED_FILES} of the {changed} changed files"
            )
        return target

    def _add_note(self, note: str) -> None:
        if note not in self._notes:
            self._notes.append(note)

    @property
    def notes(self) -> tuple[str, ...]:
        """What the user should know about this listing (e.g. truncation), as known so far."""
        return tuple(self._notes)

    @property
    def truncated(self) -> bool:
        """True when the listing has fewer files than the pull request says it changes."""
        t = self._target
        return t.changed_files is not None and len(self._files) < t.changed_files

    def resolve(self) -> ResolvedTarget:
        """The pull request at its current head. Cached: later calls return the same head, and
        carry the notes known by then (a truncation is certain only after ``list_files``)."""
        t = self._target
        if self._notes and t.notes != tuple(self._notes):
            t = dataclasses.replace(t, notes=tuple(self._notes))
        return t

    @property
    def _files(self) -> dict[str, ChangedFile]:
        with self._lock:
            if self._files_cache is None:
                self._files_cache = self._load_files()
            return self._files_cache

    def _load_files(self) -> dict[str, ChangedFile]:
        target = self._target
        pr = self.pull.pull_request
        with self.pull.calling():
            entries = list(pr.get_files())
        files: dict[str, ChangedFile] = {}
        for f in entries:
            changed = _changed_file(
                f.filename, f.status, f.patch, f.sha, f.additions, f.deletions, f.changes, f.previous_filename
            )
            if _may_be_symlink(changed):
                changed = self._with_symlink(changed, target)
            files[changed.path] = changed
        if target.changed_files is not None and len(files) < target.changed_files:
            self._add_note(
                f"file list truncated: GitHub listed {len(files)} of the {target.changed_files} "
                "changed files; the others are not reviewed"
            )
        return dict(sorted(files.items()))

    def _is_symlink_at(self, path: str, ref: str, blob_sha: str | None) -> bool:
        """True when ``path`` is a symbolic link at ``ref``. GitHub's contents API answers a
        link as ``type: symlink``, or, when it names a file of the repository, with that file:
        then the path or the blob differs from the link's own."""
        if not is_safe_repo_path(path):
            return False
        with self.pull.calling():
            try:
                found = self.pull.repo.get_contents(path, ref=ref)
            except GithubException as exc:
                if exc.status in (403, 404, 422) and not is_rate_limited(exc):
                    return False
                raise
        if isinstance(found, list):
            return False
        if found.type == "symlink":
            return True
        return found.type == "file" and (
            found.path != path or (blob_sha is not None and found.sha is not None and found.sha != blob_sha)
        )

    def _with_symlink(self, changed: ChangedFile, target: ResolvedTarget) -> ChangedFile:
        old_line, new_line = _one_line_sides(changed.patch or "")
        is_link_now = (
            changed.status != "removed"
            and new_line is not None
            and self._is_symlink_at(changed.path, target.head_sha, changed.blob_sha)
        )
        was_link = False
        if old_line is not None and changed.status != "added":
            base_path = changed.previous_path or changed.path
            was_link = self._is_symlink_at(base_path, target.base_sha, None)
        if not is_link_now and not was_link:
            return changed
        return dataclasses.replace(
            changed,
            is_symlink=True,
            symlink_target=new_line if is_link_now else None,
            previous_symlink_target=old_line if was_link else None,
        )

    # -- for the publisher and the feedback reader ---------------------------------------------

    @property
    def pull_request(self) -> PullRequest:
        """The PullRequest read by ``resolve()`` (the publisher writes through the same client)."""
        return self.pull.pull_request

    def translate_error(self, exc: Exception) -> Exception:
        """The BadInput / ServiceUnavailable for a PyGithub or requests failure."""
        return self.pull.translate(exc)

    # -- the Source port -----------------------------------------------------------------------

    def list_files(self) -> list[ChangedFile]:
        """Every listed file, sorted by path (stable whatever order GitHub pages them in)."""
        return list(self._files.values())

    def get_file(self, path: str) -> ChangedFile | None:
        return self._files.get(path)

    def get_content(self, path: str) -> str | None:
        """The file's text at the head SHA; None if removed, binary, a symlink, undecodable,
        missing or larger than ``max_content_bytes``. Files over 1 MB come from the git blobs API,
        since the contents API answers them without their content."""
        changed = self.get_file(path)
        if changed is not None and (changed.status == "removed" or changed.is_binary or changed.is_symlink):
            return None
        if not is_safe_repo_path(path):
            # "..", "." or empty segments would be resolved by the HTTP client into another API
            # route (another repository the token can read): review from the patch alone
            return None
        return self._text_at(self._target.head_sha, path, changed.blob_sha if changed else None)

    def get_base_content(self, path: str) -> str | None:
        """The file's text at the pull request's base SHA (None when it is not there)."""
        if not is_safe_repo_path(path):
            return None
        return self._text_at(self._target.base_sha, path, None)

    def _text_at(self, ref: str, path: str, blob_sha: str | None) -> str | None:
        with self.pull.calling():
            try:
                found = self.pull.repo.get_contents(path, ref=ref)
            except GithubException as exc:
                # older GitHub Enterprise servers refuse > 1 MB files with 403 "too_large"
                if exc.status == 403 and "too_large" in str(exc.data) and blob_sha:
                    return self._blob_text(blob_sha, None)
                if exc.status in (400, 404, 409, 422) and not is_rate_limited(exc):
                    return None  # not readable there: the review goes on without the full text
                raise
            return self._content_text(path, found)

    def _content_text(self, path: str, found: ContentFile | list[ContentFile]) -> str | None:
        if isinstance(found, list) or found.type != "file" or found.path != path:
            return None  # a directory, submodule, or a symlink (followed): nothing to read as text
        size = found.size or 0
        if size > self.max_content_bytes:
            return None
        if found.encoding == "base64" and (found.content or size == 0):
            return _decode(base64.b64decode(found.content or ""))
        return self._blob_text(found.sha, size)

    def _blob_text(self, sha: str, size: int | None) -> str | None:
        if size is not None and size > self.max_content_bytes:
            return None
        blob = self.pull.repo.get_git_blob(sha)
        if (blob.size or 0) > self.max_content_bytes:
            return None
        if blob.encoding == "base64":
            return _decode(base64.b64decode(blob.content or ""))
        return _decode((blob.content or "").encode("utf-8"))


def _one_line_sides(patch: str) -> tuple[str | None, str | None]:
    """(old line, new line) of a patch that changes one line without a trailing newline on each
    side it has, as a symlink's diff looks; (None, None) for any other patch."""
    lines = patch.split("\n")
    if not lines or not _HUNK.match(lines[0]):
        return None, None
    old: str | None = None
    new: str | None = None
    body = [line for line in lines[1:] if line != ""]
    i = 0
    while i < len(body):
        line = body[i]
        if line[:1] not in ("-", "+") or i + 1 >= len(body) or body[i + 1] != NO_NEWLINE:
            return None, None
        if line[0] == "-":
            if old is not None:
                return None, None
            old = line[1:]
        else:
            if new is not None:
                return None, None
            new = line[1:]
        i += 2
    return old, new


def _may_be_symlink(changed: ChangedFile) -> bool:
    if changed.patch is None or changed.is_binary:
        return False
    old, new = _one_line_sides(changed.patch)
    return old is not None or new is not None


def _changed_file(
    path: str,
    status: str,
    patch: str | None,
    sha: str | None,
    additions: int,
    deletions: int,
    changes: int,
    previous: str | None,
) -> ChangedFile:
    """One listing entry as the port's ChangedFile.

    GitHub gives no ``patch`` for a binary file, for a diff too large to show, and for a change
    without content lines (an empty file, a pure rename). Only the first is binary: a too-large
    diff has line counts, an empty file has the empty blob's SHA, a pure rename is ``renamed``
    with no changes.
    """
    binary = (
        not patch
        and changes == 0
        and additions == 0
        and deletions == 0
        and sha != EMPTY_BLOB_SHA
        and status not in ("renamed", "unchanged")
    )
    reason: str | None = None
    if not patch and not binary:
        if additions or deletions or changes:
            reason = "diff too large for the GitHub API"
        elif status == "renamed":
            reason = "renamed without changes"
        elif sha == EMPTY_BLOB_SHA:
            reason = "empty file"
        else:
            reason = "no textual change"
    return ChangedFile(
        path=path,
        status=status,
        patch=patch or None,
        blob_sha=None if status == "removed" else sha,
        additions=additions or 0,
        deletions=deletions or 0,
        is_binary=binary,
        previous_path=previous,
        no_diff_reason=reason,
    )


def _decode(data: bytes) -> str | None:
    """Text if the bytes are UTF-8 text; None for binary (a NUL byte) or another encoding."""
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
