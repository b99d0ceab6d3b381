"""Operator commands: `db init` (idempotent) and `db prune` (retention), on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.crash import run_cli
from tests.gitrepo import make_repo

# Each test runs the CLI in subprocesses (db init, review, prune): seconds each.
pytestmark = pytest.mark.slow


def _checkpoint_count(env: dict[str, str]) -> int:
    if "DATABASE_URL" in env:
        import psycopg

        with psycopg.connect(env["DATABASE_URL"]) as conn:
            return conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    import sqlite3

    db = Path(env["REVIEW_AGENT_HOME"]) / "review-agent.sqlite"
    return sqlite3.connect(db).execute("SELECT count(*) FROM checkpoints").fetchone()[0]


def test_db_init_twice_then_prune_keeps_what_resume_and_reports_need(
    tmp_path: Path, backend_env: dict[str, str]
) -> None:
    env = backend_env
    for _ in range(2):
        r = run_cli(["db", "init"], env, tmp_path)
        assert r.returncode == 0 and "database ready" in r.stdout, r.stderr
    repo = make_repo(tmp_path, files=4)
    args = ["review", str(repo), "--base", "main", "-j", "1", "-f", "json"]
    first = run_cli(args, env, tmp_path)
    assert first.returncode == 0, first.stderr
    before = _checkpoint_count(env)
    assert before > 8

    r = run_cli(["db", "prune"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"{before} checkpoints -> 1" in r.stdout
    assert _checkpoint_count(env) == 1

    again = run_cli(args, env, tmp_path)
    assert again.returncode == 0 and "Already reviewed: 4/4" in again.stderr
    assert json.loads(again.stdout)["files"] == json.loads(first.stdout)["files"]
    status = run_cli(["status", str(repo), "--base", "main"], env, tmp_path)
    assert "finished, 4/4 files done" in status.stdout


@pytest.mark.postgres
def test_db_init_says_what_to_do_when_the_role_may_not_create_the_extension(tmp_path: Path) -> None:
    """A role that may create tables but not extensions sets a database up (memory then
    compares vectors in Python), and `db init` says how to get pgvector; once a superuser has
    created the extension, `db init` by the same role moves memory's vectors into it."""
    import psycopg

    from tests.pg import limited_role, temp_database

    with temp_database("ra_role") as url, limited_role(url) as limited:
        env = {"DATABASE_URL": limited, "REVIEW_AGENT_HOME": str(tmp_path)}
        r = run_cli(["db", "init"], env, tmp_path)
        assert r.returncode == 0 and "database ready: postgres" in r.stdout, r.stderr
        assert "may not create the `vector` extension" in r.stderr
        assert "CREATE EXTENSION vector" in r.stderr and "Traceback" not in r.stderr
        assert "learning_vectors_into_pgvector" not in r.stdout  # it waits for the extension
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        r = run_cli(["db", "init"], env, tmp_path)
        assert r.returncode == 0 and "migrations applied: learning_vectors_into_pgvector" in r.stdout, (
            r.stderr
        )
        assert "CREATE EXTENSION" not in r.stderr
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('review_agent_learning_vectors')").fetchone() != (None,)
        r = run_cli(["db", "init"], env, tmp_path)
        assert r.returncode == 0 and "migrations: up to date" in r.stdout and not r.stderr.strip(), r.stderr
