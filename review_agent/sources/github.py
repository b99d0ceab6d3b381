"""A GitHub pull request as a review source, read with PyGithub.

Why it is built the way it is:

* **Pinned to one head.** ``resolve()`` reads the pull request once and every later call uses
  that head SHA (contents are read ``?ref=<head sha>``), because the thread id is derived from it
  and a resumed process must see the same change again (DESIGN.md §3).
* **Cheap to ask twice.** The graph asks ``get_file`` once per file; the whole file list is read
  once (all pages, up to GitHub's 3000-file cap) and kept in the instance.
* **Retries that cannot duplicate anything.** This source only reads, so its retry policy
  retries GET/HEAD only. PyGithub's stock ``GithubRetry`` also retries POST, which would post a
  review twice when a POST lands but its answer is lost; the publisher must not inherit that.
* **Waits that stay bounded.** A rate limit that resets in 50 minutes is not slept through in a
  CLI or a CI job: beyond ``max_rate_limit_wait`` the run stops with ServiceUnavailable (exit 3)
  saying when to rerun, and the checkpoint makes the rerun resume.
* **Errors a user can act on.** Every PyGithub / requests failure becomes BadInput (exit 2: fix
  the URL or the token) or ServiceUnavailable (exit 3: rerun later), with one line that never
  contains the token.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import requests
from github import Auth, Github, GithubException, GithubRetry
from github.GithubException import (
    BadCredentialsException,
    RateLimitExceededExceedsMaxWait,
    RateLimitExceededException,
    UnknownObjectException,
)
from github.PullRequest import PullRequest
from github.Repository import Repository
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError
from urllib3.response import BaseHTTPResponse

from review_agent.errors import BadInput, ServiceUnavailable
from review_agent.sources.base import ChangedFile, ResolvedTarget

PUBLIC_HOST = "github.com"
PUBLIC_API_URL = "https://api.github.com"
MAX_LISTED_FILES = 3000  # GitHub's cap on GET /pulls/{n}/files
CONTENTS_API_LIMIT = 1024 * 1024  # above 1 MB the contents API answers without the content
EMPTY_BLOB_SHA = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's id of an empty file
USAGE = "expected a pull request URL like https://github.com/OWNER/REPO/pull/123"

_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_REPO = r"[A-Za-z0-9._-]{1,100}"
# https://HOST/OWNER/REPO/pull/N, with anything after it (/files, /commits/SHA, ...)
_WEB_PATH = re.compile(rf"^/(?P<owner>{_OWNER})/(?P<repo>{_REPO})/pulls?/(?P<number>\d+)(?:/.*)?$")
# the API form people paste from CI logs: https://api.github.com/repos/OWNER/REPO/pulls/N
_API_PATH = re.compile(
    rf"^(?:/api/v3)?/repos/(?P<owner>{_OWNER})/(?P<repo>{_REPO})/pulls/(?P<number>\d+)(?:/.*)?$"
)


@dataclass(frozen=True)
class PullRequestRef:
    """A pull request named by its web URL. ``host`` is lower-case and keeps a port if given."""

    host: str
    owner: str
    repo: str
    number: int
    scheme: str = "https"

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.repo}"

    @property
    def web_url(self) -> str:
        return f"{self.scheme}://{self.host}/{self.owner}/{self.repo}/pull/{self.number}"

    @property
    def default_api_url(self) -> str:
        """github.com → api.github.com; GHE.com (data residency) → api.SUBDOMAIN.ghe.com;
        any other host is GitHub Enterprise Server, whose REST API lives under /api/v3."""
        if self.host == PUBLIC_HOST:
            return PUBLIC_API_URL
        if self.host.endswith(".ghe.com"):
            return f"https://api.{self.host}"
        return f"{self.scheme}://{self.host}/api/v3"


def _safe(text: str, limit: int = 120) -> str:
    """The target as it may be echoed in a message: no credentials, bounded length."""
    parts = urllib.parse.urlsplit(text) if "://" in text else None
    if parts is not None and ("@" in parts.netloc):
        text = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_pr_url(text: str) -> PullRequestRef:
    """Parse ``https://HOST/OWNER/REPO/pull/N`` (scheme optional, trailing ``/files`` etc.
    allowed, GitHub Enterprise hosts too). Raises BadInput with a one-line reason otherwise."""
    raw = text.strip()
    if not raw:
        raise BadInput(f"empty target: {USAGE}")
    candidate = raw if "://" in raw else f"https://{raw}"
    try:
        parts = urllib.parse.urlsplit(candidate)
        port = parts.port
    except ValueError as exc:
        raise BadInput(f"not a pull request URL: {_safe(raw)!r} ({exc}); {USAGE}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadInput(f"not a pull request URL: {_safe(raw)!r} (scheme {scheme!r}); {USAGE}")
    if parts.username or parts.password:
        # never echo the URL: the userinfo may be a token
        raise BadInput("a pull request URL must not contain credentials: set GITHUB_TOKEN instead")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host or ("." not in host and host != "localhost"):
        raise BadInput(f"not a pull request URL: {_safe(raw)!r} (no host); {USAGE}")
    if host == "www.github.com":
        host = PUBLIC_HOST
    path = re.sub(r"/{2,}", "/", parts.path)
    m = _WEB_PATH.match(path)
    if m is None:
        m = _API_PATH.match(path)
        if m is not None and host == "api.github.com":
            host = PUBLIC_HOST
    if m is None:
        raise BadInput(f"not a pull request URL: {_safe(raw)!r}; {USAGE}")
    number = int(m.group("number"))
    if number <= 0:
        raise BadInput(f"not a pull request URL: {_safe(raw)!r} (pull request numbers start at 1)")
    repo = m.group("repo")
    if repo in (".", ".."):
        raise BadInput(f"not a pull request URL: {_safe(raw)!r} (bad repository name); {USAGE}")
    netloc = host if port is None or (scheme, port) in (("https", 443), ("http", 80)) else f"{host}:{port}"
    return PullRequestRef(netloc, m.group("owner"), repo, number, scheme)


def _api_url(ref: PullRequestRef, explicit: str | None) -> str:
    """``GITHUB_API_URL`` wins (Enterprise setups, tests); otherwise derived from the host."""
    if explicit is None or not explicit.strip():
        return ref.default_api_url
    url = explicit.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"GITHUB_API_URL must be an http(s) URL, not {_safe(url)!r}")
    return url


class _BoundedRetry(GithubRetry):
    """PyGithub's retry policy, with one more bound: a ``Retry-After`` longer than
    ``max_rate_limit_wait`` stops the run instead of sleeping (urllib3 would sleep it in full,
    and GitHub's secondary limits may ask for minutes). Primary limits are already bounded by
    ``GithubRetry`` itself through ``max_rate_limit_wait``."""

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
                    {"message": f"rate limit still exceeded after {self._attempts()} attempts"},
                    dict(response.headers),
                ) from None
            raise

    def _attempts(self) -> int:
        return len(self.history) + 1


def _header(headers: dict[str, Any] | None, name: str) -> str | None:
    for k, v in (headers or {}).items():
        if k.lower() == name.lower():
            return str(v)
    return None


def _message(exc: GithubException) -> str:
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


def _is_rate_limited(exc: GithubException) -> bool:
    if isinstance(exc, RateLimitExceededException):
        return True
    if exc.status not in (403, 429):
        return False
    if _header(exc.headers, "x-ratelimit-remaining") == "0" or _header(exc.headers, "retry-after"):
        return True
    return "rate limit" in _message(exc).lower() or exc.status == 429


def _connection_reason(exc: requests.exceptions.RequestException) -> str:
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


class GitHubSource:
    """The files of one GitHub pull request, pinned to the head SHA seen by ``resolve()``.

    ``retries``, ``backoff`` and the rate-limit waits are configurable so that tests can run the
    real retry code against a fake server in milliseconds; the defaults suit a CLI and CI.
    """

    def __init__(
        self,
        url_target: str,
        token: str | None = None,
        api_url: str | None = None,
        *,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: int = 30,
        max_rate_limit_wait: float = 120.0,
        secondary_rate_wait: float = 60.0,
        seconds_between_requests: float | None = None,
        max_content_bytes: int = 10 * 1024 * 1024,
        per_page: int = 100,
    ) -> None:
        self.ref = parse_pr_url(url_target)
        self.api_url = _api_url(self.ref, api_url)
        self.retries = max(0, retries)
        self.max_content_bytes = max_content_bytes
        self.timeout = timeout
        self._notes: list[str] = []
        # the graph may ask for files from several workers: read the PR and its list once
        self._lock = threading.RLock()
        self._pull_cache: PullRequest | None = None
        self._target_cache: ResolvedTarget | None = None
        self._files_cache: dict[str, ChangedFile] | None = None
        retry = _BoundedRetry(
            total=self.retries,
            backoff_factor=backoff,
            # reads only: a retried GET is harmless, a retried POST may post twice
            allowed_methods=frozenset({"GET", "HEAD"}),
            # after the last retry, give PyGithub the answer (it raises the precise exception)
            raise_on_status=False,
            secondary_rate_wait=secondary_rate_wait,
            max_rate_limit_wait=max_rate_limit_wait,
        )
        self._github = Github(
            auth=Auth.Token(token) if token else None,
            base_url=self.api_url,
            retry=retry,
            timeout=timeout,
            per_page=per_page,
            # this source only reads; throttling reads serially only slows big PRs down
            seconds_between_requests=seconds_between_requests,
            seconds_between_writes=None,
            user_agent="review-agent",
            lazy=True,
        )

    # -- errors ----------------------------------------------------------------------------

    @property
    def _pr_name(self) -> str:
        return f"{self.ref.slug}#{self.ref.number}"

    def _rate_limited(self, exc: GithubException) -> ServiceUnavailable:
        headers = exc.headers
        now = time.time()
        reset: float | None = None
        if _header(headers, "x-ratelimit-remaining") == "0":
            value = _header(headers, "x-ratelimit-reset")
            if value and value.isdigit():
                reset = float(value)
        retry_after = _header(headers, "retry-after")
        if reset is None and retry_after:
            try:
                reset = now + float(retry_after)
            except ValueError:
                reset = None
        if reset is None and isinstance(exc, RateLimitExceededExceedsMaxWait) and exc.wait:
            reset = now + exc.wait
        if reset is None:
            when = "in a few minutes"
        else:
            at = datetime.fromtimestamp(reset, UTC).strftime("%H:%M:%S UTC")
            minutes = max(1, round((reset - now) / 60))
            when = f"after {at} (in about {minutes} min)"
        reason = _message(exc).split(". ")[0].rstrip(".")  # GitHub's first sentence says which limit
        return ServiceUnavailable(
            f"GitHub rate limit exceeded at {self.api_url} ({reason}): rerun {when}; finished files are kept"
        )

    def _translate(self, exc: Exception) -> Exception:
        """The project error for a PyGithub / requests failure (DESIGN.md §6 exit codes)."""
        not_found = BadInput(
            f"pull request {self._pr_name} not found at {self.ref.host} "
            "(check the URL, and that GITHUB_TOKEN can read the repository)"
        )
        bad_token = BadInput("GitHub rejected the token (401): set a valid GITHUB_TOKEN")
        if isinstance(exc, GithubException):
            if _is_rate_limited(exc):
                return self._rate_limited(exc)
            if isinstance(exc, BadCredentialsException) or exc.status == 401:
                return bad_token
            if isinstance(exc, UnknownObjectException) or exc.status == 404:
                return not_found
            if exc.status == 403:
                return BadInput(
                    f"GitHub refused access to {self._pr_name} (403: {_message(exc)}): "
                    "check that GITHUB_TOKEN can read the repository"
                )
            if exc.status >= 500:
                return ServiceUnavailable(
                    f"GitHub at {self.api_url} unreachable: HTTP {exc.status} after "
                    f"{self.retries + 1} attempts"
                )
            return BadInput(f"GitHub answered {exc.status} for {self._pr_name}: {_message(exc)}")
        if isinstance(exc, requests.exceptions.RequestException):
            reason = _connection_reason(exc)
            if reason == "timed out":
                reason = f"no answer within {self.timeout}s"
            return ServiceUnavailable(f"GitHub at {self.api_url} unreachable: {reason}")
        return exc

    @contextmanager
    def _calling_github(self) -> Iterator[None]:
        try:
            yield
        except (GithubException, requests.exceptions.RequestException) as exc:
            raise self._translate(exc) from exc

    # -- reading ---------------------------------------------------------------------------

    @property
    def _repo(self) -> Repository:
        return self._github.get_repo(self.ref.slug)  # lazy: no request

    @property
    def _target(self) -> ResolvedTarget:
        with self._lock:
            if self._target_cache is None:
                self._target_cache = self._load_target()
            return self._target_cache

    def _load_target(self) -> ResolvedTarget:
        with self._calling_github():
            pr = self._repo.get_pull(self.ref.number).complete()
            self._pull_cache = pr
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
        assert self._pull_cache is not None
        with self._calling_github():
            entries = list(self._pull_cache.get_files())
        files: dict[str, ChangedFile] = {}
        for f in entries:
            changed = _changed_file(
                f.filename, f.status, f.patch, f.sha, f.additions, f.deletions, f.changes, f.previous_filename
            )
            files[changed.path] = changed
        if target.changed_files is not None and len(files) < target.changed_files:
            self._add_note(
                f"file list truncated: GitHub listed {len(files)} of the {target.changed_files} "
                "changed files; the others are not reviewed"
            )
        return dict(sorted(files.items()))

    # -- for the publisher ------------------------------------------------------------------

    @property
    def pull_request(self) -> PullRequest:
        """The PullRequest read by ``resolve()``, on this source's client: the publisher writes
        through it, and this client retries GET/HEAD only, so a POST is never repeated blindly."""
        _ = self._target
        assert self._pull_cache is not None
        return self._pull_cache

    def translate_error(self, exc: Exception) -> Exception:
        """The BadInput / ServiceUnavailable for a PyGithub or requests failure, so that the
        publisher maps errors exactly as the source does (``exc`` itself for anything else)."""
        return self._translate(exc)

    def list_files(self) -> list[ChangedFile]:
        """Every listed file, sorted by path (stable whatever order GitHub pages them in)."""
        return list(self._files.values())

    def get_file(self, path: str) -> ChangedFile | None:
        return self._files.get(path)

    def get_content(self, path: str) -> str | None:
        """The file's text at the head SHA; None if removed, binary, undecodable, missing or
        larger than ``max_content_bytes``. Files over 1 MB come from the git blobs API, since
        the contents API answers them without their content."""
        changed = self.get_file(path)
        if changed is not None and (changed.status == "removed" or changed.is_binary):
            return None
        if not is_safe_repo_path(path):
            # "..", "." or empty segments would be resolved by the HTTP client into another API
            # route (another repository the token can read): review from the patch alone
            return None
        head = self._target.head_sha
        with self._calling_github():
            try:
                found = self._repo.get_contents(path, ref=head)
            except GithubException as exc:
                # older GitHub Enterprise servers refuse > 1 MB files with 403 "too_large"
                if exc.status == 403 and "too_large" in str(exc.data) and changed and changed.blob_sha:
                    return self._blob_text(changed.blob_sha, None)
                if exc.status in (400, 404, 409, 422) and not _is_rate_limited(exc):
                    return None  # not readable at head: the review goes on without the full text
                raise
            if isinstance(found, list) or found.type != "file":
                return None  # a directory, symlink or submodule: nothing to read as text
            size = found.size or 0
            if size > self.max_content_bytes:
                return None
            if found.encoding == "base64" and (found.content or size == 0):
                return _decode(base64.b64decode(found.content or ""))
            return self._blob_text(found.sha, size)

    def _blob_text(self, sha: str, size: int | None) -> str | None:
        if size is not None and size > self.max_content_bytes:
            return None
        blob = self._repo.get_git_blob(sha)
        if (blob.size or 0) > self.max_content_bytes:
            return None
        if blob.encoding == "base64":
            return _decode(base64.b64decode(blob.content or ""))
        return _decode((blob.content or "").encode("utf-8"))


def is_safe_repo_path(path: str) -> bool:
    """A path that names a file inside the repository and nothing else once put in a URL."""
    if not path or path.startswith("/") or "\\" in path:
        return False
    return all(seg not in ("", ".", "..") for seg in path.split("/"))


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
    return ChangedFile(
        path=path,
        status=status,
        patch=patch or None,
        blob_sha=None if status == "removed" else sha,
        additions=additions or 0,
        deletions=deletions or 0,
        is_binary=binary,
        previous_path=previous,
    )


def _decode(data: bytes) -> str | None:
    """Text if the bytes are UTF-8 text; None for binary (a NUL byte) or another encoding."""
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
