"""Few but relevant comments: which findings of a review become inline comments, and which go
to the review body.

* **One comment for a repeated finding.** The same text on several lines or files (a missing
  timeout in ten clients) is posted once, on its most severe place, listing the other places.
  Its fingerprint is that place's own (``publish.fingerprints``), so a rerun finds it and a new
  push that leaves that place alone repeats nothing.
* **A severity floor for inline comments.** ``severity_threshold`` (a preference or
  ``.review-agent.toml``) defaults to ``warning``: ``info`` findings go to the review body
  under their file, not inline. They stay in every report.
* **A cap on inline comments** per review, ``max_inline_comments`` (default 25): beyond it,
  the least severe go to the review body, ranked by severity.

Which place leads a group, and which findings are over the cap, depend only on the report and
the pull request's diff, so every rerun decides the same: a comment is never posted twice, and
where it landed (inline or in the body) does not matter to its fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from github.PullRequest import ReviewComment

from review_agent.publish.fingerprints import marker
from review_agent.publish.markdown import fit, sanitize, strip_markers
from review_agent.state.schemas import SEVERITY_ORDER, Comment
from review_agent.textsafe import md_code
from review_agent.wording import plural

BODY_LIMIT = 65536  # GitHub's limit on a review body and on an inline comment body
MOVED_COMMENT_LIMIT = 8000  # one comment moved to the body may not crowd out all the others
DEFAULT_THRESHOLD = "warning"
DEFAULT_MAX_INLINE = 25
MAX_PLACES = 20  # other places listed with a repeated finding; the rest are counted

# why a comment is in the body: no diff line for it (or GitHub refused it), under the severity
# floor, over the cap
Why = Literal["", "outside", "below", "capped"]


def diff_link(pr_url: str | None, path: str, line: int, side: str = "RIGHT") -> str | None:
    """The line in the pull request's "Files changed" view (GitHub's ``#diff-<sha256 of the
    path>R<line>`` anchor), where its inline comment is shown. Robust where a comment's own id
    is not: the review body is posted with its comments, before their ids exist."""
    if not pr_url:
        return None
    anchor = hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()
    where = f"{'L' if side == 'LEFT' else 'R'}{line}" if line > 0 else ""
    return f"{pr_url}/files#diff-{anchor}{where}"


def code(path: str) -> str:
    """A file name as one code span on one line: a newline in a name would end the line and
    start a block of raw HTML (``a\n<img src=…>.py``), so control and bidi characters are shown
    as visible escapes; the fence is longer than any backtick run in the name; and a name shaped
    like our fingerprint marker loses it (the publisher finds markers by text, in code too)."""
    return md_code(strip_markers(path))


def _where(c: Comment) -> str:
    if c.line <= 0:
        where = "the file"
    elif c.start_line is not None:
        where = f"lines {c.start_line}–{c.line}"
    else:
        where = f"line {c.line}"
    return where + (" (removed side)" if c.side == "LEFT" and c.line > 0 else "")


@dataclass
class Item:
    """One comment of the report, with its identity and where it will go."""

    path: str
    comment: Comment
    fingerprint: str
    inline: bool  # False: it goes in the review body
    why: Why = ""
    others: list[tuple[str, Comment]] = field(default_factory=list)  # the same text elsewhere

    def places(self, pr_url: str | None) -> str:
        """ "Also on …": the other places of a repeated finding, linked to their lines."""
        if not self.others:
            return ""
        shown = []
        for path, c in self.others[:MAX_PLACES]:
            text = f"{code(path)} {_where(c)}"
            url = diff_link(pr_url, path, c.line, c.side)
            shown.append(f"[{text}]({url})" if url else text)
        more = len(self.others) - MAX_PLACES
        return (
            "Also on " + ", ".join(shown) + (f" and {plural(more, 'more place')}" if more > 0 else "") + "."
        )

    def payload(self, host: str | None, pr_url: str | None = None) -> ReviewComment:
        c = self.comment
        places = self.places(pr_url)
        room = BODY_LIMIT - 200 - len(places)
        body = fit(c.body, room, lambda t: f"**{c.severity}**: {sanitize(t, host=host)}")
        if places:
            body += f"\n\n{places}"
        out: ReviewComment = {
            "path": self.path,
            "body": f"{body}\n\n{marker(self.fingerprint)}",
            "line": c.line,
            "side": c.side,
        }
        if c.start_line is not None:
            out["start_line"] = c.start_line
            out["start_side"] = c.side
        return out

    def body_entry(self, host: str | None, pr_url: str | None = None, *, with_path: bool = False) -> str:
        """The comment as a list item of the review body, its fingerprint included; with its
        path (and a link to its line) outside its file's section."""
        c = self.comment
        where = _where(c)
        if with_path:
            where = f"{code(self.path)} {where}"
            url = diff_link(pr_url, self.path, c.line, c.side) if c.line > 0 else None
            where = f"[{where}]({url})" if url else where
        else:
            where = "on " + where
        text = fit(c.body, MOVED_COMMENT_LIMIT, lambda t: sanitize(t, host=host)).replace("\n", "\n  ")
        places = self.places(pr_url)
        tail = f"\n  {places}" if places else ""
        return f"- **{c.severity}** {where}: {text}{tail}\n  {marker(self.fingerprint)}"


@dataclass(frozen=True)
class NoisePolicy:
    """How many comments go inline, and from which severity."""

    threshold: str = DEFAULT_THRESHOLD
    max_inline: int = DEFAULT_MAX_INLINE

    @classmethod
    def from_preferences(cls, prefs: Mapping[str, Any] | None) -> NoisePolicy:
        """From the review's preferences (``.review-agent.toml`` and the user's); a value that
        cannot be understood keeps the default (a preference is typed by hand)."""
        prefs = prefs or {}
        raw = prefs.get("severity_threshold")
        threshold = raw.strip().lower() if isinstance(raw, str) else ""
        cap = prefs.get("max_inline_comments")
        if isinstance(cap, str) and cap.strip().isdigit():
            cap = int(cap.strip())
        return cls(
            threshold=threshold if threshold in SEVERITY_ORDER else DEFAULT_THRESHOLD,
            max_inline=cap
            if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0
            else DEFAULT_MAX_INLINE,
        )


def _same_text(body: str) -> str:
    return " ".join(body.split())


def group_repeats(items: list[Item]) -> list[Item]:
    """Items whose text is the same become one, on the most severe place (an anchorable one
    first, then the first in report order), listing the others; the order is kept."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(_same_text(item.comment.body), []).append(item)
    out: list[Item] = []
    for item in items:
        group = groups[_same_text(item.comment.body)]
        if len(group) == 1:
            out.append(item)
            continue
        lead = min(
            range(len(group)),
            key=lambda k: (-SEVERITY_ORDER.get(group[k].comment.severity, 0), not group[k].inline, k),
        )
        if group[lead] is item:
            item.others = [(o.path, o.comment) for o in group if o is not item]
            out.append(item)
    return out


def apply_policy(items: list[Item], policy: NoisePolicy, there: set[str] | frozenset[str]) -> None:
    """Move what is under the severity floor or over the cap to the body (``why`` says which).
    The cap counts the comments this review would post inline, not those already on the pull
    request; the most severe stay inline, then the first in report order."""
    floor = SEVERITY_ORDER[policy.threshold]
    for item in items:
        if item.inline and SEVERITY_ORDER.get(item.comment.severity, 0) < floor:
            item.inline, item.why = False, "below"
        elif not item.inline and not item.why:
            item.why = "outside"
    candidates = [i for i in items if i.inline and i.fingerprint not in there]
    ranked = sorted(
        range(len(candidates)), key=lambda k: (-SEVERITY_ORDER.get(candidates[k].comment.severity, 0), k)
    )
    for k in ranked[policy.max_inline :]:
        candidates[k].inline, candidates[k].why = False, "capped"


def by_severity(items: list[Item]) -> list[Item]:
    order: Callable[[Item], int] = lambda i: -SEVERITY_ORDER.get(i.comment.severity, 0)  # noqa: E731
    return sorted(items, key=order)
