"""Learnings: short natural-language rules the agent keeps across reviews (DESIGN.md §3, the
environmental-knowledge layer), e.g. "don't flag missing docstrings in tests".

Namespaces: ``("user", LOGIN, "learnings")`` and ``("repo", OWNER/REPO, "learnings")``. Each
learning is stored once (its key is a digest of its text within the namespace) with its origin:
who, which PR, when, and — for one made from a dismissed comment — the dismissed finding.

Retrieval is semantic. On Postgres the store's pgvector index does it (``store.search(query=)``,
the ``text`` field is embedded when put). The SQLite store cannot load the sqlite-vec extension
in every Python build, so on the default backend the embedding is kept in the item and ranked
here: a user has tens of learnings, not millions, and a linear scan of them costs microseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore

from review_agent.state.identity import stable_digest
from review_agent.storage.preferences import label

MIN_SCORE = 0.2  # below this a learning is not "relevant" to a file (cosine similarity)
SUPPRESS_SCORE = 0.6  # a finding this close to a dismissed one is dropped


def scope_namespace(scope: tuple[str, str]) -> tuple[str, ...]:
    kind, name = scope
    if kind not in ("user", "repo"):
        raise ValueError(f"unknown learning scope {kind!r}")
    return (kind, label(name), "learnings")


@dataclass
class Learning:
    key: str
    text: str
    scope: tuple[str, str]
    origin: dict[str, Any] = field(default_factory=dict)
    score: float | None = None

    @property
    def dismissed_finding(self) -> str | None:
        return self.origin.get("dismissed_finding")


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


class Learnings:
    def __init__(self, store: BaseStore, embeddings: Embeddings, *, vector_index: bool) -> None:
        self.store = store
        self.embeddings = embeddings
        self.vector_index = vector_index  # True when the store embeds and searches itself

    def add(self, scope: tuple[str, str], text: str, origin: dict[str, Any] | None = None) -> Learning:
        text = " ".join(text.split())
        if not text:
            raise ValueError("a learning needs some text")
        ns = scope_namespace(scope)
        key = stable_digest(text.lower(), length=24)
        value: dict[str, Any] = {
            "text": text,
            "origin": {"at": datetime.now(UTC).isoformat(timespec="seconds"), **(origin or {})},
        }
        if self.vector_index:
            self.store.put(ns, key, value, index=["text"])
        else:
            value["embedding"] = self.embeddings.embed_documents([text])[0]
            self.store.put(ns, key, value, index=False)
        return Learning(key=key, text=text, scope=scope, origin=value["origin"])

    def list(self, scope: tuple[str, str]) -> list[Learning]:
        items = self.store.search(scope_namespace(scope), limit=10_000)
        return sorted(
            (Learning(i.key, i.value["text"], scope, i.value.get("origin", {})) for i in items),
            key=lambda lr: (lr.origin.get("at", ""), lr.key),
        )

    def forget(self, scope: tuple[str, str], key: str | None = None) -> int:
        ns = scope_namespace(scope)
        keys = [key] if key else [lr.key for lr in self.list(scope)]
        n = 0
        for k in keys:
            if self.store.get(ns, k) is not None:
                self.store.delete(ns, k)  # the store deletes its vector rows with the item
                n += 1
        return n

    def any(self, scopes: list[tuple[str, str]]) -> bool:
        """Whether any learning exists in these scopes: most users have none, and then no
        embedding of the file needs computing (or paying for)."""
        return any(self.store.search(scope_namespace(s), limit=1) for s in scopes)

    def search(
        self, scopes: list[tuple[str, str]], query: str, *, limit: int = 5, min_score: float = MIN_SCORE
    ) -> list[Learning]:
        found: list[Learning] = []
        if self.vector_index:
            for scope in scopes:
                for item in self.store.search(scope_namespace(scope), query=query, limit=limit):
                    score = item.score if item.score is not None else 0.0
                    found.append(
                        Learning(item.key, item.value["text"], scope, item.value.get("origin", {}), score)
                    )
        else:
            q = self.embeddings.embed_query(query)
            for scope in scopes:
                for item in self.store.search(scope_namespace(scope), limit=10_000):
                    emb = item.value.get("embedding")
                    if not emb or len(emb) != len(q):
                        continue
                    found.append(
                        Learning(
                            item.key, item.value["text"], scope, item.value.get("origin", {}), _cosine(q, emb)
                        )
                    )
        found = [lr for lr in found if (lr.score or 0.0) >= min_score]
        found.sort(key=lambda lr: -(lr.score or 0.0))
        return found[:limit]

    def similarity(self, a: str, b: str) -> float:
        va, vb = self.embeddings.embed_documents([a, b])
        return _cosine(va, vb)
