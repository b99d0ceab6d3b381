"""Operator actions on the cross-thread memory: preferences and learnings of users and
repositories, export and import (to move a team's memory between backends).

Every action names its scope (``--user LOGIN`` or ``--repo OWNER/REPO``); exporting everything
needs ``--all`` said out loud, so nobody reads another user's memory by accident.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from review_agent.config import Settings
from review_agent.errors import BadInput
from review_agent.storage.factory import open_storage
from review_agent.storage.memory import Learnings
from review_agent.storage.preferences import Preferences

EXPORT_VERSION = 1


@dataclass
class Memory:
    preferences: Preferences
    learnings: Learnings


@contextmanager
def open_memory(settings: Settings, *, read_only: bool = False) -> Iterator[Memory]:
    """``read_only``: listing and exporting never write (nor create a database)."""
    with open_storage(settings, read_only=read_only) as storage:
        yield Memory(Preferences(storage.store), storage.learnings())


def _unlabel(text: str) -> str:
    return text.replace("%2E", ".").replace("%25", "%")


def known_scopes(memory: Memory) -> list[tuple[str, str]]:
    store = memory.preferences.store
    scopes: set[tuple[str, str]] = set()
    for kind in ("user", "repo"):
        for ns in store.list_namespaces(prefix=(kind,), max_depth=3, limit=100_000):
            if len(ns) >= 2:
                scopes.add((kind, _unlabel(ns[1])))
    return sorted(scopes)


def export_memory(memory: Memory, scopes: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {"version": EXPORT_VERSION, "preferences": [], "learnings": []}
    for kind, name in scopes:
        if kind == "user":
            prefs = memory.preferences.all(name)
            if prefs:
                out["preferences"].append({"user": name, "values": prefs})
        for lr in memory.learnings.list((kind, name)):
            out["learnings"].append({"scope": [kind, name], "text": lr.text, "origin": lr.origin})
    return out


def import_memory(memory: Memory, data: dict[str, Any]) -> tuple[int, int]:
    """Add what an export holds (idempotent: a learning is keyed by its text). Every entry is
    checked, and the learnings embedded, before anything is written: a refused entry or an
    unreachable embeddings server leaves memory as it was."""
    if not isinstance(data, dict) or data.get("version") != EXPORT_VERSION:
        raise BadInput(f"not a review-agent memory export (version {EXPORT_VERSION} expected)")
    prefs: list[tuple[str, str, Any]] = []
    learnings: list[tuple[tuple[str, str], str, dict[str, Any]]] = []
    try:
        for entry in data.get("preferences", []):
            for key, value in dict(entry["values"]).items():
                prefs.append((str(entry["user"]), str(key), value))
        for entry in data.get("learnings", []):
            kind, name = entry["scope"]
            learnings.append(((str(kind), str(name)), str(entry["text"]), dict(entry.get("origin") or {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"malformed memory export: {type(exc).__name__} {exc}"[:300]) from exc
    for n, (user, key, value) in enumerate(prefs, 1):
        try:
            memory.preferences.check(user, key, value)
        except BadInput as exc:
            raise BadInput(f"preference {n} of the export: {exc}") from None
    for n, (scope, _text, _origin) in enumerate(learnings, 1):
        if scope[0] not in ("user", "repo"):
            raise BadInput(f"learning {n} of the export: unknown scope {scope[0][:20]!r}")
    try:
        memory.learnings.add_many(learnings)  # checked, embedded, then written
    except BadInput as exc:
        raise BadInput(f"a learning of the export: {exc}") from None
    for user, key, value in prefs:
        memory.preferences.set(user, key, value)
    return len(prefs), len(learnings)
