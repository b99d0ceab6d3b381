"""Test data for the fake GitHub: changed-file entries built from a path and its hunks, and an
independent parser of diff positions (so the fake is a real oracle of what GitHub accepts)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------------------------
# helpers to build test data


def git_blob_sha(data: bytes) -> str:
    """The blob id git (and GitHub) gives these bytes, so that fake SHAs behave like real ones."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _as_bytes(content: str | bytes) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def count_patch(patch: str | None) -> tuple[int, int]:
    """(additions, deletions) of a patch, counted the way GitHub counts them."""
    if not patch:
        return 0, 0
    adds = dels = 0
    for line in patch.splitlines():
        if line.startswith("+") and not line.startswith("+++ "):
            adds += 1
        elif line.startswith("-") and not line.startswith("--- "):
            dels += 1
    return adds, dels


def make_file(
    path: str,
    patch: str | None = None,
    *,
    status: str | None = None,
    content: str | bytes | None = None,
    sha: str | None = None,
    previous_filename: str | None = None,
    additions: int | None = None,
    deletions: int | None = None,
    symlink: str | None = None,
) -> dict[str, Any]:
    """One entry of ``GET /pulls/{n}/files`` built from a path and its hunks.

    ``symlink`` makes the file a symbolic link to that target at head (see ``symlink_patch``
    for the patch GitHub lists for one).

    ``content`` is the file's full content at head: it fixes ``sha`` (the real blob id) and is
    served by the contents and blobs APIs once the entry is given to ``add_pr`` (the key is not
    part of the listing). A binary file is a file with ``patch=None`` and no line counts, which is
    exactly how GitHub lists one.
    """
    adds, dels = count_patch(patch)
    adds = adds if additions is None else additions
    dels = dels if deletions is None else deletions
    if status is None:
        status = "renamed" if previous_filename else "modified"
    if sha is None and symlink is not None:
        sha = git_blob_sha(symlink.encode())
    if sha is None:
        if content is not None:
            sha = git_blob_sha(_as_bytes(content))
        else:
            sha = git_blob_sha(f"{path}\n{patch}".encode())
    entry: dict[str, Any] = {
        "filename": path,
        "status": status,
        "sha": sha,
        "additions": adds,
        "deletions": dels,
        "changes": adds + dels,
    }
    if patch is not None:
        entry["patch"] = patch
    if previous_filename is not None:
        entry["previous_filename"] = previous_filename
    if content is not None:
        entry["content"] = content
    if symlink is not None:
        entry["symlink"] = symlink
    return entry


def symlink_patch(old: str | None, new: str | None) -> str:
    """The patch GitHub lists for a symbolic link: its target is the one line, without a
    trailing newline, on each side where it is a link."""
    no_newline = "\\ No newline at end of file"
    head = f"@@ -{'1' if old is not None else '0,0'} +{'1' if new is not None else '0,0'} @@"
    lines = [head]
    if old is not None:
        lines += [f"-{old}", no_newline]
    if new is not None:
        lines += [f"+{new}", no_newline]
    return "\n".join(lines)


def added_file_patch(lines: Iterable[str]) -> str:
    """The hunk GitHub shows for a new file with these lines (a convenience for tests)."""
    body = list(lines)
    return f"@@ -0,0 +1,{len(body)} @@\n" + "\n".join(f"+{line}" for line in body)


# --------------------------------------------------------------------------------------------
# diff positions, parsed independently of review_agent.patches so the fake is a real oracle

_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class DiffLine:
    """One line of a patch: its position (GitHub's legacy ``position``) and where it anchors."""

    position: int
    hunk: int
    kind: str  # "+", "-", " ", "@" (a later hunk header) or "\\"
    old: int | None  # line on the LEFT side, if any
    new: int | None  # line on the RIGHT side, if any
    text: str


@dataclass(frozen=True)
class DiffMap:
    """Which lines of a file GitHub can anchor a comment to, per side and per hunk."""

    lines: tuple[DiffLine, ...]
    hunk_texts: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, patch: str | None) -> DiffMap:
        if not patch:
            return cls((), ())
        out: list[DiffLine] = []
        hunks: list[list[str]] = []
        old = new = 0
        position = -1
        for raw in patch.split("\n"):
            m = _HUNK_HEADER.match(raw)
            if m:
                old, new = int(m.group(1)), int(m.group(3))
                hunks.append([raw])
                position += 1
                if position > 0:
                    out.append(DiffLine(position, len(hunks) - 1, "@", None, None, raw))
                continue
            if not hunks:
                continue  # --- / +++ headers or garbage before the first hunk
            position += 1
            hunks[-1].append(raw)
            h = len(hunks) - 1
            if raw.startswith("+"):
                out.append(DiffLine(position, h, "+", None, new, raw))
                new += 1
            elif raw.startswith("-"):
                out.append(DiffLine(position, h, "-", old, None, raw))
                old += 1
            elif raw.startswith("\\"):
                out.append(DiffLine(position, h, "\\", None, None, raw))
            else:
                out.append(DiffLine(position, h, " ", old, new, raw))
                old += 1
                new += 1
        # a trailing newline in the patch text is not a context line
        if out and out[-1].text == "" and out[-1].kind == " ":
            out.pop()
            hunks[-1].pop()
        return cls(tuple(out), tuple(tuple(h) for h in hunks))

    def find(self, side: str, line: int) -> DiffLine | None:
        for d in self.lines:
            if (side == "RIGHT" and d.new == line) or (side == "LEFT" and d.old == line):
                return d
        return None

    def at_position(self, position: int) -> DiffLine | None:
        for d in self.lines:
            if d.position == position and d.kind in "+- ":
                return d
        return None

    def hunk_until(self, target: DiffLine) -> str:
        """GitHub's ``diff_hunk`` of a comment: its hunk, from the header down to its line."""
        header = self.hunk_texts[target.hunk][0]
        body = [d.text for d in self.lines if d.hunk == target.hunk and d.kind != "@"]
        upto = [d for d in self.lines if d.hunk == target.hunk and d.kind != "@"].index(target)
        return "\n".join([header, *body[: upto + 1]])
