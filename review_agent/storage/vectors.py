"""The vectors of learnings, kept per embedder: what recall asks of them (``VectorIndex``), and
where they live when pgvector is not there (``VectorCache``).

A learning's text is the truth; a vector is what one embedder made of it. Each embedder's
vectors live apart, so a database can switch between models (or go offline and back) without
ever comparing vectors of two models, and without refusing anything: a learning without a vector
for the embedder in use gets one the first time recall needs it.

On Postgres with pgvector they are rows of a table of ours and the search runs in SQL
(``storage/pgvectors.py``). Elsewhere — SQLite (this Python cannot load sqlite-vec), or a
Postgres whose role may not create the extension — they are store items under
``("review-agent", "vectors", EMBEDDER, *learning namespace)`` with the learning's key, and the
cosine is taken here: a user or repository has tens of learnings, so that is microseconds.
Why not the store's own vector index: the maintained stores index with one embedding function
and one vector column of a fixed dimension for the whole database, so they cannot keep two
embedders' vectors side by side.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from langgraph.store.base import BaseStore, GetOp, PutOp

from review_agent.storage.preferences import label

log = logging.getLogger(__name__)

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


class VectorIndex(Protocol):
    """Where learnings' vectors live, per embedder, and the nearest-neighbour search over them."""

    def present(self, embedder: str, namespaces: Sequence[tuple[str, ...]]) -> set[Ref]: ...

    def put_many(self, embedder: str, rows: Sequence[tuple[Ref, list[float]]]) -> None: ...

    def nearest(
        self, embedder: str, namespaces: Sequence[tuple[str, ...]], query: Sequence[float], k: int
    ) -> dict[Ref, float]: ...

    def forget(self, refs: Sequence[Ref]) -> None: ...


_warned: set[str] = set()  # one warning per process about scoring in Python
_warned_lock = threading.Lock()


class VectorCache:
    """Vectors as store items, scored in Python. ``fallback``: why pgvector is not used on this
    Postgres database (said once per process, when vectors are first needed)."""

    def __init__(self, store: BaseStore, fallback: str | None = None) -> None:
        self.store = store
        self.fallback = fallback
        self._loaded: dict[tuple[str, tuple[str, ...]], dict[str, list[float]]] = {}

    def _note_fallback(self) -> None:
        if not self.fallback:
            return
        with _warned_lock:
            if self.fallback in _warned:
                return
            _warned.add(self.fallback)
        log.warning("memory: learnings' vectors are compared in Python, not pgvector: %s", self.fallback)

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
        self._note_fallback()
        self.record_embedder(embedder, len(rows[0][1]))
        self.store.batch(
            [PutOp(self._ns(embedder, ns), key, {"v": vec}, index=False) for (ns, key), vec in rows]
        )
        for (ns, key), vec in rows:
            loaded = self._loaded.get((embedder, ns))
            if loaded is not None:
                loaded[key] = list(vec)

    def _namespace_vectors(self, embedder: str, ns: tuple[str, ...]) -> dict[str, list[float]]:
        """Every vector of this embedder in one learning namespace, read once per instance."""
        if (embedder, ns) not in self._loaded:
            full = self._ns(embedder, ns)
            items = self.store.search(full, limit=100_000)
            self._loaded[(embedder, ns)] = {
                i.key: list(i.value["v"]) for i in items if tuple(i.namespace) == full and i.value.get("v")
            }
        return self._loaded[(embedder, ns)]

    def present(self, embedder: str, namespaces: Sequence[tuple[str, ...]]) -> set[Ref]:
        return {(ns, key) for ns in namespaces for key in self._namespace_vectors(embedder, ns)}

    def nearest(
        self, embedder: str, namespaces: Sequence[tuple[str, ...]], query: Sequence[float], k: int
    ) -> dict[Ref, float]:
        """The k nearest by cosine, every vector of the namespaces scored here."""
        self._note_fallback()
        scored = (
            (cosine(query, vec), (ns, key))
            for ns in namespaces
            for key, vec in self._namespace_vectors(embedder, ns).items()
        )
        return {ref: sim for sim, ref in heapq.nlargest(k, scored)}

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
        self._loaded.clear()
        if ops:
            self.store.batch(ops)
