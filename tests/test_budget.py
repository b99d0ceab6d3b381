"""Token and cost accounting, and budgets that stop cleanly with state saved (issue 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.crash import run_cli
from tests.fakes.openai_server import WALKTHROUGH, FakeOpenAI

# Each test runs the CLI several times in subprocesses: seconds each, so not in the unit tier.
pytestmark = pytest.mark.slow


def test_usage_and_cost_are_reported(
    repo: Path, tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home"), "REVIEW_AGENT_PRICE": "2,8"}
    r = run_cli(["review", str(repo), "--base", "main", "-f", "json"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["usage"]["input_tokens"] > 0 and data["usage"]["output_tokens"] > 0
    # every file, and the walkthrough written after them
    expected = sum(
        (u["input_tokens"] * 2 + u["output_tokens"] * 8) / 1e6
        for u in [*(f["usage"] for f in data["files"]), data["walkthrough"]["usage"]]
    )
    assert data["walkthrough"]["model_calls"] == 1 and data["walkthrough"]["cost_usd"] > 0
    assert abs(data["cost_usd"] - expected) < 1e-6
    assert all(f["cost_usd"] is not None for f in data["files"])
    text = run_cli(["review", str(repo), "--base", "main"], env, tmp_path).stdout
    assert "tokens:" in text


def test_max_cost_stops_with_state_saved_and_a_rerun_continues(
    repo: Path, tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    # at $1000 per million tokens one file costs far more than the 10 cent budget
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home"), "REVIEW_AGENT_PRICE": "1000,1000"}
    args = ["review", str(repo), "--base", "main", "-j", "1", "-f", "json"]
    r = run_cli([*args, "--max-cost", "0.1"], env, tmp_path)
    assert r.returncode == 4, r.stderr
    assert "budget reached" in r.stderr and "1/8 files saved" in r.stderr
    assert fake_openai.total_calls == 1
    status = run_cli(["status", str(repo), "--base", "main"], env, tmp_path)
    assert "1/8 files done" in status.stdout
    r = run_cli([*args, "--max-cost", "1000"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Resuming: 1/8" in r.stderr
    # the first file was not reviewed again; the walkthrough was written after the last file
    assert fake_openai.total_calls == 9 and fake_openai.calls_for(WALKTHROUGH) == 1
    assert json.loads(r.stdout)["model_calls"] == 8


def test_max_files_caps_the_run_not_the_review(
    repo: Path, tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    """Issue 10 item 5: the cap belongs to the run. The plan holds every file; a later run
    without the cap, or with a higher one, reviews the rest and nothing twice."""
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
    args = ["review", str(repo), "--base", "main", "-f", "json"]
    r = run_cli([*args, "--max-files", "3"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [f["path"] for f in data["files"]] == ["mod00.py", "mod01.py", "mod02.py"]
    assert data["files_total"] == 8 and fake_openai.total_calls == 3
    assert sum("--max-files 3" in s["reason"] for s in data["skipped"]) == 5
    r = run_cli([*args, "--max-files", "4", "-j", "2"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["files"]) == 7 and fake_openai.total_calls == 7
    r = run_cli(args, env, tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert len(data["files"]) == 8 and data["skipped"] == [] and fake_openai.total_calls == 9
    assert all(fake_openai.calls_for(f"mod{i:02d}.py") == 1 for i in range(8))
    # the capped runs wrote the walkthrough without the model; the complete walk asked it once
    assert fake_openai.calls_for(WALKTHROUGH) == 1 and data["walkthrough"]["model_calls"] == 1
    assert "Already reviewed: 8/8" in run_cli(args, env, tmp_path).stderr
    assert fake_openai.total_calls == 9
    home = {"REVIEW_AGENT_HOME": str(tmp_path / "home")}
    bad = run_cli(["review", str(repo), "--base", "main", "--max-cost", "0"], home, tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
