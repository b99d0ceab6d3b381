"""The ``long-line`` and ``trailing-whitespace`` checks: one comment per file each, on the first
added line concerned, with the count in the message (a style nit repeated fifty times is noise)."""

from __future__ import annotations

from pathlib import PurePosixPath

from review_agent.reviewers.builtin.context import FileContext
from review_agent.reviewers.builtin.findings import Finding

_PROSE_OR_DATA = frozenset(
    {
        ".md", ".markdown", ".rst", ".txt", ".adoc", ".json", ".jsonl", ".ndjson", ".lock", ".svg",
        ".csv", ".tsv", ".map", ".snap", ".ipynb", ".xml", ".pem", ".crt", ".patch", ".diff",
        ".po", ".pot",
    }
)  # fmt: skip
_NO_TRAILING_CHECK = frozenset({".md", ".markdown", ".patch", ".diff"})


def check_long_lines(ctx: FileContext) -> list[Finding]:
    p = PurePosixPath(ctx.path)
    limit = ctx.prefs.max_line_length
    if p.suffix.lower() in _PROSE_OR_DATA or ".min." in p.name:
        return []
    long_lines = [(n, len(t)) for n, t in ctx.lines if len(t) > limit]
    if not long_lines:
        return []
    first, _ = long_lines[0]
    longest = max(length for _, length in long_lines)
    if len(long_lines) == 1:
        message = f"This added line is {longest} characters long (limit {limit})."
    else:
        message = (
            f"{len(long_lines)} added lines are longer than {limit} characters (the longest "
            f"{longest}); this is the first."
        )
    return [Finding(first, "long-line", "info", message)]


def check_trailing_whitespace(ctx: FileContext) -> list[Finding]:
    if PurePosixPath(ctx.path).suffix.lower() in _NO_TRAILING_CHECK:
        return []
    hits = [n for n, t in ctx.lines if t[-1:] in (" ", "\t")]
    if not hits:
        return []
    if len(hits) == 1:
        message = "Trailing whitespace on this added line."
    else:
        message = f"Trailing whitespace on {len(hits)} added lines; this is the first."
    return [Finding(hits[0], "trailing-whitespace", "info", message)]
