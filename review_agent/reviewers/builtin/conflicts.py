"""The ``conflict-marker`` check: merge conflicts committed unresolved.

A marker counts only where it is text of the file itself: not inside a string literal (a test
fixture holding a conflict sample) and not inside a fenced or indented code block of a Markdown
or reStructuredText document (documentation showing what a conflict looks like).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from review_agent.reviewers.builtin.context import FileContext
from review_agent.reviewers.builtin.findings import Finding

_CONFLICT_START = re.compile(r"<{7}(?:[ \t]|$)")
_CONFLICT_BASE = re.compile(r"\|{7}(?:[ \t]|$)")
_CONFLICT_MID = re.compile(r"={7}[ \t]*$")
_CONFLICT_END = re.compile(r">{7}(?:[ \t]|$)")
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_RST_BLOCK = re.compile(r"::$|^\.\.\s+(?:code-block|code|sourcecode)::")


def _marker_kind(text: str) -> str | None:
    head = text[:80]
    if _CONFLICT_START.match(head):
        return "start"
    if _CONFLICT_BASE.match(head):
        return "base"
    if _CONFLICT_MID.match(head):
        return "mid"
    if _CONFLICT_END.match(head):
        return "end"
    return None


def doc_sample_rows(rows: Sequence[str], markdown: bool) -> set[int]:
    """Rows (1-based) inside a Markdown fence (```` ``` ```` or ``~~~``) or, for
    reStructuredText, inside a literal block (the indented rows after a ``::`` line or a
    ``.. code-block::`` directive)."""
    inside: set[int] = set()
    if markdown:
        fence: str | None = None
        for number, row in enumerate(rows, start=1):
            if fence is None:
                m = _FENCE.match(row)
                if m:
                    fence = m.group(1)
                    inside.add(number)
                continue
            inside.add(number)
            stripped = row.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
        return inside
    opener_indent: int | None = None
    for number, row in enumerate(rows, start=1):
        stripped = row.strip()
        indent = len(row) - len(row.lstrip())
        if opener_indent is not None:
            if not stripped:
                continue
            if indent > opener_indent:
                inside.add(number)
                continue
            opener_indent = None
        if _RST_BLOCK.search(stripped):
            opener_indent = indent
    return inside


def check_conflicts(ctx: FileContext) -> list[Finding]:
    """One finding per conflict block (on its ``<<<<<<<`` line), plus any marker added without
    its opening one; a lone ``=======`` (a heading underline) only counts next to another
    marker."""
    candidates = [(n, kind) for n, text in ctx.lines if (kind := _marker_kind(text))]
    if not any(kind != "mid" for _, kind in candidates):
        return []
    samples: set[int] = set()
    if ctx.lang == "markdown" or ctx.path.lower().endswith(".rst"):
        samples = doc_sample_rows(ctx.rows, markdown=ctx.lang == "markdown")
    views = ctx.views or {}
    kinds = [
        (n, kind)
        for n, kind in candidates
        if n not in samples and not (n in views and views[n].starts_in_literal)
    ]
    if not any(kind != "mid" for _, kind in kinds):
        return []
    findings: list[Finding] = []
    open_block = False
    for number, kind in kinds:
        if kind == "start":
            open_block = True
            message = (
                "Unresolved merge conflict: a `<<<<<<<` … `>>>>>>>` block starts here. "
                "Resolve it and remove the markers."
            )
        elif open_block:
            if kind == "end":
                open_block = False
            continue
        else:
            marker = {"base": "|||||||", "mid": "=======", "end": ">>>>>>>"}[kind]
            message = f"Merge conflict marker `{marker}` left in the file; remove it."
        findings.append(Finding(number, "conflict-marker", "error", message))
    return findings


def needs_view(text: str) -> bool:
    return _marker_kind(text) is not None
