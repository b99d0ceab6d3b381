"""Unified diffs, parsed with unidiff, and the question every comment must answer: can GitHub
anchor it?

GitHub accepts an inline comment only on a line that appears in the file's diff hunks: an added
or context line on the RIGHT side, a removed or context line on the LEFT side. Anything else makes
GitHub refuse the *whole* review with HTTP 422, so every comment is checked here first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from review_agent.state.schemas import Comment


@dataclass(frozen=True)
class ParsedPatch:
    path: str
    added: dict[int, str]  # new-side line number -> text of every added line
    right_lines: frozenset[int]  # new-side lines GitHub can anchor (added + context)
    left_lines: frozenset[int]  # old-side lines GitHub can anchor (removed + context)
    numbered: str  # the hunks with new-side numbers, as shown to the model
    raw: str

    def can_anchor(self, comment: Comment) -> bool:
        lines = self.right_lines if comment.side == "RIGHT" else self.left_lines
        if comment.line not in lines:
            return False
        if comment.start_line is not None:
            if comment.start_line >= comment.line:
                return False
            # a range must stay inside one hunk: every line between must be anchorable
            return all(n in lines for n in range(comment.start_line, comment.line + 1))
        return True


def _with_headers(hunks: str) -> str:
    # A fixed name, not the real path: a path with a newline would break the header line, and
    # ParsedPatch.path carries the real one anyway.
    if hunks.startswith("--- ") or hunks.startswith("diff --git"):
        return hunks
    return f"--- a/file\n+++ b/file\n{hunks}"


def parse_patch(path: str, hunks: str) -> ParsedPatch:
    """Parse one file's hunks (GitHub's per-file ``patch`` field, or a file of ``git diff``)."""
    text = hunks if hunks.endswith("\n") else hunks + "\n"
    added: dict[int, str] = {}
    right: set[int] = set()
    left: set[int] = set()
    out: list[str] = []
    try:
        patch_set = PatchSet(_with_headers(text))
    except UnidiffParseError:
        patch_set = []
    for patched_file in patch_set:
        for hunk in patched_file:
            out.append(
                f"@@ -{hunk.source_start},{hunk.source_length} "
                f"+{hunk.target_start},{hunk.target_length} @@ {hunk.section_header}".rstrip()
            )
            for line in hunk:
                value = line.value.rstrip("\n")
                if line.is_added:
                    added[line.target_line_no] = value
                    right.add(line.target_line_no)
                    out.append(f"{line.target_line_no:>6} +{value}")
                elif line.is_removed:
                    left.add(line.source_line_no)
                    out.append(f"{'':>6} -{value}")
                elif line.is_context:
                    right.add(line.target_line_no)
                    left.add(line.source_line_no)
                    out.append(f"{line.target_line_no:>6}  {value}")
    return ParsedPatch(
        path=path,
        added=added,
        right_lines=frozenset(right),
        left_lines=frozenset(left),
        numbered="\n".join(out),
        raw=hunks,
    )


def split_git_diff(diff_text: str) -> dict[str, str]:
    """Split the output of ``git diff`` into each file's hunks (headers removed), by new path
    (old path for a deletion)."""
    result: dict[str, str] = {}
    for patched_file in PatchSet(diff_text):
        path = patched_file.path
        result[path] = "".join(str(h) for h in patched_file)
    return result


def split_anchored(comments: Iterable[Comment], patch: ParsedPatch) -> tuple[list[Comment], list[Comment]]:
    """Comments GitHub can anchor, and those it would refuse (to be folded into the summary)."""
    anchored: list[Comment] = []
    stray: list[Comment] = []
    for c in comments:
        (anchored if patch.can_anchor(c) else stray).append(c)
    return anchored, stray


def fold_into_summary(summary: str, stray: list[Comment]) -> str:
    """Keep what the reviewer said about lines outside the diff, in the file summary."""
    if not stray:
        return summary
    lines = [summary.rstrip(), "", "Notes on lines outside the diff:"]
    for c in stray:
        where = f"line {c.line}" if c.line > 0 else "the file"
        lines.append(f"- ({c.severity}) {where}: {c.body.strip()}")
    return "\n".join(lines).strip()
