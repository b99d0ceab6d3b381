"""How the review reaches the cross-thread memory (docs/architecture.md, "State":
environmental knowledge): the preferences loaded once per review, the learnings recalled per
file, and the dismissals on a PR turned into learnings. Each is handed to the graph as a small
function (a port), so the graph never knows which store or embedding is behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from langgraph.store.base import BaseStore

from review_agent.errors import ReviewAgentError
from review_agent.graph.build import PreferenceLoader
from review_agent.repo_config import FILENAME as REPO_CONFIG_FILE
from review_agent.repo_config import RepoConfig, parse_repo_config
from review_agent.sources.base import ResolvedTarget, Source
from review_agent.storage.memory import Learnings
from review_agent.storage.preferences import Preferences

log = logging.getLogger(__name__)


class Listener(Protocol):  # the part of service.ProgressListener used here
    def info(self, message: str) -> None: ...


def learn_from_dismissals(
    source: Source, learnings: Learnings, target: ResolvedTarget, listener: Listener
) -> int:
    """Findings people dismissed on this PR (👎 or a "dismiss" reply) become repository learnings
    before a new review of it starts. Feedback helps; it never stops a review."""
    from review_agent.publish.feedback import dismissed_findings

    try:
        dismissals = dismissed_findings(source)
    except Exception as exc:
        log.warning("could not read feedback on earlier comments: %s", str(exc).splitlines()[0])
        return 0
    for d in dismissals:
        learnings.add(
            ("repo", target.repo_slug or ""),
            f"Dismissed on {d.path}, do not report again: {d.finding[:300]}",
            {"by": d.by, "pr": target.display, "path": d.path, "via": d.how, "dismissed_finding": d.finding},
        )
    if dismissals:
        listener.info(f"learned from {len(dismissals)} dismissed finding(s) on this pull request")
    return len(dismissals)


def learning_scopes(user: str | None, target: ResolvedTarget) -> list[tuple[str, str]]:
    scopes: list[tuple[str, str]] = []
    if user:
        scopes.append(("user", user))
    if target.repo_slug:
        scopes.append(("repo", target.repo_slug))
    return scopes


def recaller(
    learnings: Learnings, scopes: list[tuple[str, str]]
) -> Callable[[str, str], tuple[list[str], list[str]]]:
    has_any = learnings.any(scopes)
    warned: list[bool] = []

    def recall(path: str, query: str) -> tuple[list[str], list[str]]:
        # Memory helps a review; it must never stop one. A failing embedding server costs the
        # learnings of this run (with one warning), not the review.
        try:
            found = learnings.search(scopes, query, limit=10) if has_any else []
        except Exception as exc:
            if not warned:
                warned.append(True)
                log.warning("learnings unavailable for this review: %s", str(exc).splitlines()[0])
            return [], []
        # A dismissal says "not this, here": it applies to the file it was made on. Broader
        # rules are taught with `review-agent learn`.
        here = [lr for lr in found if not lr.dismissed_finding or lr.origin.get("path") == path]
        rules = [lr.text for lr in here]
        dismissed = [lr.dismissed_finding for lr in here if lr.dismissed_finding]
        return rules, dismissed

    return recall


def read_repo_config(source: Source) -> tuple[RepoConfig, str | None]:
    try:
        text = source.get_content(REPO_CONFIG_FILE)
    except ReviewAgentError:
        text = None
    return parse_repo_config(text)


def preference_loader(repo_config: RepoConfig, problem: str | None) -> PreferenceLoader:
    """The organisation's defaults, the repository's rules (.review-agent.toml) over them, and
    the user's own preferences over both."""

    def load(store: BaseStore, user: str | None, target: ResolvedTarget) -> dict[str, Any]:
        prefs: dict[str, Any] = {}
        if target.repo_slug:  # organisation defaults, then the repository, then the user
            prefs.update(Preferences(store).all(target.repo_slug.split("/")[0], scope="org"))
        prefs.update(repo_config.as_preferences())
        if user:
            prefs.update(Preferences(store).all(user))
        if problem:
            prefs["_notes"] = [problem]
        return prefs

    return load
