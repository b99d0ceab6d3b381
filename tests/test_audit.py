"""The audit log itself, on both backends: append-only for real, runs folded from events, a run
that never ended marked killed by the next one, nothing secret kept; and `db prune` around it
(VACUUM, honest counts, a missing database or role is not "unreachable")."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from review_agent.config import Settings
from review_agent.errors import BudgetExhausted, Interrupted
from review_agent.storage import audit as ev
from review_agent.storage.factory import open_storage
from tests.crash import run_cli
from tests.gitrepo import make_repo

T = "github.com/acme/shop#7@" + "a" * 40


def _settings(env: dict[str, str]) -> Settings:
    return Settings(
        REVIEW_AGENT_HOME=Path(env["REVIEW_AGENT_HOME"]),
        DATABASE_URL=env.get("DATABASE_URL"),
        REVIEW_AGENT_EMBEDDINGS="local",
    )


def _raw_rows(env: dict[str, str]) -> list[tuple[str, str]]:
    """Every audit row as (event, data JSON), read without our code."""
    if "DATABASE_URL" in env:
        import psycopg

        with psycopg.connect(env["DATABASE_URL"]) as conn:
            rows = conn.execute(f"SELECT event, data::text FROM {ev.TABLE} ORDER BY id").fetchall()
            return [(r[0], r[1]) for r in rows]
    db = Path(env["REVIEW_AGENT_HOME"]) / "review-agent.sqlite"
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT event, data FROM {ev.TABLE} ORDER BY id").fetchall()


def test_runs_their_ends_and_a_killed_run_found_by_the_next(backend_env: dict[str, str]) -> None:
    with open_storage(_settings(backend_env)) as storage:
        log = storage.audit
        # run 1 starts and is never heard of again (SIGKILL)
        log.start_run(T, user="alice", reviewer="openai:m1", options={"concurrency": 4})
        # run 2: the next run notices, then is interrupted
        with pytest.raises(Interrupted), log.run(T, reviewer="openai:m1") as run2:
            run2.planned(3, [{"path": "logo.png", "reason": "binary file"}])
            run2.file_done("a.py", comments=2, reviewer="openai:m1")
            run2.end_data = {"files_done": 1, "files_total": 3}
            raise Interrupted("stopped: 1/3 files saved")
        with pytest.raises(BudgetExhausted), log.run(T, reviewer="openai:m1"):
            raise BudgetExhausted("budget reached")
        with log.run(T, reviewer="openai:m2") as run4:
            run4.file_done("b.py", comments=0, reused=True, reused_from="github.com/acme/shop#7@" + "0" * 40)
            run4.file_failed("c.py", "model answer could not be parsed")
            run4.posted(
                {"review_id": 99, "comments_posted": 2, "comments_already_there": 1, "moved_to_body": 0}
            )
        runs = log.runs(T)
        assert [r.number for r in runs] == [1, 2, 3, 4]
        assert [r.outcome for r in runs] == [ev.KILLED, ev.INTERRUPTED, ev.BUDGET, ev.FINISHED]
        assert runs[0].end["noticed_by"] == runs[1].run_id
        assert runs[1].end == {
            "outcome": "interrupted",
            "message": "stopped: 1/3 files saved",
            "files_done": 1,
            "files_total": 3,
            "exit_code": 130,
        }
        assert runs[0].start["user"] == "alice" and runs[0].start["options"] == {"concurrency": 4}
        assert isinstance(runs[0].start["pid"], int) and runs[0].start["host"]
        events = [e.event for e in log.events(T)]
        assert events.count(ev.RUN_ENDED) == 4
        assert [e for e in events if e.startswith(("file", "posted", "planned"))] == [
            ev.PLANNED,
            ev.FILE_REVIEWED,
            ev.FILE_REUSED,
            ev.FILE_FAILED,
            ev.POSTED,
        ]
        assert log.runs("another thread") == []


def test_the_table_refuses_updates_and_deletes(backend_env: dict[str, str]) -> None:
    with open_storage(_settings(backend_env)) as storage:
        storage.audit.record(T, None, ev.FRESH)
    if "DATABASE_URL" in backend_env:
        import psycopg

        with psycopg.connect(backend_env["DATABASE_URL"], autocommit=True) as conn:
            for sql in (
                f"UPDATE {ev.TABLE} SET event = 'x'",
                f"DELETE FROM {ev.TABLE}",
                f"TRUNCATE {ev.TABLE}",
            ):
                with pytest.raises(psycopg.Error, match="append-only"):
                    conn.execute(sql)
    else:
        db = Path(backend_env["REVIEW_AGENT_HOME"]) / "review-agent.sqlite"
        with sqlite3.connect(db) as conn:
            for sql in (f"UPDATE {ev.TABLE} SET event = 'x'", f"DELETE FROM {ev.TABLE}"):
                with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                    conn.execute(sql)
    assert _raw_rows(backend_env) == [(ev.FRESH, "{}")]


def test_threads_of_one_pr_are_found_case_blind_and_wildcards_are_literal(tmp_path: Path) -> None:
    env = {"REVIEW_AGENT_HOME": str(tmp_path / "home")}
    with open_storage(_settings(env)) as storage:
        for thread in ("github.com/Acme/Shop#7@" + "1" * 40, "github.com/acme/shop#70@" + "2" * 40):
            storage.audit.record(thread, None, ev.FRESH)
        storage.audit.record("github.com/acme/shop#7@" + "3" * 40, None, ev.FRESH)
        storage.audit.record("github.com/acme_shop#7@" + "4" * 40, None, ev.FRESH)
        found = [t for t, _ in storage.audit.threads_like("github.com/acme/shop#7@")]
        # newest first; "#70" is another PR; "_" is not a wildcard
        assert found == ["github.com/acme/shop#7@" + "3" * 40, "github.com/Acme/Shop#7@" + "1" * 40]


def test_messages_are_one_line_and_carry_no_credential(tmp_path: Path) -> None:
    env = {"REVIEW_AGENT_HOME": str(tmp_path / "home")}
    token = "ghp_" + "A1b2C3d4E5" * 4
    with (
        open_storage(_settings(env)) as storage,
        pytest.raises(RuntimeError),
        storage.audit.run(T, reviewer="builtin"),
    ):
        raise RuntimeError(f"GitHub said: bad token {token}\nsecond line")
    rows = _raw_rows(env)
    ended = json.loads(rows[-1][1])
    assert ended["outcome"] == ev.ERROR
    assert token not in rows[-1][1] and "second line" not in ended["message"]
    assert ended["message"].startswith("GitHub said: bad token")


# --------------------------------------------------------------------------------------------
# db prune


def _checkpoints(env: dict[str, str]) -> int:
    if "DATABASE_URL" in env:
        import psycopg

        with psycopg.connect(env["DATABASE_URL"]) as conn:
            return conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    db = Path(env["REVIEW_AGENT_HOME"]) / "review-agent.sqlite"
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]


@pytest.mark.slow
def test_prune_reports_only_what_it_did_and_keeps_the_audit_log(
    tmp_path: Path, backend_env: dict[str, str]
) -> None:
    env = backend_env
    repo = make_repo(tmp_path, files=3)
    assert run_cli(["review", str(repo), "--base", "main", "-j", "1"], env, tmp_path).returncode == 0
    audit_before = _raw_rows(env)
    before = _checkpoints(env)
    first = run_cli(["db", "prune"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"pruned 1 review: {before} checkpoints -> 1" in first.stdout
    second = run_cli(["db", "prune"], env, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "nothing to prune: 1 checkpoint" in second.stdout and "pruned" not in second.stdout
    rows = _raw_rows(env)
    # nothing of the log was deleted; the prune added exactly one event (the second one none)
    assert rows[: len(audit_before)] == audit_before
    assert [e for e, _ in rows[len(audit_before) :]] == [ev.PRUNED]
    assert json.loads(rows[-1][1]) == {"checkpoints_before": before, "checkpoints_after": 1}


@pytest.mark.slow
def test_prune_gives_the_space_back_on_sqlite(tmp_path: Path) -> None:
    env = {"REVIEW_AGENT_HOME": str(tmp_path / "home")}
    repo = make_repo(tmp_path, files=60)
    assert run_cli(["review", str(repo), "--base", "main", "-j", "1"], env, tmp_path).returncode == 0
    db = Path(env["REVIEW_AGENT_HOME"]) / "review-agent.sqlite"

    def size() -> int:
        return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())

    before = size()
    r = run_cli(["db", "prune"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "database file:" in r.stdout
    # without VACUUM the file keeps its size (SQLite keeps freed pages): it must shrink a lot
    assert size() < before * 0.6, (before, size(), r.stdout)


@pytest.mark.postgres
def test_a_missing_database_or_role_is_bad_input_not_unreachable(tmp_path: Path) -> None:
    from tests.pg import ADMIN_URL

    base = ADMIN_URL.rsplit("/", 1)[0]
    missing_db = f"ra_missing_{uuid.uuid4().hex[:8]}"
    missing_role = f"ra_nobody_{uuid.uuid4().hex[:8]}"
    cases = {
        f'database "{missing_db}" does not exist': f"{base}/{missing_db}",
        f'role "{missing_role}" does not exist': ADMIN_URL.replace("postgres@", f"{missing_role}@", 1),
    }
    for message, url in cases.items():
        r = run_cli(["db", "prune"], {"DATABASE_URL": url, "REVIEW_AGENT_HOME": str(tmp_path)}, tmp_path)
        assert r.returncode == 2, r.stderr
        assert message in r.stderr and "unreachable" not in r.stderr and "Traceback" not in r.stderr
