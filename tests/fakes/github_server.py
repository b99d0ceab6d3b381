"""The fake GitHub REST API under its first name: ``from tests.fakes.github_server import
FakeGitHub, make_file`` and ``python -m tests.fakes.github_server`` keep working. The fake itself
lives in the package ``tests.fakes.github``, one module per part (see its docstring)."""

from __future__ import annotations

import sys

from tests.fakes.github import *  # noqa: F403 - this module is the package under its old name
from tests.fakes.github import __all__ as _package_all
from tests.fakes.github.builders import _as_bytes
from tests.fakes.github.standalone import load_config, main
from tests.fakes.github.state import (
    CONTENTS_API_LIMIT,
    DEFAULT_PER_PAGE,
    DOCS,
    EMPTY_BLOB_SHA,
    MAX_PER_PAGE,
    MAX_PR_FILES,
    PRIMARY_RATE_LIMIT_MESSAGE,
    REVIEW_EVENTS,
    SECONDARY_RATE_LIMIT_MESSAGE,
    Json,
    PathPattern,
    _Context,
    _HTTPError,
    _Principal,
    _Response,
)

__all__ = [
    *_package_all,
    "CONTENTS_API_LIMIT",
    "DEFAULT_PER_PAGE",
    "DOCS",
    "EMPTY_BLOB_SHA",
    "MAX_PER_PAGE",
    "MAX_PR_FILES",
    "PRIMARY_RATE_LIMIT_MESSAGE",
    "REVIEW_EVENTS",
    "SECONDARY_RATE_LIMIT_MESSAGE",
    "Json",
    "PathPattern",
    "_Context",
    "_HTTPError",
    "_Principal",
    "_Response",
    "_as_bytes",
    "load_config",
    "main",
]

if __name__ == "__main__":
    sys.exit(main())
