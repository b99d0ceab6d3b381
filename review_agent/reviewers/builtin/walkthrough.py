"""The deterministic walkthrough: what an offline review can say about the whole change without a
model, from the per-file reviews alone — the counts, the change table (each file's summary,
first sentence) and the top findings by severity. No effort estimate: it would be a guess.

The model's walkthrough falls back to this one when its answer cannot be used, so a review
always has a walkthrough and never fails because of it.
"""

from __future__ import annotations

import re
from collections import Counter

from review_agent.reviewers.base import WalkthroughFile, WalkthroughRequest
from review_agent.state.schemas import ChangeRow, Risk, Walkthrough
from review_agent.wording import plural, severity_tally

MAX_RISKS = 5
MAX_CHANGE_CHARS = 160
MAX_RISK_CHARS = 300
_SENTENCE = re.compile(r"(.+?[.!?])(?:\s|$)", re.DOTALL)


def one_line(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (cut at a word with an ellipsis)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"


def first_sentence(text: str, limit: int = MAX_CHANGE_CHARS) -> str:
    flat = " ".join(text.split())
    match = _SENTENCE.match(flat)
    return one_line(match.group(1) if match else flat, limit)


def change_line(f: WalkthroughFile) -> str:
    """The change table's line for one file: the first sentence of its summary, or its size."""
    if f.failed:
        return one_line("not reviewed: " + f.failed, MAX_CHANGE_CHARS)
    return first_sentence(f.summary) or f"+{f.additions} −{f.deletions}"


def overview(request: WalkthroughRequest) -> str:
    """ "3 files reviewed (+12 −4), 1 skipped. 2 findings: 1 error, 1 warning, 0 info." """
    files = request.files
    added = sum(f.additions for f in files)
    removed = sum(f.deletions for f in files)
    failed = sum(1 for f in files if f.failed)
    by = Counter(c.severity for f in files for c in f.findings)
    total = sum(by.values())
    parts = [f"{plural(len(files), 'file')} reviewed (+{added} −{removed})"]
    if failed:
        parts.append(f"{failed} could not be reviewed")
    if request.skipped:
        parts.append(f"{request.skipped} skipped")
    first = ", ".join(parts) + "."
    if not total:
        return first + " No findings."
    return f"{first} {plural(total, 'finding')}: {severity_tally(by)}."


def deterministic_walkthrough(
    request: WalkthroughRequest, *, writer: str = "builtin", note: str | None = None
) -> Walkthrough:
    """Counts, the change table and the top findings (errors and warnings) by severity."""
    risks = [
        Risk(
            path=f.path,
            line=c.line,
            side=c.side,
            severity=c.severity,
            text=one_line(c.body, MAX_RISK_CHARS),
        )
        for _, f, c in request.ranked()
        if c.severity != "info"
    ][:MAX_RISKS]
    return Walkthrough(
        overview=overview(request),
        risks=risks,
        changes=[ChangeRow(path=f.path, change=change_line(f)) for f in request.files],
        writer=writer,
        note=note,
    )
