"""What a check produces: findings, and the error that says a check could not do its job."""

from __future__ import annotations

from dataclasses import dataclass

from review_agent.state.schemas import Severity

RULE_PREFIX = "review-agent/"


@dataclass(frozen=True)
class Finding:
    """One problem on one added line, before it becomes a Comment.

    ``key`` separates findings that may share a line and check (two ruff codes); findings with
    the same (line, check, key) are reported once, the most severe one winning. ``rule`` is the
    precise rule (``ruff/S301``, ``review-agent/security/eval``); by default the check's own id.
    """

    line: int
    check: str
    severity: Severity
    message: str
    key: str = ""
    rule: str | None = None

    @property
    def rule_id(self) -> str:
        return self.rule or f"{RULE_PREFIX}{self.check}"

    def body(self) -> str:
        return f"**{self.check}** (builtin/{self.check}): {self.message}"


class CheckFailed(Exception):
    """A check (or the tool it runs) could not do its job: a linter that timed out, exited with
    an error or printed output we cannot read. Raised, never turned into "no findings", so the
    review says which check failed instead of pretending the file is clean. ``findings`` are
    what the check found before or besides the failure (another linter's), still reported."""

    def __init__(self, message: str, findings: list[Finding] | None = None) -> None:
        super().__init__(message)
        self.findings: list[Finding] = list(findings or ())
