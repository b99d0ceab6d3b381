"""What one GitHub review says: the inline comments, and the review body with its counts, the
file summaries, the comments that have no line in the diff, the skipped files and the notes,
within GitHub's 65,536 characters.

The body says what is new: comments and summaries already on the pull request (recognised by
their fingerprints) are counted, not repeated. Every piece of model text goes through the one
sanitiser (``publish.markdown``) with the pull request's host, so nothing posted pings anybody,
shows an image or links to another host.
"""

from __future__ import annotations

from dataclasses import dataclass

from github.PullRequest import ReviewComment

from review_agent.publish.fingerprints import marker, summary_fingerprint
from review_agent.publish.markdown import fit, sanitize, strip_markers
from review_agent.publish.report import ReviewReport
from review_agent.sources.base import ResolvedTarget
from review_agent.state.schemas import SEVERITY_ORDER, Comment
from review_agent.textsafe import md_code

BODY_LIMIT = 65536  # GitHub's limit on a review body and on an inline comment body
MOVED_COMMENT_LIMIT = 8000  # one comment moved to the body may not crowd out all the others
SUMMARY_MIN = 200  # a summary shortened to fewer characters than this is left out instead
NOTE_RESERVE = 400  # room kept for the "longer than GitHub allows" note


@dataclass
class Item:
    """One comment of the report, with its identity and where it will go."""

    path: str
    comment: Comment
    fingerprint: str
    inline: bool  # False: it goes in the review body under its file

    def payload(self, host: str | None) -> ReviewComment:
        c = self.comment
        body = fit(c.body, BODY_LIMIT - 200, lambda t: f"**{c.severity}**: {sanitize(t, host=host)}")
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

    def body_entry(self, host: str | None) -> str:
        """The comment as a list item of the review body, its fingerprint included."""
        c = self.comment
        if c.line <= 0:
            where = "the file"
        elif c.start_line is not None:
            where = f"lines {c.start_line}–{c.line}"
        else:
            where = f"line {c.line}"
        if c.side == "LEFT" and c.line > 0:
            where += " (removed side)"
        text = fit(c.body, MOVED_COMMENT_LIMIT, lambda t: sanitize(t, host=host)).replace("\n", "\n  ")
        return f"- **{c.severity}** on {where}: {text}\n  {marker(self.fingerprint)}"


@dataclass
class _Piece:
    """A block of the review body. ``rank`` orders what is kept when the body is too long:
    0 the header, 1 comments (they must reach the PR), 2 summaries, 3 skipped files and notes."""

    text: str
    rank: int
    group: str | None = None  # the file whose heading must precede it
    fingerprint: str | None = None  # a comment's
    raw: str | None = None  # a summary's unsanitised text, to shorten it safely
    suffix: str = ""  # always kept with the text (a summary's marker)


def _code(path: str) -> str:
    """A file name as one code span on one line: a newline in a name would end the heading and
    start a block of raw HTML (``a\\n<img src=…>.py``), so control and bidi characters are shown
    as visible escapes; the fence is longer than any backtick run in the name; and a name shaped
    like our fingerprint marker loses it (the publisher finds markers by text, in code too)."""
    return md_code(strip_markers(path))


def _heading(path: str) -> str:
    return f"### {_code(path)}"


def compose(
    pieces: list[_Piece], footer: str, host: str | None, limit: int = BODY_LIMIT
) -> tuple[str, set[str], int, int]:
    """The body from ``pieces`` within ``limit`` characters: comments first, then summaries
    (shortened if need be), then the rest. Returns the body, the comment fingerprints it
    carries, and how many comments and other pieces had to be left out."""
    budget = limit - len(footer) - 2 - NOTE_RESERVE
    chosen: dict[int, str] = {}
    headed: set[str] = set()
    left_comments = left_other = 0
    for i in sorted(range(len(pieces)), key=lambda k: (pieces[k].rank, k)):
        p = pieces[i]
        head_cost = len(_heading(p.group)) + 2 if p.group is not None and p.group not in headed else 0
        text = p.text + p.suffix
        if len(text) + 2 + head_cost > budget and p.raw is not None:
            room = budget - head_cost - 2 - len(p.suffix)
            short = fit(p.raw, room, lambda t: sanitize(t, host=host)) if room >= SUMMARY_MIN else ""
            text = short + p.suffix if short else ""
        if not text or len(text) + 2 + head_cost > budget:
            if p.fingerprint is not None:
                left_comments += 1
            else:
                left_other += 1
            continue
        chosen[i] = text
        budget -= len(text) + 2 + head_cost
        if p.group is not None:
            headed.add(p.group)
    blocks: list[str] = []
    shown_groups: set[str] = set()
    for i, p in enumerate(pieces):
        if i not in chosen:
            continue
        if p.group is not None and p.group not in shown_groups:
            shown_groups.add(p.group)
            blocks.append(_heading(p.group))
        blocks.append(chosen[i])
    if left_comments or left_other:
        blocks.append(
            f"> This review is longer than GitHub allows ({limit} characters): "
            f"{left_comments} comment(s) continue in a follow-up review and {left_other} other "
            "part(s) are left out here; the full review is in the report."
        )
    blocks.append(footer)
    body = "\n\n".join(b for b in blocks if b)
    shown = {pieces[i].fingerprint for i in chosen if pieces[i].fingerprint is not None}
    return body, {f for f in shown if f is not None}, left_comments, left_other


def _counts(items: list[Item]) -> str:
    by = {k: 0 for k in SEVERITY_ORDER}
    for i in items:
        by[i.comment.severity] = by.get(i.comment.severity, 0) + 1
    return ", ".join(f"{by.get(k, 0)} {k}" for k in ("error", "warning", "info"))


@dataclass(frozen=True)
class BodyContext:
    """What the body needs to know beyond the report: the PR, what is already on it, and
    where this run's comments go."""

    target: ResolvedTarget
    host: str | None
    items: list[Item]  # every comment of the report, deduplicated
    there: frozenset[str]  # fingerprints already on the pull request
    blobs: dict[str, str | None]  # path -> blob SHA at the head


def main_body(report: ReviewReport, ctx: BodyContext, review_fp: str) -> tuple[str, set[str]]:
    """The review body: what is new (counts, summaries of files not summarised before, comments
    without a diff line), skipped files and notes, ending in the review fingerprint."""
    target, host = ctx.target, ctx.host
    new = [i for i in ctx.items if i.fingerprint not in ctx.there]
    moved = [i for i in new if not i.inline]
    moved_earlier = sum(1 for i in ctx.items if not i.inline and i.fingerprint in ctx.there)
    already = len(ctx.items) - len(new)
    if already:
        comments = (
            f"{len(new)} new comment(s), {already} already on the pull request "
            f"({len(ctx.items)} in all: {_counts(ctx.items)})"
        )
    else:
        comments = f"{len(ctx.items)} comment(s) ({_counts(ctx.items)})"
    reviewer = f" · reviewer {_code(report.reviewer)}" if report.reviewer else ""
    # a failed file is not reviewed: the rerun retries it (the notes say so)
    failed = f", {len(report.failed)} failed" if report.failed else ""
    done = f"**{len(report.reviewed)}/{report.files_total} files reviewed**{failed}"
    header = [
        "## review-agent review",
        "",
        f"{done} at `{target.head_sha[:12]}` · "
        f"{comments} · {len(report.skipped)} skipped" + reviewer + (" (offline)" if report.offline else ""),
    ]
    if report.head_sha and report.head_sha != target.head_sha:
        header += ["", f"Reviewed at `{report.head_sha[:12]}`, posted on the head `{target.head_sha[:12]}`."]
    if moved:
        header += [
            "",
            f"{len(moved)} comment(s) could not be placed on a line of the diff: "
            "they are listed under their file below.",
        ]
    if moved_earlier:
        header += ["", f"{moved_earlier} comment(s) outside the diff were posted earlier: not repeated here."]
    summaries: list[_Piece] = []
    unchanged = 0
    for f in report.files:
        if not f.summary.strip():
            continue
        sfp = summary_fingerprint(f.path, f.summary, ctx.blobs.get(f.path) or f.blob_sha)
        if sfp in ctx.there:
            unchanged += 1
            continue
        summaries.append(
            _Piece(sanitize(f.summary, host=host), 2, f.path, raw=f.summary, suffix=f"\n{marker(sfp)}")
        )
    if unchanged:
        header += [
            "",
            f"{unchanged} file summary(ies) are already on this pull request from an earlier review: "
            "not repeated here.",
        ]
    pieces = [_Piece("\n".join(header), 0)]
    by_path: dict[str, list[Item]] = {}
    for item in moved:
        by_path.setdefault(item.path, []).append(item)
    summary_of = {p.group: p for p in summaries}
    for f in report.files:
        if f.path in summary_of:
            pieces.append(summary_of[f.path])
        pieces.extend(_Piece(i.body_entry(host), 1, f.path, i.fingerprint) for i in by_path.pop(f.path, []))
    for path, items in by_path.items():  # not expected: every comment belongs to a reviewed file
        pieces.extend(_Piece(i.body_entry(host), 1, path, i.fingerprint) for i in items)
    if report.skipped:
        lines = [f"<details><summary>{len(report.skipped)} file(s) skipped</summary>", ""]
        lines += [f"- {_code(s.path)}: {sanitize(s.reason, host=host)}" for s in report.skipped]
        lines += ["", "</details>"]
        pieces.append(_Piece("\n".join(lines), 3))
    pieces.extend(_Piece(f"> {sanitize(n, host=host)}".replace("\n", "\n> "), 3) for n in report.notes)
    body, shown, _, _ = compose(pieces, marker(review_fp), host)
    return body, shown


def followup_body(moved: list[Item], host: str | None) -> tuple[str, set[str]]:
    """A body for comments still missing when the review body is already there (a partial
    earlier state, or the rest of a body that exceeded GitHub's limit). It has no review
    fingerprint: its comments carry their own."""
    if not moved:
        return "", set()
    pieces = [
        _Piece(
            "## review-agent review (continued)\n\n"
            "Comments that could not be placed on a line of the diff, under their file.",
            0,
        )
    ]
    pieces.extend(_Piece(i.body_entry(host), 1, i.path, i.fingerprint) for i in moved)
    body, shown, _, _ = compose(pieces, "", host)
    return body.rstrip(), shown
