"""The checks, in the order their findings are counted and shown."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from review_agent.reviewers.builtin import conflicts, debug, security, todo
from review_agent.reviewers.builtin.conflicts import check_conflicts
from review_agent.reviewers.builtin.context import FileContext, ViewTrigger
from review_agent.reviewers.builtin.debug import check_debug
from review_agent.reviewers.builtin.findings import Finding
from review_agent.reviewers.builtin.linters import check_lint
from review_agent.reviewers.builtin.secrets_check import check_secrets
from review_agent.reviewers.builtin.security import check_security
from review_agent.reviewers.builtin.style import check_long_lines, check_trailing_whitespace
from review_agent.reviewers.builtin.todo import check_todo


@dataclass(frozen=True)
class Check:
    """One check: an id (what ``disabled_checks`` names, and what comments are labelled with)
    and a function of the file. The function may raise: the reviewer reports the failure."""

    id: str
    run: Callable[[FileContext], list[Finding]]
    needs_view: ViewTrigger | None = None  # which raw lines it may need lexed (None: none)


CHECKS: tuple[Check, ...] = (
    Check("secret", check_secrets),
    Check("conflict-marker", check_conflicts, conflicts.needs_view),
    Check("debug", check_debug, debug.needs_view),
    Check("security", check_security, security.needs_view),
    Check("lint", check_lint),
    Check("todo", check_todo, todo.needs_view),
    Check("long-line", check_long_lines),
    Check("trailing-whitespace", check_trailing_whitespace),
)
CHECK_IDS: tuple[str, ...] = tuple(c.id for c in CHECKS)
