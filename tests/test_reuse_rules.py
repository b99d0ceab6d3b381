"""What the tool says must be true (issue 10, items 2–4): a failed file is failed, a review names
the reviewer that did the work, and `--fresh` asks again. Real CLI processes, the real
langchain-openai client against the fake model server, the SQLite default."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.crash import run_cli
from tests.fakes.openai_server import WALKTHROUGH, Behaviour, FakeOpenAI

# Each test runs the CLI several times in subprocesses: seconds each, so not in the unit tier.
pytestmark = pytest.mark.slow

ARGS_JSON = ["--base", "main", "-f", "json"]


def _review(repo: Path, env: dict[str, str], tmp_path: Path, *extra: str) -> tuple[int, dict, str]:
    r = run_cli(["review", str(repo), *ARGS_JSON, *extra], env, tmp_path)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else {}), r.stderr


def test_a_failed_file_is_failed_never_reused_and_retried_by_the_next_run(
    repo: Path, tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
    # mod03's answer is garbage twice (the answer and the repair turn): no review of it exists
    fake_openai.script(Behaviour.reply({"nonsense": 1}), Behaviour.reply({"nonsense": 2}), path="mod03.py")
    code, report, err = _review(repo, env, tmp_path)
    assert code == 3, err
    assert "1 file could not be reviewed; rerun to retry them" in err
    assert report["files_reviewed"] == 7 and report["files_failed"] == 1
    failed = [f for f in report["files"] if f["status"] == "failed"]
    assert [f["path"] for f in failed] == ["mod03.py"] and "could not be parsed" in failed[0]["error"]
    assert fake_openai.calls_for("mod03.py") == 2  # the answer and one repair turn


def test_the_text_report_lists_a_failed_file_with_its_reason(
    repo: Path, tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
    fake_openai.script(Behaviour.reply({"nonsense": 1}), Behaviour.reply({"nonsense": 2}), path="mod03.py")
    r = run_cli(["review", str(repo), "--base", "main"], env, tmp_path)
    assert r.returncode == 3, r.stderr
    assert "7/8 files reviewed, 1 failed" in r.stdout
    assert "== mod03.py (FAILED: not reviewed)" in r.stdout and "could not be parsed" in r.stdout
    assert "mod03.py: not reviewed: the model's answer could not be parsed" in r.stderr


def test_the_model_fixed_a_rerun_retries_only_the_failed_file(
    repo: Path, tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
    fake_openai.script(Behaviour.reply({"nonsense": 1}), Behaviour.reply({"nonsense": 2}), path="mod03.py")
    assert _review(repo, env, tmp_path)[0] == 3
    # a failed file waits for a rerun: the walkthrough is the counts, no model call yet
    assert fake_openai.total_calls == 9 and fake_openai.calls_for(WALKTHROUGH) == 0
    code, report, err = _review(repo, env, tmp_path)
    assert code == 0, err
    assert fake_openai.total_calls == 11 and fake_openai.calls_for("mod03.py") == 3
    assert fake_openai.calls_for(WALKTHROUGH) == 1
    assert report["files_reviewed"] == 8 and report["files_failed"] == 0
    assert "1 failed" in err and "(reused)" not in err
    code, report, err = _review(repo, env, tmp_path)
    assert code == 0 and "Already reviewed: 8/8" in err and fake_openai.total_calls == 11


def test_garbage_everywhere_is_never_reviewed_and_fresh_asks_again(
    repo: Path, tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
    fake_openai.script(*[Behaviour.bad_json() for _ in range(16)])
    code, report, err = _review(repo, env, tmp_path)
    assert code == 3 and report["files_reviewed"] == 0 and report["files_failed"] == 8, err
    assert "8 files could not be reviewed" in err
    # the model is fixed: --fresh (and a plain rerun alike) ask the model again for every file
    fake_openai.reset()
    code, report, err = _review(repo, env, tmp_path, "--fresh")
    assert code == 0, err
    assert fake_openai.total_calls == 9 and report["files_reviewed"] == 8  # and the walkthrough
    assert "every file is sent to the reviewer again" in err
    assert not any(f["reused"] for f in report["files"])


def test_fresh_asks_the_reviewer_again_for_every_file(
    repo: Path, tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
    assert _review(repo, env, tmp_path)[0] == 0
    assert fake_openai.total_calls == 9  # eight files and the walkthrough
    code, report, err = _review(repo, env, tmp_path, "--fresh")
    assert code == 0, err
    assert fake_openai.total_calls == 18 and report["model_calls"] == 9
    assert not any(f["reused"] for f in report["files"]) and "(reused)" not in err


def test_offline_then_model_then_another_model_each_review_names_its_reviewer(
    repo: Path, tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    home = {"REVIEW_AGENT_HOME": str(tmp_path / "home")}
    code, offline, err = _review(repo, home, tmp_path)
    assert code == 0 and offline["reviewers"] == ["builtin"], err
    # the model run in the same home: every file goes to the model, none is the built-in's
    env = {**model_env, **home}
    code, report, err = _review(repo, env, tmp_path)
    assert code == 0, err
    assert "Already reviewed" not in err and fake_openai.total_calls == 9  # and the walkthrough
    assert re.search(r"^\[8/8\] mod0", err, re.M), err  # progress counts the files the model reviews
    history = run_cli(["history", str(repo), "--base", "main"], env, tmp_path).stdout
    assert "reviewed mod03.py by openai:fake-model" in history
    assert report["reviewer"] == "openai:fake-model" and report["reviewers"] == ["openai:fake-model"]
    assert {f["reviewer"] for f in report["files"]} == {"openai:fake-model"}
    text = run_cli(["review", str(repo), "--base", "main"], env, tmp_path).stdout
    assert "reviewer openai:fake-model" in text and "builtin" not in text
    # another model: asked again; the first model's reviews do not stand in for it
    code, report, err = _review(repo, env, tmp_path, "--model", "m2")
    assert code == 0, err
    assert fake_openai.total_calls == 18 and report["reviewers"] == ["openai:m2"]
    # and back offline: the built-in's own reviews of this change serve, no model call
    code, report, err = _review(repo, home, tmp_path)
    assert code == 0 and report["reviewers"] == ["builtin"] and fake_openai.total_calls == 18, err
    assert report["walkthrough"]["writer"] == "builtin"
    # and back to the first model: its own answers for these unchanged files serve again; only
    # the walkthrough is written anew, and what is said claims no file is asked again
    code, report, err = _review(repo, env, tmp_path)
    assert code == 0 and report["reviewers"] == ["openai:fake-model"], err
    assert fake_openai.total_calls == 19 and fake_openai.calls_for(WALKTHROUGH) == 3
    assert "Going over all 8 files again (8 reviewed by another reviewer than openai:fake-model)" in err
