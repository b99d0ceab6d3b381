"""Property-based tests of the patch parser and line anchoring, on arbitrary unified diffs.

A diff comes from the pull request's author: whatever it holds, the parser must not raise, must
number the new side exactly as GitHub does, and a comment is anchored only where GitHub accepts
it (a 422 refuses the whole review). Derandomised, so a CI run is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from review_agent.patches import parse_patch, split_anchored, split_git_diff
from review_agent.state.schemas import Comment

# Hundreds of generated diffs per property: seconds per test, so these run in CI and on
# demand, not in the unit tier.
pytestmark = pytest.mark.slow

PROPERTIES = settings(derandomize=True, max_examples=300, deadline=None)

# A diff line's text: anything but a newline, with the characters that break naive parsers
# (carriage returns, form feeds, Unicode line separators, diff markers) made likely.
LINE_TEXT = st.text(
    alphabet=st.characters(exclude_characters="\n")
    | st.sampled_from(["\r", "\x0c", "\x0b", "\x85", "\u2028", "@", "+", "-", " ", "\\", "\t"]),
    max_size=12,
) | st.sampled_from(
    ["-- a/x", "++ b/x", "-- comment", "@@ -1 +1 @@", "\\ No newline at end of file", "diff --git a/x b/x"]
)


@dataclass(frozen=True)
class Hunk:
    old_start: int
    new_start: int
    lines: tuple[tuple[str, str], ...]  # (op, text): op is " ", "+" or "-"
    no_newline_at_end: bool = False  # git's "\ No newline at end of file" after the last line


@dataclass(frozen=True)
class Expected:
    added: dict[int, str]
    right: frozenset[int]
    left: frozenset[int]


@st.composite
def hunks(draw: st.DrawFn) -> list[Hunk]:
    """One file's hunks, in order, with gaps between them, as ``git diff`` would write them."""
    out: list[Hunk] = []
    old = new = 1
    for _ in range(draw(st.integers(1, 3))):
        gap = draw(st.integers(0, 20))
        old, new = old + gap, new + gap
        ops = draw(st.lists(st.tuples(st.sampled_from(" +-"), LINE_TEXT), min_size=1, max_size=8))
        out.append(Hunk(old, new, tuple(ops), draw(st.booleans())))
        old += sum(op != "+" for op, _ in ops)
        new += sum(op != "-" for op, _ in ops)
    return out


def render(file_hunks: list[Hunk]) -> str:
    text = []
    for h in file_hunks:
        old_len = sum(op != "+" for op, _ in h.lines)
        new_len = sum(op != "-" for op, _ in h.lines)
        # git writes start 0 for an empty side (a file added or deleted)
        old_start = h.old_start if old_len else h.old_start - 1
        new_start = h.new_start if new_len else h.new_start - 1
        text.append(f"@@ -{old_start},{old_len} +{new_start},{new_len} @@\n")
        text.extend(f"{op}{line}\n" for op, line in h.lines)
        if h.no_newline_at_end:
            text.append("\\ No newline at end of file\n")
    return "".join(text)


def expected(file_hunks: list[Hunk]) -> Expected:
    added: dict[int, str] = {}
    right: set[int] = set()
    left: set[int] = set()
    for h in file_hunks:
        old, new = h.old_start, h.new_start
        for op, line in h.lines:
            if op == "+":
                added[new] = line
                right.add(new)
                new += 1
            elif op == "-":
                left.add(old)
                old += 1
            else:
                right.add(new)
                left.add(old)
                old, new = old + 1, new + 1
    return Expected(added, frozenset(right), frozenset(left))


@PROPERTIES
@given(hunks())
def test_every_line_is_numbered_as_github_numbers_it(file_hunks: list[Hunk]) -> None:
    want = expected(file_hunks)
    parsed = parse_patch("f.py", render(file_hunks))
    assert parsed.added == want.added
    assert parsed.right_lines == want.right
    assert parsed.left_lines == want.left
    shown = parsed.numbered.split("\n")
    for number, text in want.added.items():
        assert f"{number:>6} +{text}" in shown


@PROPERTIES
@given(hunks(), st.lists(st.tuples(st.integers(-3, 120), st.none() | st.integers(-3, 120), st.booleans())))
def test_a_comment_is_anchored_exactly_where_github_accepts_it(
    file_hunks: list[Hunk], specs: list[tuple[int, int | None, bool]]
) -> None:
    want = expected(file_hunks)
    parsed = parse_patch("f.py", render(file_hunks))
    comments = [
        Comment(line=line, start_line=start, side="LEFT" if left else "RIGHT", body=f"c{i}")
        for i, (line, start, left) in enumerate(specs)
    ]
    anchored, stray = split_anchored(comments, parsed)
    assert sorted(anchored + stray, key=lambda c: c.body) == sorted(comments, key=lambda c: c.body)
    for c in comments:
        lines = want.left if c.side == "LEFT" else want.right
        span = [c.line] if c.start_line is None else list(range(c.start_line, c.line + 1))
        accepted = bool(span) and (c.start_line is None or c.start_line < c.line)
        accepted = accepted and all(n in lines for n in span)
        assert (c in anchored) == accepted, c


@PROPERTIES
@given(st.text(max_size=400) | st.builds(lambda h, junk: render(h) + junk, hunks(), st.text(max_size=60)))
def test_any_text_parses_without_error_into_consistent_lines(text: str) -> None:
    parsed = parse_patch("f.py", text)
    assert set(parsed.added) <= parsed.right_lines
    assert all(n >= 0 for n in parsed.right_lines | parsed.left_lines)
    _, stray = split_anchored([Comment(line=n, body="x") for n in sorted(parsed.right_lines)], parsed)
    assert stray == []


# path segments (git quotes names with control characters or quotes; those are the local
# source's business, tested there)
SEGMENT = st.text(alphabet="abcxyzABC0129._-éß漢", min_size=1, max_size=6)
NAMES = st.lists(SEGMENT, min_size=1, max_size=3).map("/".join)


@PROPERTIES
@given(st.dictionaries(NAMES, hunks(), max_size=4))
def test_a_git_diff_splits_into_each_files_hunks(files: dict[str, list[Hunk]]) -> None:
    diff = "".join(
        f"diff --git a/{name} b/{name}\n--- a/{name}\n+++ b/{name}\n{render(h)}" for name, h in files.items()
    )
    parts = split_git_diff(diff)
    assert list(parts) == list(files)
    for name, h in files.items():
        assert parse_patch(name, parts[name]).added == expected(h).added
