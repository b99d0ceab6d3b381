"""The reviewer port: one file reviewed, and the walkthrough of the whole review written after."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from review_agent.patches import ParsedPatch
from review_agent.reviewers.context import PRContext
from review_agent.state.schemas import SEVERITY_ORDER, Comment, Usage, Walkthrough


@dataclass(frozen=True)
class ReviewRequest:
    path: str
    patch: ParsedPatch  # the parsed diff of this file: added lines, anchorable lines, numbered text
    content: str | None = None  # the whole file at head, when the source has it
    preferences: dict[str, Any] = field(default_factory=dict)  # the user's and repo's style rules
    learnings: tuple[str, ...] = ()  # rules retrieved from memory for this file
    language: str | None = None
    pr: PRContext | None = None  # the pull request around this file: title, description, files, links


@dataclass
class ReviewResult:
    summary: str
    comments: list[Comment]
    model_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    # set when there is no review: the model's answer could not be read, the server refused the
    # prompt, a check crashed. The file is then "failed", never saved as reviewed or reused.
    failed: str | None = None


class Reviewer(Protocol):
    """Reviews one file. Must not raise on odd content; raises ServiceUnavailable when the model
    server cannot be reached after retries, and BadInput when it refuses our credentials."""

    name: str  # e.g. "builtin" or "openai:gpt-4o-mini"; part of the reuse key of a review

    def review(self, request: ReviewRequest) -> ReviewResult: ...


@dataclass(frozen=True)
class WalkthroughFile:
    """What the walkthrough is told of one reviewed file: its review, never its diff."""

    path: str
    status: str = "modified"
    additions: int = 0
    deletions: int = 0
    summary: str = ""
    findings: tuple[Comment, ...] = ()
    failed: str | None = None  # why the file could not be reviewed


@dataclass(frozen=True)
class WalkthroughRequest:
    """The per-file summaries and findings of a finished walk, with the pull request's title and
    description: what one walkthrough is written from."""

    title: str = ""
    description: str = ""
    files: tuple[WalkthroughFile, ...] = ()
    skipped: int = 0  # files of the change that were not reviewed (binary, deleted, excluded)
    preferences: dict[str, Any] = field(default_factory=dict)  # the user's and repo's rules (tone…)

    def ranked(self) -> list[tuple[str, WalkthroughFile, Comment]]:
        """Every finding with its id (``F1``, ``F2``, … the most severe first, then in file and
        line order): how a writer names findings and a model's answer points back at them."""
        found = [(f, c, i, j) for i, f in enumerate(self.files) for j, c in enumerate(f.findings)]
        found.sort(key=lambda x: (-SEVERITY_ORDER.get(x[1].severity, 0), x[2], x[1].line, x[3]))
        return [(f"F{n}", f, c) for n, (f, c, _, _) in enumerate(found, 1)]


class WalkthroughWriter(Protocol):
    """Writes the walkthrough of a review. Must not raise on odd input (a model answer that
    cannot be read gives the deterministic walkthrough, with a note); raises ServiceUnavailable
    when the model server cannot be reached after retries, and BadInput when it refuses our
    credentials."""

    name: str

    def write_walkthrough(self, request: WalkthroughRequest) -> Walkthrough: ...
