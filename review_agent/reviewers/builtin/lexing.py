"""Code, string literals and comments, line by line, from Pygments tokens.

Why Pygments: the debug, TODO, conflict and security checks must know whether a match is code,
a string literal (a sample, a message) or a comment, in every language. Pygments' lexers are
maintained, know each language's quoting, comment and docstring rules (multi-line strings, JS
template literals, shell heredocs), and never raise on invalid input (they emit ``Error`` tokens).

The text lexed is the file at head when we have it and it agrees with the patch; otherwise the
hunks alone (context and added lines at their own rows, blank rows between), which is the best
that can be done without the file. Lines are cut at ``ANALYSE_LIMIT`` characters and only the
prefix up to the last row asked for is lexed, so a huge or minified file stays cheap.
"""

from __future__ import annotations

import ast
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pygments.lexer import Lexer
from pygments.token import Comment, Error, Keyword, Name, Punctuation, String, _TokenType
from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

ANALYSE_LIMIT = 4_000
LEX_MAX_CHARS = 2_000_000
# Pygments lexes about 150-200 KB/s: past this much text per file, only a window of rows before
# each wanted row is lexed (a string opened far above it may then be missed), and rows past the
# budget are not analysed at all.
LEX_BUDGET_CHARS = 300_000
WINDOW_ROWS = 300
# Rows lexed past the last wanted one, so that a comment or string opened on a wanted row is
# seen closing (an unterminated ``/*`` is not a comment to a lexer).
TAIL_ROWS = 200
_PARSE_MAX_CHARS = 1_000_000


@dataclass(frozen=True)
class LineView:
    """One line, split by what its characters are.

    ``code`` is the line with string-literal and comment characters replaced by spaces (columns
    kept); ``comment`` the text of its comments and docstrings; ``literals`` its string-literal
    pieces; ``starts_in_literal`` whether its first visible character is inside a string
    literal (a conflict sample in a test fixture); ``scopes`` the names of the blocks around it
    (functions, classes, object literals), for "is this inside the logging function".
    """

    code: str
    comment: str
    literals: tuple[str, ...]
    starts_in_literal: bool
    scopes: frozenset[str] = frozenset()
    uncommented: str = ""  # the line with only its comments blanked (code and strings kept)


_CODE, _STRING, _COMMENT = 0, 1, 2
_NOT_COMMENTS = (Comment.Preproc, Comment.PreprocFile)


def _kind(tt: _TokenType) -> int:
    if tt in String.Doc:
        return _COMMENT  # a docstring is prose: a TODO in it counts like one in a comment
    if tt in Comment and not any(tt in c for c in _NOT_COMMENTS):
        return _COMMENT
    if tt in String and tt not in String.Interpol:
        return _STRING
    return _CODE


def hunk_document(raw_patch: str) -> dict[int, str]:
    """New-side rows of every hunk (context and added lines) from a file's raw patch."""
    text = raw_patch if raw_patch.endswith("\n") else raw_patch + "\n"
    if not (text.startswith("--- ") or text.startswith("diff --git")):
        text = f"--- a/file\n+++ b/file\n{text}"
    rows: dict[int, str] = {}
    try:
        patch_set = PatchSet(text)
    except UnidiffParseError:
        return rows
    for patched_file in patch_set:
        for hunk in patched_file:
            for line in hunk:
                if line.target_line_no is not None and (line.is_added or line.is_context):
                    rows[line.target_line_no] = line.value.rstrip("\n")
    return rows


def content_matches(content: str, added: Mapping[int, str], sample: int = 50) -> bool:
    """Whether ``content`` is the text the patch describes: most of (up to ``sample``) added
    lines are found at their rows. A source that sends something else (a stale blob, a symlink's
    target) must not be lexed or linted as if it were the file."""
    if not added:
        return True
    rows = content.split("\n")
    checked = matched = 0
    for number, text in sorted(added.items())[:sample]:
        checked += 1
        if 0 < number <= len(rows) and rows[number - 1].rstrip("\r") == text.rstrip("\r"):
            matched += 1
    return matched * 2 > checked


def document_rows(content: str | None, raw_patch: str, last_row: int) -> list[str]:
    """Rows 1..last_row + ``TAIL_ROWS`` (as far as the text goes) of the text to lex (index 0
    is row 1), each cut to ``ANALYSE_LIMIT``."""
    limit = last_row + TAIL_ROWS
    if content is not None and len(content) <= LEX_MAX_CHARS:
        rows = content.split("\n", limit)[:limit]
    else:
        found = hunk_document(raw_patch)
        rows = [found.get(n, "") for n in range(1, min(limit, max(found, default=0)) + 1)]
        rows += [""] * (last_row - len(rows))
    return [r.rstrip("\r")[:ANALYSE_LIMIT] for r in rows]


class _Row:
    __slots__ = ("code", "comment", "first_kind", "literals", "scopes", "uncommented")

    def __init__(self) -> None:
        self.code: list[str] = []
        self.uncommented: list[str] = []
        self.comment: list[str] = []
        self.literals: list[str] = []
        self.first_kind: int | None = None
        self.scopes: set[str] = set()


_BLOCK_RESET = frozenset(";{}")


def line_views(
    lexer: Lexer, rows: list[str], wanted: Iterable[int], *, brace_scopes: bool = False
) -> dict[int, LineView]:
    """A LineView for each wanted row of ``rows``."""
    want = {n for n in wanted if 0 < n <= len(rows)}
    if not want:
        return {}
    last_wanted = max(want)
    text = "\n".join(rows[: last_wanted + TAIL_ROWS]) + "\n"
    out: dict[int, _Row] = {n: _Row() for n in want}
    row = 1
    stack: list[frozenset[str]] = []  # names of the open brace blocks
    header: list[str] = []  # names seen since the last statement boundary, outside parentheses
    depth = 0
    for tt, value in lexer.get_tokens(text):
        kind = _kind(tt)
        if brace_scopes and kind == _CODE:
            if tt in Punctuation or tt in Error:
                for ch in value:
                    if ch == "(":
                        depth += 1
                    elif ch == ")":
                        depth = max(0, depth - 1)
                    elif ch == "{":
                        stack.append(frozenset(header))
                    elif ch == "}" and stack:
                        stack.pop()
                    if ch in _BLOCK_RESET:
                        header, depth = [], 0
            elif tt in Name and tt not in Name.Builtin and depth == 0 and value.strip():
                header.append(value.strip())
            elif tt in Keyword and value in ("if", "for", "while", "switch", "catch", "else", "do"):
                header = []
        pieces = value.split("\n")
        for i, piece in enumerate(pieces):
            if i:
                row += 1
            target = out.get(row)
            if target is None or not piece:
                continue
            if target.first_kind is None and piece.strip():
                target.first_kind = kind
            blank = " " * len(piece)
            target.code.append(piece if kind == _CODE else blank)
            target.uncommented.append(blank if kind == _COMMENT else piece)
            if kind == _COMMENT:
                target.comment.append(piece)
            elif kind == _STRING:
                target.literals.append(piece)
            if brace_scopes:
                for names in stack:
                    target.scopes.update(names)
        if row > last_wanted:
            break  # every wanted row is complete: the tail only had to close its tokens
    return {
        n: LineView(
            code="".join(r.code),
            comment=" ".join(r.comment),
            literals=tuple(r.literals),
            starts_in_literal=r.first_kind == _STRING,
            scopes=frozenset(r.scopes),
            uncommented="".join(r.uncommented),
        )
        for n, r in out.items()
    }


def budgeted_line_views(
    lexer: Lexer, rows: list[str], wanted: Iterable[int], *, brace_scopes: bool = False
) -> dict[int, LineView]:
    """``line_views`` within ``LEX_BUDGET_CHARS``: the whole prefix when it fits, else windows
    of ``WINDOW_ROWS`` rows ending at the wanted rows, until the budget is spent."""
    want = sorted(n for n in set(wanted) if 0 < n <= len(rows))
    if not want:
        return {}
    if sum(len(r) + 1 for r in rows[: want[-1] + TAIL_ROWS]) <= LEX_BUDGET_CHARS:
        return line_views(lexer, rows, want, brace_scopes=brace_scopes)
    windows: list[tuple[int, int]] = []  # (first row, last row), 1-based, merged
    for n in want:
        start = max(1, n - WINDOW_ROWS)
        if windows and start <= windows[-1][1] + 1:
            windows[-1] = (windows[-1][0], n)
        else:
            windows.append((start, n))
    views: dict[int, LineView] = {}
    spent = 0
    for first, last in windows:
        window = rows[first - 1 : last + TAIL_ROWS]
        spent += sum(len(r) + 1 for r in window)
        if spent > LEX_BUDGET_CHARS and views:
            break
        inside = [n - first + 1 for n in want if first <= n <= last]
        for n, view in line_views(lexer, window, inside, brace_scopes=brace_scopes).items():
            views[n + first - 1] = view
    return views


def python_scopes(content: str, wanted: Iterable[int]) -> dict[int, frozenset[str]]:
    """Names of the functions and classes around each wanted row of a Python file (empty when
    the file does not parse)."""
    want = sorted(set(wanted))
    if not want or len(content) > _PARSE_MAX_CHARS:
        return {}
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    scopes: dict[int, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            end = getattr(node, "end_lineno", None) or node.lineno
            for n in want[bisect_left(want, node.lineno) : bisect_right(want, end)]:
                scopes.setdefault(n, set()).add(node.name)
    return {n: frozenset(s) for n, s in scopes.items()}


_CAMEL_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def name_parts(name: str) -> list[str]:
    """``debugLog`` -> ["debug", "log"]; ``DB_PASSWORD`` -> ["db", "password"]."""
    last = name.rsplit(".", 1)[-1]
    parts: list[str] = []
    for chunk in re.split(r"[_\-\s]+", last):
        parts.extend(p.lower() for p in _CAMEL_PARTS.findall(chunk))
    return parts
