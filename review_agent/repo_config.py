"""Repository-level rules: ``.review-agent.toml`` at the base commit of the change.

    # .review-agent.toml
    include = ["src/**"]            # review only these paths (globs)
    exclude = ["docs/*", "*.snap"]  # never these
    max_files = 200                 # review at most this many files (the rest are skipped, said)
    severity_threshold = "warning"  # the built-in reviewer drops findings below this; inline
                                    # comments start here (default "warning": info goes to the body)
    max_inline_comments = 25        # inline comments per review (default 25); the rest go to the body
    disabled_checks = ["todo"]      # built-in reviewer checks to turn off
    instructions = "We prefer early returns."
    model = "gpt-4o"                # the model for this repository (a --model flag still wins)

The file is read at the base commit (the branch the change goes into), never from the change:
a pull request's author, on a fork anyone, would otherwise choose the model, the instructions
and which of their own files are reviewed. A change that edits it is told so in the review's
notes, with what would be wrong with its version. A file with wrong types is reported in the
notes and ignored, never a crash; either way it can only narrow or tune the review, never post,
approve, or reach anything outside the review.
"""

from __future__ import annotations

import tomllib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FILENAME = ".review-agent.toml"


class RepoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    max_files: int | None = Field(default=None, ge=1)
    severity_threshold: Literal["info", "warning", "error"] | None = None
    max_inline_comments: int | None = Field(default=None, ge=0, le=1000)
    disabled_checks: list[str] = Field(default_factory=list)
    instructions: str | None = Field(default=None, max_length=4000)
    model: str | None = None

    def as_preferences(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude_defaults=True)


def parse_repo_config(text: str | None) -> tuple[RepoConfig, str | None]:
    """The configuration, and what makes the file unusable (then the defaults apply), in a few
    words for a note: "not valid TOML (…)" or "max_files: Input should be a valid integer"."""
    if not text:
        return RepoConfig(), None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return RepoConfig(), f"not valid TOML ({exc})"
    try:
        return RepoConfig.model_validate(data), None
    except ValidationError as exc:
        return RepoConfig(), "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()[:5]
        )
