"""What a verified delivery asks for: a pure function of the event name and its payload.

Kept apart from HTTP and SQL so that every rule (which actions review, who may command, what
bots may do) is a plain function call to test, and the receiver stays "verify, dedupe, enqueue".

Rules:

* ``pull_request`` opened / reopened / synchronize / ready_for_review: review the head (a draft
  waits for ready_for_review); closed: cancel what is pending for the pull request;
* ``issue_comment`` created on a pull request by an allowed author association (OWNER, MEMBER,
  COLLABORATOR by default): ``/review``, ``/review fresh``, ``/learn TEXT``, ``/status``. A
  command from anyone else is ignored entirely: no job, no reply;
* ``installation`` / ``installation_repositories``: bookkeeping of the repositories served;
* anything sent by a bot (this App included) is ignored, so the App never answers itself;
* ``ping``, other actions and ordinary comments: acknowledged, nothing else. Review-comment
  replies and reactions need no job: the next review of the pull request reads them and turns
  dismissals into learnings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from review_agent.worker.queue import ReviewJob

REVIEW_ACTIONS = frozenset({"opened", "reopened", "synchronize", "ready_for_review"})
DEFAULT_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
_COMMAND = re.compile(r"^/(review|learn|status)\b[ \t]*(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class Ignore:
    reason: str


@dataclass(frozen=True)
class Review:
    job: ReviewJob


@dataclass(frozen=True)
class Cancel:
    repository: str
    number: int


@dataclass(frozen=True)
class Command:
    """``/learn`` or ``/status``: run by a worker, which reads the comment by its id."""

    name: str  # "learn" | "status"
    host: str
    scheme: str
    repository: str
    number: int
    comment_id: int
    delivery_id: str
    installation_id: int | None

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "command": self.name,
            "host": self.host,
            "scheme": self.scheme,
            "repository": self.repository,
            "number": self.number,
            "comment_id": self.comment_id,
            "delivery_id": self.delivery_id,
            "installation_id": self.installation_id,
        }


@dataclass(frozen=True)
class Installation:
    """Bookkeeping: an installation and the repositories it added (active) or removed."""

    installation_id: int
    account: str
    active: bool
    host: str
    scheme: str
    added: tuple[str, ...] = field(default_factory=tuple)
    removed: tuple[str, ...] = field(default_factory=tuple)


Action = Ignore | Review | Cancel | Command | Installation


def parse_associations(text: str) -> frozenset[str]:
    """REVIEW_AGENT_COMMAND_ASSOCIATIONS: a comma-separated list of author associations."""
    return frozenset(p.strip().upper() for p in text.split(",") if p.strip())


def _host_of(url: str | None) -> tuple[str, str]:
    parts = urlsplit(url or "")
    return (parts.netloc.lower() or "github.com", parts.scheme or "https")


def _installation_id(payload: dict[str, Any]) -> int | None:
    inst = payload.get("installation") or {}
    value = inst.get("id")
    return int(value) if isinstance(value, int) else None


def is_bot(payload: dict[str, Any]) -> bool:
    sender = payload.get("sender") or {}
    login = str(sender.get("login") or "")
    return sender.get("type") == "Bot" or login.endswith("[bot]")


def repository_of(payload: dict[str, Any]) -> str | None:
    repo = payload.get("repository") or {}
    name = repo.get("full_name")
    return name if isinstance(name, str) and "/" in name else None


def route(
    event: str,
    payload: dict[str, Any],
    delivery_id: str,
    associations: frozenset[str] = DEFAULT_ASSOCIATIONS,
) -> Action:
    """The one thing this delivery asks for."""
    if event == "ping":
        return Ignore("ping")
    if event in ("installation", "installation_repositories"):
        return _installation(event, payload)
    if is_bot(payload):
        return Ignore("sent by a bot")
    if event == "pull_request":
        return _pull_request(payload, delivery_id)
    if event == "issue_comment":
        return _issue_comment(payload, delivery_id, associations)
    if event == "pull_request_review_comment":
        return Ignore("review comments are read at the next review of the pull request")
    return Ignore(f"event {event or '(none)'} is not handled")


def _pull_request(payload: dict[str, Any], delivery_id: str) -> Action:
    action = payload.get("action")
    pr = payload.get("pull_request") or {}
    repository = repository_of(payload)
    number = payload.get("number") or pr.get("number")
    if repository is None or not isinstance(number, int):
        return Ignore("no repository or pull request number")
    if action == "closed":
        return Cancel(repository, number)
    if action not in REVIEW_ACTIONS:
        return Ignore(f"pull_request {action} needs no review")
    if pr.get("draft") and action != "ready_for_review":
        return Ignore("draft pull request: reviewed when marked ready")
    head_sha = str((pr.get("head") or {}).get("sha") or "")
    host, scheme = _host_of((payload.get("repository") or {}).get("html_url") or pr.get("html_url"))
    return Review(
        ReviewJob(
            host=host,
            scheme=scheme,
            repository=repository,
            number=number,
            head_sha=head_sha,
            delivery_id=delivery_id,
            installation_id=_installation_id(payload),
        )
    )


def _issue_comment(payload: dict[str, Any], delivery_id: str, associations: frozenset[str]) -> Action:
    if payload.get("action") != "created":
        return Ignore(f"issue_comment {payload.get('action')} needs nothing")
    issue = payload.get("issue") or {}
    comment = payload.get("comment") or {}
    if not issue.get("pull_request"):
        return Ignore("a comment on an issue, not a pull request")
    body = str(comment.get("body") or "").strip()
    m = _COMMAND.match(body.splitlines()[0].strip()) if body else None
    if m is None:
        return Ignore("an ordinary comment")
    if str(comment.get("author_association") or "").upper() not in associations:
        return Ignore("a command from someone who is not a member")
    repository = repository_of(payload)
    number = issue.get("number")
    comment_id = comment.get("id")
    if repository is None or not isinstance(number, int) or not isinstance(comment_id, int):
        return Ignore("no repository, pull request number or comment id")
    host, scheme = _host_of((payload.get("repository") or {}).get("html_url") or issue.get("html_url"))
    name, rest = m.group(1).lower(), m.group(2).strip()
    if name == "review":
        if rest and rest.lower() != "fresh":
            return Ignore(f"unknown /review option {rest[:20]!r}")
        return Review(
            ReviewJob(
                host=host,
                scheme=scheme,
                repository=repository,
                number=number,
                head_sha="",  # a comment does not name the head: the worker reviews the current one
                delivery_id=delivery_id,
                installation_id=_installation_id(payload),
                fresh=rest.lower() == "fresh",
            )
        )
    if name == "learn" and not rest:
        return Ignore("/learn without text")
    return Command(
        name=name,
        host=host,
        scheme=scheme,
        repository=repository,
        number=number,
        comment_id=comment_id,
        delivery_id=delivery_id,
        installation_id=_installation_id(payload),
    )


def _installation(event: str, payload: dict[str, Any]) -> Action:
    inst = payload.get("installation") or {}
    inst_id = inst.get("id")
    if not isinstance(inst_id, int):
        return Ignore("no installation id")
    account = inst.get("account") or {}
    host, scheme = _host_of(account.get("html_url") or inst.get("html_url"))
    action = payload.get("action")

    def names(key: str) -> tuple[str, ...]:
        return tuple(
            r["full_name"] for r in payload.get(key) or [] if isinstance(r, dict) and r.get("full_name")
        )

    if event == "installation":
        active = action not in ("deleted", "suspend")
        added = names("repositories") if active else ()
        removed = names("repositories") if not active else ()
    else:
        active, added, removed = True, names("repositories_added"), names("repositories_removed")
    return Installation(
        installation_id=inst_id,
        account=str(account.get("login") or ""),
        active=active,
        host=host,
        scheme=scheme,
        added=added,
        removed=removed,
    )
