"""Helpers for the GitHub App tests and the fleet benchmark: real `review-agent serve` and
`review-agent worker` processes on a Postgres database, webhooks signed and POSTed the way GitHub
does, and what the database says about deliveries, jobs and reviews.

Nothing here is a double: the receiver and the workers are the real CLI in subprocesses, the
queue is procrastinate on a real Postgres, GitHub and the model are the local fake servers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from review_agent.server.signature import sign
from tests.conftest import cli_env
from tests.fakes.github_server import FakeGitHub, FakePullRequest, added_file_patch, make_file
from tests.services import free_port

SECRET = "webhook-secret-for-tests"
TOKEN = "ghs_fleet_token_for_tests"


def small_files(n: int, tag: str = "") -> list[dict[str, Any]]:
    """``n`` small Python files, each with a few added lines the fake model comments on."""
    out = []
    for i in range(n):
        lines = [f"def f{i}{tag}(x):", f"    return x + {i}  # {tag}", ""]
        out.append(
            make_file(f"pkg/mod{i:02d}.py", added_file_patch(lines), status="added", content="\n".join(lines))
        )
    return out


def pr_payload(fake: FakeGitHub, pr: FakePullRequest, action: str = "opened", **extra: Any) -> dict[str, Any]:
    """A ``pull_request`` webhook payload with the fields GitHub sends that the App reads."""
    full = pr.repo.full_name
    return {
        "action": action,
        "number": pr.number,
        "pull_request": {
            "number": pr.number,
            "html_url": f"{fake.root}/{full}/pull/{pr.number}",
            "state": pr.state,
            "draft": pr.draft,
            "head": {"sha": pr.head_sha, "ref": pr.head_ref},
            "base": {"sha": pr.base_sha, "ref": pr.base_ref},
            "user": {"login": pr.author, "type": "User"},
        },
        "repository": {"full_name": full, "html_url": f"{fake.root}/{full}", "id": pr.repo.id},
        "installation": {"id": 4242},
        "sender": {"login": pr.author, "type": "User"},
        **extra,
    }


def comment_payload(
    fake: FakeGitHub,
    pr: FakePullRequest,
    comment: dict[str, Any],
    association: str,
    *,
    sender_type: str = "User",
) -> dict[str, Any]:
    full = pr.repo.full_name
    return {
        "action": "created",
        "issue": {
            "number": pr.number,
            "html_url": f"{fake.root}/{full}/pull/{pr.number}",
            "pull_request": {"url": f"{fake.url}/repos/{full}/pulls/{pr.number}"},
        },
        "comment": {
            "id": comment["id"],
            "body": comment["body"],
            "user": comment["user"],
            "author_association": association,
        },
        "repository": {"full_name": full, "html_url": f"{fake.root}/{full}", "id": pr.repo.id},
        "installation": {"id": 4242},
        "sender": {"login": comment["user"]["login"], "type": sender_type},
    }


def post_webhook(
    base_url: str,
    event: str,
    payload: dict[str, Any] | bytes,
    *,
    delivery: str | None = None,
    secret: str | None = SECRET,
    signature: str | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, Any]]:
    """POST a delivery as GitHub does; return (status, JSON answer)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "User-Agent": "GitHub-Hookshot/test",
    }
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret.encode(), body)
    req = urllib.request.Request(base_url + "/webhook", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def get(base_url: str, path: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(base_url + path, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


class Fleet:
    """`review-agent serve` and workers on one database, against the fakes; all stopped at exit."""

    def __init__(self, db_url: str, github: FakeGitHub, model_url: str, home: Path, **env: str) -> None:
        self.db_url = db_url
        self.home = home
        self.env = {
            "DATABASE_URL": db_url,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_API_URL": github.url,
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "OPENAI_API_KEY": "sk-test-key",
            "OPENAI_BASE_URL": model_url,
            "REVIEW_AGENT_MODEL": "fake-model",
            "REVIEW_AGENT_MODEL_RETRIES": "1",
            "REVIEW_AGENT_MODEL_TIMEOUT": "20",
            "REVIEW_AGENT_RETRY_INTERVAL": "0.2",
            "REVIEW_AGENT_HOME": str(home),
            "REVIEW_AGENT_STALLED_AFTER": "4",
            "REVIEW_AGENT_JOB_RETRY_WAIT": "0.5",
            "REVIEW_AGENT_RECONCILE_INTERVAL": "0",
            "REVIEW_AGENT_EMBEDDINGS": "local",
            **env,
        }
        self.procs: list[subprocess.Popen[str]] = []
        self.server: subprocess.Popen[str] | None = None
        self.port = 0
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[str]:
        log = open(self.logs / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "review_agent", *args],
            env=cli_env(**self.env),
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def start_server(self, port: int | None = None) -> subprocess.Popen[str]:
        self.port = port or self.port or free_port()
        self.server = self._spawn(["serve", "--port", str(self.port)], f"serve-{self.port}")
        deadline = time.monotonic() + 60
        while get(self.url, "/healthz")[0] != 200:
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("review-agent serve did not start:\n" + self.log(f"serve-{self.port}"))
            time.sleep(0.1)
        return self.server

    def start_worker(self, name: str, *args: str) -> subprocess.Popen[str]:
        return self._spawn(["worker", *args], name)

    def kill(self, proc: subprocess.Popen[str]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(proc)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    # ---- what the database says --------------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def jobs(self, status: str | None = None) -> list[tuple[Any, ...]]:
        sql = "SELECT id, status::text, lock, args->>'head_sha' FROM procrastinate_jobs WHERE task_name = %s"
        params: tuple[Any, ...] = ("review_agent.review_pull_request",)
        if status:
            sql += " AND status = %s"
            params += (status,)
        return self.query(sql + " ORDER BY id", params)

    def runs(self, outcome: str | None = None) -> list[tuple[Any, ...]]:
        sql = (
            "SELECT repository, number, head_sha, outcome, files, model_calls, job_id, detail "
            "FROM app_review_runs"
        )
        if outcome:
            return self.query(sql + " WHERE outcome = %s ORDER BY id", (outcome,))
        return self.query(sql + " ORDER BY id")

    def wait_until(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("*.log")))
        raise AssertionError(f"timed out waiting for {what}\n{logs}")


@contextlib.contextmanager
def fleet(db_url: str, github: FakeGitHub, model_url: str, home: Path, **env: str) -> Iterator[Fleet]:
    f = Fleet(db_url, github, model_url, home, **env)
    try:
        yield f
    finally:
        f.stop_all()
