"""What a source file defines and uses, cheaply: enough for cross-file context and for an
excerpt cut to the functions and classes around a change.

Python is read with the standard library's ``ast`` (exact spans, exact uses). Every other
language Pygments can lex is read from its tokens: a definition is a token Pygments marks as a
function or class name, or the first name after a declaration keyword (``function``, ``func``,
``class``, ``const`` …); its end is found by indentation, which is how nearly all code is laid
out. That is a heuristic, and it only has to be good enough to choose context, never to judge.
Prose and data files (Markdown, JSON, YAML …) have no definitions here.

All work is bounded: text over ``MAX_INDEX_CHARS`` is not indexed, and a file that does not
parse falls back to tokens.
"""

from __future__ import annotations

import ast
import builtins
import keyword
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pygments.lexer import Lexer
from pygments.lexers import PythonLexer, get_lexer_for_filename
from pygments.token import Keyword, Name, Punctuation, Text, Whitespace
from pygments.util import ClassNotFound

MAX_INDEX_CHARS = 1_000_000
MIN_NAME_LENGTH = 3  # shorter names (i, db, ok) match everywhere and say nothing

# Names so common that a match across files says nothing about the change.
_COMMON = frozenset(
    {
        *dir(builtins),
        *keyword.kwlist,
        *keyword.softkwlist,
        "self",
        "cls",
        "this",
        "args",
        "kwargs",
        "main",
        "init",
        "value",
        "name",
        "data",
        "result",
        "error",
        "err",
        "ctx",
        "get",
        "set",
        "run",
        "new",
        "string",
        "int",
        "bool",
        "void",
        "null",
        "nil",
        "true",
        "false",
        "none",
        "undefined",
        "require",
        "module",
        "exports",
        "console",
        "log",
        "fmt",
        "test",
        "setup",
    }
)
# Lexers of prose and data: their "names" are keys and words, not code.
_NOT_CODE = frozenset(
    {
        "text",
        "markdown",
        "md",
        "restructuredtext",
        "rst",
        "json",
        "json-object",
        "yaml",
        "toml",
        "ini",
        "cfg",
        "html",
        "xml",
        "css",
        "csv",
        "diff",
        "properties",
    }
)
_DECLARES = frozenset(
    {
        "def",
        "class",
        "function",
        "func",
        "fn",
        "fun",
        "struct",
        "enum",
        "trait",
        "interface",
        "type",
        "const",
        "let",
        "var",
        "val",
        "module",
        "object",
        "record",
        "sub",
        "procedure",
        "macro",
    }
)
_PY_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class Definition:
    """A named definition and the lines it spans (1-based, inclusive). ``kind`` is
    ``"scope"`` for a function or class (it encloses code) and ``"value"`` for a top-level
    assignment or declaration."""

    name: str
    start: int
    end: int
    kind: str = "scope"


@dataclass(frozen=True)
class SourceIndex:
    definitions: tuple[Definition, ...] = ()
    uses: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> lines using it, sorted

    def enclosing(self, line: int) -> Definition | None:
        """The innermost scope (function or class) around ``line``, or a top-level value."""
        best: Definition | None = None
        for d in self.definitions:
            if d.start <= line <= d.end and (best is None or d.end - d.start < best.end - best.start):
                best = d
        return best

    def outer_scopes(self, inner: Definition) -> list[Definition]:
        """The scopes around ``inner`` (a method's class), outermost first."""
        found = [
            d
            for d in self.definitions
            if d.kind == "scope" and d != inner and d.start <= inner.start and inner.end <= d.end
        ]
        return sorted(found, key=lambda d: d.start)


def interesting(name: str) -> bool:
    """A name specific enough that finding it in another file means something."""
    return (
        len(name) >= MIN_NAME_LENGTH
        and name.lower() not in _COMMON
        and name not in _COMMON
        and not (name.startswith("__") and name.endswith("__"))
    )


def is_python(path: str) -> bool:
    return path.endswith((".py", ".pyi", ".pyw"))


@lru_cache(maxsize=256)
def _lexer_for(path: str) -> Lexer | None:
    try:
        lexer = get_lexer_for_filename(path, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None
    except Exception:  # a broken lexer plugin must not break a review
        return None
    if _NOT_CODE & {a.lower() for a in lexer.aliases}:
        return None
    return lexer


@lru_cache(maxsize=1)
def _python_lexer() -> Lexer:
    return PythonLexer(stripnl=False, ensurenl=False)


def lexer_for(path: str) -> Lexer | None:
    """The Pygments lexer for a code file, or None for prose, data and unknown files."""
    name = path.rsplit("/", 1)[-1]
    return _lexer_for(name) if name else None


def index_source(path: str, content: str) -> SourceIndex | None:
    """Definitions and uses of a file at head, or None (not code, too large, unreadable)."""
    if len(content) > MAX_INDEX_CHARS:
        return None
    if is_python(path):
        found = _index_python(content)
        if found is not None:
            return found
        return _index_tokens(_python_lexer(), content)
    lexer = lexer_for(path)
    return _index_tokens(lexer, content) if lexer is not None else None


def declared_names(path: str, fragment: str) -> set[str]:
    """Names a fragment of code declares (e.g. the removed lines of a diff), read from tokens:
    a fragment need not parse."""
    lexer = _python_lexer() if is_python(path) else lexer_for(path)
    if lexer is None or not fragment.strip():
        return set()
    index = _index_tokens(lexer, fragment[:MAX_INDEX_CHARS])
    return {d.name for d in index.definitions} if index else set()


# -- Python: ast ------------------------------------------------------------------------------


def _index_python(content: str) -> SourceIndex | None:
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    definitions: list[Definition] = []
    uses: dict[str, list[int]] = {}

    def use(name: str, line: int) -> None:
        if interesting(name):
            uses.setdefault(name, []).append(line)

    def top_level_values(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for leaf in ast.walk(target):
                        if isinstance(leaf, ast.Name):
                            end = node.end_lineno or node.lineno
                            definitions.append(Definition(leaf.id, node.lineno, end, "value"))

    top_level_values(tree.body)
    try:
        nodes = list(ast.walk(tree))
    except RecursionError:
        return None
    for node in nodes:
        if isinstance(node, _PY_SCOPES):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            definitions.append(Definition(node.name, first, node.end_lineno or node.lineno))
            if isinstance(node, ast.ClassDef):
                top_level_values(node.body)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store):
            use(node.id, node.lineno)
        elif isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Store):
            use(node.attr, node.end_lineno or node.lineno)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                use(alias.name, node.lineno)
    return SourceIndex(tuple(definitions), {k: tuple(sorted(set(v))) for k, v in uses.items()})


# -- other languages: Pygments tokens -----------------------------------------------------------


def _is_name(kind: Any) -> bool:
    return kind in Name and kind not in Name.Builtin and kind not in Name.Decorator


def _index_tokens(lexer: Lexer, content: str) -> SourceIndex | None:
    try:
        tokens = list(lexer.get_tokens(content))
    except Exception:  # a lexer bug on odd input: no index rather than no review
        return None
    lines = content.split("\n")
    starts: list[tuple[str, int]] = []  # (name, line) of each definition
    uses: dict[str, list[int]] = {}
    line = 1
    expecting = False  # after a declaration keyword, before its name
    depth = 0  # brackets since that keyword (Go's receiver, a C return type's pointer …)
    for kind, value in tokens:
        if kind in Keyword and value in _DECLARES:
            expecting, depth = True, 0
        elif expecting and kind in Punctuation and value in "([{<":
            depth += 1 if value in "([" else 0
            if value == "{":
                expecting = False
        elif expecting and kind in Punctuation and value in ")]" and depth:
            depth -= 1
        elif expecting and kind in Punctuation and value in ";=":
            expecting = False
        elif _is_name(kind) and interesting(value):
            if kind in Name.Function or kind in Name.Class or (expecting and depth == 0):
                starts.append((value, line))
                expecting = False
            elif not (expecting and depth == 0):
                uses.setdefault(value, []).append(line)
        elif _is_name(kind) and expecting and depth == 0:
            expecting = False  # a short or common name was declared: not ours to track
        elif kind not in Text and kind not in Whitespace and "\n" in value:
            expecting = False
        line += value.count("\n")
    definitions = tuple(Definition(name, at, _block_end(lines, at), "scope") for name, at in starts)
    return SourceIndex(definitions, {k: tuple(sorted(set(v))) for k, v in uses.items()})


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" \t"))


def _block_end(lines: list[str], start: int) -> int:
    """The last line of the block a definition opens on line ``start``: the lines after it that
    are indented deeper, plus a closing line (``}``, ``end`` …) at its own indentation."""
    if start > len(lines):
        return start
    head = lines[start - 1]
    base = _indent(head)
    last = start
    for n in range(start + 1, len(lines) + 1):
        text = lines[n - 1]
        if not text.strip():
            continue
        if _indent(text) > base:
            last = n
            continue
        stripped = text.strip()
        if stripped[0] in "}])" or stripped.split()[0] in ("end", "fi", "done", "esac"):
            return n
        if n == start + 1 and stripped[0] == "{":  # Allman braces: the block opens below
            last = n
            continue
        return last
    return last
