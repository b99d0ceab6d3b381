"""The pull request's part of a file's prompt: its title and description, the changed files and
the cross-file references, each within its own token budget.

The title and description are written by the change's author, like the diff, so the caller
fences this text as untrusted. A description is cut, never dropped: its HTML comments (the
unfilled template most descriptions carry) go first, then its end. The list of changed files
is grouped by folder, which costs far fewer tokens than full paths; when it does not fit, the
files this one is linked to come first and the rest are counted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from review_agent.reviewers.context import CrossRef, FileChange, PRContext
from review_agent.reviewers.model.text import one_line
from review_agent.reviewers.model.tokens import CHARS_PER_TOKEN, TokenCount

MAX_TITLE_CHARS = 300
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)


@dataclass(frozen=True)
class SectionBudget:
    description: int = 300
    files: int = 250
    refs: int = 350


def render_pr_section(
    pr: PRContext,
    path: str,
    budget: SectionBudget,
    count: TokenCount,
    clean: Callable[[str], str] = lambda s: s,
) -> str:
    """The section's text (unfenced), with every piece passed through ``clean`` (redaction)."""
    parts: list[str] = []
    title = one_line(clean(pr.title).strip())
    if title:
        parts.append("Title: " + _cut_chars(title, MAX_TITLE_CHARS))
    description = _description(clean(pr.description), budget.description, count)
    if description:
        parts.append("Description:\n" + description)
    refs = pr.refs_for(path)
    if pr.files:
        linked = {r.other_path for r in refs}
        parts.append(_files(pr.files, path, linked, budget.files, count, clean))
    if refs:
        parts.append(_refs(refs, budget.refs, count, clean))
    return "\n".join(parts)


def _cut_chars(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fit(text: str, budget: int, count: TokenCount, note: str) -> str:
    """``text`` cut at a line or word end so that it and ``note`` fit ``budget`` tokens."""
    if count(text) <= budget:
        return text
    limit = min(len(text), budget * CHARS_PER_TOKEN * 2)
    while limit > 0:
        cut = text[:limit]
        space = max(cut.rfind("\n"), cut.rfind(" "))
        cut = (cut[:space] if space > limit // 2 else cut).rstrip()
        if count(cut) + count(note) + 1 <= budget:
            return f"{cut}\n{note}" if cut else note
        limit = int(limit * 0.85)
    return note


def _description(text: str, budget: int, count: TokenCount) -> str:
    previous = None
    while previous != text:  # removing one comment must not splice another together
        previous, text = text, _HTML_COMMENT.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if not text:
        return ""
    return _fit(text, budget, count, "[description truncated]")


def _files(
    files: tuple[FileChange, ...],
    path: str,
    linked: set[str],
    budget: int,
    count: TokenCount,
    clean: Callable[[str], str],
) -> str:
    added = sum(f.additions for f in files)
    removed = sum(f.deletions for f in files)
    header = f"Changed files ({len(files)}, +{added} -{removed}):"
    # this file, then the files it is linked to, then the rest in the order given
    order = sorted(range(len(files)), key=lambda i: (files[i].path != path, files[i].path not in linked, i))
    chosen: list[FileChange] = []
    used = count(header)
    for i in order:
        f = files[i]
        cost = count(_entry(f, path, clean)) + 1
        if used + cost > budget and chosen:
            break
        chosen.append(f)
        used += cost
    groups: dict[str, list[str]] = {}
    for f in sorted(chosen, key=lambda f: f.path):
        folder, _, name = f.path.rpartition("/")
        groups.setdefault(folder, []).append(_entry(f, path, clean, name))
    lines = [header]
    lines += [
        f"{one_line(clean(folder)) + '/' if folder else './'}: {', '.join(e)}" for folder, e in groups.items()
    ]
    if len(chosen) < len(files):
        lines.append(f"... and {len(files) - len(chosen)} more")
    return "\n".join(lines)


def _entry(f: FileChange, path: str, clean: Callable[[str], str], name: str | None = None) -> str:
    shown = one_line(clean(f.path if name is None else name))
    status = "" if f.status in ("modified", "changed", "") else f" {f.status}"
    here = " (this file)" if f.path == path else ""
    return f"{shown} +{f.additions} -{f.deletions}{status}{here}"


def _ref(r: CrossRef, clean: Callable[[str], str]) -> str:
    where = f"{one_line(clean(r.other_path))}:{r.line}"
    text = one_line(clean(r.text))
    if r.direction == "used_by":
        verb = "still used" if r.change == "removed" else "used"
        return f"- `{r.name}` ({r.change} here) is {verb} in {where}: {text}"
    if r.change == "removed":
        return f"- `{r.name}` (used here on line {r.here}) is removed in {one_line(clean(r.other_path))}"
    return f"- `{r.name}` (used here on line {r.here}) is {r.change} in {where}: {text}"


def _refs(refs: tuple[CrossRef, ...], budget: int, count: TokenCount, clean: Callable[[str], str]) -> str:
    lines = ["Cross-file references (matched by name):"]
    used = count(lines[0])
    for r in refs:
        row = _ref(r, clean)
        cost = count(row) + 1
        if used + cost > budget:
            break
        lines.append(row)
        used += cost
    return "\n".join(lines) if len(lines) > 1 else ""
