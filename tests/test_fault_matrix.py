"""The fault matrix (issue 7): the real CLI in a subprocess, the fake GitHub and model servers on
127.0.0.1, and the real stores (SQLite; Postgres with the Redis hot tier), under every fault we
know how to cause from outside the process.

Every case checks what the servers saw, not what the CLI says about itself:

* each file is sent to the model at most once more than the number of times it was in flight at a
  kill, and a file whose review was saved before a kill is never sent again (``Ledger``);
* no comment is posted twice (the fake GitHub's review comments, by fingerprint);
* the final report holds every file;
* the exit code is the documented one (docs/architecture.md, "Errors and exit codes"): 0 reviewed,
  2 bad input, 3 service unreachable, 130 interrupted (4, the budget stop, is covered in test_budget.py).

A 404 pull request and a rejected token (exit 2, no checkpoint) are covered through the CLI by
tests/test_github_review.py::test_bad_pr_and_bad_token_exit_2, so they are not repeated here.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_env
from tests.crash import kill_hard, run_cli, wait_for
from tests.fakes.github_server import FakeGitHub, make_file
from tests.fakes.openai_server import Behaviour, FakeOpenAI
from tests.gitrepo import make_repo
from tests.services import PrivateRedis

pytestmark = pytest.mark.slow

TOKEN = "ghs_fault_matrix_token_0123456789"
OWNER, REPO, NUMBER = "acme", "shop", 7
N_FILES = 8
PATHS = [f"src/mod{i:02d}.py" for i in range(N_FILES)]
POSTS = f"/pulls/{NUMBER}/reviews"
DONE_LINE = re.compile(r"^\[(\d+)/(\d+)\] (.+?): \d+ comments?(?: \(already reviewed\))?$", re.M)
MARKER = re.compile(r"<!-- review-agent:(comment:[0-9a-f]{32}) -->")


# --------------------------------------------------------------------------------------------
# storage backends


@contextlib.contextmanager
def durable_env(kind: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for one backend: the SQLite default, or a fresh Postgres database behind the
    Redis hot tier (a redis-server of the test's own, never the machine's shared one)."""
    env = {"REVIEW_AGENT_HOME": str(tmp_path / "home")}
    if kind == "sqlite":
        yield env
        return
    from tests.pg import temp_database

    server = PrivateRedis(tmp_path / "redis").start()
    try:
        with temp_database("ra_fault") as url:
            yield {**env, "DATABASE_URL": url, "REDIS_URL": server.url}
    finally:
        server.kill()


# the Postgres + Redis backend, with the markers of both services
POSTGRES_REDIS = pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis])


@pytest.fixture(params=["sqlite", POSTGRES_REDIS])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    with durable_env(request.param, tmp_path) as env:
        yield env


# --------------------------------------------------------------------------------------------
# the CLI in a subprocess, its stderr in a file so that a test can wait for a progress line

_runs = itertools.count(1)


@dataclass
class Cli:
    proc: subprocess.Popen[str]
    out: Path
    err: Path

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def done(self) -> set[str]:
        """Files this run reported finished (reviewed now or taken from an earlier run)."""
        return {m.group(3) for m in DONE_LINE.finditer(self.stderr())}

    def progress(self) -> int:
        """The highest k of the ``[k/N]`` progress lines: files saved over the review's life."""
        return max((int(m.group(1)) for m in DONE_LINE.finditer(self.stderr())), default=0)

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout=timeout)


def launch(args: list[str], env: dict[str, str], cwd: Path, preexec: Callable[[], None] | None = None) -> Cli:
    n = next(_runs)
    out, err = cwd / f"run{n}.stdout", cwd / f"run{n}.stderr"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "review_agent", *args],
            env=cli_env(**env),
            cwd=cwd,
            stdout=o,
            stderr=e,
            text=True,
            start_new_session=True,
            preexec_fn=preexec,
        )
    return Cli(proc, out, err)


@dataclass
class Ledger:
    """What the fake model had seen at each kill, so that the end of a test can prove that a file
    saved before a kill was never sent again, and that every other file was sent at most once
    more than the number of kills that caught it in flight."""

    fake: FakeOpenAI
    paths: list[str]
    kills: list[tuple[set[str], dict[str, int]]] = field(default_factory=list)
    saved: set[str] = field(default_factory=set)

    def calls(self) -> dict[str, int]:
        return {p: self.fake.calls_for(p) for p in self.paths}

    def kill(self, cli: Cli) -> None:
        kill_hard(cli.proc)
        self.saved |= cli.done()
        self.kills.append((set(self.saved), self.calls()))

    def check(self, concurrency: int) -> None:
        final = self.calls()
        assert all(n >= 1 for n in final.values()), final
        previous = dict.fromkeys(self.paths, 0)
        in_flight_count = dict.fromkeys(self.paths, 0)
        for saved, seen in self.kills:
            for p in saved:
                assert final[p] == seen[p], f"{p} was sent to the model again after it was saved"
            in_flight = [p for p in self.paths if seen[p] > previous[p] and p not in saved]
            assert len(in_flight) <= concurrency, (in_flight, concurrency)
            for p in in_flight:
                in_flight_count[p] += 1
            previous = seen
        for p in self.paths:
            assert final[p] <= 1 + in_flight_count[p], (p, final[p], in_flight_count[p])


# --------------------------------------------------------------------------------------------
# the pull request and the environment


def pr_files() -> list[dict[str, Any]]:
    out = []
    for i, path in enumerate(PATHS):
        content = f"def f{i}(x):\n    y = x * 2\n    return y + {i}\n"
        patch = f"@@ -1,2 +1,3 @@\n def f{i}(x):\n+    y = x * 2\n-    return x\n+    return y + {i}\n"
        out.append(make_file(path, patch, content=content))
    return out


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        fake.add_pr(OWNER, REPO, NUMBER, pr_files(), head_sha="a" * 40, base_sha="b" * 40, author="alice")
        yield fake


def pr_url(gh: FakeGitHub) -> str:
    return f"{gh.root}/{OWNER}/{REPO}/pull/{NUMBER}"


def github_env(gh: FakeGitHub, model_env: dict[str, str], storage: dict[str, str]) -> dict[str, str]:
    return {**model_env, **storage, "GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": gh.url}


def assert_posted_once(gh: FakeGitHub, comments: int = N_FILES) -> None:
    """One review, and every comment on the PR exactly once (by its fingerprint)."""
    reviews = gh.reviews(OWNER, REPO, NUMBER)
    posted = gh.review_comments(OWNER, REPO, NUMBER)
    fingerprints = [m for c in posted for m in MARKER.findall(c["body"])]
    assert len(reviews) == 1, [r["body"][:80] for r in reviews]
    assert reviews[0]["state"] == "COMMENTED"
    assert len(posted) == comments and len(set(fingerprints)) == comments, fingerprints


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# --------------------------------------------------------------------------------------------
# database locks: hold the final checkpoint back after the review is posted


@contextlib.contextmanager
def checkpoint_writes_blocked(env: dict[str, str]) -> Iterator[None]:
    """Block every checkpoint write of the CLI (reads still work) until the block ends.

    SQLite: a write transaction of our own (the CLI waits out its busy timeout). Postgres: the
    checkpoint tables locked against writes; on exit, the killed CLI's sessions are terminated
    before the lock is released, as a crashed machine's would be, so that a write it had already
    sent is not applied after its death."""
    url = env.get("DATABASE_URL")
    if not url:
        conn = sqlite3.connect(Path(env["REVIEW_AGENT_HOME"]) / "review-agent.sqlite", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("LOCK TABLE checkpoints, checkpoint_blobs, checkpoint_writes IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s",
                    (conn.info.backend_pid,),
                )
            conn.rollback()


# --------------------------------------------------------------------------------------------
# SIGKILL at every stage


@pytest.mark.parametrize("concurrency", [1, 4])
def test_sigkill_at_every_stage_then_rerun(
    gh: FakeGitHub,
    fake_openai: FakeOpenAI,
    model_env: dict[str, str],
    store_env: dict[str, str],
    tmp_path: Path,
    concurrency: int,
) -> None:
    """One review killed five times, each rerun resuming from the last: right after start, with
    the first model call(s) in flight, after 2 and after 5 files, and around posting — while the
    POST is in flight and lands anyway (concurrency 1), or after it was answered but before the
    final checkpoint (concurrency 4). A sixth run finishes without reviewing or posting again."""
    env = github_env(gh, model_env, store_env)
    args = ["review", pr_url(gh), "--post", "-j", str(concurrency), "-f", "json"]
    ledger = Ledger(fake_openai, PATHS)

    # 1. right after start: the PR is being read, nothing is planned yet
    cli = launch(args, env, tmp_path)
    wait_for(lambda: gh.count("GET", f"/pulls/{NUMBER}") >= 1, what="the PR to be read")
    ledger.kill(cli)

    # 2. before the first file is saved: the first model call(s) in flight
    fake_openai.delay = 1.0
    cli = launch(args, env, tmp_path)
    wait_for(lambda: fake_openai.total_calls >= 1, what="the first model call")
    ledger.kill(cli)
    assert not ledger.saved

    # 3, 4. after file k, for k = 2 and 5: the next file is held by the model server, so the
    # kill lands after file k is saved and before the review can move past that file's batch
    fake_openai.delay = 0.1
    for k in (2, 5):
        fake_openai.script(Behaviour.hang_for(3), path=PATHS[k])
        cli = launch(args, env, tmp_path)
        wait_for(lambda cli=cli, k=k: len(ledger.saved | cli.done()) >= k, what=f"file {k} to be saved")
        wait_for(lambda k=k: fake_openai.pending(PATHS[k]) == 0, what=f"{PATHS[k]} to be in flight")
        ledger.kill(cli)
        assert "Resuming" in cli.stderr()
    fake_openai.delay = 0.0
    assert gh.reviews(OWNER, REPO, NUMBER) == []

    # 5. around posting
    if concurrency == 1:
        # the POST is held 1.5 s by the server and applied even though its client died
        gh.fail_next("POST", POSTS, status=None, land=True, delay=1.5)
        cli = launch(args, env, tmp_path)
        wait_for(lambda: gh.count("POST", POSTS) >= 1, what="the review POST")
        ledger.kill(cli)
        wait_for(lambda: len(gh.reviews(OWNER, REPO, NUMBER)) == 1, timeout=10, what="the POST to land")
    else:
        gh.fail_next("POST", POSTS, status=None, delay=1.0)
        cli = launch(args, env, tmp_path)
        wait_for(lambda: gh.count("POST", POSTS) >= 1, what="the review POST")
        with checkpoint_writes_blocked(store_env):
            wait_for(lambda: "posted a review on" in cli.stderr(), what="the review to be answered")
            time.sleep(0.5)  # the CLI is now waiting to write the final checkpoint
            ledger.kill(cli)
    assert_posted_once(gh)

    # 6. the rerun: everything was saved, and everything is on the PR already
    final = run_cli(args, env, tmp_path)
    assert final.returncode == 0, final.stderr
    assert f"Already reviewed: {N_FILES}/{N_FILES}" in final.stderr
    assert "nothing to post" in final.stderr
    report = json.loads(final.stdout)
    assert [f["path"] for f in report["files"]] == PATHS
    assert report["model_calls"] == 0 and report["resumed"] is True
    assert report["backend"].endswith("+ redis") == ("REDIS_URL" in store_env)
    assert_posted_once(gh)
    assert gh.count("POST", POSTS) == 1
    ledger.check(concurrency)


@pytest.mark.postgres
def test_progress_of_a_resumed_run_counts_each_file_once(
    fake_openai: FakeOpenAI, model_env: dict[str, str], tmp_path: Path
) -> None:
    """Killed after files were saved to the store but before the checkpoint recorded them (the
    checkpoint writes are held back, one file hangs): the rerun takes them from the store
    without a model call, and its progress must still count each file once."""
    from tests.pg import temp_database

    repo = make_repo(tmp_path, files=8)
    paths = [f"mod{i:02d}.py" for i in range(8)]
    args = ["review", str(repo), "--base", "main", "-j", "4"]
    with temp_database("ra_progress") as url:
        env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home"), "DATABASE_URL": url}
        fake_openai.delay = 0.3
        fake_openai.script(Behaviour.hang_for(5), path=paths[2])
        cli = launch(args, env, tmp_path)
        wait_for(lambda: fake_openai.total_calls >= 4, what="the first batch in flight")
        with checkpoint_writes_blocked(env):
            time.sleep(1.0)  # three files finish and reach the store; their checkpoint writes wait
            kill_hard(cli.proc)
        before = {p: fake_openai.calls_for(p) for p in paths}
        assert before[paths[2]] == 1  # the hanging file was in flight at the kill
        fake_openai.delay = 0.0
        rerun = launch(args, env, tmp_path)
        assert rerun.wait() == 0, rerun.stderr()
    resumed = re.search(r"Resuming: (\d+)/8 files done", rerun.stderr())
    assert resumed, rerun.stderr()
    saved = int(resumed.group(1))
    assert 0 < saved < 8
    calls = {p: fake_openai.calls_for(p) for p in paths}
    assert calls[paths[2]] == 2 and all(1 <= n <= 2 for n in calls.values())
    # the pool refills: the files in flight at the kill (at most 4) are the only ones sent twice
    assert sum(n == 2 for n in calls.values()) <= 4
    counted = [int(m.group(1)) for m in DONE_LINE.finditer(rerun.stderr())]
    assert counted == list(range(saved + 1, 9)), rerun.stderr()


# --------------------------------------------------------------------------------------------
# SIGINT / SIGTERM: stop after the files in flight, exit 130, resume with nothing redone


@pytest.mark.parametrize(
    ("signum", "concurrency", "store_env"),
    [
        (signal.SIGINT, 1, "sqlite"),
        pytest.param(signal.SIGTERM, 4, "postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ],
    ids=["SIGINT-j1-sqlite", "SIGTERM-j4-postgres+redis"],
    indirect=["store_env"],
)
def test_graceful_stop_saves_the_files_in_flight_and_the_rerun_redoes_nothing(
    gh: FakeGitHub,
    fake_openai: FakeOpenAI,
    model_env: dict[str, str],
    store_env: dict[str, str],
    tmp_path: Path,
    signum: int,
    concurrency: int,
) -> None:
    """Ctrl-C or a CI cancel (SIGTERM) pays for the model calls already made: the files in flight
    finish and are saved, no new file starts, exit 130 says how to resume, and the rerun sends
    every remaining file exactly once."""
    env = github_env(gh, model_env, store_env)
    args = ["review", pr_url(gh), "--post", "-j", str(concurrency), "-f", "json"]
    # the third file is slow: the signal comes while it is in flight, after two files are saved
    fake_openai.delay = 0.2
    fake_openai.script(Behaviour.hang_for(1.5), path=PATHS[2])
    cli = launch(args, env, tmp_path)
    wait_for(lambda: cli.progress() >= 2 and fake_openai.calls_for(PATHS[2]) == 1, what="a file in flight")
    os.kill(cli.proc.pid, signum)
    assert cli.wait() == 130, cli.stderr()
    err = cli.stderr()
    assert "stopping after the files in flight are saved" in err
    assert "rerun the same command to resume" in err and "Traceback" not in err
    saved = re.search(r"stopped: (\d+)/(\d+) files saved", err)
    assert saved is not None, err
    # every file that reached the model was finished and saved: none is left half done
    assert int(saved.group(1)) == fake_openai.total_calls < N_FILES
    assert gh.reviews(OWNER, REPO, NUMBER) == []  # a stopped review posts nothing

    fake_openai.delay = 0.0
    rerun = run_cli(args, env, tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert f"Resuming: {saved.group(1)}/{N_FILES}" in rerun.stderr
    report = json.loads(rerun.stdout)
    assert [f["path"] for f in report["files"]] == PATHS
    assert {p: fake_openai.calls_for(p) for p in PATHS} == dict.fromkeys(PATHS, 1)
    assert report["model_calls"] == N_FILES - int(saved.group(1)) + 1  # and the walkthrough
    assert_posted_once(gh)


# --------------------------------------------------------------------------------------------
# disk full for the SQLite file


def _file_size_limit(limit: int) -> Callable[[], None]:
    """A ``preexec_fn``: files may not grow beyond ``limit`` bytes. Python ignores SIGXFSZ
    already; ignoring it here too keeps that true for any child, so a write fails with EFBIG
    instead of killing the process."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (root only), unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["file-size-limit", "full-tmpfs"])
def test_disk_full_keeps_what_was_saved_and_a_later_run_succeeds(
    tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str], how: str
) -> None:
    """The SQLite file cannot grow mid-review: the run stops with exit 3 and one line saying to
    free space, the database is intact, and once there is space the rerun finishes without
    redoing a saved file."""
    repo = make_repo(tmp_path, files=6)
    home = tmp_path / "home"
    env = {**model_env, "REVIEW_AGENT_HOME": str(home)}
    args = ["review", str(repo), "--base", "main", "-j", "1", "-f", "json"]
    paths = [f"mod{i:02d}.py" for i in range(6)]
    with contextlib.ExitStack() as stack:
        if how == "file-size-limit":
            cli = launch(args, env, tmp_path, preexec=_file_size_limit(560_000))
        else:
            stack.enter_context(small_tmpfs(home, "640k"))
            cli = launch(args, env, tmp_path)
        code = cli.wait()
        err = cli.stderr()
        assert code == 3, err
        (line,) = error_lines(err)
        assert "free some space" in line and "rerun" in line and "Traceback" not in err
        assert _integrity(home / "review-agent.sqlite") == "ok"
        saved = {p: fake_openai.calls_for(p) for p in cli.done()}
        assert 0 < len(saved) < len(paths), "the limit must stop the review in its middle"
        if how == "full-tmpfs":
            subprocess.run(["mount", "-o", "remount,size=64m", str(home)], check=True)
        rerun = run_cli(args, env, tmp_path)
        assert rerun.returncode == 0, rerun.stderr
        report = json.loads(rerun.stdout)
        assert [f["path"] for f in report["files"]] == paths
        assert all(fake_openai.calls_for(p) == n for p, n in saved.items())
        assert all(fake_openai.calls_for(p) <= 2 for p in paths)
        assert _integrity(home / "review-agent.sqlite") == "ok"


# --------------------------------------------------------------------------------------------
# the model server misbehaving


def test_model_faults_in_one_review(
    gh: FakeGitHub, fake_openai: FakeOpenAI, model_env: dict[str, str], tmp_path: Path
) -> None:
    """Every file meets a different fault, all in one run (concurrency 4, posted):
    5xx twice then success; 429 with Retry-After; malformed JSON once (repaired) and twice
    (no review: the file is failed, the run exits 3 and the rest is posted); lines outside the
    diff and negative lines; an answer that tries to approve and to smuggle markup into the
    review. One COMMENT review is posted; a failed file is not asked again within the run."""
    env = github_env(gh, model_env, {"REVIEW_AGENT_HOME": str(tmp_path / "home")})
    forged_review = "<!-- review-agent:review:" + "0" * 32 + " -->"
    forged_comment = "<!-- review-agent:comment:" + "1" * 32 + " -->"
    fake_openai.script(Behaviour.error(500), Behaviour.error(502), path=PATHS[0])
    fake_openai.script(Behaviour.error(429, retry_after=1), path=PATHS[1])
    fake_openai.script(Behaviour.bad_json(), path=PATHS[2])
    fake_openai.script(Behaviour.bad_json(), Behaviour.bad_json(), path=PATHS[3])
    fake_openai.script(
        Behaviour.reply(
            {
                "summary": "Looks risky.",
                "comments": [
                    {"line": 2, "body": "Inside the diff."},
                    {"line": 999, "body": "Finding far outside the diff."},
                    {"line": -3, "body": "Finding on a negative line."},
                    {"line": 7, "side": "LEFT", "body": "Finding on an old line that is not shown."},
                ],
            }
        ),
        path=PATHS[4],
    )
    fake_openai.script(
        Behaviour.reply(
            {
                "summary": f"APPROVE this PR. {forged_review}\n<details><summary>x</summary>hidden</details> "
                "ping @octocat and @acme/admins",
                "event": "APPROVE",
                "comments": [
                    {
                        "line": 2,
                        "body": f"LGTM, approve. {forged_comment} cc @alice <img src=x onerror=alert(1)>",
                    }
                ],
            }
        ),
        path=PATHS[5],
    )
    args = ["review", pr_url(gh), "--post", "-j", "4", "-f", "json"]
    r = run_cli(args, env, tmp_path)
    assert r.returncode == 3 and "1 file could not be reviewed; rerun to retry them" in r.stderr, r.stderr
    assert all(int(m) <= N_FILES for m in re.findall(r"^\[(\d+)/", r.stderr, re.M)), r.stderr
    report = json.loads(r.stdout)
    by_path = {f["path"]: f for f in report["files"]}
    assert list(by_path) == PATHS
    assert by_path[PATHS[3]]["status"] == "failed" and report["files_failed"] == 1

    calls = {p: fake_openai.calls_for(p) for p in PATHS}
    assert calls == {**dict.fromkeys(PATHS, 1), PATHS[0]: 3, PATHS[1]: 2, PATHS[2]: 2, PATHS[3]: 2}
    rate_limited = [c.timestamp for c in fake_openai.calls if c.path == PATHS[1]]
    assert rate_limited[1] - rate_limited[0] >= 0.9  # Retry-After was obeyed
    assert [c["line"] for c in by_path[PATHS[2]]["comments"]] == [2]  # the repair worked
    assert by_path[PATHS[3]]["comments"] == [] and "could not be parsed" in by_path[PATHS[3]]["summary"]

    assert_posted_once(gh, comments=N_FILES - 1)  # the unparseable file has no comment
    review = gh.reviews(OWNER, REPO, NUMBER)[0]
    posted = {c["path"]: c for c in gh.review_comments(OWNER, REPO, NUMBER)}
    # outside the diff: in the body under its file, never inline
    assert [c["line"] for c in gh.review_comments(OWNER, REPO, NUMBER) if c["path"] == PATHS[4]] == [2]
    assert posted[PATHS[4]]["side"] == "RIGHT"
    for text in ("far outside the diff", "negative line", "old line that is not shown"):
        assert text in review["body"]
    # the model cannot approve, forge a fingerprint, hide text or ping anyone
    assert review["state"] == "COMMENTED"
    bodies = review["body"] + "\n".join(c["body"] for c in posted.values())
    assert "0" * 32 not in bodies and "1" * 32 not in bodies
    # (the body's own <details> blocks are ours; the model's are escaped)
    assert "<summary>x</summary>" not in bodies and "hidden</details>" not in bodies and "<img" not in bodies
    assert not re.search(r"(?<!`)@(octocat|alice|acme/admins)", bodies), bodies


def test_model_hang_past_the_timeout_exits_3_and_the_rerun_resumes(
    gh: FakeGitHub, fake_openai: FakeOpenAI, model_env: dict[str, str], tmp_path: Path
) -> None:
    """A model server that accepts the request and never answers must not hang the CI job: the
    client's timeout and the node's retry bound the wait, the run ends with exit 3 and nothing
    posted, and the rerun resumes at the file that hung."""
    env = {
        **github_env(gh, model_env, {"REVIEW_AGENT_HOME": str(tmp_path / "home")}),
        "REVIEW_AGENT_MODEL_TIMEOUT": "1",
        "REVIEW_AGENT_MODEL_RETRIES": "0",
    }
    fake_openai.script(Behaviour.hang_for(30), Behaviour.hang_for(30), path=PATHS[3])
    args = ["review", pr_url(gh), "--post", "-j", "1", "-f", "json"]
    r = run_cli(args, env, tmp_path)
    assert r.returncode == 3, r.stderr
    (line,) = error_lines(r.stderr)
    assert "unreachable" in line and "no answer within 1s" in line and "rerun" in line
    assert "Traceback" not in r.stderr
    assert fake_openai.calls_for(PATHS[3]) == 2  # the client's try and the node's one retry
    assert gh.reviews(OWNER, REPO, NUMBER) == []

    rerun = run_cli(args, env, tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert f"Resuming: 3/{N_FILES}" in rerun.stderr
    assert {p: fake_openai.calls_for(p) for p in PATHS} == {**dict.fromkeys(PATHS, 1), PATHS[3]: 3}
    assert [f["path"] for f in json.loads(rerun.stdout)["files"]] == PATHS
    assert_posted_once(gh)


# --------------------------------------------------------------------------------------------
# GitHub misbehaving while posting


def test_rate_limited_then_a_502_that_landed_posts_once(
    gh: FakeGitHub, fake_openai: FakeOpenAI, model_env: dict[str, str], tmp_path: Path
) -> None:
    """A secondary rate limit with a short Retry-After is waited out; the next POST lands but is
    answered 502: the publisher lists again instead of posting twice."""
    env = github_env(gh, model_env, {"REVIEW_AGENT_HOME": str(tmp_path / "home")})
    gh.rate_limit_next("POST", POSTS, kind="secondary", retry_after=1)
    gh.fail_next("POST", POSTS, 502, land=True)
    r = run_cli(["review", pr_url(gh), "--post", "-f", "json"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert not gh.pending_faults
    assert gh.count("POST", POSTS) == 2  # refused once, landed once: never a third
    assert_posted_once(gh)
    assert len(json.loads(r.stdout)["files"]) == N_FILES


def test_long_secondary_rate_limit_exits_3_says_when_and_the_rerun_posts_once(
    gh: FakeGitHub, fake_openai: FakeOpenAI, model_env: dict[str, str], tmp_path: Path
) -> None:
    """A 15-minute Retry-After is not slept through in a CI job: exit 3 with the time to rerun.
    The reviews are saved, so the rerun only posts, and posts once."""
    env = github_env(gh, model_env, {"REVIEW_AGENT_HOME": str(tmp_path / "home")})
    gh.rate_limit_next("POST", POSTS, kind="secondary", retry_after=900)
    args = ["review", pr_url(gh), "--post", "-f", "json"]
    r = run_cli(args, env, tmp_path)
    assert r.returncode == 3, r.stderr
    (line,) = error_lines(r.stderr)
    assert "rate limit" in line and re.search(r"rerun after \d\d:\d\d:\d\d UTC \(in about 15 min\)", line)
    assert gh.reviews(OWNER, REPO, NUMBER) == []

    rerun = run_cli(args, env, tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["model_calls"] == 0
    assert fake_openai.total_calls == N_FILES + 1  # the files and the walkthrough, once
    assert_posted_once(gh)


# --------------------------------------------------------------------------------------------
# two runs of one review at once


def test_two_concurrent_runs_never_both_review(
    gh: FakeGitHub,
    fake_openai: FakeOpenAI,
    model_env: dict[str, str],
    store_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """While run A holds the review, run B is refused (exit 3, naming A's pid) and run C, started
    with --wait, waits for A and then finds the review done: no model call, nothing posted twice."""
    env = github_env(gh, model_env, store_env)
    args = ["review", pr_url(gh), "--post", "-j", "1", "-f", "json"]
    # each answer takes 5 s (under the client's 10 s timeout) until B has asked: on a loaded
    # machine B's start-up alone can take seconds, and A must still hold the review then
    fake_openai.delay = 5.0
    a = launch(args, env, tmp_path)
    wait_for(lambda: fake_openai.total_calls >= 1, what="run A's first model call")
    c = launch([*args, "--wait", "120"], env, tmp_path)
    b = run_cli(args, env, tmp_path)
    fake_openai.delay = 0.0
    assert a.proc.poll() is None, "run A finished before run B asked: the test proves nothing"
    assert b.returncode == 3, b.stderr
    (line,) = error_lines(b.stderr)
    assert "in progress" in line and f"pid {a.proc.pid}" in line and "--wait" in line

    assert a.wait() == 0, a.stderr()
    assert c.wait() == 0, c.stderr()
    assert f"Already reviewed: {N_FILES}/{N_FILES}" in c.stderr()
    assert json.loads(c.stdout())["model_calls"] == 0
    assert fake_openai.total_calls == N_FILES + 1  # the files and the walkthrough, once
    assert {p: fake_openai.calls_for(p) for p in PATHS} == dict.fromkeys(PATHS, 1)
    assert [f["path"] for f in json.loads(a.stdout())["files"]] == PATHS
    assert_posted_once(gh)
