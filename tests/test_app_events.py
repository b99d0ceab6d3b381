"""The GitHub App's rules as plain functions: webhook signatures, which event asks for what,
who may command, and which job errors are retried. No server, no database: the end-to-end
behaviour of the same rules is in test_app_webhooks.py and test_app_fleet.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from pathlib import Path
from typing import Any

import pytest
from procrastinate.jobs import Job

from review_agent.errors import BadInput, BudgetExhausted, FilesFailed, ServiceUnavailable
from review_agent.server.events import Cancel, Command, Ignore, Installation, Review, route
from review_agent.server.signature import sign, signature_ok
from review_agent.worker.maintenance import cron_every
from review_agent.worker.queue import ReviewJob, pr_key
from review_agent.worker.retry import Requeue, RetryByErrorClass
from tests.crash import run_cli

SECRET = b"s3cret"


def pr_event(action: str = "opened", *, draft: bool = False, sender_type: str = "User") -> dict[str, Any]:
    return {
        "action": action,
        "number": 7,
        "pull_request": {"number": 7, "draft": draft, "head": {"sha": "a" * 40}},
        "repository": {"full_name": "Octo/Demo", "html_url": "https://ghe.example.com/Octo/Demo"},
        "installation": {"id": 99},
        "sender": {"login": "alice", "type": sender_type},
    }


def comment_event(body: str, association: str = "MEMBER", *, on_pr: bool = True) -> dict[str, Any]:
    issue: dict[str, Any] = {"number": 7}
    if on_pr:
        issue["pull_request"] = {"url": "https://ghe.example.com/api/v3/repos/Octo/Demo/pulls/7"}
    return {
        "action": "created",
        "issue": issue,
        "comment": {"id": 555, "body": body, "author_association": association},
        "repository": {"full_name": "Octo/Demo", "html_url": "https://ghe.example.com/Octo/Demo"},
        "sender": {"login": "alice", "type": "User"},
    }


# ---- signatures ----------------------------------------------------------------------------


def test_a_signature_made_with_the_secret_is_accepted() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    header = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body) == header
    assert signature_ok(SECRET, body, header)


@pytest.mark.parametrize(
    "header",
    [
        None,  # unsigned
        "",
        "sha256=" + "0" * 64,  # wrongly signed
        "sha1=" + hmac.new(SECRET, b"{}", hashlib.sha1).hexdigest(),  # the legacy header's format
        "sha256=" + hmac.new(b"old-rotated-secret", b"{}", hashlib.sha256).hexdigest(),  # stale
        "sha256=zz",
        "sha256=" + hmac.new(SECRET, b"{}", hashlib.sha256).hexdigest() + "00",
    ],
)
def test_anything_else_is_refused(header: str | None) -> None:
    assert not signature_ok(SECRET, b"{}", header)


def test_without_a_secret_nothing_is_accepted() -> None:
    assert not signature_ok(None, b"{}", sign(b"", b"{}"))
    assert not signature_ok(b"", b"{}", sign(b"", b"{}"))


@pytest.mark.parametrize("seed", range(20))
def test_a_changed_body_never_passes(seed: int) -> None:
    rng = random.Random(seed)
    body = rng.randbytes(rng.randint(0, 200))
    header = sign(SECRET, body)
    assert signature_ok(SECRET, body, header)
    assert not signature_ok(SECRET, body + rng.randbytes(rng.randint(1, 8)), header)
    flipped = bytearray(body + b"x")
    flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
    assert not signature_ok(SECRET, bytes(flipped), sign(SECRET, body + b"x"))


# ---- events --------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["opened", "reopened", "synchronize", "ready_for_review"])
def test_pull_request_actions_review_the_head(action: str) -> None:
    got = route("pull_request", pr_event(action), "d1")
    assert isinstance(got, Review)
    assert got.job == ReviewJob(
        host="ghe.example.com",
        repository="Octo/Demo",
        number=7,
        head_sha="a" * 40,
        delivery_id="d1",
        installation_id=99,
    )
    assert got.job.url == "https://ghe.example.com/Octo/Demo/pull/7"
    assert got.job.key == pr_key("octo/demo", 7) == "octo/demo#7"
    assert "token" not in str(got.job.as_kwargs()).lower()


def test_closed_cancels_and_other_actions_are_acknowledged() -> None:
    assert route("pull_request", pr_event("closed"), "d") == Cancel("Octo/Demo", 7)
    assert isinstance(route("pull_request", pr_event("labeled"), "d"), Ignore)
    assert isinstance(route("pull_request", pr_event("opened", draft=True), "d"), Ignore)
    assert isinstance(route("pull_request", pr_event("ready_for_review", draft=True), "d"), Review)
    assert route("ping", {"zen": "x"}, "d") == Ignore("ping")
    assert isinstance(route("push", {"ref": "refs/heads/main"}, "d"), Ignore)


def test_bots_are_ignored_this_app_included() -> None:
    assert isinstance(route("pull_request", pr_event(sender_type="Bot"), "d"), Ignore)
    event = comment_event("/review")
    event["sender"] = {"login": "review-agent[bot]", "type": "Bot"}
    assert isinstance(route("issue_comment", event, "d"), Ignore)


@pytest.mark.parametrize("association", ["OWNER", "MEMBER", "COLLABORATOR"])
def test_members_command(association: str) -> None:
    review = route("issue_comment", comment_event("/review", association), "d")
    assert isinstance(review, Review) and not review.job.fresh and review.job.head_sha == ""
    fresh = route("issue_comment", comment_event("/review fresh\nplease", association), "d")
    assert isinstance(fresh, Review) and fresh.job.fresh
    learn = route("issue_comment", comment_event("/learn prefer early returns", association), "d")
    assert isinstance(learn, Command) and learn.name == "learn" and learn.comment_id == 555
    status = route("issue_comment", comment_event("/status", association), "d")
    assert isinstance(status, Command) and status.name == "status"
    assert "prefer" not in str(learn.as_kwargs())  # ids only: the worker reads the comment


@pytest.mark.parametrize("association", ["CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "NONE", ""])
def test_commands_from_anyone_else_are_ignored(association: str) -> None:
    for body in ("/review", "/review fresh", "/learn x", "/status"):
        assert isinstance(route("issue_comment", comment_event(body, association), "d"), Ignore)


def test_who_may_command_is_configurable() -> None:
    event = comment_event("/review", "CONTRIBUTOR")
    assert isinstance(route("issue_comment", event, "d", frozenset({"CONTRIBUTOR"})), Review)
    assert isinstance(route("issue_comment", comment_event("/review", "OWNER"), "d", frozenset()), Ignore)


@pytest.mark.parametrize(
    "body", ["looks good", "please /review", "/reviewing", "/review now", "/learn", "", "/statuses"]
)
def test_ordinary_comments_and_malformed_commands_are_ignored(body: str) -> None:
    assert isinstance(route("issue_comment", comment_event(body), "d"), Ignore)


def test_comments_on_issues_are_ignored() -> None:
    assert isinstance(route("issue_comment", comment_event("/review", on_pr=False), "d"), Ignore)


def test_installation_events_are_bookkeeping() -> None:
    payload = {
        "action": "created",
        "installation": {"id": 5, "account": {"login": "octo", "html_url": "https://github.com/octo"}},
        "repositories": [{"full_name": "octo/a"}, {"full_name": "octo/b"}],
        "sender": {"login": "alice", "type": "User"},
    }
    got = route("installation", payload, "d")
    assert isinstance(got, Installation) and got.added == ("octo/a", "octo/b") and got.active
    gone = route("installation", {**payload, "action": "deleted"}, "d")
    assert isinstance(gone, Installation) and not gone.active and gone.removed == ("octo/a", "octo/b")


# ---- jobs ----------------------------------------------------------------------------------


def _job(attempts: int) -> Job:
    return Job(id=1, queue="reviews", lock=None, queueing_lock=None, task_name="t", attempts=attempts)


def test_service_errors_retry_with_backoff_bad_input_never() -> None:
    strategy = RetryByErrorClass(max_attempts=3, wait=2)
    first = strategy.get_retry_decision(exception=ServiceUnavailable("down"), job=_job(0))
    later = strategy.get_retry_decision(exception=ServiceUnavailable("down"), job=_job(2))
    assert first is not None and later is not None and later.retry_at > first.retry_at  # type: ignore[operator]
    assert strategy.get_retry_decision(exception=ServiceUnavailable("down"), job=_job(3)) is None
    assert strategy.get_retry_decision(exception=FilesFailed("2 files failed"), job=_job(0)) is not None
    assert strategy.get_retry_decision(exception=BadInput("no such PR"), job=_job(0)) is None
    assert strategy.get_retry_decision(exception=BudgetExhausted("spent"), job=_job(0)) is None
    assert strategy.get_retry_decision(exception=Requeue("shutdown"), job=_job(9)) is not None
    assert strategy.get_retry_decision(exception=RuntimeError("bug"), job=_job(0)) is not None
    assert strategy.get_retry_decision(exception=RuntimeError("bug"), job=_job(2)) is None


def test_periodic_lines() -> None:
    assert cron_every(2) == "* * * * * */2"
    assert cron_every(0.2) == "* * * * * */1"
    assert cron_every(900) == "*/15 * * * *"
    assert cron_every(7200) == "0 */2 * * *"


# ---- the commands refuse what cannot work, in one line ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "env", "says"),
    [
        (["serve"], {}, "DATABASE_URL=postgresql"),
        (["worker"], {"GITHUB_TOKEN": "t"}, "DATABASE_URL=postgresql"),
        (["worker"], {"DATABASE_URL": "postgresql://127.0.0.1:9/x"}, "GITHUB_APP_ID"),
        (
            ["worker"],
            {
                "DATABASE_URL": "postgresql://127.0.0.1:9/x",
                "GITHUB_APP_ID": "1",
                "GITHUB_APP_PRIVATE_KEY": "nope",
            },
            "not a PEM private key",
        ),
    ],
)
def test_serve_and_worker_refuse_a_configuration_that_cannot_work(
    command: list[str], env: dict[str, str], says: str, tmp_path: Path
) -> None:
    result = run_cli(command, env, tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "nope" not in result.stderr


def test_the_app_manifest_asks_for_what_the_app_uses() -> None:
    manifest = json.loads((Path(__file__).resolve().parents[1] / "github-app-manifest.json").read_text())
    assert manifest["default_permissions"] == {
        "pull_requests": "write",
        "contents": "read",
        "issues": "write",
        "metadata": "read",
    }
    assert manifest["hook_attributes"]["url"].endswith("/webhook")
    for event in manifest["default_events"]:  # every event it subscribes to is one the receiver routes
        assert "is not handled" not in str(route(event, {"action": "created"}, "d"))
