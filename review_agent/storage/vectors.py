"""The vectors of learnings, cached per embedder.

A learning's text is the truth; a vector is what one embedder made of it. Each embedder's
vectors live apart, under ``("review-agent", "vectors", EMBEDDER, *learning namespace)`` with the
learning's key, so a database can switch between models (or go offline and back) without ever
comparing vectors of two models, and without refusing anything: a learning without a vector for
the embedder in use gets one the first time recall needs it.

Why items in the store rather than the store's own vector index: the maintained stores index
with one embedding function and one vector column of a fixed dimension for the whole database,
so they cannot keep two embedders' vectors side by side. Recall scores every learning in scope
anyway (the lexical part needs them all), and a user or repository has tens of learnings, not
millions, so the cosine is taken here, in a few microseconds per learning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from langgraph.store.base import BaseStore, GetOp, PutOp

from review_agent.storage.preferences import label

VECTORS_NS = ("review-agent", "vectors")
EMBEDDERS_NS = ("review-agent", "embedders")

Ref = tuple[tuple[str, ...], str]  # a learning: (namespace, key)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


class VectorCache:
    def __init__(self, store: BaseStore) -> None:
        self.store = store

    @staticmethod
    def _ns(embedder: str, ns: tuple[str, ...]) -> tuple[str, ...]:
        return (*VECTORS_NS, label(embedder), *ns)

    def get_many(self, embedder: str, refs: Sequence[Ref]) -> dict[Ref, list[float]]:
        if not refs:
            return {}
        results = self.store.batch([GetOp(self._ns(embedder, ns), key) for ns, key in refs])
        return {
            ref: list(item.value["v"])
            for ref, item in zip(refs, results, strict=True)
            if item is not None and item.value.get("v")  # type: ignore[union-attr]
        }

    def put_many(self, embedder: str, rows: Sequence[tuple[Ref, list[float]]]) -> None:
        if not rows:
            return
        self.record_embedder(embedder, len(rows[0][1]))
        self.store.batch(
            [PutOp(self._ns(embedder, ns), key, {"v": vec}, index=False) for (ns, key), vec in rows]
        )

    def record_embedder(self, embedder: str, dims: int) -> None:
        """Which embedders have vectors here: written once per embedder, so an operator (and a
        future migration) can see what the cache holds."""
        if self.store.get(EMBEDDERS_NS, label(embedder)) is None:
            now = datetime.now(UTC).isoformat(timespec="seconds")
            self.store.put(EMBEDDERS_NS, label(embedder), {"id": embedder, "dims": dims, "since": now})

    def embedders(self) -> list[str]:
        return sorted(i.value.get("id", i.key) for i in self.store.search(EMBEDDERS_NS, limit=1000))

    def forget(self, refs: Sequence[Ref]) -> None:
        """Delete these learnings' vectors, of every embedder."""
        ops = [PutOp(self._ns(e, ns), key, None) for e in self.embedders() for ns, key in refs]
        if ops:
            self.store.batch(ops)
