"""What the command line promises (issue 10): a flag that cannot work is one line and exit 2
before anything is done; a file that could not be reviewed is exit 3 with what to do, while
the rest of the review is still saved and posted; and the rerun finishes only what is missing,
posting nothing twice. Real CLI processes against the fake GitHub and model servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.crash import run_cli
from tests.fakes.github_server import FakeGitHub, added_file_patch, make_file
from tests.fakes.openai_server import WALKTHROUGH, Behaviour, FakeOpenAI

TOKEN = "ghs_cli_contract_token_0123456789"
OWNER, REPO, NUMBER = "acme", "shop", 12
PATHS = ["a.py", "b.py", "c.py"]
GARBAGE = (Behaviour.reply({"nonsense": 1}), Behaviour.reply({"nonsense": 2}))  # the answer, the repair


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        files = [
            make_file(
                p, added_file_patch([f"value = {i}", "other = 2"]), status="added", content=f"value = {i}\n"
            )
            for i, p in enumerate(PATHS)
        ]
        fake.add_pr(OWNER, REPO, NUMBER, files)
        yield fake


def _env(gh: FakeGitHub, model_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **model_env,
        "REVIEW_AGENT_HOME": str(tmp_path / "home"),
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": gh.url,
    }


def _url(gh: FakeGitHub) -> str:
    return f"{gh.root}/{OWNER}/{REPO}/pull/{NUMBER}"


@pytest.mark.slow
@pytest.mark.parametrize("event", ["approve", "request-changes", "APPROVE"])
def test_an_event_without_post_is_one_line_and_exit_2_before_any_request(
    gh: FakeGitHub, fake_openai: FakeOpenAI, model_env: dict[str, str], tmp_path: Path, event: str
) -> None:
    r = run_cli(["review", _url(gh), "--event", event], _env(gh, model_env, tmp_path), tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "--post" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""
    assert gh.requests == [] and fake_openai.total_calls == 0
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.sqlite"))


def _comments_by_path(gh: FakeGitHub) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in gh.review_comments(OWNER, REPO, NUMBER):
        out.setdefault(c["path"], []).append(c["body"])
    return out


@pytest.mark.slow
def test_a_failed_file_exits_3_the_rest_is_posted_and_the_rerun_posts_only_it(
    gh: FakeGitHub, fake_openai: FakeOpenAI, model_env: dict[str, str], tmp_path: Path
) -> None:
    env = _env(gh, model_env, tmp_path)
    args = ["review", _url(gh), "--post", "-f", "json"]
    fake_openai.script(*GARBAGE, path="b.py")

    first = run_cli(args, env, tmp_path)
    assert first.returncode == 3, first.stderr
    assert (
        first.stderr.rstrip("\n")
        .splitlines()[-1]
        .endswith("1 file could not be reviewed; rerun to retry them")
    )
    assert "Traceback" not in first.stderr
    report = json.loads(first.stdout)
    assert report["files_reviewed"] == 2 and report["files_failed"] == 1
    # the others' review is posted: one review, a comment on each of them, none on the failed file
    (review,) = gh.reviews(OWNER, REPO, NUMBER)
    assert review["state"] == "COMMENTED"
    assert "**2/3 files reviewed**, 1 failed" in review["body"]  # a failed file is not reviewed
    assert "1 file could not be reviewed; rerun to retry them" in review["body"]
    assert {p: len(c) for p, c in _comments_by_path(gh).items()} == {"a.py": 1, "c.py": 1}

    # the model is fixed: the rerun asks about b.py only and posts its comment, nothing twice
    calls = fake_openai.total_calls
    second = run_cli(args, env, tmp_path)
    assert second.returncode == 0, second.stderr
    # b.py, then the walkthrough over every file (the first run's was the counts: b.py had failed)
    assert fake_openai.total_calls == calls + 2 and fake_openai.calls[-2].path == "b.py"
    assert fake_openai.calls[-1].path == WALKTHROUGH
    assert {p: len(c) for p, c in _comments_by_path(gh).items()} == {"a.py": 1, "b.py": 1, "c.py": 1}
    reviews = gh.reviews(OWNER, REPO, NUMBER)
    assert len(reviews) == 2 and "**3/3 files reviewed** at" in reviews[1]["body"]
    body = reviews[1]["body"]
    assert "Reviewed a.py." not in body and "Reviewed c.py." not in body  # summaries not repeated
    assert "<summary><code>a.py</code>" not in body  # nor their sections: only the table names them

    # and once more: nothing to do, nothing posted
    third = run_cli(args, env, tmp_path)
    assert third.returncode == 0 and "Already reviewed: 3/3" in third.stderr, third.stderr
    assert fake_openai.total_calls == calls + 2
    assert len(gh.reviews(OWNER, REPO, NUMBER)) == 2 and len(gh.review_comments(OWNER, REPO, NUMBER)) == 3
