"""The hidden fingerprints that make posting exactly once by content (docs/architecture.md,
"Exactly once").

Each posted comment, each file summary in a review body, and the review body itself carry a
marker ``<!-- review-agent:KIND:<32 hex> -->``. The digest is sha256 over a canonical JSON of
what the thing says and where, so it is the same in every process and on every machine (never
Python's salted ``hash()``), and anything already on the pull request is recognised by content:

* a comment by its path, side, lines, text and the file's blob (a new push that leaves the file
  alone gives the same fingerprint: the comment is not repeated);
* a file summary by its path, text and blob (a new push lists only what changed);
* the review body by everything it reports (the head, the reviewer, every file's summary, the
  skipped files and the comments), so a different review at the same commit is still posted,
  and the same review from another machine is not.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

from review_agent.publish.report import ReviewReport
from review_agent.sources.base import ResolvedTarget
from review_agent.state.schemas import Comment

MARKER_OPEN = "<!-- review-agent:"
FINGERPRINT_VERSION = "v1"
_MARKER = re.compile(r"<!-- review-agent:((?:comment|review|summary):[0-9a-f]{32}) -->")


def _digest(kind: str, parts: list[object]) -> str:
    """``kind:<32 hex>`` from sha256 over a canonical JSON of ``parts``."""
    payload = json.dumps([f"{kind}/{FINGERPRINT_VERSION}", *parts], ensure_ascii=False, separators=(",", ":"))
    return f"{kind}:{hashlib.sha256(payload.encode('utf-8')).hexdigest()[:32]}"


def comment_fingerprint(path: str, comment: Comment, blob_sha: str | None) -> str:
    """A comment's identity: where it is (path, side, lines), what it says, and the file it is
    about (blob SHA)."""
    return _digest(
        "comment",
        [path, comment.side, comment.start_line, comment.line, comment.body.strip(), blob_sha or ""],
    )


def summary_fingerprint(path: str, summary: str, blob_sha: str | None) -> str:
    """A file summary's identity: the file (path and blob) and what the summary says."""
    return _digest("summary", [path, summary.strip(), blob_sha or ""])


def review_fingerprint(target: ResolvedTarget, report: ReviewReport, comments: Iterable[str]) -> str:
    """The review body's identity: the pull request and head, and the content of the review
    (reviewer, each file's summary, the skipped files, and the fingerprints of its comments)."""
    pr = f"{(target.host or '').lower()}/{(target.repo_slug or '').lower()}#{target.number}"
    files = [[f.path, f.summary.strip()] for f in report.files]
    skipped = sorted([s.path, s.reason] for s in report.skipped)
    return _digest("review", [pr, target.head_sha, report.reviewer, files, skipped, sorted(set(comments))])


def marker(fingerprint: str) -> str:
    return f"{MARKER_OPEN}{fingerprint} -->"


def fingerprints_in(text: str | None) -> set[str]:
    """Every well-formed fingerprint marker in ``text`` (a comment or review body)."""
    return set(_MARKER.findall(text or ""))
