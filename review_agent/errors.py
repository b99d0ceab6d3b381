"""Errors that end a run, each with its exit code (docs/architecture.md, "Errors and exit codes").

The CLI turns any of these into one line on stderr and its exit code; nothing else in the project
decides exit codes.
"""

from __future__ import annotations


class ReviewAgentError(Exception):
    exit_code = 1


class BadInput(ReviewAgentError):
    """The user asked for something that cannot be done as asked: fix the input and rerun."""

    exit_code = 2


class ServiceUnavailable(ReviewAgentError):
    """A backend or remote service did not answer after retries; state is saved, rerun later."""

    exit_code = 3


class FilesFailed(ReviewAgentError):
    """Some files could not be reviewed (the model's answer was unreadable, a check crashed).
    Everything else is saved, and posted when asked; the next run retries those files."""

    exit_code = 3


class Interrupted(ReviewAgentError):
    exit_code = 130


class CorruptState(ReviewAgentError):
    """Saved state that we did not write (a tampered or foreign checkpoint row): refused, never
    executed. ``--fresh`` starts the review over."""

    exit_code = 3


class BudgetExhausted(ReviewAgentError):
    """The run reached ``--max-cost``: state is saved; raise the budget and rerun to continue."""

    exit_code = 4
