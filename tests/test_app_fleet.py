"""A fleet of real workers on one Postgres: `review-agent serve` plus several `review-agent
worker` processes, the fake GitHub and the fake model over HTTP. Workers are SIGKILLed and
Postgres is restarted under them; what is asserted is what GitHub and the model saw (reviews
posted, comments, model calls per file) and what the queue holds at the end.

Small pull requests and a fast fake model keep each test within seconds of real work; the
stall threshold is 4 s (REVIEW_AGENT_STALLED_AFTER) so that a dead worker is noticed quickly.
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.app_fleet import TOKEN, comment_payload, fleet, post_webhook, pr_payload, small_files
from tests.fakes.github_app_routes import FakeGitHubApp
from tests.fakes.openai_server import WALKTHROUGH, Behaviour, FakeOpenAI
from tests.pg import temp_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
STALLED_AFTER = 4.0


@pytest.fixture
def github() -> Iterator[FakeGitHubApp]:
    with FakeGitHubApp(token=TOKEN) as gh:
        yield gh


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(require_api_key="sk-test-key") as server:
        yield server


@pytest.fixture
def db() -> Iterator[str]:
    with temp_database("ra_fleet") as url:
        yield url


def posted_once(gh: FakeGitHubApp, owner: str, repo: str, number: int, files: int) -> None:
    """One review on the pull request, one comment per file, no comment twice."""
    reviews = gh.reviews(owner, repo, number)
    assert len(reviews) == 1, f"{repo}#{number}: {len(reviews)} reviews"
    comments = gh.review_comments(owner, repo, number)
    keys = [(c["path"], c.get("line"), c["body"]) for c in comments]
    assert len(keys) == len(set(keys)) == files, f"{repo}#{number}: {keys}"


def model_calls_by_pr(model: FakeOpenAI) -> collections.Counter[str]:
    """Model calls per (file path, tag): the fake's paths repeat across PRs, the tags don't. The
    walkthrough written after each review's files is counted apart (``calls_for(WALKTHROUGH)``)."""
    out: collections.Counter[str] = collections.Counter()
    for call in model.calls:
        if call.path == WALKTHROUGH:
            continue
        text = " ".join(str(m.get("content")) for m in call.messages)
        tag = next((w for w in text.split() if w.startswith("#t")), "?")
        out[f"{call.path}{tag}"] += 1
    return out


def test_three_workers_review_thirty_pull_requests_each_once(
    github: FakeGitHubApp, model: FakeOpenAI, db: str, tmp_path: Path
) -> None:
    model.delay = 0.05
    prs = []
    for i in range(30):
        repo = f"svc{i % 3}"
        prs.append(github.add_pr("octo", repo, i + 1, small_files(2, tag=f"#t{i}")))
    with fleet(db, github, model.base_url, tmp_path) as f:
        f.start_server()
        for pr in prs:
            delivery = f"d-{pr.repo.name}-{pr.number}"
            assert post_webhook(f.url, "pull_request", pr_payload(github, pr), delivery=delivery)[0] == 202
        for pr in prs[::3]:  # GitHub redelivering some of them
            delivery = f"d-{pr.repo.name}-{pr.number}"
            status, answer = post_webhook(f.url, "pull_request", pr_payload(github, pr), delivery=delivery)
            assert (status, answer["status"]) == (200, "duplicate")
        for n in range(3):
            f.start_worker(f"w{n}", "--concurrency", "2")
        f.wait_until(lambda: len(f.runs("finished")) >= 30, 240, "30 finished reviews")
        time.sleep(1.0)  # anything wrongly queued twice would show now
        assert len(f.runs("finished")) == 30
        assert sorted(s for _, s, _, _ in f.jobs()) == ["succeeded"] * 30
    for pr in prs:
        posted_once(github, "octo", pr.repo.name, pr.number, files=2)
    calls = model_calls_by_pr(model)
    assert len(calls) == 60 and set(calls.values()) == {1}, "a file was sent to the model twice"
    assert model.calls_for(WALKTHROUGH) == 30  # one walkthrough per review


def test_a_worker_killed_mid_review_is_finished_by_another(
    github: FakeGitHubApp, model: FakeOpenAI, db: str, tmp_path: Path
) -> None:
    files = 8
    model.delay = 0.2
    model.script(Behaviour.hang_for(120), path="pkg/mod03.py")  # the doomed worker is in it when killed
    pr = github.add_pr("octo", "big", 1, small_files(files, tag="#tk"))
    with fleet(db, github, model.base_url, tmp_path) as f:
        f.start_server()
        doomed = f.start_worker("doomed", "--concurrency", "2")
        assert post_webhook(f.url, "pull_request", pr_payload(github, pr))[0] == 202
        f.wait_until(
            lambda: model.calls_for("pkg/mod03.py") == 1 and model.total_calls >= 3,
            60,
            "the first worker to be mid-review",
        )
        f.start_worker("rescuer", "--concurrency", "2")
        f.wait_until(lambda: " ready: " in f.log("rescuer"), 60, "the second worker")
        called_before = {c.path for c in model.calls}
        assert not f.runs()
        f.kill(doomed)  # SIGKILL: no goodbye, the job stays "doing" with a silent heartbeat
        killed_at, killed_wall = time.monotonic(), time.time()
        f.wait_until(
            lambda: any(c.timestamp > killed_wall for c in model.calls),
            STALLED_AFTER + 30,
            "another worker to take the review over",
        )
        taken_over = time.monotonic() - killed_at
        f.wait_until(lambda: bool(f.runs("finished")), 120, "the review to finish")
        assert [r[3] for r in f.runs()] == ["finished"]
        assert f.query("SELECT value FROM app_counters WHERE name = 'stalled_retried'") == [(1,)]
        assert "dead worker requeued" in f.log("rescuer")
    # noticed within the stall threshold plus a margin (a check every threshold/2, a poll, a start)
    assert taken_over <= STALLED_AFTER + 12, taken_over
    per_file = collections.Counter(c.path for c in model.calls if c.path != WALKTHROUGH)
    assert set(per_file) == {f"pkg/mod{i:02d}.py" for i in range(files)}
    redone = {p for p, n in per_file.items() if n > 1}
    assert max(per_file.values()) <= 2 and "pkg/mod03.py" in redone and len(redone) <= 2, per_file
    assert redone <= called_before  # only files that were in flight when the worker died
    posted_once(github, "octo", "big", 1, files=files)


def test_a_push_while_the_review_runs_stops_it_at_a_file_boundary(
    github: FakeGitHubApp, model: FakeOpenAI, db: str, tmp_path: Path
) -> None:
    model.delay = 0.5
    pr = github.add_pr("octo", "busy", 1, small_files(6, tag="#told"))
    old_head = pr.head_sha
    with fleet(db, github, model.base_url, tmp_path) as f:
        f.start_server()
        f.start_worker("w", "--concurrency", "1")
        assert post_webhook(f.url, "pull_request", pr_payload(github, pr))[0] == 202
        f.wait_until(lambda: model.total_calls >= 2, 60, "the review of the first head to run")
        new_head = "c" * 40
        github.push("octo", "busy", 1, new_head, small_files(6, tag="#tnew"))
        assert post_webhook(f.url, "pull_request", pr_payload(github, pr, "synchronize"))[0] == 202
        f.wait_until(lambda: bool(f.runs("finished")), 90, "the newest head's review")
        runs = {r[2]: r for r in f.runs()}
        assert runs[old_head][3] == "superseded" and runs[new_head][3] == "finished"
        assert "stopped" in runs[old_head][7]
    old_calls = sum(n for k, n in model_calls_by_pr(model).items() if k.endswith("#told"))
    assert 2 <= old_calls < 6  # the old head's review stopped part-way, at a file boundary
    reviews = github.reviews("octo", "busy", 1)
    assert [r["commit_id"] for r in reviews] == [new_head]  # nothing posted for the old head


def test_pushes_while_the_review_waits_review_only_the_newest_head(
    github: FakeGitHubApp, model: FakeOpenAI, db: str, tmp_path: Path
) -> None:
    pr = github.add_pr("octo", "queue", 1, small_files(2, tag="#ta"))
    with fleet(db, github, model.base_url, tmp_path) as f:
        f.start_server()
        assert post_webhook(f.url, "pull_request", pr_payload(github, pr))[0] == 202
        for n, sha in enumerate(("d" * 40, "e" * 40)):
            github.push("octo", "queue", 1, sha, small_files(2, tag=f"#tb{n}"))
            assert post_webhook(f.url, "pull_request", pr_payload(github, pr, "synchronize"))[0] == 202
        f.start_worker("w")
        f.wait_until(lambda: bool(f.runs("finished")), 60, "the review")
        time.sleep(1.5)
        assert [(r[2], r[3]) for r in f.runs()] == [("e" * 40, "finished")]
        assert [s for _, s, _, _ in f.jobs()] == ["cancelled", "cancelled", "succeeded"]
    assert [r["commit_id"] for r in github.reviews("octo", "queue", 1)] == ["e" * 40]
    assert all(k.endswith("#tb1") for k in model_calls_by_pr(model))


def test_status_and_learn_commands_answer_members_once(
    github: FakeGitHubApp, model: FakeOpenAI, db: str, tmp_path: Path
) -> None:
    pr = github.add_pr("octo", "cmds", 1, small_files(2))
    with fleet(db, github, model.base_url, tmp_path) as f:
        f.start_server()
        f.start_worker("w")
        assert post_webhook(f.url, "pull_request", pr_payload(github, pr))[0] == 202
        f.wait_until(lambda: bool(f.runs("finished")), 60, "the review")

        def command(body: str, association: str) -> dict[str, Any]:
            comment = github.add_issue_comment("octo", "cmds", 1, body, user="maint")
            payload = comment_payload(github, pr, comment, association)
            delivery = str(uuid.uuid4())
            for _ in range(2):  # redelivered: still answered once
                post_webhook(f.url, "issue_comment", payload, delivery=delivery)
            return comment

        command("/status", "CONTRIBUTOR")
        status = command("/status", "MEMBER")
        learn = command("/learn   never flag TODO comments in tests", "OWNER")

        def answers() -> list[str]:
            return [
                c["body"] for c in github.issue_comments("octo", "cmds", 1) if "review-agent:" in c["body"]
            ]

        f.wait_until(lambda: len(answers()) >= 2, 60, "the answers")
        time.sleep(1.0)
    texts = answers()
    assert len(texts) == 2
    status_answer = next(t for t in texts if f"review-agent:status:{status['id']}" in t)
    assert "finished, 2/2 files done" in status_answer
    learn_answer = next(t for t in texts if f"review-agent:learn:{learn['id']}" in t)
    assert "never flag TODO comments in tests" in learn_answer
    with fleet(db, github, model.base_url, tmp_path) as f:  # the learning is in the shared store
        rows = f.query("SELECT value::text FROM store WHERE prefix LIKE 'repo.octo%%'")
        assert any("never flag TODO comments in tests" in r[0] for r in rows)


def test_the_reconcile_queues_a_pull_request_whose_delivery_was_lost(
    github: FakeGitHubApp, model: FakeOpenAI, db: str, tmp_path: Path
) -> None:
    seen = github.add_pr("octo", "recon", 1, small_files(1, tag="#tseen"))
    github.add_pr("octo", "recon", 2, small_files(1, tag="#tlost"))  # its webhook never came
    github.add_pr("octo", "recon", 3, small_files(1, tag="#tdraft"), draft=True)
    with fleet(db, github, model.base_url, tmp_path, REVIEW_AGENT_RECONCILE_INTERVAL="2") as f:
        f.start_server()
        assert post_webhook(f.url, "pull_request", pr_payload(github, seen))[0] == 202
        f.start_worker("w")
        f.wait_until(lambda: len(f.runs("finished")) >= 2, 90, "the lost pull request's review")
        time.sleep(4.5)  # two more reconcile rounds: nothing is queued twice
        assert sorted(r[1] for r in f.runs()) == [1, 2]
        assert f.query("SELECT delivery_id FROM app_review_runs WHERE number = 2")[0][0].startswith(
            "reconcile:"
        )
    assert len(github.reviews("octo", "recon", 2)) == 1
    assert github.reviews("octo", "recon", 3) == []


def test_postgres_restarted_under_load_loses_and_duplicates_nothing(
    github: FakeGitHubApp, model: FakeOpenAI, tmp_path: Path
) -> None:
    from tests.test_storage_faults import PrivatePostgres  # a cluster of our own, to restart

    server = PrivatePostgres()
    try:
        server.init_and_start()
        with server.database() as db:
            model.delay = 0.3
            prs = [github.add_pr("octo", "restart", i + 1, small_files(2, tag=f"#tr{i}")) for i in range(10)]
            with fleet(db, github, model.base_url, tmp_path) as f:
                f.start_server()
                for pr in prs:
                    assert post_webhook(f.url, "pull_request", pr_payload(github, pr))[0] == 202
                for n in range(2):
                    f.start_worker(f"w{n}", "--concurrency", "2")

                def posted() -> int:
                    return sum(1 for pr in prs if github.reviews("octo", "restart", pr.number))

                f.wait_until(lambda: posted() >= 2, 90, "the first reviews")
                server.restart()  # -m fast: every session is cut, as a failover does
                f.wait_until(lambda: posted() == 10, 180, "every review after the restart")
                f.wait_until(
                    lambda: (
                        not f.query(
                            "SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
                            "AND task_name = 'review_agent.review_pull_request'"
                        )
                    ),
                    60,
                    "the queue to drain",
                )
                time.sleep(1.0)
                assert all("Traceback" not in f.log(f"w{n}") for n in range(2))
    finally:
        server.destroy()
    for pr in prs:
        posted_once(github, "octo", "restart", pr.number, files=2)
    calls = model_calls_by_pr(model)
    assert len(calls) == 20 and max(calls.values()) <= 2, calls  # at most the files in flight again


def test_app_mode_reviews_as_the_installation_and_never_retries_bad_input(
    github: FakeGitHubApp, model: FakeOpenAI, db: str, tmp_path: Path
) -> None:
    from tests.test_github_app import _key, _pem, _public

    key = _key()
    key_file = tmp_path / "review-agent.private-key.pem"
    key_file.write_text(_pem(key))
    github.add_app(4242, _public(key))
    installation = github.add_installation(4242, "acme", ["acme/shop"])
    pr = github.add_pr("acme", "shop", 3, small_files(2, tag="#tapp"))
    hidden = github.add_pr("other", "secret", 1, small_files(1), private=True)
    env = {"GITHUB_TOKEN": "", "GITHUB_APP_ID": "4242", "GITHUB_APP_PRIVATE_KEY_PATH": str(key_file)}
    with fleet(db, github, model.base_url, tmp_path, **env) as f:
        f.start_server()
        f.start_worker("w")
        payload = pr_payload(github, pr)
        payload["installation"] = {"id": installation}
        assert post_webhook(f.url, "pull_request", payload)[0] == 202
        # a delivery naming this installation for a repository it does not cover: refused by
        # GitHub, so the job fails as bad input, once, and says why
        stray = pr_payload(github, hidden)
        stray["installation"] = {"id": installation}
        assert post_webhook(f.url, "pull_request", stray)[0] == 202
        f.wait_until(lambda: len(f.runs()) >= 2, 60, "both jobs")
        status = github.add_issue_comment("acme", "shop", 3, "/status", user="maint")
        post_webhook(
            f.url,
            "issue_comment",
            {**comment_payload(github, pr, status, "MEMBER"), "installation": {"id": installation}},
        )
        f.wait_until(
            lambda: any("review-agent:status" in c["body"] for c in github.issue_comments("acme", "shop", 3)),
            60,
            "the /status answer",
        )
        time.sleep(1.0)
        runs = {r[0]: r for r in f.runs()}
        jobs = dict(
            f.query(
                "SELECT lock, status::text FROM procrastinate_jobs WHERE task_name = %s",
                ("review_agent.review_pull_request",),
            )
        )
        log = f.log("w")
    assert runs["acme/shop"][3] == "finished"
    assert runs["other/secret"][3] == "error 2" and "not found" in runs["other/secret"][7].lower()
    assert jobs == {"acme/shop#3": "succeeded", "other/secret#1": "failed"}  # no retry of bad input
    (review,) = github.reviews("acme", "shop", 3)
    assert review["user"]["login"] == "review-agent[bot]"
    answers = [c for c in github.issue_comments("acme", "shop", 3) if "review-agent:status" in c["body"]]
    assert [c["user"]["login"] for c in answers] == ["review-agent[bot]"]
    assert github.minted_tokens and github.count("GET", "/user") == 0
    for token in github.minted_tokens:  # never logged, never stored
        assert token not in log
        assert not f.query("SELECT 1 FROM procrastinate_jobs WHERE args::text LIKE %s", (f"%{token}%",))


def test_closing_the_pull_request_stops_its_running_review(
    github: FakeGitHubApp, model: FakeOpenAI, db: str, tmp_path: Path
) -> None:
    model.delay = 0.5
    pr = github.add_pr("octo", "closing", 1, small_files(6, tag="#tclose"))
    with fleet(db, github, model.base_url, tmp_path) as f:
        f.start_server()
        f.start_worker("w", "--concurrency", "1")
        assert post_webhook(f.url, "pull_request", pr_payload(github, pr))[0] == 202
        f.wait_until(lambda: model.total_calls >= 2, 60, "the review to run")
        github.close_pr("octo", "closing", 1)
        status, answer = post_webhook(f.url, "pull_request", pr_payload(github, pr, "closed"))
        assert status == 200 and answer["detail"] == "1 pending job cancelled"
        f.wait_until(lambda: bool(f.runs()), 30, "the review to stop")
        time.sleep(1.0)
        assert [r[3] for r in f.runs()] == ["cancelled"]
        assert [s for _, s, _, _ in f.jobs()] == ["aborted"]
    assert model.total_calls < 6  # stopped at a file boundary
    assert github.reviews("octo", "closing", 1) == []


def test_sigterm_stops_a_worker_at_a_file_boundary_and_another_finishes_without_redoing(
    github: FakeGitHubApp, model: FakeOpenAI, db: str, tmp_path: Path
) -> None:
    import signal

    model.delay = 1.0
    pr = github.add_pr("octo", "deploy", 1, small_files(6, tag="#tterm"))
    with fleet(db, github, model.base_url, tmp_path) as f:
        f.start_server()
        first = f.start_worker("first", "--concurrency", "2")
        assert post_webhook(f.url, "pull_request", pr_payload(github, pr))[0] == 202
        f.wait_until(lambda: model.total_calls >= 3, 60, "the review to run")
        first.send_signal(signal.SIGTERM)  # a deploy: files in flight finish, the job goes back
        first.wait(timeout=30)
        assert first.returncode == 0
        assert [r[3] for r in f.runs()] == ["requeued"]
        f.start_worker("second", "--concurrency", "2")
        f.wait_until(lambda: bool(f.runs("finished")), 60, "another worker to finish it")
    per_file = collections.Counter(c.path for c in model.calls if c.path != WALKTHROUGH)
    assert len(per_file) == 6 and set(per_file.values()) == {1}, per_file  # nothing redone
    assert model.calls_for(WALKTHROUGH) == 1
    posted_once(github, "octo", "deploy", 1, files=6)
