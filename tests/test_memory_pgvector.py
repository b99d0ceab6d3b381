"""Semantic memory on Postgres with pgvector: learnings' vectors are rows of a table of ours, one
per (learning, embedder), the nearest-neighbour search runs in SQL on a partial HNSW index per
embedder; two embedders live side by side; `prefs forget` removes the vectors; the vectors kept
as store items by earlier code move into the table once; a role that may not create the
extension keeps memory working, scored in Python, with one warning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgvector import Vector
from pgvector.psycopg import register_vector

from review_agent.config import Settings
from review_agent.storage.embeddings import Embedder, HashingEmbeddings, choose_embedder
from review_agent.storage.factory import Storage, open_storage
from review_agent.storage.memory import VECTOR_CANDIDATES, scope_namespace
from review_agent.storage.migrations import MIGRATIONS_NS, SETUP_NS, library_versions
from review_agent.storage.pgvectors import TABLE, index_name, nearest_statement
from review_agent.storage.vectors import VectorCache
from tests.crash import run_cli
from tests.fakes.openai_server import FakeOpenAI
from tests.gitrepo import make_repo
from tests.pg import limited_role, temp_database

pytestmark = pytest.mark.postgres

PICKLE = "serializer must never use pickle"
SQL_RULE = "SQL migrations (*.sql) must be reversible: write the down migration too"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temp_database("ra_pgv") as url:
        yield url


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(require_api_key="sk-test-key") as server:
        yield server


@contextmanager
def _storage(url: str, home: Path, embedder: Embedder | None = None) -> Iterator[Storage]:
    """The storage a command opens, with this embedder (None: offline)."""
    settings = Settings(DATABASE_URL=url, REVIEW_AGENT_HOME=home)  # type: ignore[call-arg]
    with open_storage(settings) as storage:
        storage.embedder = embedder
        yield storage


def _model_embedder(fake: FakeOpenAI, home: Path, model: str, dims: int) -> Embedder:
    settings = Settings(  # type: ignore[call-arg]
        OPENAI_API_KEY="sk-test-key",
        OPENAI_BASE_URL=fake.base_url,
        REVIEW_AGENT_HOME=home,
        REVIEW_AGENT_EMBEDDING_MODEL=model,
        REVIEW_AGENT_EMBEDDING_DIMS=dims,
    )
    embedder = choose_embedder(settings)
    assert embedder is not None
    return embedder


def _vector_rows(url: str, where: str = "true", params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        sql = f"SELECT namespace, key, embedder, dims FROM {TABLE} WHERE {where} ORDER BY 1, 2, 3"
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]  # type: ignore[arg-type]


def _store_vector_items(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM store WHERE prefix LIKE 'review-agent.vectors.%'").fetchone()
        return int(row[0])  # type: ignore[index]


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def test_recall_of_2000_learnings_runs_in_sql_on_the_embedders_index(pg_url: str, tmp_path: Path) -> None:
    embedder = Embedder("local-test:hashing:256", HashingEmbeddings(256))
    with _storage(pg_url, tmp_path, embedder) as storage:
        learnings = storage.learnings()
        many = [
            (("user", "ann"), f"rule {i}: widget{i} handles gadget{i % 97} carefully", {})
            for i in range(2000)
        ]
        others = [(("user", "bob"), f"bob's rule {i}: serializer{i} pickle{i}", {}) for i in range(200)]
        learnings.add_many([*many, *others])
        pickle = learnings.add(("user", "ann"), PICKLE)
        recall = learnings.recall([("user", "ann")])
        got = recall("app/serializer.py", "import pickle\n\ndef dump(o):\n    return pickle.dumps(o)\n")
        assert got.ids[:1] == [pickle.key]
        assert not any(text.startswith("bob's") for text in got.rules)  # another user's never
        query = embedder.embed_query("app/serializer.py\nimport pickle")
        nearest = storage.vectors.nearest(embedder.id, [scope_namespace(("user", "ann"))], query, 20)  # type: ignore[union-attr]
        assert len(nearest) == 20 and all(ns == scope_namespace(("user", "ann")) for ns, _ in nearest)

    # every vector is a row of the table (none a store item), and the search uses the index
    assert len(_vector_rows(pg_url, "embedder = %s", (embedder.id,))) == 2201
    assert _store_vector_items(pg_url) == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("SET hnsw.iterative_scan = strict_order")
        params = {
            "query": Vector(query),
            "embedder": embedder.id,
            "namespaces": [".".join(scope_namespace(("user", "ann")))],
            "k": VECTOR_CANDIDATES,
        }
        explain = psycopg.sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + nearest_statement(256, "0.8.0")
        plan = conn.execute(explain, params).fetchone()[0][0]["Plan"]  # type: ignore[index]
    scans = [n for n in _plan_nodes(plan) if n["Node Type"] == "Index Scan"]
    assert [n["Index Name"] for n in scans] == [index_name(embedder.id, 256)], plan
    assert plan["Actual Rows"] == VECTOR_CANDIDATES  # k rows reach Python, not 2,201
    assert not any(n["Node Type"] in ("Seq Scan", "Sort") for n in _plan_nodes(plan)), plan


def test_two_embedders_side_by_side_after_a_switch(pg_url: str, tmp_path: Path, fake: FakeOpenAI) -> None:
    small = _model_embedder(fake, tmp_path, "embed-small", 256)
    other = _model_embedder(fake, tmp_path, "embed-other", 96)
    scope = ("user", "ann")
    with _storage(pg_url, tmp_path, small) as storage:
        learnings = storage.learnings()
        keys = [learnings.add(scope, t).key for t in (PICKLE, SQL_RULE, "prefer pathlib over os.path")]
        first = learnings.recall([scope])("db/0042_add_index.sql", "CREATE INDEX i ON orders (created_at);")
    assert first.ids[:1] == [keys[1]]

    # switched to another model (another size): its vectors are made on first recall, in one batch
    with _storage(pg_url, tmp_path, other) as storage:
        calls = fake.embedding_calls
        recall = storage.learnings().recall([scope])
        assert fake.embedding_calls == calls + 1  # one request for the three learnings
        assert recall("app/serializer.py", "import pickle\npickle.dumps(o)\n").ids[:1] == [keys[0]]
    rows = _vector_rows(pg_url)
    assert sorted({(r[2], r[3]) for r in rows}) == [(other.id, 96), (small.id, 256)]
    assert len(rows) == 6  # both embedders' vectors, side by side
    with psycopg.connect(pg_url) as conn:
        indexes = {
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (TABLE,))
        }
    assert {index_name(small.id, 256), index_name(other.id, 96)} <= indexes

    # and back: nothing to make again; offline in between changes nothing either
    with _storage(pg_url, tmp_path, None) as storage:
        offline = storage.learnings().recall([scope])("db/0042_add_index.sql", "CREATE INDEX i ON orders;")
        assert offline.ids[:1] == [keys[1]]
    with _storage(pg_url, tmp_path, small) as storage:
        calls = fake.embedding_calls
        again = storage.learnings().recall([scope])
        assert fake.embedding_calls == calls
        assert again("db/0042_add_index.sql", "CREATE INDEX i ON orders (created_at);") == first
    assert len(_vector_rows(pg_url)) == 6


@pytest.mark.slow  # CLI processes
def test_forget_removes_the_vectors_of_every_embedder(pg_url: str, tmp_path: Path, fake: FakeOpenAI) -> None:
    home = tmp_path / "home"
    base = {"DATABASE_URL": pg_url, "REVIEW_AGENT_HOME": str(home)}
    model = {
        "OPENAI_API_KEY": "sk-test-key",
        "OPENAI_BASE_URL": fake.base_url,
        "REVIEW_AGENT_MODEL": "fake-model",
        "REVIEW_AGENT_EMBEDDING_DIMS": "128",
    }
    env_a = {**base, **model}
    env_b = {**env_a, "REVIEW_AGENT_EMBEDDING_MODEL": "embed-other", "REVIEW_AGENT_EMBEDDING_DIMS": "64"}
    for user in ("erin", "finn"):
        for rule in (PICKLE, "prefer pathlib over os.path"):
            r = run_cli(["learn", rule, "--user", user], env_a, tmp_path)
            assert r.returncode == 0, r.stderr
    other = _model_embedder(fake, home, "embed-other", 64)
    with _storage(pg_url, home, other) as storage:
        storage.learnings().recall([("user", "erin"), ("user", "finn")])  # the second embedder's
    assert len(_vector_rows(pg_url)) == 8
    one = run_cli(["learn", "no print in library code", "--user", "erin"], env_b, tmp_path)
    key = one.stdout.rsplit("[id ", 1)[1].rstrip("]\n")
    assert len(_vector_rows(pg_url, "key = %s", (key,))) == 1

    r = run_cli(["prefs", "forget", key, "--user", "erin"], env_b, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _vector_rows(pg_url, "key = %s", (key,)) == []
    r = run_cli(["prefs", "forget", "--user", "erin"], base, tmp_path)  # offline forgets them too
    assert r.returncode == 0 and "2 items deleted" in r.stdout, r.stdout + r.stderr
    assert _vector_rows(pg_url, "namespace LIKE 'user.erin.%%'") == []
    assert len(_vector_rows(pg_url, "namespace LIKE 'user.finn.%%'")) == 4  # finn's are his


def test_vectors_kept_as_store_items_move_into_the_table_once(
    pg_url: str, tmp_path: Path, fake: FakeOpenAI
) -> None:
    """A database the previous code set up: learnings, their vectors as store items per
    embedder, its migrations recorded. The named migration moves the vectors, once."""
    from langgraph.store.postgres import PostgresStore

    from tests.pg import SAVER_CONN_KWARGS

    embedder = _model_embedder(fake, tmp_path, "text-embedding-3-small", 128)
    with _storage(pg_url, tmp_path, None) as storage:  # set up, then made to look like before
        learnings = storage.learnings()
        made = [learnings.add(("user", "ann"), t) for t in (PICKLE, SQL_RULE)]
    with psycopg.connect(pg_url, **SAVER_CONN_KWARGS) as conn:
        conn.execute(f"DROP TABLE {TABLE}")
        store = PostgresStore(conn)
        store.delete(MIGRATIONS_NS, "learning_vectors_into_pgvector")
        store.put(SETUP_NS, "libraries", {"versions": library_versions(), "at": "earlier"}, index=False)
        vectors = embedder.embed_documents([lr.text for lr in made])
        VectorCache(store).put_many(embedder.id, [(lr.ref, v) for lr, v in zip(made, vectors, strict=True)])
    assert _store_vector_items(pg_url) == 2

    with _storage(pg_url, tmp_path, embedder) as storage:
        assert storage.migrated == ["learning_vectors_into_pgvector"]
        calls = fake.embedding_calls
        recall = storage.learnings().recall([("user", "ann")])
        assert fake.embedding_calls == calls  # moved, not made again
        assert recall("app/serializer.py", "import pickle\n").ids[:1] == [made[0].key]
    assert _store_vector_items(pg_url) == 0
    assert [(r[1], r[2], r[3]) for r in _vector_rows(pg_url)] == sorted(
        (lr.key, embedder.id, 128) for lr in made
    )
    with _storage(pg_url, tmp_path, embedder) as storage:
        assert storage.migrated == []


@pytest.mark.slow  # CLI processes
def test_without_the_extension_memory_works_with_one_warning(
    pg_url: str, tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    repo = make_repo(
        tmp_path,
        files=2,
        extra={"app/serializer.py": "import pickle\n\ndef dump(o):\n    return pickle.dumps(o)\n"},
    )
    with limited_role(pg_url) as limited:
        env = {**model_env, "DATABASE_URL": limited, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
        r = run_cli(["learn", PICKLE, "--user", "ann"], env, tmp_path)
        assert r.returncode == 0, r.stderr
        key = r.stdout.rsplit("[id ", 1)[1].rstrip("]\n")
        r = run_cli(
            ["review", str(repo), "--base", "main", "--user", "ann", "-j", "2", "-f", "json"], env, tmp_path
        )
        assert r.returncode == 0, r.stderr
        recalled = {f["path"]: f["learnings_recalled"] for f in json.loads(r.stdout)["files"]}
        assert recalled["app/serializer.py"] == [key] and recalled["mod00.py"] == []
        warnings = [line for line in r.stderr.splitlines() if "not pgvector" in line]
        assert len(warnings) == 1, r.stderr
        assert "CREATE EXTENSION vector" in warnings[0] and "Traceback" not in r.stderr
        assert _store_vector_items(pg_url) == 1  # the vector is kept, as a store item

        # a superuser enables the extension: the next command moves the vector and warns no more
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        calls = fake_openai.embedding_calls
        args = ["review", str(repo), "--base", "main", "--user", "ann", "--fresh", "-f", "json"]
        r = run_cli(args, env, tmp_path)
        assert r.returncode == 0 and "not pgvector" not in r.stderr, r.stderr
        recalled = {f["path"]: f["learnings_recalled"] for f in json.loads(r.stdout)["files"]}
        assert recalled["app/serializer.py"] == [key]
        assert _store_vector_items(pg_url) == 0 and len(_vector_rows(pg_url)) == 1
        assert fake_openai.embedding_calls - calls == 3  # one query per file, no learning embedded again


@pytest.mark.parametrize(("dims", "cast"), [(3072, "halfvec(3072)"), (4100, None)])
def test_large_embeddings_are_indexed_as_halfvec_or_searched_exactly(
    pg_url: str, tmp_path: Path, dims: int, cast: str | None
) -> None:
    """pgvector indexes `vector` up to 2,000 dimensions: a 3,072-dimension model (e.g.
    text-embedding-3-large) gets a halfvec index, a larger one an exact search, still in SQL."""
    embedder = Embedder(f"local-test:hashing:{dims}", HashingEmbeddings(dims))
    with _storage(pg_url, tmp_path, embedder) as storage:
        learnings = storage.learnings()
        pickle = learnings.add(("repo", "acme/shop"), PICKLE)
        learnings.add(("repo", "acme/shop"), SQL_RULE)
        got = learnings.recall([("repo", "acme/shop")])(
            "app/serializer.py", "import pickle\npickle.dumps(o)\n"
        )
        assert got.ids[:1] == [pickle.key]
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (index_name(embedder.id, dims),)
        )
        found = row.fetchone()
    if cast is None:
        assert found is None
    else:
        assert found is not None and f"::{cast}" in found[0] and "halfvec_cosine_ops" in found[0]


def test_a_file_with_no_words_gets_no_vector_score_and_no_nan(pg_url: str, tmp_path: Path) -> None:
    """The hashing embedding of a text without words is the zero vector, whose cosine distance
    pgvector gives as NaN: it must count as no vector score, not poison the ranking."""
    embedder = Embedder("local-test:hashing:64", HashingEmbeddings(64))
    scope = ("repo", "acme/c")
    with _storage(pg_url, tmp_path, embedder) as storage:
        learnings = storage.learnings()
        header = learnings.add(scope, "C files (*.c) need the licence header")
        recall = learnings.recall([scope])
        scored = recall.scored("a/b.c", "1\n2\n")  # no word of two letters: a zero query vector
    assert [lr.key for lr in scored] == [header.key]
    assert all(lr.score is not None and lr.score == lr.score for lr in scored), scored
