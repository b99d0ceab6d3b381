"""A stateful fake of the GitHub REST API, served over real HTTP on 127.0.0.1.

The tests allow exactly one kind of double: a small server at the network boundary. The real
PyGithub (and anything else that speaks HTTP) talks to this server exactly as it would talk to
api.github.com or a GitHub Enterprise host, so what the tests check is what our code does on the
wire: which requests it makes, how it pages, how it reacts to errors, and — most important for
posting exactly once (docs/architecture.md, "Exactly once") — how many reviews and comments
really landed.

What it models, and why:

* pull requests, their changed files (paginated like GitHub, with ``Link`` headers, capped at
  3000 files), file contents at a ref (contents API, with GitHub's 1 MB cut-over to the git blobs
  API) and commits, because the GitHub source reads all of these;
* reviews, review comments, issue comments and reactions, with GitHub's validation of inline
  comments: a comment on a line that is not in the file's diff hunks (for its side) makes GitHub
  refuse the *whole* review with 422, so the publisher must never send one;
* tokens (401 "Bad credentials", read-only tokens get 403 on writes), unknown repositories or pull
  requests (404), and a stateful primary rate limit with the usual ``x-ratelimit-*`` headers;
* GitHub Apps: JWTs (RS256, verified with the App's public key) on ``/app``,
  ``/app/installations``, ``POST /app/installations/{id}/access_tokens`` and
  ``/repos/{o}/{r}/installation``; installation tokens that expire, that see only their
  installation's repositories (another's private repository is 404, a public one read-only),
  that list them at ``/installation/repositories``, and that get 403 from ``GET /user``;
* scripted faults per method + path: 5xx N times, rate limits (403 secondary with
  ``Retry-After``, 403/429 primary with ``x-ratelimit-reset``), delays, dropped connections and
  "landed but failed" writes (the write is applied, then an error is returned), because those are
  the situations in which a naive client posts twice.

Everything it receives is recorded (minus the ``Authorization`` header), so a test can assert
"posted exactly once" on what the server saw rather than on what the client believes.

It is also runnable on its own (``python -m tests.fakes.github_server --config pr.json``) for
tests that start the CLI in another process or container; a small control API under ``/_fake/``
exposes the recorded state and accepts faults there.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import posixpath
import re
import secrets
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_PREFIX = "/api/v3"
MAX_PR_FILES = 3000  # GitHub lists at most 3000 files of a pull request
CONTENTS_API_LIMIT = 1024 * 1024  # above this the contents API answers without the content
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
EMPTY_BLOB_SHA = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
DOCS = "https://docs.github.com/rest"

SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID 0000:FAKE."
)
PRIMARY_RATE_LIMIT_MESSAGE = (
    "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please "
    "include the request ID 0000:FAKE."
)
REVIEW_EVENTS = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}

Json = Any
PathPattern = str | re.Pattern[str]


# --------------------------------------------------------------------------------------------
# helpers to build test data


def git_blob_sha(data: bytes) -> str:
    """The blob id git (and GitHub) gives these bytes, so that fake SHAs behave like real ones."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _as_bytes(content: str | bytes) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def count_patch(patch: str | None) -> tuple[int, int]:
    """(additions, deletions) of a patch, counted the way GitHub counts them."""
    if not patch:
        return 0, 0
    adds = dels = 0
    for line in patch.splitlines():
        if line.startswith("+") and not line.startswith("+++ "):
            adds += 1
        elif line.startswith("-") and not line.startswith("--- "):
            dels += 1
    return adds, dels


def make_file(
    path: str,
    patch: str | None = None,
    *,
    status: str | None = None,
    content: str | bytes | None = None,
    sha: str | None = None,
    previous_filename: str | None = None,
    additions: int | None = None,
    deletions: int | None = None,
    symlink: str | None = None,
) -> dict[str, Any]:
    """One entry of ``GET /pulls/{n}/files`` built from a path and its hunks.

    ``symlink`` makes the file a symbolic link to that target at head (see ``symlink_patch``
    for the patch GitHub lists for one).

    ``content`` is the file's full content at head: it fixes ``sha`` (the real blob id) and is
    served by the contents and blobs APIs once the entry is given to ``add_pr`` (the key is not
    part of the listing). A binary file is a file with ``patch=None`` and no line counts, which is
    exactly how GitHub lists one.
    """
    adds, dels = count_patch(patch)
    adds = adds if additions is None else additions
    dels = dels if deletions is None else deletions
    if status is None:
        status = "renamed" if previous_filename else "modified"
    if sha is None and symlink is not None:
        sha = git_blob_sha(symlink.encode())
    if sha is None:
        if content is not None:
            sha = git_blob_sha(_as_bytes(content))
        else:
            sha = git_blob_sha(f"{path}\n{patch}".encode())
    entry: dict[str, Any] = {
        "filename": path,
        "status": status,
        "sha": sha,
        "additions": adds,
        "deletions": dels,
        "changes": adds + dels,
    }
    if patch is not None:
        entry["patch"] = patch
    if previous_filename is not None:
        entry["previous_filename"] = previous_filename
    if content is not None:
        entry["content"] = content
    if symlink is not None:
        entry["symlink"] = symlink
    return entry


def symlink_patch(old: str | None, new: str | None) -> str:
    """The patch GitHub lists for a symbolic link: its target is the one line, without a
    trailing newline, on each side where it is a link."""
    no_newline = "\\ No newline at end of file"
    head = f"@@ -{'1' if old is not None else '0,0'} +{'1' if new is not None else '0,0'} @@"
    lines = [head]
    if old is not None:
        lines += [f"-{old}", no_newline]
    if new is not None:
        lines += [f"+{new}", no_newline]
    return "\n".join(lines)


def added_file_patch(lines: Iterable[str]) -> str:
    """The hunk GitHub shows for a new file with these lines (a convenience for tests)."""
    body = list(lines)
    return f"@@ -0,0 +1,{len(body)} @@\n" + "\n".join(f"+{line}" for line in body)


# --------------------------------------------------------------------------------------------
# diff positions, parsed independently of review_agent.patches so the fake is a real oracle

_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class DiffLine:
    """One line of a patch: its position (GitHub's legacy ``position``) and where it anchors."""

    position: int
    hunk: int
    kind: str  # "+", "-", " ", "@" (a later hunk header) or "\\"
    old: int | None  # line on the LEFT side, if any
    new: int | None  # line on the RIGHT side, if any
    text: str


@dataclass(frozen=True)
class DiffMap:
    """Which lines of a file GitHub can anchor a comment to, per side and per hunk."""

    lines: tuple[DiffLine, ...]
    hunk_texts: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, patch: str | None) -> DiffMap:
        if not patch:
            return cls((), ())
        out: list[DiffLine] = []
        hunks: list[list[str]] = []
        old = new = 0
        position = -1
        for raw in patch.split("\n"):
            m = _HUNK_HEADER.match(raw)
            if m:
                old, new = int(m.group(1)), int(m.group(3))
                hunks.append([raw])
                position += 1
                if position > 0:
                    out.append(DiffLine(position, len(hunks) - 1, "@", None, None, raw))
                continue
            if not hunks:
                continue  # --- / +++ headers or garbage before the first hunk
            position += 1
            hunks[-1].append(raw)
            h = len(hunks) - 1
            if raw.startswith("+"):
                out.append(DiffLine(position, h, "+", None, new, raw))
                new += 1
            elif raw.startswith("-"):
                out.append(DiffLine(position, h, "-", old, None, raw))
                old += 1
            elif raw.startswith("\\"):
                out.append(DiffLine(position, h, "\\", None, None, raw))
            else:
                out.append(DiffLine(position, h, " ", old, new, raw))
                old += 1
                new += 1
        # a trailing newline in the patch text is not a context line
        if out and out[-1].text == "" and out[-1].kind == " ":
            out.pop()
            hunks[-1].pop()
        return cls(tuple(out), tuple(tuple(h) for h in hunks))

    def find(self, side: str, line: int) -> DiffLine | None:
        for d in self.lines:
            if (side == "RIGHT" and d.new == line) or (side == "LEFT" and d.old == line):
                return d
        return None

    def at_position(self, position: int) -> DiffLine | None:
        for d in self.lines:
            if d.position == position and d.kind in "+- ":
                return d
        return None

    def hunk_until(self, target: DiffLine) -> str:
        """GitHub's ``diff_hunk`` of a comment: its hunk, from the header down to its line."""
        header = self.hunk_texts[target.hunk][0]
        body = [d.text for d in self.lines if d.hunk == target.hunk and d.kind != "@"]
        upto = [d for d in self.lines if d.hunk == target.hunk and d.kind != "@"].index(target)
        return "\n".join([header, *body[: upto + 1]])


# --------------------------------------------------------------------------------------------
# state


@dataclass
class Fault:
    """One scripted misbehaviour, used ``times`` times by requests matching method and path."""

    method: str
    pattern: PathPattern
    status: int | None = 500  # None: answer normally (only delay or disconnect)
    times: int = 1
    land: bool = False  # apply the request first, then answer with the fault
    body: Json = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    disconnect: bool = False  # close the connection without an answer
    used: int = 0

    def matches(self, method: str, route: str) -> bool:
        if self.used >= self.times:
            return False
        if self.method != "*" and self.method.upper() != method:
            return False
        if isinstance(self.pattern, re.Pattern):
            return self.pattern.search(route) is not None
        return route == self.pattern or route.endswith(self.pattern)


@dataclass
class RecordedRequest:
    """What the server received: everything but the token."""

    method: str
    path: str  # as requested, without the query string
    route: str  # path without the /api/v3 prefix, e.g. /repos/o/r/pulls/7/reviews
    query: dict[str, str]
    headers: dict[str, str]
    json: Json
    login: str | None = None  # whom the token authenticated, None if anonymous or invalid
    status: int | None = None  # what was answered (None: connection dropped)
    fault: bool = False  # a scripted fault decided the answer


@dataclass
class FakeRepo:
    owner: str
    name: str
    id: int
    private: bool = False
    default_branch: str = "main"
    contents: dict[str, dict[str, bytes]] = field(default_factory=dict)  # ref -> path -> bytes
    symlinks: dict[str, dict[str, str]] = field(default_factory=dict)  # ref -> path -> target
    blobs: dict[str, bytes] = field(default_factory=dict)
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)  # sha -> {message, parents}

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class FakePullRequest:
    repo: FakeRepo
    number: int
    id: int
    title: str
    author: str
    head_sha: str
    base_sha: str
    head_ref: str
    base_ref: str
    files: list[dict[str, Any]]
    changed_files: int | None = None  # what the PR object claims; None: len(files)
    body: str = ""
    state: str = "open"
    draft: bool = False
    commits: list[str] = field(default_factory=list)  # every head this PR had, oldest first
    reviews: list[dict[str, Any]] = field(default_factory=list)
    review_comments: list[dict[str, Any]] = field(default_factory=list)
    issue_comments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def claimed_changed_files(self) -> int:
        return len(self.files) if self.changed_files is None else self.changed_files

    def file(self, path: str) -> dict[str, Any] | None:
        for f in self.files:
            if f["filename"] == path:
                return f
        return None


class _HTTPError(Exception):
    """An error answer, raised from a route handler."""

    def __init__(self, status: int, message: str, errors: list[Any] | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
        if errors is not None:
            self.body["errors"] = errors
        self.body.update(extra)
        self.headers: dict[str, str] = {}


@dataclass
class _Response:
    status: int
    body: Json
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Context:
    method: str
    route: str
    query: dict[str, str]
    json: Json
    login: str | None
    can_write: bool
    app_id: str | None = None  # authenticated as a GitHub App (a JWT)
    installation: int | None = None  # authenticated with an installation token


@dataclass
class FakeApp:
    """A GitHub App: its id, slug and the public half of its key (JWTs are verified with it)."""

    app_id: str
    public_key: bytes
    slug: str

    @property
    def bot(self) -> str:
        return f"{self.slug}[bot]"


@dataclass
class FakeInstallation:
    id: int
    app_id: str
    account: str
    repos: set[tuple[str, str]] | None  # lower-case (owner, repo); None: every repository
    can_write: bool = True

    def covers(self, owner: str, repo: str) -> bool:
        if self.repos is None:
            return owner.lower() == self.account.lower()
        return (owner.lower(), repo.lower()) in self.repos


@dataclass
class _Principal:
    login: str | None = None
    can_write: bool = False
    state: str = "anonymous"  # anonymous | ok | bad | bad_jwt
    app_id: str | None = None
    installation: int | None = None


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# the server


class FakeGitHub:
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

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        """Bind (a free port unless one was given) and serve in a daemon thread."""
        if self._server is not None:
            return self
        handler = _make_handler(self)
        server = _QuietServer((self._host, self._port), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"fake-github-{server.server_address[1]}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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

    # ---- faults ------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path: PathPattern,
        status: int | None = 500,
        *,
        times: int = 1,
        land: bool = False,
        body: Json = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        disconnect: bool = False,
        retry_after: float | None = None,
    ) -> Fault:
        """Make the next ``times`` requests matching ``method`` ("*" for any) and ``path`` fail.

        ``path`` matches the route (path without ``/api/v3`` and query) when equal to it or a
        suffix of it — ``"/pulls/7/reviews"`` matches ``/repos/o/r/pulls/7/reviews`` but not
        ``.../reviews/5/comments`` — or is a compiled regular expression searched in it.
        ``land=True`` applies the request before failing ("landed but failed"). ``status=None``
        answers normally after ``delay`` (a slow but good answer). ``disconnect=True`` closes the
        connection without any answer, after applying the request if ``land=True`` (a write that
        landed while the client lost the connection). Faults are consumed in the order they were
        added.
        """
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs["Retry-After"] = (
                str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            )
        if body is None and status is not None:
            body = {"message": _default_message(status), "documentation_url": DOCS}
        fault = Fault(
            method=method.upper() if method != "*" else "*",
            pattern=path,
            status=status,
            times=times,
            land=land,
            body=body,
            headers=hdrs,
            delay=delay,
            disconnect=disconnect,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def rate_limit_next(
        self,
        method: str,
        path: PathPattern,
        *,
        kind: str = "primary",
        status: int = 403,
        reset_in: int = 3600,
        retry_after: float | None = None,
        times: int = 1,
    ) -> Fault:
        """A rate-limit answer as GitHub gives it. ``kind="primary"``: ``x-ratelimit-remaining: 0``
        and ``x-ratelimit-reset`` ``reset_in`` seconds ahead. ``kind="secondary"``: GitHub's
        secondary-limit message, with ``Retry-After`` if given."""
        reset = int(time.time()) + reset_in
        if kind == "primary":
            headers = {
                "x-ratelimit-limit": str(self._rate_limit),
                "x-ratelimit-remaining": "0",
                "x-ratelimit-used": str(self._rate_limit),
                "x-ratelimit-reset": str(reset),
                "x-ratelimit-resource": "core",
            }
            message = PRIMARY_RATE_LIMIT_MESSAGE
        elif kind == "secondary":
            headers = {}
            message = SECONDARY_RATE_LIMIT_MESSAGE
        else:
            raise ValueError(f"kind must be 'primary' or 'secondary', not {kind!r}")
        return self.fail_next(
            method,
            path,
            status,
            times=times,
            headers=headers,
            retry_after=retry_after,
            body={"message": message, "documentation_url": DOCS},
        )

    def delay_next(self, method: str, path: PathPattern, seconds: float, *, times: int = 1) -> Fault:
        """Answer normally, but only after ``seconds`` (for timeouts and kill-in-flight tests)."""
        return self.fail_next(method, path, None, times=times, delay=seconds)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults not yet used up (a test can assert its script was played to the end)."""
        with self._lock:
            return [f for f in self._faults if f.used < f.times]

    # ---- recording ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: PathPattern) -> list[RecordedRequest]:
        """Requests matching ``method`` ("*" for any) and ``path`` (same matching as faults)."""
        probe = Fault(method=method.upper() if method != "*" else "*", pattern=path, times=1 << 62)
        return [r for r in self.requests if probe.matches(r.method, r.route)]

    def count(self, method: str, path: PathPattern) -> int:
        return len(self.requests_to(method, path))

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ---- request handling (called from the server threads) ----------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        method = handler.command.upper()
        split = urllib.parse.urlsplit(handler.path)
        path = urllib.parse.unquote(split.path)
        route = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else path
        route = route.rstrip("/") or "/"
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            payload: Json = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")

        if route.startswith("/_fake/"):
            self._control(handler, method, route, payload)
            return

        who = self._authenticate(handler.headers.get("Authorization"))
        login, token_state = who.login, who.state
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "authorization"}
        record = RecordedRequest(method, path, route, query, headers, payload, login)
        with self._lock:
            self._requests.append(record)
            fault = next((f for f in self._faults if f.matches(method, route)), None)
            if fault is not None:
                fault.used += 1

        if fault is not None and fault.delay:
            time.sleep(fault.delay)

        ctx = _Context(method, route, query, payload, login, who.can_write, who.app_id, who.installation)
        # a fault replaces the answer; the request itself is applied only if it "lands"
        applied = fault is None or fault.land or (fault.status is None and not fault.disconnect)
        response = self._dispatch(ctx, token_state) if applied else None

        if fault is not None and fault.disconnect:
            record.fault = True
            handler.close_connection = True
            return
        if fault is not None and fault.status is not None:
            record.fault = True
            response = _Response(fault.status, fault.body, dict(fault.headers))
        assert response is not None
        record.status = response.status
        self._send(handler, response)

    def _authenticate(self, header: str | None) -> _Principal:
        if not header:
            return _Principal()
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() not in ("token", "bearer") or not token:
            return _Principal(state="bad")
        with self._lock:
            found = self._tokens.get(token)
            minted = self._installation_tokens.get(token)
        if found is not None:
            return _Principal(found[0], found[1], "ok")
        if minted is not None:
            installation_id, expires = minted
            if time.time() >= expires:
                return _Principal(state="bad")
            inst = self._installations[installation_id]
            app = self._apps[inst.app_id]
            return _Principal(app.bot, inst.can_write, "ok", installation=installation_id)
        if token.count(".") == 2:
            app_id = self._verify_jwt(token)
            if app_id is None:
                return _Principal(state="bad_jwt")
            return _Principal(None, False, "ok", app_id=app_id)
        return _Principal(state="bad")

    def _verify_jwt(self, token: str) -> str | None:
        """The App a JWT authenticates, as GitHub checks it: RS256, signed by the App's key,
        ``iss`` the App id, issued in the past and expiring within ten minutes."""
        import jwt  # PyJWT: a dependency of PyGithub

        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            with self._lock:
                app = self._apps.get(str(claims.get("iss")))
            if app is None:
                return None
            checked = jwt.decode(
                token,
                app.public_key,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "iss"]},
                leeway=5,
            )
        except jwt.PyJWTError:
            return None
        if int(checked["exp"]) - int(checked["iat"]) > 11 * 60 or int(checked["exp"]) > time.time() + 11 * 60:
            return None
        return app.app_id

    def _dispatch(self, ctx: _Context, token_state: str) -> _Response:
        try:
            if token_state == "bad":
                raise _HTTPError(401, "Bad credentials")
            if token_state == "bad_jwt":
                raise _HTTPError(401, "A JSON web token could not be decoded")
            app_route = (
                ctx.route == "/app"
                or ctx.route.startswith("/app/")
                or re.fullmatch(r"/repos/[^/]+/[^/]+/installation", ctx.route) is not None
            )
            if app_route and ctx.app_id is None:
                raise _HTTPError(401, "A JSON web token could not be decoded")
            if ctx.app_id is not None and not app_route:
                raise _HTTPError(403, "Resource not accessible by integration")
            if ctx.route != "/rate_limit" and token_state == "ok":
                self._count_rate_limit()
            for method, pattern, fn in self._routes:
                if method != ctx.method:
                    continue
                m = pattern.fullmatch(ctx.route)
                if m:
                    response = fn(ctx, **m.groupdict())
                    break
            else:
                raise _HTTPError(404, "Not Found")
        except _HTTPError as e:
            response = _Response(e.status, e.body, e.headers)
        response.headers.update(self._rate_headers())
        return response

    def _count_rate_limit(self) -> None:
        with self._lock:
            if time.time() >= self._rate_reset:
                self._rate_remaining = self._rate_limit
                self._rate_reset = int(time.time()) + 3600
            if self._rate_remaining <= 0:
                raise _HTTPError(403, PRIMARY_RATE_LIMIT_MESSAGE)
            self._rate_remaining -= 1

    def _rate_headers(self) -> dict[str, str]:
        with self._lock:
            return {
                "x-ratelimit-limit": str(self._rate_limit),
                "x-ratelimit-remaining": str(max(self._rate_remaining, 0)),
                "x-ratelimit-used": str(self._rate_limit - max(self._rate_remaining, 0)),
                "x-ratelimit-reset": str(self._rate_reset),
                "x-ratelimit-resource": "core",
            }

    def _send(self, handler: BaseHTTPRequestHandler, response: _Response) -> None:
        data = b"" if response.body is None else json.dumps(response.body).encode()
        handler.send_response(response.status)
        headers = {"Content-Type": "application/json; charset=utf-8", **response.headers}
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if data and handler.command != "HEAD":
            handler.wfile.write(data)

    # ---- control API for standalone use --------------------------------------------------

    def _control(self, handler: BaseHTTPRequestHandler, method: str, route: str, payload: Json) -> None:
        """Unauthenticated, unrecorded endpoints that let another process script and inspect
        a standalone server: GET /_fake/requests, GET /_fake/prs/OWNER/REPO/N,
        POST /_fake/faults (fail_next's keyword arguments), POST /_fake/reset_requests."""
        try:
            if method == "GET" and route == "/_fake/requests":
                body: Json = [r.__dict__ for r in self.requests]
            elif method == "GET" and (m := re.fullmatch(r"/_fake/prs/([^/]+)/([^/]+)/(\d+)", route)):
                o, r, n = m.group(1), m.group(2), int(m.group(3))
                body = {
                    "reviews": self.reviews(o, r, n),
                    "review_comments": self.review_comments(o, r, n),
                    "issue_comments": self.issue_comments(o, r, n),
                }
            elif method == "POST" and route == "/_fake/faults":
                args = dict(payload or {})
                self.fail_next(args.pop("method"), args.pop("path"), **args)
                body = {"ok": True}
            elif method == "POST" and route == "/_fake/reset_requests":
                self.reset_requests()
                body = {"ok": True}
            else:
                raise _HTTPError(404, "Not Found")
            self._send(handler, _Response(200, body))
        except KeyError:
            self._send(handler, _Response(404, {"message": "Not Found"}))
        except _HTTPError as e:
            self._send(handler, _Response(e.status, e.body))

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

    # ---- routes ------------------------------------------------------------------------

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

    def _get_user(self, ctx: _Context) -> _Response:
        if ctx.installation is not None:  # GitHub: an installation is not a user
            raise _HTTPError(403, "Resource not accessible by integration")
        if ctx.login is None:
            raise _HTTPError(401, "Requires authentication")
        return _Response(200, self._user_json(ctx.login))

    def _app_of(self, ctx: _Context) -> FakeApp:
        assert ctx.app_id is not None
        with self._lock:
            return self._apps[ctx.app_id]

    def _installation_json(self, inst: FakeInstallation) -> dict[str, Any]:
        app = self._apps[inst.app_id]
        return {
            "id": inst.id,
            "account": self._user_json(inst.account),
            "app_id": int(inst.app_id),
            "app_slug": app.slug,
            "target_id": 1,
            "target_type": "Organization",
            "repository_selection": "all" if inst.repos is None else "selected",
            "permissions": {"pull_requests": "write" if inst.can_write else "read", "contents": "read"},
            "events": ["pull_request"],
            "access_tokens_url": f"{self.url}/app/installations/{inst.id}/access_tokens",
            "repositories_url": f"{self.url}/installation/repositories",
            "html_url": f"{self.root}/organizations/{inst.account}/settings/installations/{inst.id}",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "suspended_at": None,
        }

    def _app_installation(self, ctx: _Context, installation_id: str) -> FakeInstallation:
        app = self._app_of(ctx)
        with self._lock:
            inst = self._installations.get(int(installation_id))
        if inst is None or inst.app_id != app.app_id:
            raise _HTTPError(404, "Not Found")
        return inst

    def _get_app(self, ctx: _Context) -> _Response:
        app = self._app_of(ctx)
        return _Response(
            200,
            {
                "id": int(app.app_id),
                "slug": app.slug,
                "node_id": f"A_{app.app_id}",
                "name": app.slug,
                "owner": self._user_json("acme"),
                "description": "",
                "external_url": self.root,
                "html_url": f"{self.root}/apps/{app.slug}",
                "permissions": {"pull_requests": "write", "contents": "read"},
                "events": ["pull_request"],
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
            },
        )

    def _get_app_installations(self, ctx: _Context) -> _Response:
        app = self._app_of(ctx)
        with self._lock:
            mine = [i for i in self._installations.values() if i.app_id == app.app_id]
            items = [self._installation_json(i) for i in mine]
        return self._paginate(ctx, items)

    def _get_app_installation(self, ctx: _Context, installation_id: str) -> _Response:
        return _Response(200, self._installation_json(self._app_installation(ctx, installation_id)))

    def _post_access_token(self, ctx: _Context, installation_id: str) -> _Response:
        inst = self._app_installation(ctx, installation_id)
        token = "ghs_" + secrets.token_hex(18)
        with self._lock:
            expires = time.time() + self.installation_token_ttl
            self._installation_tokens[token] = (inst.id, expires)
            self.minted_tokens.append(token)
        body = self._installation_json(inst)
        return _Response(
            201,
            {
                "token": token,
                "expires_at": datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "permissions": body["permissions"],
                "repository_selection": body["repository_selection"],
            },
        )

    def _get_repo_installation(self, ctx: _Context, owner: str, repo: str) -> _Response:
        app = self._app_of(ctx)
        with self._lock:
            found = [
                i for i in self._installations.values() if i.app_id == app.app_id and i.covers(owner, repo)
            ]
            known = (owner.lower(), repo.lower()) in self._repos
        if not found or not known:
            raise _HTTPError(404, "Not Found")
        return _Response(200, self._installation_json(found[0]))

    def _get_installation_repositories(self, ctx: _Context) -> _Response:
        if ctx.installation is None:
            raise _HTTPError(403, "Resource not accessible by integration")
        with self._lock:
            inst = self._installations[ctx.installation]
            repos = [self._repo_json(r) for r in self._repos.values() if inst.covers(r.owner, r.name)]
        page = self._paginate(ctx, repos)
        page.body = {"total_count": len(repos), "repository_selection": "selected", "repositories": page.body}
        return page

    def _get_rate_limit(self, ctx: _Context) -> _Response:
        with self._lock:
            core = {
                "limit": self._rate_limit,
                "remaining": max(self._rate_remaining, 0),
                "used": self._rate_limit - max(self._rate_remaining, 0),
                "reset": self._rate_reset,
            }
        other = {"limit": 30, "remaining": 30, "used": 0, "reset": core["reset"]}
        return _Response(200, {"resources": {"core": core, "search": other, "graphql": core}, "rate": core})

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

    def _resolve_ref(self, r: FakeRepo, ref: str | None) -> str:
        ref = ref or r.default_branch
        if ref not in r.contents and ref not in r.commits:
            raise _HTTPError(404, f"No commit found for the ref {ref}")
        return ref

    def _get_contents(self, ctx: _Context, owner: str, repo: str, path: str) -> _Response:
        r = self._find_repo(ctx, owner, repo)
        with self._lock:
            ref = self._resolve_ref(r, ctx.query.get("ref"))
            data = r.contents.get(ref, {}).get(path)
            target = r.symlinks.get(ref, {}).get(path)
            if target is not None:
                # GitHub: a link to a file of the repository is answered with that file;
                # any other link with an object describing the link itself
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
                followed = r.contents.get(ref, {}).get(resolved)
                if followed is None or resolved.startswith("../") or target.startswith("/"):
                    return self._symlink_json(r, ref, path, target)
                path, data = resolved, followed
        if data is None:
            raise _HTTPError(404, "Not Found")
        sha = git_blob_sha(data)
        quoted = urllib.parse.quote(path)
        api = f"{self.url}/repos/{r.full_name}"
        body: dict[str, Any] = {
            "type": "file",
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "url": f"{api}/contents/{quoted}?ref={ref}",
            "git_url": f"{api}/git/blobs/{sha}",
            "html_url": f"{self.root}/{r.full_name}/blob/{ref}/{quoted}",
            "download_url": f"{self.root}/{r.full_name}/raw/{ref}/{quoted}",
        }
        if len(data) > CONTENTS_API_LIMIT:
            # GitHub (since 2022): between 1 MB and 100 MB the object comes without its content
            body.update(content="", encoding="none")
        else:
            body.update(content=_b64_lines(data), encoding="base64")
        body["_links"] = {"self": body["url"], "git": body["git_url"], "html": body["html_url"]}
        return _Response(200, body)

    def _symlink_json(self, r: FakeRepo, ref: str, path: str, target: str) -> _Response:
        sha = git_blob_sha(target.encode())
        quoted = urllib.parse.quote(path)
        api = f"{self.url}/repos/{r.full_name}"
        body = {
            "type": "symlink",
            "target": target,
            "size": len(target.encode()),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "url": f"{api}/contents/{quoted}?ref={ref}",
            "git_url": f"{api}/git/blobs/{sha}",
            "html_url": f"{self.root}/{r.full_name}/blob/{ref}/{quoted}",
            "download_url": f"{self.root}/{r.full_name}/raw/{ref}/{quoted}",
        }
        body["_links"] = {"self": body["url"], "git": body["git_url"], "html": body["html_url"]}
        return _Response(200, body)

    def _get_blob(self, ctx: _Context, owner: str, repo: str, sha: str) -> _Response:
        r = self._find_repo(ctx, owner, repo)
        with self._lock:
            data = r.blobs.get(sha.lower())
        if data is None:
            raise _HTTPError(404, "Not Found")
        return _Response(
            200,
            {
                "sha": sha.lower(),
                "node_id": f"B_{sha[:12]}",
                "size": len(data),
                "url": f"{self.url}/repos/{r.full_name}/git/blobs/{sha.lower()}",
                "content": _b64_lines(data),
                "encoding": "base64",
            },
        )

    def _get_commit(self, ctx: _Context, owner: str, repo: str, ref: str) -> _Response:
        r = self._find_repo(ctx, owner, repo)
        with self._lock:
            info = r.commits.get(ref)
        if info is None:
            raise _HTTPError(422, f"No commit found for SHA: {ref}")
        api = f"{self.url}/repos/{r.full_name}"
        person = {"name": "Octo Cat", "email": "octo@example.com", "date": "2024-01-01T00:00:00Z"}
        return _Response(
            200,
            {
                "sha": ref,
                "node_id": f"C_{ref[:12]}",
                "url": f"{api}/commits/{ref}",
                "html_url": f"{self.root}/{r.full_name}/commit/{ref}",
                "commit": {
                    "message": info["message"],
                    "author": person,
                    "committer": person,
                    "tree": {"sha": hashlib.sha1(ref.encode()).hexdigest(), "url": f"{api}/git/trees/x"},
                    "url": f"{api}/git/commits/{ref}",
                },
                "author": self._user_json("octocat"),
                "committer": self._user_json("octocat"),
                "parents": [{"sha": p, "url": f"{api}/commits/{p}"} for p in info["parents"]],
                "files": [],
            },
        )


def _b64_lines(data: bytes) -> str:
    """Base64 wrapped at 60 characters, as GitHub sends it (clients must cope with newlines)."""
    text = base64.b64encode(data).decode("ascii")
    return "\n".join(text[i : i + 60] for i in range(0, len(text), 60)) + ("\n" if text else "")


def _default_message(status: int) -> str:
    return {
        400: "Bad Request",
        401: "Bad credentials",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict",
        422: "Unprocessable Entity",
        429: "Too Many Requests",
        500: "Server Error",
        502: "Server Error",
        503: "Service Unavailable",
        504: "We couldn't respond to your request in time. Sorry about that.",
    }.get(status, "Error")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a killed process, a timeout) is normal here, not an error."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


def _make_handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API; every answer has a length
        server_version = "FakeGitHub/1.0"
        timeout = 60  # idle keep-alive connections do not hold a thread forever
        # buffer writes so headers and body leave in one segment: written separately, Nagle's
        # algorithm and delayed ACKs add ~40 ms to every request
        wbufsize = 64 * 1024

        def _any(self) -> None:
            try:
                fake._handle(self)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the record is fake.requests; stderr noise would only hide test output

    return Handler


# --------------------------------------------------------------------------------------------
# standalone


def load_config(fake: FakeGitHub, config: Mapping[str, Any]) -> None:
    """Set a fake up from JSON: ``{"prs": [{"owner", "repo", "number", "files": [...], ...}]}``.

    A file entry is either a full listing entry (``filename``, ``status``, ``patch``, ``sha``, …)
    or ``{"path", "patch", "content"?, "status"?}`` handed to ``make_file``.
    """
    for token in config.get("tokens", []):
        fake.add_token(token["token"], token["login"], can_write=token.get("can_write", True))
    for spec in config.get("prs", []):
        spec = dict(spec)
        files = []
        for f in spec.pop("files", []):
            if "filename" in f:
                files.append(f)
            else:
                f = dict(f)
                files.append(make_file(f.pop("path"), f.pop("patch", None), **f))
        fake.add_pr(spec.pop("owner"), spec.pop("repo"), int(spec.pop("number")), files, **spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake GitHub REST API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--config", help="JSON file: {token?, login?, tokens?, prs: [...]}")
    parser.add_argument("--token", default=None, help="the valid token (default: from config)")
    args = parser.parse_args(argv)
    config: dict[str, Any] = {}
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            config = json.load(fh)
    fake = FakeGitHub(
        token=args.token or config.get("token", "test-token"),
        login=config.get("login", "review-bot"),
        host=args.host,
        port=args.port,
    )
    load_config(fake, config)
    fake.start()
    print(fake.url, flush=True)  # the first line of output is the API URL, for the caller
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
