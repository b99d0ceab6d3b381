"""The source port: what the graph needs to know about a change, and nothing about how it is read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ResolvedTarget:
    """A target after it was looked up: enough to name its thread and head the report."""

    kind: str  # "github" or "local"
    display: str  # what the user typed, normalised (a PR URL or an absolute path)
    head_sha: str
    base_sha: str
    title: str = ""
    # the pull request's body on GitHub, the head commit's body locally (whose subject is the
    # title): data from the change's author, fenced in every prompt like the diff
    description: str = ""
    author: str | None = None  # PR author login (GitHub) or None
    repo_slug: str | None = None  # "OWNER/REPO" for GitHub
    host: str | None = None  # "github.com" or an Enterprise host
    number: int | None = None  # PR number
    path: str | None = None  # local repository path
    base_ref: str | None = None
    head_ref: str | None = None
    changed_files: int | None = None  # what GitHub says the PR has, to detect truncation
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. "file list truncated at 3000"


@dataclass(frozen=True)
class ChangedFile:
    path: str
    status: str  # added | modified | removed | renamed | copied | changed | unchanged
    patch: str | None  # unified-diff hunks for this file (no ---/+++ headers), None if binary/too large
    blob_sha: str | None = None  # blob of the file at head (None when removed)
    additions: int = 0
    deletions: int = 0
    is_binary: bool = False
    previous_path: str | None = None
    # A symbolic link is reviewed as one ("target changed from A to B"), never read as source:
    # its "content" is a path, and the file it names may lie outside the change or the repository.
    is_symlink: bool = False
    symlink_target: str | None = None  # at head (None when removed, or no longer a link)
    previous_symlink_target: str | None = None  # at base (None when added, or not a link then)
    # why ``patch`` is None for a file that is not binary, in words for the report: "renamed
    # without changes", "mode change only", "empty file", "diff too large for the GitHub API"
    no_diff_reason: str | None = None


class Source(Protocol):
    """A change to review. Implementations must be deterministic for a given head SHA, because a
    resumed process rebuilds the source and asks it again for the same files."""

    def resolve(self) -> ResolvedTarget:
        """Look the target up. Raises BadInput (unknown PR, bad token, not a repository) or
        ServiceUnavailable (host unreachable after retries)."""
        ...

    def list_files(self) -> list[ChangedFile]:
        """Every changed file of the change, in a stable order."""
        ...

    def get_file(self, path: str) -> ChangedFile | None:
        """One changed file by path (its patch included), or None if it is not part of the change."""
        ...

    def get_content(self, path: str) -> str | None:
        """The file's full text at the head commit, or None (binary, missing, too large)."""
        ...

    def get_base_content(self, path: str) -> str | None:
        """The file's full text at the base commit (the branch the change goes into), or None.
        What a change must not choose for itself is read here: the repository's rules."""
        ...
