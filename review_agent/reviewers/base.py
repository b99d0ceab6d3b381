"""The reviewer port."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from review_agent.patches import ParsedPatch
from review_agent.reviewers.context import PRContext
from review_agent.state.schemas import Comment, Usage


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
