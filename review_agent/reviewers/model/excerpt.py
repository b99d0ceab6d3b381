"""The file around the change, within a token budget: the context a diff alone does not give.

The excerpt is the cheapest of the largest options that fits the budget:

1. nothing, when the diff already shows every line of the file (a new file, a small one);
2. the whole file;
3. the functions and classes that enclose the hunks (with the header of a method's class), and
   a few lines around a change outside any of them;
4. a few lines around each change, cut where the budget ends (the model is told so).

Lines are numbered ``   12| text`` (a format the diff never uses, so nobody mistakes an excerpt
line for a diff line). A run of lines the diff already shows is not repeated: one line says
where they are. That alone pays for much of the pull request's context in every prompt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from review_agent.patches import ParsedPatch
from review_agent.reviewers.model.tokens import CHARS_PER_TOKEN, TokenCount
from review_agent.reviewers.symbols import SourceIndex, index_source

WINDOW_LINES = 10  # around a change outside any function or class, and in the last resort
MAX_LINE_CHARS = 300  # a minified or generated line is cut
MIN_ELIDED_RUN = 3  # a shorter run of lines shown in the diff is repeated, not elided


@dataclass(frozen=True)
class Excerpt:
    text: str
    mode: str  # "whole", "scopes", "windows", "truncated"


def build_excerpt(
    path: str,
    content: str,
    patch: ParsedPatch,
    budget: int,
    count: TokenCount,
    index: SourceIndex | None = None,
) -> Excerpt | None:
    """The largest excerpt of ``content`` within ``budget`` tokens, or None when there is
    nothing to add to the diff or no room."""
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or budget <= 0:
        return None
    every = range(1, len(lines) + 1)
    if all(n in patch.right_lines for n in every):
        return None  # the diff shows it all
    changed = sorted(patch.added) or sorted(patch.right_lines)
    if len(content) <= budget * CHARS_PER_TOKEN * 2:  # could fit: worth rendering to count
        whole = _render(lines, every, patch.right_lines)
        if count(whole) <= budget:
            return Excerpt(whole, "whole") if whole else None
    if not changed:
        return None
    if index is None:
        index = index_source(path, content)
    if index is not None:
        scoped = _render(lines, _scope_lines(index, changed, len(lines)), patch.right_lines)
        if count(scoped) <= budget:
            return Excerpt(scoped, "scopes") if scoped else None
    windows = _window_lines(changed, len(lines))
    text = _render(lines, windows, patch.right_lines)
    if count(text) <= budget:
        return Excerpt(text, "windows") if text else None
    return _cut(lines, windows, patch.right_lines, budget, count)


def _scope_lines(index: SourceIndex, changed: list[int], total: int) -> set[int]:
    wanted: set[int] = set()
    for n in changed:
        inner = index.enclosing(n)
        if inner is None:
            wanted.update(_window(n, total))
            continue
        wanted.update(range(inner.start, min(inner.end, total) + 1))
        for outer in index.outer_scopes(inner):
            wanted.add(outer.start)  # "class Foo(Base):" above a method
    return wanted


def _window(n: int, total: int) -> range:
    return range(max(1, n - WINDOW_LINES), min(total, n + WINDOW_LINES) + 1)


def _window_lines(changed: list[int], total: int) -> set[int]:
    wanted: set[int] = set()
    for n in changed:
        wanted.update(_window(n, total))
    return wanted


def _numbered(n: int, text: str) -> str:
    if len(text) > MAX_LINE_CHARS:
        text = text[: MAX_LINE_CHARS - 1] + "…"
    return f"{n:>6}| {text}"


def _rows(lines: list[str], wanted: Iterable[int], in_diff: frozenset[int]) -> list[str]:
    """The numbered rows of ``wanted``, a gap marker between separate parts, and runs the diff
    shows replaced by one line saying so."""
    picked = sorted(n for n in set(wanted) if 1 <= n <= len(lines))
    rows: list[str] = []
    i = 0
    last = 0
    while i < len(picked):
        n = picked[i]
        if last and n != last + 1:
            rows.append("   ...")
        j = i
        while j + 1 < len(picked) and picked[j + 1] == picked[j] + 1 and picked[j + 1] in in_diff:
            j += 1
        if n in in_diff and j - i + 1 >= MIN_ELIDED_RUN:
            rows.append(f"   ... lines {n}-{picked[j]}: shown in the diff")
            last, i = picked[j], j + 1
            continue
        rows.append(_numbered(n, lines[n - 1]))
        last, i = n, i + 1
    return rows


def _render(lines: list[str], wanted: Iterable[int], in_diff: frozenset[int]) -> str:
    """The rows as text; empty when they add no line to what the diff shows."""
    rows = _rows(lines, wanted, in_diff)
    return "\n".join(rows) if any(not r.startswith("   ...") for r in rows) else ""


def _cut(
    lines: list[str], wanted: set[int], in_diff: frozenset[int], budget: int, count: TokenCount
) -> Excerpt | None:
    """The first rows of ``wanted`` that fit, then a line saying the rest was left out."""
    note = "   ... [excerpt truncated]"
    room = budget - count(note)
    kept: list[str] = []
    used = 0
    for row in _rows(lines, wanted, in_diff):
        cost = count(row) + 1
        if used + cost > room:
            break
        kept.append(row)
        used += cost
    if not kept:
        return None
    return Excerpt("\n".join([*kept, note]), "truncated")
