"""Recall cost per file as memory grows: the vector search in pgvector against the same search in
Python (the fallback on SQLite, or on a Postgres without the extension).

    python -m bench.recall            # N = 200, 2000, 5000 learnings (a few minutes)
    python -m bench.recall --quick    # N = 100, 1000

One fresh Postgres database per N; N learnings in one user's scope, with vectors of the local
hashing embedding (256 dimensions, no model server), plus as many of another user's, which the
search must filter out. For 20 files:

- *pgvector ms*: ``PgVectors.nearest`` (``ORDER BY embedding <=> q LIMIT k`` on the embedder's
  HNSW index), the rows that reach Python being k;
- *python ms*: ``VectorCache.nearest`` over the same vectors kept as store items, each file
  scoring all N in Python (their one-time read from the store not counted: a review reads them
  once);
- *recall ms*: the whole recall of a file on pgvector (lexical over the N texts, plus the search).

Medians of the 20 files. The last line is the figures as JSON.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import bench_settings, emit_json, print_table
from review_agent.storage.embeddings import Embedder, HashingEmbeddings
from review_agent.storage.factory import open_storage
from review_agent.storage.memory import VECTOR_CANDIDATES, scope_namespace
from review_agent.storage.pgvectors import PgVectors
from review_agent.storage.vectors import VectorCache
from tests.pg import temp_database

FILES = [
    (f"pkg/module_{i}/handler_{i}.py", f"def handle_{i}(request):\n    return widget{i}(request)\n")
    for i in range(20)
]


def _ms(fn: object, *args: object) -> float:
    start = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def measure(n: int) -> dict[str, float]:
    embedder = Embedder("bench:hashing:256", HashingEmbeddings(256))
    scope, other = ("user", "ann"), ("user", "bob")
    namespaces = [scope_namespace(scope)]
    with (
        tempfile.TemporaryDirectory() as home,
        temp_database("ra_bench_recall") as url,
        open_storage(bench_settings(Path(home), url)) as storage,
    ):
        assert isinstance(storage.vectors, PgVectors)
        storage.embedder = embedder
        learnings = storage.learnings()
        for who in (scope, other):
            entries = [(who, f"rule {i}: widget{i} handles gadget{i % 97} carefully", {}) for i in range(n)]
            for start in range(0, n, 1000):
                learnings.add_many(entries[start : start + 1000])
        # the same vectors as store items, for the Python search
        cache = VectorCache(storage.store)
        refs = [lr.ref for lr in learnings.list(scope)]
        texts = [lr.text for lr in learnings.list(scope)]
        cache.put_many(embedder.id, list(zip(refs, embedder.embed_documents(texts), strict=True)))
        cache.present(embedder.id, namespaces)  # read once, as a review does
        recall = learnings.recall([scope])
        queries = [embedder.embed_query(f"{path}\n{text}") for path, text in FILES]
        pg = [_ms(storage.vectors.nearest, embedder.id, namespaces, q, VECTOR_CANDIDATES) for q in queries]
        py = [_ms(cache.nearest, embedder.id, namespaces, q, VECTOR_CANDIDATES) for q in queries]
        whole = [_ms(recall, path, text) for path, text in FILES]
    return {
        "learnings": n,
        "pgvector_ms": statistics.median(pg),
        "python_ms": statistics.median(py),
        "recall_ms": statistics.median(whole),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = (100, 1000) if args.quick else (200, 2000, 5000)
    rows = [measure(n) for n in sizes]
    print_table(
        ["learnings", "pgvector ms/file", "python ms/file", "whole recall ms/file"],
        [[r["learnings"], r["pgvector_ms"], r["python_ms"], r["recall_ms"]] for r in rows],
        title=f"vector search per file, k = {VECTOR_CANDIDATES} (medians of {len(FILES)} files)",
    )
    emit_json({"bench": "recall", "rows": rows})


if __name__ == "__main__":
    main()
