"""Versioned formats and setup (issue 12): a database is set up on first use or by `db init`,
each named migration runs once, and read-only commands write nothing — not even a new file."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import psycopg
import pytest
from langgraph.store.sqlite import SqliteStore

from review_agent.config import Settings
from review_agent.storage.factory import open_storage
from review_agent.storage.migrations import FORMATS, MIGRATIONS, MIGRATIONS_NS, applied, recorded_formats
from review_agent.storage.vectors import VectorCache
from tests.crash import run_cli
from tests.gitrepo import make_repo
from tests.pg import temp_database


def _fingerprint(env: dict[str, str]) -> str:
    """A digest of every row of every table (Postgres), or of the SQLite file's bytes."""
    if "DATABASE_URL" in env:
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' ORDER BY table_name"
                )
            ]
            digest = hashlib.sha256()
            for t in tables:
                rows = "md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), ''))"
                row = conn.execute(f'SELECT count(*), {rows} FROM "{t}" x').fetchone()
                digest.update(f"{t}:{row}".encode())
            return digest.hexdigest()
    db = Path(env["REVIEW_AGENT_HOME"]) / "review-agent.sqlite"
    return hashlib.sha256(db.read_bytes()).hexdigest()


@pytest.mark.slow
def test_read_only_commands_write_nothing(tmp_path: Path, backend_env: dict[str, str]) -> None:
    env = backend_env
    repo = make_repo(tmp_path, files=2)
    assert run_cli(["prefs", "set", "style", "early returns", "--user", "ann"], env, tmp_path).returncode == 0
    assert run_cli(["learn", "prefer pathlib over os.path", "--user", "ann"], env, tmp_path).returncode == 0
    r = run_cli(["review", str(repo), "--base", "main", "--user", "ann"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    before = _fingerprint(env)
    for args in (
        ["status", str(repo), "--base", "main"],
        ["history", str(repo), "--base", "main"],
        ["prefs", "list", "--user", "ann"],
        ["prefs", "get", "style", "--user", "ann"],
        ["prefs", "export", "--all"],
    ):
        r = run_cli(args, env, tmp_path)
        assert r.returncode == 0, (args, r.stderr)
        assert _fingerprint(env) == before, args
    assert (
        "finished, 2/2 files done" in run_cli(["status", str(repo), "--base", "main"], env, tmp_path).stdout
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_read_only_commands_on_no_database_create_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, files=1)
    home = tmp_path / "home"
    with temp_database("ra_ro") as url:
        for env in ({"REVIEW_AGENT_HOME": str(home)}, {"REVIEW_AGENT_HOME": str(home), "DATABASE_URL": url}):
            r = run_cli(["status", str(repo), "--base", "main"], env, tmp_path)
            assert r.returncode == 0 and "not reviewed yet" in r.stdout, r.stderr
            r = run_cli(["prefs", "list", "--user", "ann"], env, tmp_path)
            assert r.returncode == 0 and "no preferences" in r.stdout, r.stderr
            assert run_cli(["history", str(repo), "--base", "main"], env, tmp_path).returncode == 0
        assert not home.exists()
        with psycopg.connect(url) as conn:
            n = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            assert n.fetchone() == (0,)


@pytest.mark.slow
def test_first_use_sets_up_and_each_migration_runs_once(tmp_path: Path, backend_env: dict[str, str]) -> None:
    env = backend_env
    r = run_cli(["prefs", "set", "style", "early returns", "--user", "ann"], env, tmp_path)  # first use
    assert r.returncode == 0, r.stderr
    settings = Settings(**{k: v for k, v in env.items()})  # type: ignore[arg-type]
    with open_storage(settings, read_only=True) as storage:
        first = {i.key: i.value for i in storage.store.search(MIGRATIONS_NS)}
        assert set(first) == {m.name for m in MIGRATIONS if "DATABASE_URL" in env or not m.needs_pgvector}
        assert recorded_formats(storage.store) == FORMATS
    for _ in range(2):
        r = run_cli(["db", "init"], env, tmp_path)
        assert r.returncode == 0 and "migrations: up to date" in r.stdout, r.stdout + r.stderr
    with open_storage(settings, read_only=True) as storage:
        assert {i.key: i.value for i in storage.store.search(MIGRATIONS_NS)} == first  # none ran again
    # a command on a set-up, current database writes no setup at all
    before = _fingerprint(env)
    assert run_cli(["prefs", "get", "style", "--user", "ann"], env, tmp_path).returncode == 0
    assert _fingerprint(env) == before


def test_db_init_on_a_fresh_database_names_the_migrations_it_applied(tmp_path: Path) -> None:
    env = {"REVIEW_AGENT_HOME": str(tmp_path / "home")}
    r = run_cli(["db", "init"], env, tmp_path)
    assert r.returncode == 0 and "migrations applied: learnings_without_embedded_vectors" in r.stdout


def test_format_1_memory_is_migrated_once(tmp_path: Path) -> None:
    """Format 1 kept one embedding inside each learning and a record refusing any other
    embedder. The model's vectors move to its cache; the record goes; the text stays."""
    home = tmp_path / "home"
    home.mkdir()
    conn = sqlite3.connect(home / "review-agent.sqlite", isolation_level=None, check_same_thread=False)
    legacy = SqliteStore(conn)
    legacy.setup()
    legacy.put(("review-agent", "meta"), "embeddings", {"name": "openai:text-embedding-3-small", "dims": 3})
    ns = ("user", "ann", "learnings")
    legacy.put(ns, "k1", {"text": "prefer pathlib", "origin": {}, "embedding": [0.1, 0.2, 0.3]}, index=False)
    conn.close()

    settings = Settings(REVIEW_AGENT_HOME=home)  # type: ignore[call-arg]
    with open_storage(settings) as storage:  # first use of our setup: the migration runs
        assert storage.migrated == ["learnings_without_embedded_vectors"]
        item = storage.store.get(ns, "k1")
        assert item is not None and item.value == {"text": "prefer pathlib", "origin": {}}
        vectors = VectorCache(storage.store).get_many("openai:text-embedding-3-small:3", [(ns, "k1")])
        assert vectors == {(ns, "k1"): [0.1, 0.2, 0.3]}
        assert storage.store.get(("review-agent", "meta"), "embeddings") is None
        assert applied(storage.store) == {m.name for m in MIGRATIONS if not m.needs_pgvector}
        assert [lr.text for lr in storage.learnings().list(("user", "ann"))] == ["prefer pathlib"]
    with open_storage(settings) as storage:
        assert storage.migrated == []
