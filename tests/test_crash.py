"""Kill a real review with SIGKILL and rerun it: it resumes, and no finished file is sent to the
model again (issue 2; concurrency 1 and 4 for issue 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.crash import kill_hard, run_cli, start_cli, wait_for
from tests.fakes.openai_server import WALKTHROUGH, FakeOpenAI
from tests.gitrepo import make_repo

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("concurrency", [1, 4])
def test_sigkill_mid_review_then_rerun_resumes(
    tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str], concurrency: int
) -> None:
    repo = make_repo(tmp_path, files=12)
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
    fake_openai.delay = 0.25
    args = ["review", str(repo), "--base", "main", "-j", str(concurrency), "-f", "json"]
    proc = start_cli(args, env, tmp_path)
    wait_for(lambda: fake_openai.total_calls >= 5, what="five model calls")
    kill_hard(proc)
    before = {p: fake_openai.calls_for(p) for p in (f"mod{i:02d}.py" for i in range(12))}
    assert 0 < sum(1 for n in before.values() if n) < 12

    fake_openai.delay = 0.0
    result = run_cli(args, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Resuming: " in result.stderr
    report = json.loads(result.stdout)
    assert report["resumed"] is True
    assert [f["path"] for f in report["files"]] == [f"mod{i:02d}.py" for i in range(12)]
    assert all(f["comments"] for f in report["files"])

    calls = {f"mod{i:02d}.py": fake_openai.calls_for(f"mod{i:02d}.py") for i in range(12)}
    assert all(n >= 1 for n in calls.values()), calls
    redone = [p for p, n in calls.items() if n > 1]
    # only files in flight at the kill may be sent twice: at most one batch
    assert len(redone) <= concurrency, (redone, before, calls)
    assert all(calls[p] == 2 for p in redone)
    # the files sent again, and the walkthrough written after them
    assert fake_openai.calls_for(WALKTHROUGH) == 1
    assert report["model_calls"] == sum(calls.values()) - sum(before.values()) + 1

    # a third run does nothing at all
    total = fake_openai.total_calls
    again = run_cli(args, env, tmp_path)
    assert again.returncode == 0 and fake_openai.total_calls == total
    assert json.loads(again.stdout)["model_calls"] == 0


def test_model_server_down_exits_3_and_leaves_no_checkpoint(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, files=2)
    server = FakeOpenAI().start()
    url = server.base_url
    server.stop()  # nothing listens there now
    env = {
        "REVIEW_AGENT_HOME": str(tmp_path / "home"),
        "OPENAI_BASE_URL": url,
        "OPENAI_API_KEY": "sk-x",
        "REVIEW_AGENT_MODEL_RETRIES": "0",
        "REVIEW_AGENT_MODEL_TIMEOUT": "5",
        "REVIEW_AGENT_RETRY_INTERVAL": "0.1",
    }
    args = ["review", str(repo), "--base", "main"]
    result = run_cli(args, env, tmp_path)
    assert result.returncode == 3, result.stderr
    assert "unreachable" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3
    status = run_cli(["status", str(repo), "--base", "main"], env, tmp_path)
    assert "not reviewed yet" in status.stdout
    # and once the server is back, a normal run starts from scratch (no "Resuming")
    with FakeOpenAI() as server2:
        env["OPENAI_BASE_URL"] = server2.base_url
        ok = run_cli(args, env, tmp_path)
        assert ok.returncode == 0, ok.stderr
        assert "Resuming" not in ok.stderr
        assert server2.total_calls == 3  # two files and the walkthrough
