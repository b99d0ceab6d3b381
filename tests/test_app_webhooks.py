"""The webhook receiver as GitHub sees it: a real `review-agent serve` on a real Postgres,
deliveries signed and POSTed over HTTP. What is asserted is what the database holds afterwards
(deliveries and procrastinate's jobs), since that is what the workers will run.

One receiver and one database serve the module (each test uses repositories of its own): a
receiver holds no state, which is also what lets several copies serve one App.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from review_agent.server.signature import sign
from tests.app_fleet import SECRET, TOKEN, Fleet, comment_payload, get, post_webhook, pr_payload, small_files
from tests.crash import run_cli
from tests.fakes.github_app_routes import FakeGitHubApp
from tests.pg import temp_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHubApp]:
    with FakeGitHubApp(token=TOKEN) as gh:
        yield gh


@pytest.fixture(scope="module")
def receiver(github: FakeGitHubApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with temp_database("ra_hooks") as db:
        fleet = Fleet(db, github, "http://127.0.0.1:9/v1", tmp_path_factory.mktemp("hooks"))
        try:
            fleet.start_server()
            yield fleet
        finally:
            fleet.stop_all()


def _repo() -> str:
    return f"r{uuid.uuid4().hex[:8]}"


def jobs_of(fleet: Fleet, repo: str) -> list[tuple[str, str]]:
    rows = fleet.query(
        "SELECT status::text, coalesce(args->>'head_sha', '') FROM procrastinate_jobs "
        "WHERE lock LIKE %s ORDER BY id",
        (f"octo/{repo.lower()}#%",),
    )
    return [(r[0], r[1]) for r in rows]


def deliveries_of(fleet: Fleet, repo: str) -> list[str]:
    rows = fleet.query(
        "SELECT outcome FROM webhook_deliveries WHERE repository = %s ORDER BY received_at", (f"octo/{repo}",)
    )
    return [r[0] for r in rows]


def test_unsigned_wrongly_signed_and_stale_deliveries_are_refused(
    receiver: Fleet, github: FakeGitHubApp
) -> None:
    repo = _repo()
    pr = github.add_pr("octo", repo, 1, small_files(1))
    payload = pr_payload(github, pr)
    body = json.dumps(payload).encode()
    legacy = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    attempts = {
        "unsigned": post_webhook(receiver.url, "pull_request", body, secret=None),
        "wrong secret": post_webhook(receiver.url, "pull_request", body, secret="not-the-secret"),
        "stale (rotated-out secret)": post_webhook(receiver.url, "pull_request", body, secret="old-secret"),
        "legacy sha1 only": post_webhook(receiver.url, "pull_request", body, signature=legacy),
        "signature of another body": post_webhook(
            receiver.url, "pull_request", body, signature=sign(SECRET.encode(), body + b" ")
        ),
    }
    for what, (status, _) in attempts.items():
        assert status == 401, what
    assert jobs_of(receiver, repo) == [] and deliveries_of(receiver, repo) == []

    status, answer = post_webhook(receiver.url, "pull_request", body, delivery="valid-" + repo)
    assert status == 202 and answer["status"] == "queued"
    assert jobs_of(receiver, repo) == [("todo", pr.head_sha)]


def test_the_same_delivery_three_times_queues_one_job(receiver: Fleet, github: FakeGitHubApp) -> None:
    repo = _repo()
    pr = github.add_pr("octo", repo, 2, small_files(1))
    answers = [
        post_webhook(receiver.url, "pull_request", pr_payload(github, pr), delivery="same-" + repo)
        for _ in range(3)
    ]
    assert [a[0] for a in answers] == [202, 200, 200]
    assert [a[1]["status"] for a in answers] == ["queued", "duplicate", "duplicate"]
    assert jobs_of(receiver, repo) == [("todo", pr.head_sha)]
    assert len(deliveries_of(receiver, repo)) == 1


def test_a_newer_push_replaces_the_waiting_review_and_closing_cancels_it(
    receiver: Fleet, github: FakeGitHubApp
) -> None:
    repo = _repo()
    pr = github.add_pr("octo", repo, 3, small_files(2))
    first = pr.head_sha
    assert post_webhook(receiver.url, "pull_request", pr_payload(github, pr))[0] == 202
    github.push("octo", repo, 3, "b" * 40, small_files(2, tag="v2"))
    status, answer = post_webhook(receiver.url, "pull_request", pr_payload(github, pr, "synchronize"))
    assert status == 202 and "replaced" in answer["detail"]
    assert jobs_of(receiver, repo) == [("cancelled", first), ("todo", "b" * 40)]

    # a member's /review while that review waits adds nothing: the waiting one reviews the head
    comment = github.add_issue_comment("octo", repo, 3, "/review", user="maintainer")
    status, answer = post_webhook(
        receiver.url, "issue_comment", comment_payload(github, pr, comment, "MEMBER")
    )
    assert status == 202 and answer["status"] == "queued" and "already waiting" in answer["detail"]
    assert len(jobs_of(receiver, repo)) == 2

    github.close_pr("octo", repo, 3)
    status, answer = post_webhook(receiver.url, "pull_request", pr_payload(github, pr, "closed"))
    assert status == 200 and answer["status"] == "cancelled"
    assert jobs_of(receiver, repo) == [("cancelled", first), ("cancelled", "b" * 40)]


def test_a_command_from_a_non_member_is_ignored_from_a_member_it_is_queued(
    receiver: Fleet, github: FakeGitHubApp
) -> None:
    repo = _repo()
    pr = github.add_pr("octo", repo, 4, small_files(1))
    for association in ("CONTRIBUTOR", "NONE", "FIRST_TIME_CONTRIBUTOR"):
        comment = github.add_issue_comment("octo", repo, 4, "/review", user="drive-by")
        status, answer = post_webhook(
            receiver.url, "issue_comment", comment_payload(github, pr, comment, association)
        )
        assert status == 200 and answer["status"] == "ignored", association
    bot = github.add_issue_comment("octo", repo, 4, "/review", user="other-app[bot]")
    status, answer = post_webhook(
        receiver.url, "issue_comment", comment_payload(github, pr, bot, "MEMBER", sender_type="Bot")
    )
    assert status == 200 and answer["status"] == "ignored"
    assert jobs_of(receiver, repo) == []

    comment = github.add_issue_comment("octo", repo, 4, "/review", user="maintainer")
    status, answer = post_webhook(
        receiver.url, "issue_comment", comment_payload(github, pr, comment, "OWNER")
    )
    assert status == 202 and answer["status"] == "queued"
    assert jobs_of(receiver, repo) == [("todo", "")]  # the worker reviews the head it finds


def test_ping_and_other_events_get_2xx_and_nothing_else(receiver: Fleet, github: FakeGitHubApp) -> None:
    repo = _repo()
    pr = github.add_pr("octo", repo, 5, small_files(1))
    assert post_webhook(receiver.url, "ping", {"zen": "Design for failure.", "hook_id": 1})[0] == 200
    assert post_webhook(receiver.url, "pull_request", pr_payload(github, pr, "labeled"))[0] == 200
    plain = github.add_issue_comment("octo", repo, 5, "looks good to me", user="maintainer")
    assert post_webhook(receiver.url, "issue_comment", comment_payload(github, pr, plain, "OWNER"))[0] == 200
    assert post_webhook(receiver.url, "push", {"ref": "refs/heads/main"})[0] == 200
    assert jobs_of(receiver, repo) == []
    assert post_webhook(receiver.url, "pull_request", b"not json")[0] == 400


def test_the_receiver_killed_and_github_redelivering_is_accepted_once(
    receiver: Fleet, github: FakeGitHubApp
) -> None:
    repo = _repo()
    pr = github.add_pr("octo", repo, 6, small_files(1))
    delivery = "redelivered-" + repo
    assert post_webhook(receiver.url, "pull_request", pr_payload(github, pr), delivery=delivery)[0] == 202
    assert receiver.server is not None
    receiver.kill(receiver.server)  # SIGKILL: GitHub saw no answer it trusts and redelivers
    assert get(receiver.url, "/healthz")[0] == 0
    receiver.start_server(receiver.port)
    for _ in range(2):
        status, answer = post_webhook(receiver.url, "pull_request", pr_payload(github, pr), delivery=delivery)
        assert status == 200 and answer["status"] == "duplicate"
    assert jobs_of(receiver, repo) == [("todo", pr.head_sha)]


def test_health_and_metrics(receiver: Fleet, github: FakeGitHubApp) -> None:
    pr = github.add_pr("octo", _repo(), 8, small_files(1))
    assert post_webhook(receiver.url, "pull_request", pr_payload(github, pr))[0] == 202
    status, body = get(receiver.url, "/healthz")
    assert status == 200 and json.loads(body)["database"] == "ok"
    status, text = get(receiver.url, "/metrics")
    assert status == 200
    assert 'review_agent_webhook_deliveries_total{event="pull_request",outcome="queued"}' in text
    queued = [line for line in text.splitlines() if line.startswith('review_agent_jobs{state="queued"}')]
    assert queued and float(queued[0].split()[-1]) >= 1
    for name in ("review_agent_reviews_finished_total", "review_agent_model_calls_total"):
        assert name in text
    assert SECRET not in text and TOKEN not in text


def test_without_a_webhook_secret_every_delivery_is_refused(github: FakeGitHubApp, tmp_path: Path) -> None:
    repo = _repo()
    pr = github.add_pr("octo", repo, 7, small_files(1))
    with temp_database("ra_nosecret") as db:
        fleet = Fleet(db, github, "http://127.0.0.1:9/v1", tmp_path, GITHUB_WEBHOOK_SECRET="")
        try:
            fleet.start_server()
            for secret in ("", SECRET, None):
                assert (
                    post_webhook(fleet.url, "pull_request", pr_payload(github, pr), secret=secret)[0] == 401
                )
            assert post_webhook(fleet.url, "ping", {"zen": "x"}, secret="")[0] == 401
            assert fleet.query("SELECT count(*) FROM procrastinate_jobs") == [(0,)]
            assert fleet.query("SELECT count(*) FROM webhook_deliveries") == [(0,)]
        finally:
            fleet.stop_all()


def test_db_init_creates_the_queue_and_is_idempotent(tmp_path: Path) -> None:
    with temp_database("ra_qinit") as db:
        env = {"DATABASE_URL": db, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
        for _ in range(2):
            result = run_cli(["db", "init"], env, tmp_path)
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("database ready: postgres")
        import psycopg

        with psycopg.connect(db) as conn:
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                ).fetchall()
            }
        assert {
            "procrastinate_jobs",
            "procrastinate_workers",
            "webhook_deliveries",
            "app_review_runs",
        } <= tables


async def test_old_deliveries_and_finished_jobs_are_pruned() -> None:
    import psycopg

    from review_agent.worker.maintenance import prune_old_rows
    from review_agent.worker.queue import make_app
    from review_agent.worker.schema import ensure_app_schema

    with temp_database("ra_prune") as db:
        ensure_app_schema(db)
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO webhook_deliveries (delivery_id, event, outcome, received_at) VALUES "
                "('old', 'pull_request', 'queued', now() - interval '8 days'), "
                "('new', 'pull_request', 'queued', now())"
            )
        app = make_app(db)
        async with app.open_async():
            await prune_old_rows(app)
        with psycopg.connect(db, autocommit=True) as conn:
            left = [r[0] for r in conn.execute("SELECT delivery_id FROM webhook_deliveries").fetchall()]
        assert left == ["new"]
