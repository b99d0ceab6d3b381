"""The fake GitHub's data: its constants, what it stores (repositories, pull requests, Apps and
installations, scripted faults, recorded requests) and the small types its routes pass around."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
