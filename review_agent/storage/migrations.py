"""Our own formats in the store, their versions, and the named migrations between them.

The maintained savers and stores migrate their own tables (``setup()``). What we keep *in* the
store — namespaces, learnings, vectors per embedder, embedder records — has formats of ours, and
they change: this module is the one place that says which versions a database holds and how an
older one is brought forward.

- ``FORMATS``: the current version of each format, recorded in the store at setup.
- ``MIGRATIONS``: named functions, applied in order, each once per database, each recorded
  under ``("review-agent", "migrations")`` with when it ran. A second ``db init`` finds them all
  recorded and runs none. A migration into pgvector runs only on Postgres, and there waits,
  unrecorded, until the extension is there.
- The setup of the savers and stores themselves is recorded with the library versions that did
  it, so it runs on first use, from ``db init``, and again only after an upgrade — never on every
  command, and never from a read-only one (``storage/factory.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from langgraph.store.base import BaseStore, PutOp

from review_agent.storage.vectors import EMBEDDERS_NS, VECTORS_NS, VectorCache

if TYPE_CHECKING:
    from review_agent.storage.pgvectors import PgVectors

log = logging.getLogger(__name__)

FORMATS: dict[str, int] = {
    # ("user" | "org", LOGIN, "preferences"), ("user" | "repo", NAME, "learnings"); labels
    # percent-escaped; ("reviews" | "plans", thread digest), ("review_cache",)
    "namespaces": 1,
    # {"text", "origin"}; version 1 kept the one embedding of the database inside the item
    "learnings": 2,
    # ("review-agent", "vectors", EMBEDDER, *learning namespace) -> {"v": [...]}
    "vectors": 1,
    # ("review-agent", "embedders") -> {"id", "dims", "since"}, one per embedder with vectors
    "embedder_records": 1,
    # Postgres with pgvector: review_agent_learning_vectors(namespace, key, embedder, dims,
    # embedding vector), one partial HNSW index per embedder and size (storage/pgvectors.py)
    "pgvector_table": 1,
    # `prefs export` files
    "export": 1,
}
FORMATS_NS = ("review-agent", "formats")
MIGRATIONS_NS = ("review-agent", "migrations")
SETUP_NS = ("review-agent", "setup")
LEGACY_META_NS = ("review-agent", "meta")  # format 1: one embedding record for the database
SETUP_LIBRARIES = (
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
)


@dataclass(frozen=True)
class MigrationContext:
    store: BaseStore
    backend: str  # "sqlite" | "postgres"
    pgvectors: PgVectors | None = None  # Postgres with the extension and our table


@dataclass(frozen=True)
class Migration:
    name: str
    run: Callable[[MigrationContext], None]
    needs_pgvector: bool = False  # Postgres only, and waits until the extension is there

    def due(self, ctx: MigrationContext) -> bool:
        """Whether it can run on this database now (else it waits, unrecorded)."""
        return not self.needs_pgvector or ctx.pgvectors is not None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_formats(store: BaseStore) -> None:
    """Record the format versions this code writes (a no-op write when they are recorded)."""
    item = store.get(FORMATS_NS, "store")
    if item is None or item.value.get("versions") != FORMATS:
        store.put(FORMATS_NS, "store", {"versions": dict(FORMATS), "at": _now()}, index=False)


def recorded_formats(store: BaseStore) -> dict[str, int]:
    item = store.get(FORMATS_NS, "store")
    return dict(item.value.get("versions", {})) if item else {}


def _learning_namespaces(store: BaseStore) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for kind in ("user", "repo"):
        found += [
            ns
            for ns in store.list_namespaces(prefix=(kind,), max_depth=3, limit=100_000)
            if len(ns) == 3 and ns[2] == "learnings"
        ]
    return found


def learnings_without_embedded_vectors(ctx: MigrationContext) -> None:
    """Format 1 kept a vector inside each learning (SQLite) and one embedding record for the
    whole database, refusing any other embedder. The vectors of a model's embeddings move to the
    per-embedder cache; the local hashing ones are dropped (offline recall is lexical now). On
    Postgres the store's own vector rows are left where they are and unused: a model's vectors
    are made again, once, the first time recall needs them."""
    store = ctx.store
    meta = store.get(LEGACY_META_NS, "embeddings")
    embedder: str | None = None
    if meta is not None and str(meta.value.get("name", "")).startswith("openai:"):
        embedder = f"{meta.value['name']}:{meta.value.get('dims')}"
    cache = VectorCache(store)
    for ns in _learning_namespaces(store):
        for item in store.search(ns, limit=100_000):
            vec = item.value.get("embedding")
            if vec is None:
                continue
            if embedder and vec:
                cache.put_many(embedder, [((ns, item.key), list(vec))])
            rest = {k: v for k, v in item.value.items() if k != "embedding"}
            store.put(ns, item.key, rest, index=False)
    if meta is not None:
        store.delete(LEGACY_META_NS, "embeddings")


def learning_vectors_into_pgvector(ctx: MigrationContext) -> None:
    """The vectors kept as store items (the format before pgvector, or written while this
    database had no extension) move into the pgvector table, then leave the store. Only where
    pgvector is: on SQLite the store items are the format."""
    assert ctx.pgvectors is not None  # due() says so
    store = ctx.store
    ids = {i.key: str(i.value.get("id", i.key)) for i in store.search(EMBEDDERS_NS, limit=10_000)}
    for ns in store.list_namespaces(prefix=VECTORS_NS, limit=1_000_000):
        if len(ns) < len(VECTORS_NS) + 2:
            continue
        embedder = ids.get(ns[len(VECTORS_NS)], _unlabel(ns[len(VECTORS_NS)]))
        learning_ns = tuple(ns[len(VECTORS_NS) + 1 :])
        items = [i for i in store.search(ns, limit=1_000_000) if tuple(i.namespace) == tuple(ns)]
        rows = [((learning_ns, i.key), [float(x) for x in i.value["v"]]) for i in items if i.value.get("v")]
        for start in range(0, len(rows), 500):
            ctx.pgvectors.put_many(embedder, rows[start : start + 500])
        if items:
            store.batch([PutOp(tuple(ns), i.key, None) for i in items])
    if ids:
        store.batch([PutOp(EMBEDDERS_NS, key, None) for key in ids])


def _unlabel(text: str) -> str:
    return text.replace("%2E", ".").replace("%25", "%")


MIGRATIONS: tuple[Migration, ...] = (
    Migration("learnings_without_embedded_vectors", learnings_without_embedded_vectors),
    Migration("learning_vectors_into_pgvector", learning_vectors_into_pgvector, needs_pgvector=True),
)


def applied(store: BaseStore) -> set[str]:
    return {i.key for i in store.search(MIGRATIONS_NS, limit=10_000)}


def apply_pending(ctx: MigrationContext) -> list[str]:
    """Run the migrations this database has not had and can have now, in order; record each as
    it finishes. Returns their names (empty when the database is current)."""
    store = ctx.store
    done = applied(store)
    ran: list[str] = []
    for migration in MIGRATIONS:
        if migration.name in done or not migration.due(ctx):
            continue
        migration.run(ctx)
        store.put(MIGRATIONS_NS, migration.name, {"at": _now()}, index=False)
        log.info("migrated the store: %s", migration.name)
        ran.append(migration.name)
    record_formats(store)
    return ran


def library_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in SETUP_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def setup_is_current(ctx: MigrationContext) -> bool:
    """Whether the savers' and the store's own setup ran with these library versions and every
    migration of ours that can run here is recorded: then opening the database writes nothing."""
    item = ctx.store.get(SETUP_NS, "libraries")
    if item is None or item.value.get("versions") != library_versions():
        return False
    return {m.name for m in MIGRATIONS if m.due(ctx)} <= applied(ctx.store)


def record_setup(store: BaseStore) -> None:
    store.put(SETUP_NS, "libraries", {"versions": library_versions(), "at": _now()}, index=False)
