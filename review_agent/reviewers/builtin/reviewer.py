"""The built-in reviewer: runs the registered checks on one file and turns their findings into
comments, bounded per file, with a summary that counts them and names any check that failed."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from review_agent.redaction import redact_secrets
from review_agent.reviewers.base import ReviewRequest, ReviewResult, WalkthroughRequest
from review_agent.reviewers.builtin.context import FileContext, Tools, read_prefs
from review_agent.reviewers.builtin.findings import CheckFailed, Finding
from review_agent.reviewers.builtin.registry import CHECKS, Check
from review_agent.reviewers.builtin.tools import CommandRunner, ToolLocator, clip, find_tool, run_command
from review_agent.reviewers.builtin.walkthrough import deterministic_walkthrough
from review_agent.state.schemas import SEVERITY_ORDER, Comment, Walkthrough

log = logging.getLogger(__name__)

DEFAULT_MAX_COMMENTS = 25
DEFAULT_LINTER_TIMEOUT = 10.0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def describe_failure(exc: BaseException) -> str:
    """One line for the summary: our own failures as written, anything else with its type.
    Redacted, because an exception raised on file content may quote it."""
    text = str(exc) if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {exc}"
    return redact_secrets(clip(text, 200))


class BuiltinReviewer:
    """The offline reviewer (the package docstring lists its checks).

    ``run_linters=False`` turns every external linter off (tests, or a locked-down host);
    ``runner`` and ``locate`` replace how linters are found and run; ``linter_timeout`` bounds
    each linter run; ``max_comments_per_file`` keeps a noisy file from burying the review, the
    rest being counted in the summary; ``checks`` replaces the registry (tests).
    """

    name = "builtin"

    def __init__(
        self,
        *,
        run_linters: bool = True,
        runner: CommandRunner | None = None,
        locate: ToolLocator | None = None,
        linter_timeout: float = DEFAULT_LINTER_TIMEOUT,
        max_comments_per_file: int = DEFAULT_MAX_COMMENTS,
        checks: Sequence[Check] | None = None,
    ) -> None:
        self.run_linters = run_linters
        self.runner: CommandRunner = runner or run_command
        self.locate: ToolLocator = locate or find_tool
        self.linter_timeout = linter_timeout
        self.max_comments_per_file = max(0, max_comments_per_file)
        self.checks: tuple[Check, ...] = tuple(checks) if checks is not None else CHECKS

    def review(self, request: ReviewRequest) -> ReviewResult:
        """Never raises: a check that fails is named in the summary ("check lint failed: …")
        and the other checks' findings are kept, so one strange file cannot stop a review and
        a crash never passes for a clean file."""
        try:
            return self._review(request)
        except Exception as exc:  # the port's contract: no exception on odd content
            log.exception("built-in review failed for %s", getattr(request, "path", "?"))
            return ReviewResult(
                summary=f"The built-in checks could not analyse this file: {describe_failure(exc)}.",
                comments=[],
                failed=f"the built-in checks crashed on this file ({describe_failure(exc)})",
            )

    def write_walkthrough(self, request: WalkthroughRequest) -> Walkthrough:
        """The walkthrough of the whole review, offline: counts, changes, top findings."""
        return deterministic_walkthrough(request, writer=self.name)

    def _review(self, request: ReviewRequest) -> ReviewResult:
        prefs = read_prefs(request.preferences)
        tools = Tools(self.run_linters, self.runner, self.locate, self.linter_timeout)
        enabled = [c for c in self.checks if not prefs.disables(c.id)]
        triggers = [c.needs_view for c in enabled if c.needs_view is not None]
        ctx = FileContext(request, prefs, tools, triggers)
        findings: list[Finding] = []
        failures: list[tuple[str, str]] = []
        for check in enabled:
            if not ctx.lines:
                break
            try:
                found = check.run(ctx)
            except CheckFailed as exc:
                failures.append((check.id, describe_failure(exc)))
                found = exc.findings
            except Exception as exc:
                log.warning("builtin check %s failed on %s", check.id, request.path, exc_info=True)
                failures.append((check.id, describe_failure(exc)))
                found = []
            findings.extend(found)
        findings = [
            f
            for f in findings
            if SEVERITY_ORDER[f.severity] >= prefs.threshold and not prefs.disables(f.rule_id)
        ]
        findings = self._dedupe(findings)
        shown = self._select(findings)
        comments = [
            Comment(line=f.line, side="RIGHT", severity=f.severity, body=f.body(), rule=f.rule_id)
            for f in shown
        ]
        return ReviewResult(
            summary=self._summary(len(ctx.lines), findings, len(shown), failures),
            comments=comments,
            model_calls=0,
        )

    def _position(self, f: Finding) -> tuple[int, int, str, str]:
        ids = [c.id for c in self.checks]
        return (f.line, ids.index(f.check) if f.check in ids else len(ids), f.key, f.message)

    def _dedupe(self, findings: list[Finding]) -> list[Finding]:
        """One finding per (line, check, key), the most severe first found."""
        order = sorted(enumerate(findings), key=lambda item: (-SEVERITY_ORDER[item[1].severity], item[0]))
        seen: set[tuple[int, str, str]] = set()
        kept: list[Finding] = []
        for _, f in order:
            ident = (f.line, f.check, f.key)
            if ident not in seen:
                seen.add(ident)
                kept.append(f)
        return sorted(kept, key=self._position)

    def _select(self, findings: list[Finding]) -> list[Finding]:
        """The most severe findings up to the per-file limit, then in file order."""
        ranked = sorted(findings, key=lambda f: (-SEVERITY_ORDER[f.severity], *self._position(f)))
        return sorted(ranked[: self.max_comments_per_file], key=self._position)

    def _summary(
        self, line_count: int, findings: list[Finding], shown: int, failures: list[tuple[str, str]]
    ) -> str:
        if line_count == 0:
            summary = "No added lines to check."
        elif not findings:
            summary = f"No findings in {_plural(line_count, 'added line')}."
        else:
            counts = {c.id: sum(1 for f in findings if f.check == c.id) for c in self.checks}
            by_check = ", ".join(f"{c} {n}" for c, n in counts.items() if n)
            summary = (
                f"Checked {_plural(line_count, 'added line')}: "
                f"{_plural(len(findings), 'finding')} ({by_check})."
            )
            hidden = len(findings) - shown
            if hidden:
                summary += (
                    f" Only the {shown} most severe are shown as comments (limit "
                    f"{self.max_comments_per_file} per file); {hidden} more are not shown."
                )
        grouped: dict[str, list[str]] = {}
        for check_id, error in failures:
            grouped.setdefault(error, []).append(check_id)
        for error, ids in grouped.items():
            summary += f" Check {', '.join(ids)} failed: {error.rstrip('.')}."
        return summary
