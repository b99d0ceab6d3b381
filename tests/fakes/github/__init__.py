"""A stateful fake of the GitHub REST API, served over real HTTP on 127.0.0.1.

The tests allow exactly one kind of double: a small server at the network boundary. The real
PyGithub (and anything else that speaks HTTP) talks to this server exactly as it would talk to
api.github.com or a GitHub Enterprise host, so what the tests check is what our code does on the
wire: which requests it makes, how it pages, how it reacts to errors, and — most important for
posting exactly once (docs/architecture.md, "Exactly once") — how many reviews and comments
really landed.

What it models, and why:

* pull requests, their changed files (paginated like GitHub, with ``Link`` headers, capped at
  3000 files), file contents at a ref (contents API, with GitHub's 1 MB cut-over to the git blobs
  API) and commits, because the GitHub source reads all of these;
* reviews, review comments, issue comments and reactions, with GitHub's validation of inline
  comments: a comment on a line that is not in the file's diff hunks (for its side) makes GitHub
  refuse the *whole* review with 422, so the publisher must never send one;
* tokens (401 "Bad credentials", read-only tokens get 403 on writes), unknown repositories or pull
  requests (404), and a stateful primary rate limit with the usual ``x-ratelimit-*`` headers;
* GitHub Apps: JWTs (RS256, verified with the App's public key) on ``/app``,
  ``/app/installations``, ``POST /app/installations/{id}/access_tokens`` and
  ``/repos/{o}/{r}/installation``; installation tokens that expire, that see only their
  installation's repositories (another's private repository is 404, a public one read-only),
  that list them at ``/installation/repositories``, and that get 403 from ``GET /user``;
* scripted faults per method + path: 5xx N times, rate limits (403 secondary with
  ``Retry-After``, 403/429 primary with ``x-ratelimit-reset``), delays, dropped connections and
  "landed but failed" writes (the write is applied, then an error is returned), because those are
  the situations in which a naive client posts twice.

Everything it receives is recorded (minus the ``Authorization`` header), so a test can assert
"posted exactly once" on what the server saw rather than on what the client believes.

It is also runnable on its own (``python -m tests.fakes.github_server --config pr.json``) for
tests that start the CLI in another process or container; a small control API under ``/_fake/``
exposes the recorded state and accepts faults there.

Modules: ``state`` (what it stores), ``builders`` (test data: ``make_file``, diff positions),
``base`` (lookups, pagination, JSON shapes), ``configure`` (setting it up, reading it back),
``faults`` (scripted faults, recorded requests), ``transport`` (HTTP, authentication, dispatch),
``routes_app``, ``routes_pulls``, ``routes_contents`` (the endpoints), ``server``
(``FakeGitHub``), ``standalone`` (``main``).
"""

from tests.fakes.github.builders import (
    DiffLine,
    DiffMap,
    added_file_patch,
    count_patch,
    git_blob_sha,
    make_file,
    symlink_patch,
)
from tests.fakes.github.server import FakeGitHub
from tests.fakes.github.state import (
    API_PREFIX,
    FakeApp,
    FakeInstallation,
    FakePullRequest,
    FakeRepo,
    Fault,
    RecordedRequest,
)

__all__ = [
    "API_PREFIX",
    "DiffLine",
    "DiffMap",
    "FakeApp",
    "FakeGitHub",
    "FakeInstallation",
    "FakePullRequest",
    "FakeRepo",
    "Fault",
    "RecordedRequest",
    "added_file_patch",
    "count_patch",
    "git_blob_sha",
    "make_file",
    "symlink_patch",
]
