"""The publisher port: what the service calls to put a finished review where it belongs."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

from review_agent.publish.report import ReviewReport


class PublishResult(BaseModel):
    """What one ``publish`` call did; plain JSON (it is stored in the checkpoint)."""

    review_id: int | None = None  # the review this run posted, else the one holding its content
    review_url: str | None = None
    comments_posted: int = 0  # comments this run put on the PR (inline or in a review body)
    comments_already_there: int = 0  # found (by fingerprint) before this run posted anything
    moved_to_body: int = 0  # of those posted by this run, written in a review body (no diff line)
    read_only: bool = False
    message: str = ""  # one line for the user: what was posted, where, and what was there


class Publisher(Protocol):
    def publish(self, report: ReviewReport, *, event: str = "COMMENT") -> PublishResult:
        """Post what of ``report`` is not there yet. ``event`` (COMMENT, APPROVE,
        REQUEST_CHANGES) comes from the user, never from the review's text."""
        ...
