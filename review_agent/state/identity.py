"""Thread identity: a stable, readable name for one review of one change.

A resumed process must find the checkpoint of the process that died, so the id is a pure
function of the target and its commits — never Python's ``hash()``, which is salted per process.
A new push changes the head SHA and so starts a new thread; the earlier thread's reviews of
unchanged files are reused by blob SHA, not by thread.
"""

from __future__ import annotations

import hashlib


def github_thread_id(host: str, owner: str, repo: str, number: int, head_sha: str) -> str:
    return f"{host}/{owner}/{repo}#{number}@{head_sha}"


def local_thread_id(repo_path: str, base_sha: str, head_sha: str) -> str:
    return f"local:{repo_path}:{base_sha}..{head_sha}"


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
