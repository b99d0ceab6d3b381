"""Storage faults made to happen for real, under the real CLI (docs/architecture.md, "Storage",
"Exactly once", "Testing").

Every test here drives `review-agent review REPO --base main` as a subprocess against the fake
OpenAI server (real langchain-openai client over HTTP) with DATABASE_URL = a Postgres database and,
mostly, REDIS_URL = a Redis the test owns. The faults are not simulated: Redis is flushed with
FLUSHALL, killed with SIGKILL or never started; a Postgres cluster of the test's own is restarted
with `pg_ctl restart -m fast`; the CLI itself is SIGKILLed. What is asserted is what a user or the
model bill would see: the exit code and its one-line message, and how many times each file was sent
to the model (counted at the fake server, so a redone file cannot hide).

Why private servers: flushing, killing or restarting the machine's shared Redis or Postgres would
break every other test and user of them. A private `redis-server` costs ~50 ms, a private Postgres
cluster (initdb + pg_ctl, as the `postgres` OS user when we are root) about a second, so the
Postgres one is module scoped. Both are torn down in `finally` blocks, by the pid we started, so a
failing test leaves nothing running.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.store.postgres import PostgresStore
from psycopg import sql

from review_agent.storage.redis import RedisTierSaver
from review_agent.storage.results import ReviewResults
from review_agent.storage.serde import StrictSerializer
from tests.crash import kill_hard, run_cli, start_cli, wait_for
from tests.fakes.openai_server import FakeOpenAI
from tests.gitrepo import make_repo
from tests.pg import ADMIN_URL, SAVER_CONN_KWARGS, temp_database
from tests.services import PrivateRedis, free_port

PREFIX = "review-agent:"  # the tier's default key prefix; the factory does not change it
MODEL_ENV = {
    "OPENAI_API_KEY": "sk-test-key",
    "REVIEW_AGENT_MODEL": "fake-model",
    "REVIEW_AGENT_MODEL_RETRIES": "1",
    "REVIEW_AGENT_MODEL_TIMEOUT": "10",
    "REVIEW_AGENT_RETRY_INTERVAL": "0.1",
}
# stderr lines the CLI prints on a healthy run; anything else is a problem report
PROGRESS = re.compile(
    r"^(\[\d+/\d+\] |reviewer |Resuming|Already reviewed: |offline: |walkthrough written by )"
)


# --------------------------------------------------------------------------------------------
# Private servers
# --------------------------------------------------------------------------------------------


def _pg_bindir() -> Path:
    """The PostgreSQL binaries whose server has pgvector: the store cannot start without it."""
    candidates: list[Path] = []
    if os.environ.get("REVIEW_AGENT_TEST_PG_BINDIR"):
        candidates.append(Path(os.environ["REVIEW_AGENT_TEST_PG_BINDIR"]))
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates += sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    if shutil.which("initdb"):
        candidates.append(Path(str(shutil.which("initdb"))).parent)
    for bindir in candidates:
        if not (bindir / "initdb").exists() or not (bindir / "pg_ctl").exists():
            continue
        sharedir = subprocess.run(
            [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if sharedir and (Path(sharedir) / "extension" / "vector.control").exists():
            return bindir
    raise RuntimeError("no PostgreSQL installation with initdb, pg_ctl and pgvector found")


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (trust auth, 127.0.0.1 only) that a test may restart.

    It lives in a fresh directory under the system temp dir rather than in pytest's tmp_path:
    the server must run as the `postgres` OS user when we are root (Postgres refuses root), and
    that user cannot traverse pytest's 0700 `/tmp/pytest-of-root`.
    """

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="ra-pgfaults-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / tool), *args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{tool} failed: {proc.stderr.strip()}\n{self.log_tail()}")
        return proc

    def log_tail(self) -> str:
        try:
            return "server log:\n" + "\n".join(self.log.read_text().splitlines()[-20:])
        except OSError:
            return ""

    def init_and_start(self) -> PrivatePostgres:
        # --no-sync and fsync=off: this cluster only has to survive a clean restart, not a power cut
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        self.start()
        return self

    def _opts(self) -> str:
        return (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off"
        )

    def _pg_ctl(self, action: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), *args, action, check=check)

    def start(self) -> None:
        self._pg_ctl("start", "-o", self._opts(), "-w", "-t", "60")

    def restart(self) -> None:
        """`-m fast`: every session is terminated, as an operator's restart or a failover does."""
        self._pg_ctl("restart", "-o", self._opts(), "-m", "fast", "-w", "-t", "60")

    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def destroy(self) -> None:
        """Stop the server (immediate: nothing to keep) and delete the cluster, whatever state it is in."""
        try:
            stopped = self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "30", check=False).returncode == 0
            if self.data.exists() and not stopped:
                pid_file = self.data / "postmaster.pid"
                if pid_file.exists():  # pg_ctl gave up: end the postmaster we started, by its pid
                    with contextlib.suppress(OSError, ValueError):
                        os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh database with the `vector` extension created from the system-wide install."""
        if not self.running():
            self.start()  # an earlier test may have failed between stop and start
        name = f"ra_faults_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            with psycopg.connect(self.url(name), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            yield self.url(name)
        finally:
            with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.init_and_start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the machine's shared Postgres, dropped afterwards."""
    with temp_database("ra_faults") as url:
        yield url


# --------------------------------------------------------------------------------------------
# What the tests look at
# --------------------------------------------------------------------------------------------


def names(n: int) -> list[str]:
    return [f"mod{i:02d}.py" for i in range(n)]


def review_args(repo: Path, concurrency: int) -> list[str]:
    return ["review", str(repo), "--base", "main", "-j", str(concurrency), "-f", "json"]


def model_env(fake: FakeOpenAI, tmp: Path, **extra: str) -> dict[str, str]:
    return {**MODEL_ENV, "OPENAI_BASE_URL": fake.base_url, "REVIEW_AGENT_HOME": str(tmp / "home"), **extra}


def calls_per_file(fake: FakeOpenAI, n: int) -> dict[str, int]:
    return {p: fake.calls_for(p) for p in names(n)}


def problem_lines(stderr: str) -> list[str]:
    """stderr without the progress lines: warnings, errors, tracebacks."""
    return [line for line in stderr.splitlines() if line.strip() and not PROGRESS.match(line)]


def status_of(repo: Path, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    result = run_cli(["status", str(repo), "--base", "main", "--json"], env, cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def finished_files(db_url: str, thread_id: str) -> set[str]:
    """Files whose review Postgres holds: what a rerun must never send to the model again."""
    with psycopg.connect(db_url, **SAVER_CONN_KWARGS) as conn:
        return set(ReviewResults(PostgresStore(conn)).list(thread_id))


def checkpoint_rows(db_url: str, thread_id: str) -> int:
    with psycopg.connect(db_url, **SAVER_CONN_KWARGS) as conn:
        query = "SELECT count(*) AS n FROM checkpoints WHERE thread_id = %s"
        row = conn.execute(query, (thread_id,)).fetchone()
        return int(row["n"]) if row else 0


def redis_serves_postgres(redis_url: str, db_url: str, thread_id: str) -> bool:
    """Read the thread's latest checkpoint through a fresh tier, as a resuming process would.

    Asserts that both reads equal Postgres' answer and that the second one comes from Redis (a
    miss refills). Returns whether the first read was already a hit, i.e. whether Redis held the
    latest checkpoint when the CLI ended.
    """
    cfg: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    with psycopg.connect(db_url, **SAVER_CONN_KWARGS) as conn:
        durable = PostgresSaver(conn, serde=StrictSerializer())  # as the CLI opens it
        want = durable.get_tuple(cfg)
        assert want is not None
        with RedisTierSaver(durable, redis_url) as tier:
            first = tier.get_tuple(cfg)
            first_hit = tier.stats.hits == 1
            second = tier.get_tuple(cfg)
            assert tier.stats.hits == int(first_hit) + 1, tier.stats
    assert first == want
    assert second == want
    return first_hit


def thread_keys(thread_id: str) -> tuple[str, str]:
    """The tier's index and entry keys of a thread's root namespace (the tier's key layout)."""
    tid = thread_id.replace("%", "%25").replace(":", "%3A")
    return f"{PREFIX}t:{tid}", f"{PREFIX}c:{tid}:"


@dataclass
class Resume:
    """What the rerun after a fault did, judged against what the fault left in Postgres."""

    thread_id: str
    finished: set[str]
    before: dict[str, int]
    after: dict[str, int]
    redone: list[str]


def assert_resumes(
    args: list[str], env: dict[str, str], cwd: Path, fake: FakeOpenAI, db_url: str, n: int, concurrency: int
) -> Resume:
    """Rerun the same command after a fault: it must resume, redo at most the files in flight,
    never a finished one, and a third run must not call the model at all."""
    info = status_of(Path(args[1]), env, cwd)
    finished = finished_files(db_url, info["thread_id"])
    assert info["done"] == len(finished)
    assert 0 < len(finished) < n, finished
    before = calls_per_file(fake, n)
    result = run_cli(args, env, cwd)
    assert result.returncode == 0, result.stderr
    assert f"Resuming: {len(finished)}/{n} files done" in result.stderr
    report = json.loads(result.stdout)
    assert report["resumed"] is True
    assert [f["path"] for f in report["files"]] == names(n)
    after = calls_per_file(fake, n)
    assert all(after[p] == before[p] for p in finished), (finished, before, after)
    assert all(after[p] >= 1 for p in names(n)), after
    redone = [p for p in names(n) if after[p] > 1]
    in_flight = {p for p in names(n) if before[p] and p not in finished}
    assert set(redone) <= in_flight and len(redone) <= concurrency, (redone, in_flight, before, after)
    assert all(after[p] == 2 for p in redone), after
    # the files sent again, and the walkthrough written after them
    assert report["model_calls"] == sum(after.values()) - sum(before.values()) + 1
    total = fake.total_calls
    again = run_cli(args, env, cwd)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["model_calls"] == 0 and fake.total_calls == total
    return Resume(info["thread_id"], finished, before, after, redone)


# --------------------------------------------------------------------------------------------
# Postgres + Redis, no fault: the baseline the fault tests are measured against
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_review_on_postgres_and_redis_writes_both_and_admin_commands_work(
    tmp_path: Path, fake_openai: FakeOpenAI, pg_url: str, private_redis: Callable[..., PrivateRedis]
) -> None:
    """Checkpoints land in Postgres (the copy that counts) and in Redis (the hot tier holds the
    latest one, served as a hit that equals Postgres); `db init` is idempotent; status and
    history read the finished review back."""
    n = 6
    repo = make_repo(tmp_path, files=n)
    server = private_redis()
    env = model_env(fake_openai, tmp_path, DATABASE_URL=pg_url, REDIS_URL=server.url)
    fake_openai.delay = 0.05

    init = run_cli(["db", "init"], env, tmp_path)  # an empty database: creates tables, vector index
    assert init.returncode == 0, init.stderr
    assert init.stdout.splitlines()[0] == "database ready: postgres + redis"  # then its migrations
    assert not problem_lines(init.stderr), init.stderr

    result = run_cli(review_args(repo, 2), env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not problem_lines(result.stderr), result.stderr
    report = json.loads(result.stdout)
    assert report["backend"] == "postgres + redis"
    assert [f["path"] for f in report["files"]] == names(n)
    assert calls_per_file(fake_openai, n) == dict.fromkeys(names(n), 1)
    thread_id = report["thread_id"]

    # Postgres: every superstep (more than one per file), and every file's review
    assert checkpoint_rows(pg_url, thread_id) > n
    assert finished_files(pg_url, thread_id) == set(names(n))
    # Redis: the thread's index and latest checkpoint, expiring, and served as a hit
    with server.client() as r:
        keys = {k.decode() for k in r.scan_iter(match=f"{PREFIX}*")}
        index, entry = thread_keys(thread_id)
        assert {f"{PREFIX}epoch", index, entry} <= keys, keys
        assert all(0 < r.ttl(k) <= 7 * 24 * 3600 for k in (index, entry))
    assert redis_serves_postgres(server.url, pg_url, thread_id) is True

    # the second `db init`, on a database that holds a finished review: finds it all there
    init = run_cli(["db", "init"], env, tmp_path)
    assert init.returncode == 0, init.stderr
    assert init.stdout.splitlines()[0] == "database ready: postgres + redis"  # then its migrations
    assert finished_files(pg_url, thread_id) == set(names(n))
    assert redis_serves_postgres(server.url, pg_url, thread_id) is True

    status = run_cli(["status", str(repo), "--base", "main"], env, tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"finished, {n}/{n} files done" in status.stdout
    history = run_cli(["history", str(repo), "--base", "main", "--json"], env, tmp_path)
    assert history.returncode == 0, history.stderr
    events = json.loads(history.stdout)["events"]
    reviewed = [e["path"] for e in events if e["event"] == "file_reviewed"]
    assert sorted(reviewed) == names(n)  # each file's review appears once in the audit trail
    assert (events[-1]["event"], events[-1]["outcome"]) == ("run_ended", "finished")


# --------------------------------------------------------------------------------------------
# Redis faults: the tier is a cache, never the only copy
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("fault", ["flushed", "down-from-the-start", "killed"])
def test_redis_fault_mid_review_review_completes_on_postgres(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    pg_url: str,
    private_redis: Callable[..., PrivateRedis],
    fault: str,
) -> None:
    """Redis flushed (FLUSHALL) or killed (SIGKILL of redis-server) while files are in flight,
    or never reachable: the review completes on Postgres, no file is sent to the model twice,
    and the Redis password never shows. A flush is a miss everywhere, not an error: nothing is
    reported, and afterwards Redis serves the final checkpoint again (refilled) equal to
    Postgres. An outage is one warning however many supersteps follow; a rerun with Redis still
    down finds the review done."""
    n = 8
    repo = make_repo(tmp_path, files=n)
    if fault == "down-from-the-start":
        server = None
        redis_url = f"redis://:tier-secret-pw@127.0.0.1:{free_port()}/0"
    else:
        server = private_redis(password="tier-secret-pw")
        redis_url = server.url
    env = model_env(fake_openai, tmp_path, DATABASE_URL=pg_url, REDIS_URL=redis_url)
    fake_openai.delay = 0.2
    proc = start_cli(review_args(repo, 2), env, tmp_path)
    try:
        wait_for(lambda: fake_openai.total_calls >= 3, what="three model calls")
        if server is not None and fault == "flushed":
            with server.client() as r:
                assert r.dbsize() > 0  # the tier was in use before the flush
                r.flushall()
        elif server is not None:
            server.kill()
        at_fault = fake_openai.total_calls
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            kill_hard(proc)
    assert at_fault < n, "the review finished before the fault: nothing was tested"
    assert proc.returncode == 0, err
    assert "tier-secret-pw" not in err
    problems = problem_lines(err)
    if fault == "flushed":
        assert problems == [], err
    else:
        assert len(problems) == 1 and problems[0].startswith("WARNING: Redis tier unavailable"), err
        assert "***" in problems[0]
    report = json.loads(out)
    assert report["backend"] == "postgres + redis"
    assert [f["path"] for f in report["files"]] == names(n)
    assert calls_per_file(fake_openai, n) == dict.fromkeys(names(n), 1)
    assert report["model_calls"] == n + 1  # and the walkthrough
    assert finished_files(pg_url, report["thread_id"]) == set(names(n))
    assert checkpoint_rows(pg_url, report["thread_id"]) > n // 2  # every step's, in Postgres
    if server is not None and fault == "flushed":
        redis_serves_postgres(redis_url, pg_url, report["thread_id"])
    else:  # Redis still down: Postgres knows the review is done
        again = run_cli(review_args(repo, 2), env, tmp_path)
        assert again.returncode == 0, again.stderr
        assert f"Already reviewed: {n}/{n}" in again.stderr
        assert json.loads(again.stdout)["model_calls"] == 0


# --------------------------------------------------------------------------------------------
# SIGKILL of the CLI on Postgres + Redis
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize(
    ("concurrency", "flush_before_rerun"),
    [(1, False), (4, False), (1, True)],
    ids=["j1", "j4", "j1-redis-flushed-before-rerun"],
)
def test_sigkill_mid_review_on_postgres_and_redis_then_rerun_resumes(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    pg_url: str,
    private_redis: Callable[..., PrivateRedis],
    concurrency: int,
    flush_before_rerun: bool,
) -> None:
    """Kill the CLI with SIGKILL mid-review and rerun: it resumes from what Postgres holds
    (through Redis, or from Postgres alone when Redis was flushed in between), redoes at most the
    files in flight, never a finished one; afterwards Redis serves the final checkpoint."""
    n = 12
    repo = make_repo(tmp_path, files=n)
    server = private_redis()
    env = model_env(fake_openai, tmp_path, DATABASE_URL=pg_url, REDIS_URL=server.url)
    fake_openai.delay = 0.25
    args = review_args(repo, concurrency)
    proc = start_cli(args, env, tmp_path)
    try:
        wait_for(lambda: fake_openai.total_calls >= 5, what="five model calls")
    finally:
        if proc.poll() is None:
            kill_hard(proc)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else proc.returncode
    if flush_before_rerun:
        with server.client() as r:
            r.flushall()
    fake_openai.delay = 0.0
    resume = assert_resumes(args, env, tmp_path, fake_openai, pg_url, n, concurrency)
    assert sum(resume.after.values()) <= n + concurrency
    assert redis_serves_postgres(server.url, pg_url, resume.thread_id) is True


# --------------------------------------------------------------------------------------------
# Postgres restarted mid-review (a private cluster)
# --------------------------------------------------------------------------------------------


@dataclass
class RestartRun:
    """One review through a `pg_ctl restart -m fast`, and what it left behind."""

    returncode: int
    stdout: str
    stderr: str
    calls_at_restart: int
    n: int
    args: list[str]
    env: dict[str, str]
    cwd: Path
    fake: FakeOpenAI
    db_url: str


@pytest.fixture(scope="module")
def pg_restart_run(
    private_pg: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RestartRun]:
    """Restart the private cluster while the CLI reviews 10 files one at a time.

    Why a module fixture: one restart feeds two contracts that can break independently (how the
    first run ends; what the rerun redoes). As two tests, a failure names which one broke, and
    the restart, the slow part, happens once.
    """
    n = 10
    tmp = tmp_path_factory.mktemp("pg_restart")
    repo = make_repo(tmp, files=n)
    with FakeOpenAI(require_api_key="sk-test-key", delay=0.25) as fake, private_pg.database() as db_url:
        env = model_env(fake, tmp, DATABASE_URL=db_url)
        args = review_args(repo, 1)
        proc = start_cli(args, env, tmp)
        try:
            wait_for(lambda: fake.total_calls >= 4, what="four model calls")
            at_restart = fake.total_calls
            private_pg.restart()
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                kill_hard(proc)
        assert at_restart < n, "the review finished before the restart: nothing was tested"
        fake.delay = 0.0
        yield RestartRun(proc.returncode, out, err, at_restart, n, args, env, tmp, fake, db_url)


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_restart_mid_review_exits_3_in_one_line_or_completes(pg_restart_run: RestartRun) -> None:
    """A backend lost after retries is exit 3 with one clear line (or the run
    survives the restart and completes). Never exit 1's "unexpected ..., please report it"."""
    run = pg_restart_run
    assert run.returncode in (0, 3), (run.returncode, run.stderr)
    problems = problem_lines(run.stderr)
    if run.returncode == 0:
        assert not [p for p in problems if not p.startswith("WARNING:")], run.stderr
        return
    assert len(problems) == 1, run.stderr
    assert problems[0].startswith("error: ") and "Traceback" not in run.stderr
    assert "unexpected" not in problems[0]  # exit 1's "please report it": a bug, not a backend
    assert re.search(r"database|postgres", problems[0], re.I), problems[0]
    assert "rerun" in problems[0], problems[0]  # says what to do


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_restart_mid_review_rerun_resumes_and_redoes_nothing_finished(
    pg_restart_run: RestartRun,
) -> None:
    """Whatever the first run's fate, the restart lost nothing committed: a rerun resumes at
    the file in flight, and no file whose review Postgres holds is sent to the model again."""
    run = pg_restart_run
    assert run.returncode != -signal.SIGKILL and "Traceback" not in run.stderr
    if run.returncode == 0:  # survived the restart: every file once, nothing to resume
        assert calls_per_file(run.fake, run.n) == dict.fromkeys(names(run.n), 1)
        return
    assert_resumes(run.args, run.env, run.cwd, run.fake, run.db_url, run.n, concurrency=1)


# --------------------------------------------------------------------------------------------
# Configuration errors: one line, the right exit code, no secret, nothing half-written
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize(
    "redis_url",
    [
        pytest.param("127.0.0.1:6379", id="no-scheme"),
        pytest.param("redis://:hunter2-redis-pw@127.0.0.1:notaport/0", id="bad-port-with-password"),
        # redis-py alone would quietly use db 0 for this one; at a closed port, accepting it
        # would show as a review that runs (on Postgres alone) instead of exit 2
        pytest.param("redis://127.0.0.1:{closed}/cache", id="non-numeric-db"),
    ],
)
def test_malformed_redis_url_exits_2_with_one_line(
    tmp_path: Path, fake_openai: FakeOpenAI, pg_url: str, redis_url: str
) -> None:
    """A REDIS_URL that cannot be a Redis address is bad input (exit 2), said in one line
    without the URL's password, before any model call and without leaving a checkpoint."""
    repo = make_repo(tmp_path, files=2)
    redis_url = redis_url.format(closed=free_port())
    env = model_env(fake_openai, tmp_path, DATABASE_URL=pg_url, REDIS_URL=redis_url)
    result = run_cli(["review", str(repo), "--base", "main"], env, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: REDIS_URL"), result.stderr
    assert "hunter2-redis-pw" not in result.stderr
    assert fake_openai.total_calls == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        if "checkpoints" in tables:
            assert conn.execute("SELECT count(*) FROM checkpoints").fetchone() == (0,)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("where", "command"),
    [
        ("closed-port", "review"),
        ("closed-port", "status"),
        pytest.param("missing-database", "db-init", marks=pytest.mark.postgres),
    ],
)
def test_unreachable_or_missing_database_is_one_line_without_the_password(
    tmp_path: Path, fake_openai: FakeOpenAI, command: str, where: str
) -> None:
    """A DATABASE_URL nobody answers at (a closed port) is exit 3; one the server answers for
    but has no such database is exit 2. One line that names the redacted URL, never the password."""
    repo = make_repo(tmp_path, files=2)
    password = "pg-hunter2-secret"
    if where == "closed-port":
        url = f"postgresql://review:{password}@127.0.0.1:{free_port()}/review"
    else:  # the shared test server, which answers, but has no such database
        server = urlsplit(ADMIN_URL)
        netloc = f"{server.username or 'postgres'}:{password}@{server.hostname}:{server.port or 5432}"
        url = urlunsplit(server._replace(netloc=netloc, path=f"/ra_missing_{uuid.uuid4().hex[:8]}"))
    env = model_env(fake_openai, tmp_path, DATABASE_URL=url)
    args = {
        "review": ["review", str(repo), "--base", "main"],
        "status": ["status", str(repo), "--base", "main"],
        "db-init": ["db", "init"],
    }[command]
    result = run_cli(args, env, tmp_path, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    if where == "closed-port":
        assert result.returncode == 3, result.stderr
        assert lines[0].startswith("error: database at postgresql://") and "unreachable" in lines[0], lines
    else:  # the server answered: the database is missing, which is not an outage (issue 10)
        assert result.returncode == 2, result.stderr
        assert "does not exist" in lines[0] and "unreachable" not in lines[0], lines
    assert password not in result.stderr + result.stdout and ":***@" in lines[0]
    assert fake_openai.total_calls == 0
