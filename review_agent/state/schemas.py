"""Schemas of what flows through a review.

Pydantic models validate data at the edges (model output, reports). What goes into a checkpoint
is always their plain ``model_dump()`` form: dicts, lists, strings and numbers only. That keeps
checkpoints readable by any LangGraph saver and means a checkpoint never has to revive one of
our classes (nothing to unpickle, nothing a tampered row could make us execute).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

Severity = Literal["info", "warning", "error"]
Side = Literal["RIGHT", "LEFT"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "error": 2}


class Comment(BaseModel):
    """One inline finding. ``line`` is a new-side (RIGHT) line number unless ``side`` is LEFT."""

    line: int = Field(description="Line number in the new version of the file (RIGHT side).")
    side: Side = Field(default="RIGHT", description="RIGHT for added/context lines, LEFT for removed.")
    severity: Severity = Field(default="warning")
    body: str = Field(description="The finding, in Markdown, one or two sentences.")
    start_line: int | None = Field(
        default=None, description="First line of a multi-line range, if the comment spans lines."
    )
    # set by the built-in checks (e.g. ruff/S301), never by a model: hidden from its schema
    rule: SkipJsonSchema[str | None] = None


class ModelReview(BaseModel):
    """What the language model must answer for one file (its structured-output schema)."""

    summary: str = Field(description="Two or three sentences on what changed and its risks.")
    comments: list[Comment] = Field(default_factory=list)


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


FileStatus = Literal["reviewed", "failed"]


class FileReview(BaseModel):
    """The finished review of one file, as saved and reported.

    A ``failed`` review (the model's answer could not be read, the server refused the prompt, a
    check crashed) is saved so the report can say why, but it never counts as reviewed, is never
    reused by a later review, and the next run of the same review asks again."""

    path: str
    summary: str
    status: FileStatus = "reviewed"
    error: str | None = None  # why the review failed (status "failed")
    comments: list[Comment] = Field(default_factory=list)
    # findings on lines GitHub cannot anchor (outside the diff): posted in the review body, and
    # counted with their severity like any other finding
    unanchored: list[Comment] = Field(default_factory=list)
    model_calls: int = 0
    usage: Usage = Field(default_factory=Usage)
    reviewer: str = ""
    blob_sha: str | None = None
    reused: bool = False  # taken from an earlier review of the same change (another head)
    reused_from: str | None = None  # the thread id of that earlier review
    origin_thread: str | None = None  # the thread whose run asked the reviewer for this review
    cost_usd: float | None = None  # None: the model's price is unknown (or no model was used)
    suppressed: int = 0  # findings dropped because a learning (a dismissed finding) covers them
    learnings_used: int = 0
    learnings_recalled: list[str] = Field(default_factory=list)  # ids of the learnings used

    @property
    def ok(self) -> bool:
        return self.status == "reviewed"

    @property
    def findings(self) -> list[Comment]:
        """Every finding of the file, inline or not: what severities and gates count."""
        return [*self.comments, *self.unanchored]


class Skipped(BaseModel):
    path: str
    reason: str


class PlannedFile(BaseModel):
    """A file the plan will review. Holds no patch: patches are read from the source on demand,
    so the plan stays small in every checkpoint."""

    path: str
    status: str = "modified"
    blob_sha: str | None = None


class Risk(BaseModel):
    """One of the walkthrough's top risks: a finding of the review (its file, line and side, so
    the posted review can link to it) and why it matters."""

    path: str
    line: int = 0  # 0: the file as a whole
    side: Side = "RIGHT"
    severity: Severity = "warning"
    text: str


class ChangeRow(BaseModel):
    """One line of the walkthrough's change table."""

    path: str
    change: str


class Walkthrough(BaseModel):
    """What the pull request does, its top risks, a change table and an effort estimate, written
    once per review after the files (by one model call, or deterministically offline) and saved
    apart from the checkpoints."""

    overview: str
    risks: list[Risk] = Field(default_factory=list)
    changes: list[ChangeRow] = Field(default_factory=list)
    effort: int | None = Field(default=None, ge=1, le=5)  # None: not estimated (offline)
    writer: str = ""  # "builtin" or the model reviewer's name
    model_calls: int = 0
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None
    note: str | None = None  # e.g. why a model's walkthrough was replaced by the counts
    inputs: str = ""  # digest of what it was written from: the same inputs are never written again
