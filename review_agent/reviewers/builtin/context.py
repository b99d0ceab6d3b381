"""Everything the checks share about one file: its added lines, language, preferences, and the
analyses several checks use (the lexed lines, ruff's diagnostics), each computed once."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any

from review_agent.reviewers.base import ReviewRequest
from review_agent.reviewers.builtin.findings import CheckFailed
from review_agent.reviewers.builtin.languages import BRACE_LANGS, detect_language, lexer_for
from review_agent.reviewers.builtin.lexing import (
    ANALYSE_LIMIT,
    LineView,
    budgeted_line_views,
    content_matches,
    document_rows,
    python_scopes,
)
from review_agent.reviewers.builtin.linters import RuffDiagnostic, run_ruff
from review_agent.reviewers.builtin.tools import CommandRunner, ToolLocator
from review_agent.state.schemas import SEVERITY_ORDER

DEFAULT_MAX_LINE_LENGTH = 200
LINT_MAX_CHARS = 1_000_000
_MAIN_GUARD = re.compile(r"""^if\s+__name__\s*==\s*["']__main__["']""", re.M)
_SCRIPT_DIRS = frozenset(
    {
        "scripts", "script", "bin", "cli", "tools", "tool", "examples", "example", "demo", "demos",
        "docs", "doc", "bench", "benchmarks", "benchmark",
    }
)  # fmt: skip
_SCRIPT_FILES = frozenset({"__main__.py", "manage.py", "setup.py", "cli.py", "noxfile.py"})
# What a symlink's "content" is: one line, no newline, no spaces, path characters only.
_LINK_TARGET = re.compile(r"[\w.@+~/-]{1,4096}")


@dataclass(frozen=True)
class Prefs:
    disabled: frozenset[str]
    threshold: int
    max_line_length: int

    def disables(self, *names: str | None) -> bool:
        return any(n is not None and n.lower() in self.disabled for n in names)


def read_prefs(preferences: Any) -> Prefs:
    """Preferences come from a store that users write to by hand: accept lists or
    comma-separated strings, any case, an optional ``builtin/`` prefix, and ignore what cannot
    be understood rather than failing the review."""
    prefs = preferences if isinstance(preferences, Mapping) else {}
    raw = prefs.get("disabled_checks") or ()
    items: Iterable[Any] = raw.split(",") if isinstance(raw, str) else raw
    disabled: set[str] = set()
    if isinstance(items, Iterable):
        for item in items:
            if isinstance(item, str):
                disabled.add(item.strip().lower().removeprefix("builtin/"))
    threshold_raw = prefs.get("severity_threshold")
    threshold = SEVERITY_ORDER.get(threshold_raw.strip().lower(), 0) if isinstance(threshold_raw, str) else 0
    length = prefs.get("max_line_length")
    max_len = (
        length
        if isinstance(length, int) and not isinstance(length, bool) and length >= 40
        else DEFAULT_MAX_LINE_LENGTH
    )
    return Prefs(frozenset(disabled), threshold, max_len)


@dataclass(frozen=True)
class Tools:
    """How external linters are found and run, and whether they may run at all."""

    run_linters: bool
    runner: CommandRunner
    locate: ToolLocator
    timeout: float


def looks_like_link_target(content: str) -> bool:
    """Whether a file's "text" is a symlink's target (``keep.py``, ``../lib/x.sh``): git stores
    a symlink as a one-line blob holding the path, without a newline. Linting it as code would
    report nonsense (``F821 Undefined name 'keep'``)."""
    return (
        "\n" not in content
        and _LINK_TARGET.fullmatch(content) is not None
        and ("/" in content or "." in content)
    )


# A check's cheap test on a raw added line: "I may need this line's tokens".
ViewTrigger = Callable[[str], bool]


class FileContext:
    """One file under review. ``view_triggers`` say which added lines are worth lexing: a file
    of 10,000 added lines is lexed only where a check could find something."""

    def __init__(
        self, request: ReviewRequest, prefs: Prefs, tools: Tools, view_triggers: Sequence[ViewTrigger] = ()
    ) -> None:
        self.request = request
        self.view_triggers = tuple(view_triggers)
        self.path = request.path
        self.prefs = prefs
        self.tools = tools
        self.lang = detect_language(request.path, request.language)
        self.lines = _added_lines(request)
        self.added = dict(self.lines)
        self._ruff: list[RuffDiagnostic] | CheckFailed | None = None
        self._ruff_done = False

    @cached_property
    def file_text(self) -> str | None:
        """The file at head, only when it is the file's text: present, agreeing with the
        patch's added lines, and not a symlink's target. Linters run on this or not at all."""
        content = self.request.content
        if content is None or looks_like_link_target(content):
            return None
        if not content_matches(content, self.added):
            return None
        return content

    @cached_property
    def lintable_text(self) -> str | None:
        text = self.file_text
        if not self.tools.run_linters or text is None or len(text) > LINT_MAX_CHARS:
            return None
        return text

    @cached_property
    def rows(self) -> list[str]:
        """Rows 1..last added row of the file (or of its hunks, without the file)."""
        if not self.lines:
            return []
        return document_rows(self.file_text, self.request.patch.raw, max(self.added))

    @cached_property
    def views(self) -> dict[int, LineView] | None:
        """Lexed views of the added lines some check may need (and the rows just before them,
        for "disable next line" comments), or None when no lexer knows the language. A line
        without a view is one no check needs."""
        lexer = lexer_for(self.path, self.lang)
        if lexer is None or not self.lines:
            return None
        needed = {
            n
            for n, text in self.lines
            if any(trigger(text[:ANALYSE_LIMIT]) for trigger in self.view_triggers)
        }
        wanted = needed | {n - 1 for n in needed}
        views = budgeted_line_views(lexer, self.rows, wanted, brace_scopes=self.lang in BRACE_LANGS)
        if self.lang == "python" and self.file_text is not None:
            for n, names in python_scopes(self.file_text, needed).items():
                if n in views:
                    views[n] = dataclasses.replace(views[n], scopes=names)
        return views

    @cached_property
    def is_script(self) -> bool:
        """Whether printing is likely this file's job (a CLI, a script, an entry point, an
        example), in which case output calls are not debug leftovers."""
        p = PurePosixPath(self.path)
        if p.name in _SCRIPT_FILES or p.stem in ("cli", "main") or p.stem.endswith(("_cli", "-cli")):
            return True
        if any(part.lower() in _SCRIPT_DIRS for part in p.parts[:-1]):
            return True
        content = self.file_text
        if content is not None:
            if content.startswith("#!"):
                return True
            if _MAIN_GUARD.search(content[:LINT_MAX_CHARS]):
                return True
        return False

    def ruff(self) -> list[RuffDiagnostic] | None:
        """ruff's diagnostics for this file, run once (see ``linters.run_ruff``); a failure is
        remembered and raised again to every check that asks."""
        if not self._ruff_done:
            self._ruff_done = True
            try:
                self._ruff = run_ruff(self)
            except CheckFailed as exc:
                self._ruff = exc
        if isinstance(self._ruff, CheckFailed):
            raise CheckFailed(str(self._ruff))
        return self._ruff


def _added_lines(request: ReviewRequest) -> list[tuple[int, str]]:
    """Added lines in order, CR of CRLF files removed (it is the line end, not content)."""
    out: list[tuple[int, str]] = []
    for number, text in sorted(request.patch.added.items()):
        if not isinstance(text, str):
            text = str(text)
        out.append((number, text[:-1] if text.endswith("\r") else text))
    return out
