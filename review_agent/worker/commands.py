"""``/status`` and ``/learn TEXT``, commented on a pull request by a member, run by a worker.

The job carries the comment's id only; the worker reads the comment itself (so the queue never
holds text a job could be tricked with, and a token never leaves the worker). The answer is a
comment carrying a hidden fingerprint of the command comment's id: a job retried after it
posted finds its answer already there and posts nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

from review_agent.config import Settings
from review_agent.errors import BadInput
from review_agent.github import GitHubCredentials
from review_agent.worker.auth import JobCredentials, token_credentials

log = logging.getLogger(__name__)
MAX_LEARNING = 500


def _fingerprint(kind: str, comment_id: int) -> str:
    return f"<!-- review-agent:{kind}:{comment_id} -->"


def _status_text(settings: Settings, url: str, github: GitHubCredentials | None) -> str:
    from review_agent.views import review_status

    info = review_status(url, settings, github=github)
    head = info.head_sha[:12]
    if not info.started:
        return f"review-agent: the head {head} is not reviewed yet (a review is queued on each push)."
    state = "finished" if info.finished else "in progress"
    text = f"review-agent: review of {head} {state}, {info.done}/{info.total} files done"
    if info.skipped:
        text += f", {info.skipped} skipped"
    if info.current:
        text += "; reviewing " + ", ".join(f"`{p}`" for p in info.current[:5])
    return text + "."


def run_command(credentials: JobCredentials, kwargs: dict[str, Any]) -> str:
    """Run one command (blocking: called in a worker thread); return what was done."""
    from review_agent.sources.github import GitHubSource

    settings = credentials.settings
    command = str(kwargs["command"])
    host, scheme, repository = str(kwargs["host"]), str(kwargs["scheme"]), str(kwargs["repository"])
    url = f"{scheme}://{host}/{repository}/pull/{int(kwargs['number'])}"
    comment_id = int(kwargs["comment_id"])
    installation = kwargs.get("installation_id")
    github = credentials.for_repository(host, scheme, repository, int(installation) if installation else None)
    source = GitHubSource(
        url,
        api_url=settings.github_api_url,
        credentials=github or token_credentials(settings),
        retries=settings.github_retries,
    )
    try:
        pr = source.pull_request
        mark = _fingerprint(command, comment_id)
        if any(mark in (c.body or "") for c in pr.get_issue_comments()):
            return f"/{command}: answered before"
        if command == "status":
            answer = _status_text(settings, url, github)
        elif command == "learn":
            answer = _learn(settings, pr, comment_id, repository)
        else:
            raise BadInput(f"unknown command /{command}")
        pr.create_issue_comment(f"{answer}\n\n{mark}")
    except BadInput:
        raise
    except Exception as exc:
        raise source.translate_error(exc) from exc
    return f"/{command}: answered"


def _learn(settings: Settings, pr: Any, comment_id: int, repository: str) -> str:
    from review_agent.memory_admin import open_memory

    comment = pr.get_issue_comment(comment_id)
    body = (comment.body or "").strip()
    text = body[len("/learn") :].strip() if body.lower().startswith("/learn") else ""
    if not text:
        raise BadInput("/learn needs a rule after it, e.g. `/learn prefer early returns`")
    text = " ".join(text.split())[:MAX_LEARNING]
    with open_memory(settings) as memory:
        memory.learnings.add(
            ("repo", repository), text, {"by": comment.user.login, "via": "/learn", "comment": comment_id}
        )
    return f"review-agent learned, for {repository}: {text}"
