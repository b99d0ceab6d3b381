"""Learnings: short natural-language rules the agent keeps across reviews (docs/architecture.md,
"State": the environmental-knowledge layer), e.g. "don't flag missing docstrings in tests/".

Namespaces: ``("user", LOGIN, "learnings")`` and ``("repo", OWNER/REPO, "learnings")``. Each
learning is stored once (its key is a digest of its text within the namespace) with its origin:
who, which PR, when, and — for one made from a dismissed comment — the dismissed finding. What
is refused (credentials, oversized or empty text) is said in ``storage/admission.py``.

Recall is hybrid (``Recall``): lexical over the learning's text against the file's path, names
and hunks, plus the path globs the learning names, plus — when a model server's embeddings are
configured — the cosine of their vectors for the ``VECTOR_CANDIDATES`` nearest learnings, found
by pgvector in SQL on Postgres (``storage/pgvectors.py``), in Python elsewhere
(``storage/vectors.py``). At most ``MAX_RECALLED`` learnings reach a prompt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langgraph.store.base import BaseStore, PutOp

from review_agent.errors import ReviewAgentError
from review_agent.state.identity import stable_digest
from review_agent.storage.admission import check_learning, check_name
from review_agent.storage.embeddings import Embedder
from review_agent.storage.lexical import LexicalIndex, term_cosine
from review_agent.storage.preferences import label
from review_agent.storage.vectors import Ref, VectorCache, VectorIndex, cosine
from review_agent.wording import plural

log = logging.getLogger(__name__)

MAX_RECALLED = 3  # learnings per prompt: a few relevant rules, not every rule the user has
# Relevant lexically: this share of a learning's weighted terms in the file, or a lower share
# made of at least two distinct terms (one shared word is a coincidence, two are a topic)
LEXICAL_MIN = 0.3
LEXICAL_MIN_TWO_TERMS = 0.12
VECTOR_MIN = 0.45  # a cosine this high is relevant on its own (the lexical score may be 0)
GLOB_BONUS = 0.5  # a path the learning names matches the file
OTHER_PATHS_FACTOR = 0.5  # the learning names paths and none is this file's
VECTOR_WEIGHT = 0.5
VECTOR_CANDIDATES = 20  # learnings the vector search returns per file (the rest score lexically)
EMBED_BATCH = 256  # learnings embedded per request when recall makes missing vectors
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

    @property
    def ref(self) -> Ref:
        return (scope_namespace(self.scope), self.key)


@dataclass(frozen=True)
class Recalled:
    """What memory gives the review of one file."""

    rules: list[str] = field(default_factory=list)  # for the prompt, best first
    dismissed: list[str] = field(default_factory=list)  # findings dismissed on this file
    ids: list[str] = field(default_factory=list)  # the learnings behind both, for the report


class Learnings:
    def __init__(
        self, store: BaseStore, embedder: Embedder | None = None, vectors: VectorIndex | None = None
    ) -> None:
        self.store = store
        self.embedder = embedder  # None: offline, recall is lexical
        self.vectors: VectorIndex = vectors if vectors is not None else VectorCache(store)

    def add(self, scope: tuple[str, str], text: str, origin: dict[str, Any] | None = None) -> Learning:
        return self.add_many([(scope, text, origin or {})])[0]

    def add_many(self, entries: Sequence[tuple[tuple[str, str], str, dict[str, Any]]]) -> list[Learning]:
        """Check every entry, then write them with their vectors (when an embedder is in use). A
        refusal leaves memory as it was. An embeddings server that fails does not: the text is
        the learning, its vector is derived, and recall makes a missing one (or searches by words
        while the server cannot)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        learned: list[Learning] = []
        for (kind, name), text, origin in entries:
            if kind not in ("user", "repo"):
                raise ValueError(f"unknown learning scope {kind!r}")
            check_name("repository" if kind == "repo" else kind, name)
            text = check_learning(text, origin)
            key = stable_digest(text.lower(), length=24)
            learned.append(Learning(key, text, (kind, name), {"at": now, **origin}))
        vectors: list[list[float]] = []
        if self.embedder is not None:
            try:
                vectors = self.embedder.embed_documents([lr.text for lr in learned])
            except ReviewAgentError as exc:
                log.warning(
                    "saved without its vector (%s); the next review that reaches the embeddings makes it",
                    exc,
                )
        self.store.batch(
            [
                PutOp(scope_namespace(lr.scope), lr.key, {"text": lr.text, "origin": lr.origin}, index=False)
                for lr in learned
            ]
        )
        if self.embedder and vectors:
            rows = [(lr.ref, v) for lr, v in zip(learned, vectors, strict=True)]
            self.vectors.put_many(self.embedder.id, rows)
        return learned

    def list(self, scope: tuple[str, str]) -> list[Learning]:
        items = self.store.search(scope_namespace(scope), limit=10_000)
        return sorted(
            (Learning(i.key, i.value["text"], scope, i.value.get("origin", {})) for i in items),
            key=lambda lr: (lr.origin.get("at", ""), lr.key),
        )

    def forget(self, scope: tuple[str, str], key: str | None = None) -> int:
        ns = scope_namespace(scope)
        keys = [key] if key else [lr.key for lr in self.list(scope)]
        gone = [k for k in keys if self.store.get(ns, k) is not None]
        refs = [(ns, k) for k in gone]
        self.vectors.forget(refs)
        if not isinstance(self.vectors, VectorCache):  # and any left as store items by an
            VectorCache(self.store).forget(refs)  # earlier fallback, before pgvector was there
        for k in gone:
            self.store.delete(ns, k)
        return len(gone)

    def any(self, scopes: list[tuple[str, str]]) -> bool:
        """Whether any learning exists in these scopes: most users have none, and then nothing
        needs indexing or embedding."""
        return any(self.store.search(scope_namespace(s), limit=1) for s in scopes)

    def recall(self, scopes: list[tuple[str, str]]) -> Recall:
        """Everything in these scopes, indexed once for a review."""
        found = [lr for s in scopes for lr in self.list(s)]
        return Recall(found, self, [scope_namespace(s) for s in scopes])

    def similarity(self, a: str, b: str) -> float:
        """How alike two findings are (0..1): their vectors' cosine with an embedder, else the
        cosine of their terms. An embeddings failure costs the vector, never the review."""
        if self.embedder is not None:
            try:
                va, vb = self.embedder.embed_documents([a, b])
                return cosine(va, vb)
            except ReviewAgentError as exc:
                log.warning("embeddings unavailable, comparing findings by their words: %s", exc)
                self.embedder = None
        return term_cosine(a, b)


class Recall:
    """One review's view of the learnings in its scopes: the lexical index built once; with an
    embedder, the learnings that have no vector of it yet get one (batched), then each file asks
    the vector index for its nearest learnings."""

    def __init__(
        self, learnings: list[Learning], memory: Learnings, namespaces: list[tuple[str, ...]]
    ) -> None:
        self.learnings = learnings
        self.index = LexicalIndex([lr.text for lr in learnings])
        self.embedder = memory.embedder
        self.vectors = memory.vectors
        self.namespaces = namespaces
        self._off_lock = threading.Lock()
        if self.embedder is not None and learnings:
            self._make_missing_vectors()

    def _make_missing_vectors(self) -> None:
        assert self.embedder is not None
        try:
            present = self.vectors.present(self.embedder.id, self.namespaces)
            missing = [lr for lr in self.learnings if lr.ref not in present]
            for start in range(0, len(missing), EMBED_BATCH):
                batch = missing[start : start + EMBED_BATCH]
                made = self.embedder.embed_documents([lr.text for lr in batch])
                self.vectors.put_many(
                    self.embedder.id, [(lr.ref, v) for lr, v in zip(batch, made, strict=True)]
                )
            if missing:
                log.info("made %s for %s", plural(len(missing), "learning vector"), self.embedder.id)
        except ReviewAgentError as exc:
            self._vectors_off(exc)

    def _vectors_off(self, exc: Exception) -> None:
        with self._off_lock:  # files are recalled in parallel: one warning
            if self.embedder is None:
                return
            self.embedder = None
        log.warning("learnings recalled by their words only (vectors unavailable: %s)", exc)

    def _nearest(self, path: str, text: str) -> dict[Ref, float]:
        """Cosine similarity of the nearest learnings to this file ({} offline)."""
        embedder = self.embedder
        if embedder is None:
            return {}
        try:
            query = embedder.embed_query(f"{path}\n{text}")
            return self.vectors.nearest(embedder.id, self.namespaces, query, VECTOR_CANDIDATES)
        except ReviewAgentError as exc:
            self._vectors_off(exc)
            return {}

    def scored(self, path: str, text: str) -> list[Learning]:
        """The learnings relevant to this file, best first (dismissals of other files left out)."""
        if not self.learnings:
            return []
        lexical = self.index.score(path, text)
        nearest = self._nearest(path, text)
        found: list[Learning] = []
        for lr, lex in zip(self.learnings, lexical, strict=True):
            glob = lex.glob
            if lr.dismissed_finding:
                # a dismissal says "not this, here": it is about the file it was made on, and
                # only that one; broader rules are taught with `review-agent learn`
                if lr.origin.get("path") != path:
                    continue
                glob = True
            vec = nearest.get(lr.ref)
            # a rule that names other paths needs more of its words in this file
            score = lex.score * (OTHER_PATHS_FACTOR if glob is False else 1.0)
            wordy = score >= LEXICAL_MIN or (lex.matched >= 2 and score >= LEXICAL_MIN_TWO_TERMS)
            if not (glob is True or wordy or (vec or 0.0) >= VECTOR_MIN):
                continue
            score += GLOB_BONUS if glob else 0.0
            score += VECTOR_WEIGHT * max(vec or 0.0, 0.0)
            found.append(Learning(lr.key, lr.text, lr.scope, lr.origin, score))
        found.sort(key=lambda lr: (-(lr.score or 0.0), lr.key))
        return found

    def __call__(self, path: str, text: str) -> Recalled:
        found = self.scored(path, text)
        top = found[:MAX_RECALLED]
        dismissed = [lr for lr in found if lr.dismissed_finding]
        ids = list(dict.fromkeys([lr.key for lr in top] + [lr.key for lr in dismissed]))
        return Recalled(
            rules=[lr.text for lr in top],
            dismissed=[lr.dismissed_finding or "" for lr in dismissed],
            ids=ids,
        )
