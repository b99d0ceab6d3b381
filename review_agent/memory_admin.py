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
def open_memory(settings: Settings) -> Iterator[Memory]:
    with open_storage(settings) as storage:
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
    """Add what an export holds (idempotent: a learning is keyed by its text)."""
    if not isinstance(data, dict) or data.get("version") != EXPORT_VERSION:
        raise BadInput(f"not a review-agent memory export (version {EXPORT_VERSION} expected)")
    n_prefs = n_learn = 0
    try:
        for entry in data.get("preferences", []):
            for key, value in dict(entry["values"]).items():
                memory.preferences.set(str(entry["user"]), str(key), value)
                n_prefs += 1
        for entry in data.get("learnings", []):
            kind, name = entry["scope"]
            memory.learnings.add((str(kind), str(name)), str(entry["text"]), dict(entry.get("origin") or {}))
            n_learn += 1
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"malformed memory export: {exc!r}") from exc
    return n_prefs, n_learn
