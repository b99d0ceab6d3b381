"""Thread identity: a stable, readable name for one review of one change.

A resumed process must find the checkpoint of the process that died, so the id is a pure
function of the target and its commits — never Python's ``hash()``, which is salted per process.
A new push changes the head SHA and so starts a new thread; the earlier thread's reviews of
unchanged files are reused by blob SHA, not by thread.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

FORK_MARK = "~from-step-"  # a fork's id: the thread it was forked from, this, and the step


class TargetIdentity(Protocol):
    """What names a thread: the fields of a resolved target (``sources.base.ResolvedTarget``
    has them; ``state`` imports nothing of the project, so this is a protocol)."""

    @property
    def kind(self) -> str: ...
    @property
    def display(self) -> str: ...
    @property
    def head_sha(self) -> str: ...
    @property
    def base_sha(self) -> str: ...
    @property
    def repo_slug(self) -> str | None: ...
    @property
    def host(self) -> str | None: ...
    @property
    def number(self) -> int | None: ...
    @property
    def path(self) -> str | None: ...


def github_thread_id(host: str, owner: str, repo: str, number: int, head_sha: str) -> str:
    return f"{host}/{owner}/{repo}#{number}@{head_sha}"


def local_thread_id(repo_path: str, base_sha: str, head_sha: str) -> str:
    return f"local:{repo_path}:{base_sha}..{head_sha}"


def thread_id_for(t: TargetIdentity) -> str:
    """The thread of a resolved target: a PR at its head, or a local base..head range."""
    if t.kind == "github":
        owner, repo = (t.repo_slug or "/").split("/", 1)
        return github_thread_id(t.host or "github.com", owner, repo, t.number or 0, t.head_sha)
    return local_thread_id(t.path or t.display, t.base_sha, t.head_sha)


def fork_thread_id(thread_id: str, step: int) -> str:
    """The thread of a review forked from ``thread_id``'s checkpoint at ``step`` (time travel).
    Stable, so rerunning the same ``--from-step`` after a crash resumes that fork."""
    return f"{thread_id}{FORK_MARK}{step}"


def pr_key(host: str, owner: str, repo: str, number: int) -> str:
    """The thread id less the head SHA: what every push of one PR shares."""
    return f"{host}/{owner}/{repo}#{number}"


def stable_digest(*parts: str, length: int = 32) -> str:
    """A digest for store namespaces and keys, which may not contain dots or be very long."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:length]
