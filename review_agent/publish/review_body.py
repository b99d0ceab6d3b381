"""What one GitHub review says: the inline comments, and the review body within GitHub's 65,536
characters. The body, in order:

1. the counts, and why some comments are in the body rather than inline;
2. the walkthrough: what the change does, the review effort, the top risks (each linked to its
   line in the diff, where its inline comment is) and the change table, one line per file;
3. the findings over the inline cap, by severity;
4. one ``<details>`` block per file with findings: its summary, and its comments that are not
   inline (no diff line for them, or under the severity floor). A file without findings has
   its line in the table, not a block. Without a walkthrough (a review saved before it
   existed), every file with a summary gets a block;
5. the skipped files and the notes, then the review's fingerprint.

The body says what is new: comments and summaries already on the pull request (recognised by
their fingerprints) are counted, not repeated. Every piece of model text goes through the one
sanitiser (``publish.markdown``) with the pull request's host, so nothing posted pings anybody,
shows an image or links to another host.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field

from review_agent.publish.fingerprints import marker, summary_fingerprint
from review_agent.publish.markdown import fit, sanitize, strip_markers
from review_agent.publish.noise import BODY_LIMIT, Item, NoisePolicy, by_severity, code, diff_link
from review_agent.publish.report import ReviewReport
from review_agent.publish.walkthrough import render_head, render_table
from review_agent.sources.base import ResolvedTarget
from review_agent.state.schemas import Risk
from review_agent.textsafe import printable
from review_agent.wording import plural, severity_tally

__all__ = ["BODY_LIMIT", "BodyContext", "Item", "compose", "followup_body", "main_body"]

SUMMARY_MIN = 200  # a summary shortened to fewer characters than this is left out instead
NOTE_RESERVE = 400  # room kept for the "longer than GitHub allows" note
CAPPED = "\x00capped"  # the group of the findings over the inline cap


@dataclass
class _Piece:
    """A block of the review body. ``rank`` orders what is kept when the body is too long:
    0 the header and the walkthrough's overview, 1 comments (they must reach the PR), 2
    summaries and the change table, 3 skipped files and notes."""

    text: str
    rank: int
    group: str | None = None  # the section it belongs to (a file's path, or CAPPED)
    fingerprint: str | None = None  # a comment's
    raw: str | None = None  # a summary's unsanitised text, to shorten it safely
    suffix: str = ""  # always kept with the text (a summary's marker)


def compose(
    pieces: list[_Piece],
    footer: str,
    host: str | None,
    limit: int = BODY_LIMIT,
    sections: dict[str, tuple[str, str]] | None = None,
) -> tuple[str, set[str], int, int]:
    """The body from ``pieces`` within ``limit`` characters: comments first, then summaries
    (shortened if need be), then the rest. A group's section opens before its first kept piece
    and closes after its last (``sections``: group -> (opening, closing)). Returns the body, the
    comment fingerprints it carries, and how many comments and other pieces were left out."""
    sections = sections or {}

    def frame(group: str) -> tuple[str, str]:
        return sections.get(group) or (f"### {code(group)}", "")

    budget = limit - len(footer) - 2 - NOTE_RESERVE
    chosen: dict[int, str] = {}
    opened: set[str] = set()
    left_comments = left_other = 0
    for i in sorted(range(len(pieces)), key=lambda k: (pieces[k].rank, k)):
        p = pieces[i]
        head_cost = 0
        if p.group is not None and p.group not in opened:
            head_cost = sum(len(t) + 2 for t in frame(p.group) if t)
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
            opened.add(p.group)
    blocks: list[str] = []
    current: str | None = None
    for i, p in enumerate(pieces):
        if i not in chosen:
            continue
        if p.group != current:
            if current is not None and frame(current)[1]:
                blocks.append(frame(current)[1])
            current = p.group
            if current is not None:
                blocks.append(frame(current)[0])
        blocks.append(chosen[i])
    if current is not None and frame(current)[1]:
        blocks.append(frame(current)[1])
    if left_comments or left_other:
        blocks.append(
            f"> This review is longer than GitHub allows ({limit} characters): "
            f"{plural(left_comments, 'comment')} continue in a follow-up review and "
            f"{plural(left_other, 'other part')} are left out here; the full review is in the report."
        )
    blocks.append(footer)
    body = "\n\n".join(b for b in blocks if b)
    shown = {pieces[i].fingerprint for i in chosen if pieces[i].fingerprint is not None}
    return body, {f for f in shown if f is not None}, left_comments, left_other


def _counts(items: list[Item]) -> str:
    return severity_tally(Counter(i.comment.severity for i in items))


def _file_section(path: str, findings: int) -> tuple[str, str]:
    """A file's collapsible block (HTML, so the path is escaped, not a code span)."""
    count = f" · {findings} finding" + ("" if findings == 1 else "s") if findings else ""
    name = html.escape(printable(strip_markers(path)), quote=False)
    return f"<details><summary><code>{name}</code>{count}</summary>", "</details>"


@dataclass(frozen=True)
class BodyContext:
    """What the body needs to know beyond the report: the PR, what is already on it, and
    where this run's comments go."""

    target: ResolvedTarget
    host: str | None
    items: list[Item]  # every comment of the report, deduplicated and grouped
    there: frozenset[str]  # fingerprints already on the pull request
    blobs: dict[str, str | None]  # path -> blob SHA at the head
    policy: NoisePolicy = field(default_factory=NoisePolicy)

    @property
    def pr_url(self) -> str | None:
        """The pull request's page (links to lines of its diff hang off it)."""
        display = self.target.display
        return display.rstrip("/") if "/pull/" in display else None


def _header(report: ReviewReport, ctx: BodyContext, new: list[Item]) -> list[str]:
    target = ctx.target
    already = len(ctx.items) - len(new)
    if already:
        comments = (
            f"{plural(len(new), 'new comment')}, {already} already on the pull request "
            f"({len(ctx.items)} in all: {_counts(ctx.items)})"
        )
    else:
        comments = f"{plural(len(ctx.items), 'comment')} ({_counts(ctx.items)})"
    reviewer = f" · reviewer {code(report.reviewer)}" if report.reviewer else ""
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
    outside = sum(1 for i in new if i.why == "outside")
    below = sum(1 for i in new if i.why == "below")
    capped = sum(1 for i in new if i.why == "capped")
    repeated = sum(1 for i in new if i.others)
    if outside:
        header += [
            "",
            f"{plural(outside, 'comment')} could not be placed on a line of the diff: "
            "they are listed under their file below.",
        ]
    if below:
        floor = ctx.policy.threshold
        header += [
            "",
            f"{plural(below, 'finding')} below `{floor}` are listed under their file below, not inline "
            "(`severity_threshold`).",
        ]
    if capped:
        header += [
            "",
            f"{plural(capped, 'more finding')} over the limit of {ctx.policy.max_inline} inline comments "
            "(`max_inline_comments`) are listed below by severity.",
        ]
    if repeated:
        header += [
            "",
            f"{plural(repeated, 'finding')} repeated in several places: each posted once, "
            "listing the other places.",
        ]
    moved_earlier = sum(1 for i in ctx.items if not i.inline and i.fingerprint in ctx.there)
    if moved_earlier:
        header += [
            "",
            f"{plural(moved_earlier, 'comment')} in the body were posted earlier: not repeated here.",
        ]
    return header


def main_body(report: ReviewReport, ctx: BodyContext, review_fp: str) -> tuple[str, set[str]]:
    """The review body (see the module's docstring), ending in the review fingerprint."""
    host, pr_url = ctx.host, ctx.pr_url
    new = [i for i in ctx.items if i.fingerprint not in ctx.there]
    header = _header(report, ctx, new)
    walkthrough = report.walkthrough
    findings = report.findings_by_file()
    with_section = {f.path for f in report.files if findings.get(f.path) or walkthrough is None}
    summaries: dict[str, _Piece] = {}
    unchanged = 0
    for f in report.files:
        if not f.summary.strip() or f.path not in with_section:
            continue
        sfp = summary_fingerprint(f.path, f.summary, ctx.blobs.get(f.path) or f.blob_sha)
        if sfp in ctx.there:
            unchanged += 1
            continue
        summaries[f.path] = _Piece(
            sanitize(f.summary, host=host), 2, f.path, raw=f.summary, suffix=f"\n{marker(sfp)}"
        )
    if unchanged:
        header += [
            "",
            f"{plural(unchanged, 'file summary', 'file summaries')} "
            f"{'is' if unchanged == 1 else 'are'} already on this pull request from an earlier "
            "review: not repeated here.",
        ]
    pieces = [_Piece("\n".join(header), 0)]
    if walkthrough is not None:

        def prose(text: str) -> str:
            return sanitize(text, host=host)

        # a finding posted once for several places: its risk links to where the comment is
        lead_of = {(p, c.line, c.side): i for i in ctx.items for p, c in i.others}

        def link(risk: Risk) -> str | None:
            lead = lead_of.get((risk.path, risk.line, risk.side))
            if lead is not None:
                return diff_link(pr_url, lead.path, lead.comment.line, lead.comment.side)
            return diff_link(pr_url, risk.path, risk.line, risk.side)

        pieces.append(
            _Piece("### Walkthrough\n\n" + render_head(walkthrough, prose=prose, code=code, link=link), 0)
        )
        table = render_table(walkthrough, prose=prose, code=code, findings=findings)
        if table:
            pieces.append(_Piece(table, 2))
    sections: dict[str, tuple[str, str]] = {
        CAPPED: ("### More findings, by severity", ""),
    }
    capped = by_severity([i for i in new if i.why == "capped"])
    pieces.extend(
        _Piece(i.body_entry(host, pr_url, with_path=True), 1, CAPPED, i.fingerprint) for i in capped
    )
    by_path: dict[str, list[Item]] = {}
    for item in new:
        if not item.inline and item.why != "capped":
            by_path.setdefault(item.path, []).append(item)
    for f in report.files:
        sections[f.path] = _file_section(f.path, findings.get(f.path, 0))
        if f.path in summaries:
            pieces.append(summaries[f.path])
        pieces.extend(
            _Piece(i.body_entry(host, pr_url), 1, f.path, i.fingerprint) for i in by_path.pop(f.path, [])
        )
    for path, items in by_path.items():  # not expected: every comment belongs to a reviewed file
        sections[path] = _file_section(path, len(items))
        pieces.extend(_Piece(i.body_entry(host, pr_url), 1, path, i.fingerprint) for i in items)
    if report.skipped:
        lines = [f"<details><summary>{plural(len(report.skipped), 'file')} skipped</summary>", ""]
        lines += [f"- {code(s.path)}: {sanitize(s.reason, host=host)}" for s in report.skipped]
        lines += ["", "</details>"]
        pieces.append(_Piece("\n".join(lines), 3))
    pieces.extend(_Piece(f"> {sanitize(n, host=host)}".replace("\n", "\n> "), 3) for n in report.notes)
    body, shown, _, _ = compose(pieces, marker(review_fp), host, sections=sections)
    return body, shown


def followup_body(moved: list[Item], host: str | None, pr_url: str | None = None) -> tuple[str, set[str]]:
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
    pieces.extend(_Piece(i.body_entry(host, pr_url), 1, i.path, i.fingerprint) for i in moved)
    body, shown, _, _ = compose(pieces, "", host)
    return body.rstrip(), shown
