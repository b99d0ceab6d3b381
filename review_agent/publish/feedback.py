"""What people said about our posted comments: a 👎 reaction, or a reply starting with one of
the dismissal words, marks a finding as dismissed. The next review of the PR turns each
dismissal into a learning (repository scope), so the finding is not raised again there.

Read from GitHub through the pull request handle of the source (GET-only retries); a failure
here costs the learning of this run, never the review. A source that is not a GitHub pull
request has no feedback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from review_agent.github.client import PullRequestHandle
from review_agent.publish.fingerprints import MARKER_OPEN, fingerprints_in
from review_agent.sources.base import Source

DEFAULT_DISMISS_WORDS = ("dismiss", "ignore", "wontfix", "won't fix", "false positive")
_SEVERITY_PREFIX = re.compile(r"^\*\*(info|warning|error)\*\*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Dismissal:
    comment_id: int
    path: str
    finding: str  # the comment's text, without our marker and severity prefix
    by: str
    how: str  # "reaction" or "reply"


def finding_text(body: str) -> str:
    text = body.split(MARKER_OPEN, 1)[0].strip()
    return _SEVERITY_PREFIX.sub("", text).strip()


def dismissed_findings(source: Source, words: tuple[str, ...] = DEFAULT_DISMISS_WORDS) -> list[Dismissal]:
    """Our comments on the source's pull request that somebody dismissed (none for a source
    that is not a GitHub pull request)."""
    handle = getattr(source, "pull", None)
    if not isinstance(handle, PullRequestHandle):
        return []
    return handle.read(lambda: _dismissals(handle, words))


def _dismissals(handle: PullRequestHandle, words: tuple[str, ...]) -> list[Dismissal]:
    comments = list(handle.pull_request.get_review_comments())
    ours = {c.id: c for c in comments if any(f.startswith("comment:") for f in fingerprints_in(c.body))}
    found: dict[int, Dismissal] = {}
    lowered = tuple(w.lower() for w in words)
    for c in comments:  # replies that dismiss one of ours
        parent = getattr(c, "in_reply_to_id", None)
        if parent in ours and c.body.strip().lower().startswith(lowered):
            o = ours[parent]
            found.setdefault(o.id, Dismissal(o.id, o.path, finding_text(o.body), c.user.login, "reply"))
    for cid, o in ours.items():  # 👎 reactions
        if cid in found:
            continue
        for reaction in o.get_reactions():
            if reaction.content == "-1":
                found[cid] = Dismissal(cid, o.path, finding_text(o.body), reaction.user.login, "reaction")
                break
    return sorted(found.values(), key=lambda d: d.comment_id)
