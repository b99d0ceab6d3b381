"""How the review reaches the cross-thread memory (docs/architecture.md, "State": environmental
knowledge): the
preferences loaded once per review, the learnings recalled per file, and the dismissals on a PR
turned into learnings. Each is handed to the graph as a small function (a port), so the graph
never knows which store or embedding is behind it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from langgraph.store.base import BaseStore

from review_agent.errors import BadInput, ReviewAgentError
from review_agent.graph.build import PreferenceLoader
from review_agent.repo_config import FILENAME as REPO_CONFIG_FILE
from review_agent.repo_config import RepoConfig, parse_repo_config
from review_agent.sources.base import ResolvedTarget, Source
from review_agent.storage.memory import Learnings, Recalled
from review_agent.storage.preferences import Preferences
from review_agent.wording import plural

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
    learned = 0
    for d in dismissals:
        try:
            learnings.add(
                ("repo", target.repo_slug or ""),
                f"Dismissed on {d.path[:300]}, do not report again: {d.finding[:300]}",
                {
                    "by": d.by,
                    "pr": target.display,
                    "path": d.path,
                    "via": d.how,
                    "dismissed_finding": d.finding[:2000],
                },
            )
            learned += 1
        except BadInput as exc:  # e.g. the finding quotes a credential: memory refuses it
            log.warning("a dismissed finding on %s was not learned: %s", d.path[:300], exc)
    if learned:
        listener.info(f"learned from {plural(learned, 'dismissed finding')} on this pull request")
    return learned


def learning_scopes(user: str | None, target: ResolvedTarget) -> list[tuple[str, str]]:
    scopes: list[tuple[str, str]] = []
    if user:
        scopes.append(("user", user))
    if target.repo_slug:
        scopes.append(("repo", target.repo_slug))
    return scopes


def recaller(learnings: Learnings, scopes: list[tuple[str, str]]) -> Callable[[str, str], Recalled]:
    """The graph's ``recall`` port: (path, the file's hunks) -> the learnings for its prompt,
    the findings dismissed on it, and their ids. The learnings in scope are read (and given
    vectors for the embedder in use, if they have none yet) on the first file, once."""
    ready: list[Callable[[str, str], Recalled]] = []
    lock = threading.Lock()  # files are reviewed in parallel: index (and embed) once

    def recall(path: str, text: str) -> Recalled:
        # Memory helps a review; it must never stop one. An unreachable embeddings server
        # costs the vector part (one warning, inside), a broken store the learnings.
        try:
            with lock:
                if not ready:
                    ready.append(learnings.recall(scopes) if learnings.any(scopes) else _nothing)
            return ready[0](path, text)
        except Exception as exc:
            with lock:
                if ready[:1] != [_nothing]:
                    log.warning("learnings unavailable for this review: %s", str(exc).splitlines()[0])
                ready[:] = [_nothing]
            return Recalled()

    return recall


def _nothing(path: str, text: str) -> Recalled:
    return Recalled()


def read_repo_config(source: Source) -> tuple[RepoConfig, str | None]:
    """The repository's rules as the base commit has them. The change's own version is data from
    its author (on a fork, anyone): read from head it could pick the model, rewrite the
    instructions or exclude every file it touches. So a change that edits the file is told that
    its version applies once merged, and what would be wrong with it."""
    try:
        text = source.get_base_content(REPO_CONFIG_FILE)
    except ReviewAgentError:
        text = None
    config, problem = parse_repo_config(text)
    notes = [f"{REPO_CONFIG_FILE} ignored: {problem}"] if problem else []
    if source.get_file(REPO_CONFIG_FILE) is not None:
        try:
            proposed = source.get_content(REPO_CONFIG_FILE)
        except ReviewAgentError:
            proposed = None
        _, proposed_problem = parse_repo_config(proposed)
        notes.append(
            f"{REPO_CONFIG_FILE} ignored as changed here: this review follows the rules at the base "
            "commit, and the change's own take effect once it is merged"
            + (f" (as written they would be refused too: {proposed_problem})" if proposed_problem else "")
        )
    return config, "; ".join(notes) or None


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
