"""The pull request around one file: what every file's prompt is told about the whole change.

A file reviewed alone cannot see that the function it changes is called from another changed
file, or that it calls a function another file just changed. This module computes, once per
change, what each file's prompt carries besides its own diff:

- the title and the description (a local review: the head commit's subject and body);
- every changed file with the size of its change;
- cross-file references: the names this file's hunks define, change or remove that other
  changed files use (with the line of one use), and the reverse: the names its added lines use
  that other changed files' hunks define or change (with the line of that definition), and
  the names it uses anywhere that another changed file removed.

Everything here is data from the author of the change, and the prompt fences it as such. It is
built from plain values (a frozen dataclass of strings and numbers) so that a caller may keep
it in a checkpoint with :meth:`PRContext.to_dict`.

Names are matched by spelling: cheap, language-agnostic and sometimes wrong (two unrelated
``load`` functions). Names too short or too common to mean anything are ignored, the most
specific matches come first, and only ``MAX_REFS`` are kept per file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from review_agent.reviewers.symbols import SourceIndex, declared_names, index_source, interesting

MAX_REFS = 10  # cross-file references per file
MAX_REF_TEXT = 160  # characters of the line shown with a reference
MAX_INDEXED_FILES = 500  # beyond this many changed files, no cross-file references are computed

_IMPORTS = ("import ", "from ", "#include", "use ", "require", "using ")

Direction = Literal["used_by", "uses"]
Change = Literal["changed", "removed"]


class ChangedFileLike(Protocol):
    """What is read of a changed file (the source port's ``ChangedFile`` has it all)."""

    @property
    def path(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def patch(self) -> str | None: ...
    @property
    def additions(self) -> int: ...
    @property
    def deletions(self) -> int: ...


@dataclass(frozen=True)
class FileChange:
    path: str
    additions: int = 0
    deletions: int = 0
    status: str = "modified"


@dataclass(frozen=True)
class CrossRef:
    """One link between this file's change and another changed file.

    ``used_by``: ``name`` is defined, changed or removed (``change``) by this file's hunks, and
    ``other_path`` uses it on ``line`` (shown as ``text``). ``uses``: this file's line ``here``
    uses ``name``, which ``other_path``'s hunks define or change on ``line`` (``here`` is an
    added line), or removed (``here`` is any line: the caller left behind; ``line`` is 0).
    """

    name: str
    direction: Direction
    change: Change
    other_path: str
    line: int
    text: str
    here: int | None = None


@dataclass(frozen=True)
class PRContext:
    title: str = ""
    description: str = ""
    files: tuple[FileChange, ...] = ()
    refs: Mapping[str, tuple[CrossRef, ...]] = field(default_factory=dict)

    def refs_for(self, path: str) -> tuple[CrossRef, ...]:
        return tuple(self.refs.get(path, ()))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (strings, numbers, lists, dicts), fit for a checkpoint."""
        return {
            "title": self.title,
            "description": self.description,
            "files": [vars(f).copy() for f in self.files],
            "refs": {path: [vars(r).copy() for r in refs] for path, refs in self.refs.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PRContext:
        return cls(
            title=str(data.get("title") or ""),
            description=str(data.get("description") or ""),
            files=tuple(FileChange(**f) for f in data.get("files") or ()),
            refs={
                path: tuple(CrossRef(**r) for r in refs) for path, refs in (data.get("refs") or {}).items()
            },
        )


@dataclass(frozen=True)
class FileSymbols:
    """What one changed file's hunks touch, and what the file uses, for matching across files."""

    path: str
    changed: Mapping[str, tuple[Change, int, str]]  # name -> (change, line at head or 0, line text)
    used: Mapping[str, tuple[int, str]]  # name -> (first line using it, its text)
    used_on_added: Mapping[str, int]  # name -> first added line that uses it


EMPTY_SYMBOLS = FileSymbols("", {}, {}, {})


def build_pr_context(
    title: str,
    description: str,
    files: Iterable[ChangedFileLike],
    contents: Callable[[str], str | None],
) -> PRContext:
    """The context every file's prompt carries. ``contents(path)`` is the file's text at head
    (None when removed, binary or unreadable); it is called once per changed code file."""
    files = list(files)
    changes = tuple(FileChange(f.path, f.additions, f.deletions, f.status) for f in files)
    symbols: dict[str, FileSymbols] = {}
    if len(files) <= MAX_INDEXED_FILES:
        for f in files:
            symbols[f.path] = file_symbols(f, None if f.status == "removed" else contents(f.path))
    refs = {f.path: cross_file_refs(f.path, symbols) for f in files}
    return PRContext(
        title=title, description=description, files=changes, refs={k: v for k, v in refs.items() if v}
    )


def file_symbols(changed: ChangedFileLike, content: str | None) -> FileSymbols:
    """Read one changed file: the names its hunks define, change or remove, and its uses."""
    if not changed.patch:
        return FileSymbols(changed.path, {}, {}, {})
    added, removed, touched = _hunk_lines(changed.patch)
    index: SourceIndex | None = index_source(changed.path, content) if content else None
    lines = content.split("\n") if content else []

    def text_of(n: int) -> str:
        return _shown(lines[n - 1]) if 0 < n <= len(lines) else ""

    found: dict[str, tuple[Change, int, str]] = {}
    if index is not None:
        for line in sorted(touched):
            inner = index.enclosing(line)
            if inner is not None and interesting(inner.name) and inner.name not in found:
                found[inner.name] = ("changed", inner.start, text_of(inner.start))
        # a new or changed definition whose header is itself on an added line
        for d in index.definitions:
            if d.start in added and interesting(d.name) and d.name not in found:
                found[d.name] = ("changed", d.start, text_of(d.start))
    defined_now = {d.name for d in index.definitions} if index is not None else set()
    for name in sorted(declared_names(changed.path, "\n".join(removed))):
        if name not in defined_now and name not in found:
            found[name] = ("removed", 0, "")
    used: dict[str, tuple[int, str]] = {}
    on_added: dict[str, int] = {}
    if index is not None:
        for name, at in index.uses.items():
            # a call says more than the import that brings the name in
            shown = next((n for n in at if not text_of(n).startswith(_IMPORTS)), at[0])
            used[name] = (shown, text_of(shown))
            here = next((n for n in at if n in added), None)
            if here is not None:
                on_added[name] = here
    return FileSymbols(changed.path, found, used, on_added)


def cross_file_refs(path: str, symbols: Mapping[str, FileSymbols]) -> tuple[CrossRef, ...]:
    """The cross-file references of one file, given every changed file's symbols: the most
    specific first (a name found in one other file before a name found in ten), at most
    ``MAX_REFS``, alternating between both directions so neither crowds the other out."""
    mine = symbols.get(path, EMPTY_SYMBOLS)
    others = [s for p, s in symbols.items() if p != path]
    used_by: list[tuple[int, CrossRef]] = []
    for name, (change, _, _) in mine.changed.items():
        users = [s for s in others if name in s.used]
        for s in users:
            line, text = s.used[name]
            used_by.append((len(users), CrossRef(name, "used_by", change, s.path, line, text)))
    uses: list[tuple[int, CrossRef]] = []
    own = set(mine.changed)
    for name, (first, _) in mine.used.items():
        if name in own:
            continue
        # a name another file changed, used on an added line; or one it removed, used anywhere
        here = mine.used_on_added.get(name)
        for s in others:
            change, line, text = s.changed.get(name, ("", 0, ""))
            if change == "changed" and here is not None:
                uses.append((0, CrossRef(name, "uses", "changed", s.path, line, text, here)))
            elif change == "removed":
                uses.append((0, CrossRef(name, "uses", "removed", s.path, 0, "", here or first)))
    spread = {name: sum(1 for _, r in uses if r.name == name) for name in {r.name for _, r in uses}}
    uses = [(spread[r.name], r) for _, r in uses]
    # removed names first: a caller left behind is the likeliest break
    used_by.sort(key=lambda x: (x[1].change != "removed", x[0], x[1].name, x[1].other_path))
    uses.sort(key=lambda x: (x[1].change != "removed", x[0], x[1].name, x[1].other_path))
    out: list[CrossRef] = []
    a, b = [r for _, r in used_by], [r for _, r in uses]
    while (a or b) and len(out) < MAX_REFS:
        if a:
            out.append(a.pop(0))
        if b and len(out) < MAX_REFS:
            out.append(b.pop(0))
    return tuple(out)


def _shown(line: str) -> str:
    text = line.strip()
    return text if len(text) <= MAX_REF_TEXT else text[: MAX_REF_TEXT - 1] + "…"


def _hunk_lines(patch: str) -> tuple[set[int], list[str], set[int]]:
    """(new-side numbers of added lines, text of removed lines, new-side lines the hunks touch:
    added lines and the lines where something was removed)."""
    text = patch if patch.endswith("\n") else patch + "\n"
    if not text.startswith(("--- ", "diff --git")):
        text = f"--- a/file\n+++ b/file\n{text}"
    try:
        parsed = PatchSet(text)
    except UnidiffParseError:
        return set(), [], set()
    added: set[int] = set()
    removed: list[str] = []
    touched: set[int] = set()
    for patched in parsed:
        for hunk in patched:
            position = hunk.target_start
            for line in hunk:
                if line.is_added:
                    added.add(line.target_line_no)
                    touched.add(line.target_line_no)
                    position = line.target_line_no + 1
                elif line.is_removed:
                    removed.append(line.value.rstrip("\n"))
                    touched.add(max(1, position))
                elif line.is_context:
                    position = line.target_line_no + 1
    return added, removed, touched
