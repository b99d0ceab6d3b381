"""`history`, `history --at`, `review --from-step` and `status`, through the real CLI: the audit
trail tells kills, interrupts and reruns, survives `db prune` and `--fresh`; time travel forks
without touching the original; a PR's status and history answer from local state when GitHub is
down (issue 10, items 9-11 and the small things of `status`)."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.crash import kill_hard, run_cli, start_cli, wait_for
from tests.fakes.github_server import FakeGitHub, make_file
from tests.fakes.openai_server import Behaviour, FakeOpenAI
from tests.gitrepo import make_repo

TOKEN = "ghs_faketoken_for_tests_0123456789"
HEAD = "a" * 40


def _history(repo: Path, env: dict[str, str], cwd: Path, *extra: str) -> dict[str, Any]:
    r = run_cli(["history", str(repo), "--base", "main", "--json", *extra], env, cwd)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _outcomes(history: dict[str, Any]) -> list[str | None]:
    return [run["outcome"] for run in history["runs"]]


def _without_steps(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "step"} for e in events]


def _review_args(repo: Path, *extra: str) -> list[str]:
    return ["review", str(repo), "--base", "main", *extra]


# --------------------------------------------------------------------------------------------
# kills, interrupts, reruns


@pytest.mark.slow
def test_history_after_sigkill_and_rerun_shows_the_killed_run_and_the_rerun(
    tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path, files=8)
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
    fake_openai.delay = 0.3
    proc = start_cli(_review_args(repo, "-j", "1"), env, tmp_path)
    wait_for(lambda: fake_openai.total_calls >= 3, what="three model calls")
    kill_hard(proc)

    # before the rerun: the killed run has no end, and status does not call it running
    status = run_cli(["status", str(repo), "--base", "main"], env, tmp_path)
    assert "stopped without a word (killed?)" in status.stdout, status.stdout
    fake_openai.delay = 0.0
    assert run_cli(_review_args(repo, "-j", "1"), env, tmp_path).returncode == 0

    history = _history(repo, env, tmp_path)
    assert _outcomes(history) == ["killed", "finished"]
    killed, rerun = history["runs"]
    assert killed["options"]["concurrency"] == 1 and killed["reviewer"] == "openai:fake-model"
    assert isinstance(killed["pid"], int) and killed["pid"] != rerun["pid"]
    by_run: dict[int, list[str]] = {}
    for e in history["events"]:
        if e["event"] in ("file_reviewed", "file_reused"):
            by_run.setdefault(e["run"], []).append(e["path"])
    # every file appears in the trail, the first run's before the kill, the rest in the rerun
    assert 2 <= len(by_run[1]) <= 4
    assert sorted(set(by_run[1]) | set(by_run[2])) == [f"mod{i:02d}.py" for i in range(8)]
    ended = [e for e in history["events"] if e["event"] == "run_ended"]
    assert ended[0]["run"] == 1 and ended[0]["noticed_by"] == rerun["run_id"]
    text = run_cli(["history", str(repo), "--base", "main"], env, tmp_path).stdout
    assert "run 1   ended: killed" in text and "run 2   ended: finished, 8/8 files done" in text


@pytest.mark.slow
def test_a_sigint_run_shows_one_interrupted_run(
    tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path, files=6)
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
    fake_openai.script(Behaviour.hang_for(1.5), path="mod02.py")
    proc = start_cli(_review_args(repo, "-j", "1"), env, tmp_path)
    wait_for(lambda: fake_openai.calls_for("mod02.py") == 1, what="mod02.py in flight")
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""

    history = _history(repo, env, tmp_path)
    assert _outcomes(history) == ["interrupted"]
    (ended,) = [e for e in history["events"] if e["event"] == "run_ended"]
    assert (ended["files_done"], ended["files_total"]) == (3, 6)
    assert "stopped: 3/6 files saved" in ended["message"]
    text = run_cli(["history", str(repo), "--base", "main"], env, tmp_path).stdout.splitlines()
    trail = [ln for ln in text if " run " in f" {ln} "]
    assert sum("interrupted" in ln for ln in trail) == 1, text
    assert len(trail) == len(set(trail)), text  # no line repeated
    status = run_cli(["status", str(repo), "--base", "main"], env, tmp_path)
    assert "interrupted, 3/6 files done" in status.stdout, status.stdout


@pytest.mark.slow
def test_history_survives_prune_and_fresh(tmp_path: Path, backend_env: dict[str, str]) -> None:
    env = backend_env
    repo = make_repo(tmp_path, files=3)
    assert run_cli(_review_args(repo, "-j", "1"), env, tmp_path).returncode == 0
    first = _history(repo, env, tmp_path)
    assert len(first["checkpoints"]) > 3
    assert run_cli(["db", "prune"], env, tmp_path).returncode == 0
    pruned = _history(repo, env, tmp_path)
    assert [c["step"] for c in pruned["checkpoints"]] == [first["checkpoints"][-1]["step"]]
    # the whole trail is still there (only the step marks of pruned checkpoints are gone), plus
    # what the prune did
    assert _without_steps(pruned["events"][: len(first["events"])]) == _without_steps(first["events"])
    assert pruned["events"][-1]["event"] == "pruned"
    status = run_cli(["status", str(repo), "--base", "main"], env, tmp_path)
    assert "finished, 3/3 files done" in status.stdout

    assert run_cli(_review_args(repo, "-j", "1", "--fresh"), env, tmp_path).returncode == 0
    after = _history(repo, env, tmp_path)
    assert _outcomes(after) == ["finished", "finished"]
    names = [e["event"] for e in after["events"]]
    assert names.index("pruned") < names.index("fresh") < len(names) - 1
    assert after["runs"][1]["options"]["fresh"] is True
    # each run decided every file (whether --fresh may reuse is the reuse rules' business)
    decided = [
        (e["run"], e["path"]) for e in after["events"] if e["event"] in ("file_reviewed", "file_reused")
    ]
    assert sorted(decided) == [(run, f"mod0{i}.py") for run in (1, 2) for i in range(3)]
    text = run_cli(["history", str(repo), "--base", "main"], env, tmp_path).stdout
    assert "db prune:" in text and "--fresh: saved checkpoints" in text


# --------------------------------------------------------------------------------------------
# time travel


@pytest.mark.slow
def test_history_at_a_step_shows_files_done_in_flight_and_counters(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path, files=4)
    env = {"REVIEW_AGENT_HOME": str(home)}
    assert run_cli(_review_args(repo, "-j", "1"), env, tmp_path).returncode == 0
    history = _history(repo, env, tmp_path)
    saved_at = {e["path"]: e["step"] for e in history["events"] if e["event"] == "file_reviewed"}
    step = saved_at["mod01.py"]  # the checkpoint that first holds mod01.py as done
    r = run_cli(["history", str(repo), "--base", "main", "--at", str(step), "--json"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    state = json.loads(r.stdout)
    assert state["step"] == step and state["done"] == ["mod00.py", "mod01.py"]
    assert state["in_flight"] == ["mod02.py"]
    assert (state["files_total"], state["model_calls"], state["finished"]) == (4, 0, False)
    text = run_cli(["history", str(repo), "--base", "main", "--at", str(step)], env, tmp_path).stdout
    assert "files: 2/4 done, 0 skipped" in text and "in flight: mod02.py" in text
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", text)

    assert run_cli(["db", "prune"], env, tmp_path).returncode == 0
    gone = run_cli(["history", str(repo), "--base", "main", "--at", str(step)], env, tmp_path)
    assert gone.returncode == 2 and f"no checkpoint at step {step}" in gone.stderr
    assert "pruned" in gone.stderr and "Traceback" not in gone.stderr


@pytest.mark.slow
def test_from_step_forks_a_new_review_and_leaves_the_original_untouched(
    tmp_path: Path, backend_env: dict[str, str], fake_openai: FakeOpenAI
) -> None:
    """Offline first, then a model from step STEP: the fork asks the model for the files after
    STEP only; the original thread's checkpoints, reviews and audit trail do not change."""
    repo = make_repo(tmp_path, files=5)
    env = backend_env
    original = run_cli(_review_args(repo, "-j", "1", "-f", "json"), env, tmp_path)
    assert original.returncode == 0, original.stderr
    before = _history(repo, env, tmp_path)
    saved_at = {e["path"]: e["step"] for e in before["events"] if e["event"] == "file_reviewed"}
    step = saved_at["mod01.py"]

    model = {
        "OPENAI_API_KEY": "sk-test-key",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "REVIEW_AGENT_MODEL": "fake-model",
        "REVIEW_AGENT_EMBEDDINGS": "local",
    }
    fork_args = _review_args(repo, "-j", "1", "-f", "json", "--from-step", str(step))
    forked = run_cli(fork_args, {**env, **model}, tmp_path)
    assert forked.returncode == 0, forked.stderr
    report = json.loads(forked.stdout)
    fork_thread = before["thread_id"] + f"~from-step-{step}"
    assert report["thread_id"] == fork_thread
    reviewers = {f["path"]: f["reviewer"] for f in report["files"]}
    assert reviewers == {
        "mod00.py": "builtin",
        "mod01.py": "builtin",
        "mod02.py": "openai:fake-model",
        "mod03.py": "openai:fake-model",
        "mod04.py": "openai:fake-model",
    }
    assert {p: fake_openai.calls_for(p) for p in reviewers} == {
        "mod00.py": 0,
        "mod01.py": 0,
        "mod02.py": 1,
        "mod03.py": 1,
        "mod04.py": 1,
    }

    after = _history(repo, env, tmp_path)
    assert after["forks"] == [fork_thread]
    assert {k: v for k, v in after.items() if k != "forks"} == {
        k: v for k, v in before.items() if k != "forks"
    }
    again = run_cli(_review_args(repo, "-j", "1", "-f", "json"), env, tmp_path)
    assert [f["reviewer"] for f in json.loads(again.stdout)["files"]] == ["builtin"] * 5

    fork = _history(repo, env, tmp_path, "--from-step", str(step))
    assert fork["thread_id"] == fork_thread
    assert fork["events"][0]["event"] == "forked" and fork["events"][0]["from_step"] == step
    assert fork["events"][0]["files_done"] == 2
    assert _outcomes(fork) == ["finished"]
    assert [e["path"] for e in fork["events"] if e["event"] == "file_reviewed"] == [
        "mod02.py",
        "mod03.py",
        "mod04.py",
    ]
    status = run_cli(["status", str(repo), "--base", "main", "--from-step", str(step)], env, tmp_path)
    assert "finished, 5/5 files done" in status.stdout and fork_thread in status.stdout

    last = before["checkpoints"][-1]["step"]
    done = run_cli(_review_args(repo, "--from-step", str(last)), env, tmp_path)
    assert done.returncode == 2 and "fork from an earlier step" in done.stderr


# --------------------------------------------------------------------------------------------
# a pull request while GitHub is down


def _pr_files() -> list[dict[str, Any]]:
    return [
        make_file(f"src/m{i}.py", f"@@ -1 +1,2 @@\n x = {i}\n+print(x)\n", content=f"x = {i}\nprint(x)\n")
        for i in range(3)
    ]


@pytest.mark.slow
def test_status_and_history_of_a_pr_answer_from_local_state_when_github_is_down(tmp_path: Path) -> None:
    env = {"REVIEW_AGENT_HOME": str(tmp_path / "home"), "GITHUB_TOKEN": TOKEN}
    gh = FakeGitHub(token=TOKEN).start()
    try:
        gh.add_pr("acme", "shop", 7, _pr_files(), head_sha=HEAD, base_sha="b" * 40, author="alice")
        gh.add_pr("acme", "shop", 8, _pr_files(), head_sha="c" * 40, base_sha="b" * 40, author="alice")
        env["GITHUB_API_URL"] = gh.url
        url, never_reviewed = f"{gh.root}/acme/shop/pull/7", f"{gh.root}/acme/shop/pull/8"
        r = run_cli(["review", url, "-j", "1"], env, tmp_path)
        assert r.returncode == 0, r.stderr
    finally:
        gh.stop()
    status = run_cli(["status", url], env, tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"GitHub unreachable; last known head {HEAD[:12]}" in status.stdout
    assert "finished, 3/3 files done" in status.stdout
    history = run_cli(["history", url], env, tmp_path)
    assert history.returncode == 0, history.stderr
    assert f"last known head {HEAD[:12]}" in history.stdout and "ended: finished" in history.stdout
    as_json = run_cli(["status", url, "--json"], env, tmp_path)
    assert json.loads(as_json.stdout)["head_sha"] == HEAD
    for r in (status, history, as_json):
        assert r.stderr == "", r.stderr  # no retry chatter, no warning
    # a PR this machine never reviewed: unreachable is the answer (exit 3), said once
    other = run_cli(["status", never_reviewed], env, tmp_path)
    assert other.returncode == 3
    assert "no earlier review of this pull request is known here" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1, other.stderr


# --------------------------------------------------------------------------------------------
# status: small things


@pytest.mark.slow
def test_status_lists_only_unsaved_files_of_the_window_and_whole_seconds(
    tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path, files=10)
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
    # a window of 8 at -j 2: mod00..mod05 answer, mod06 and mod07 hang when the run is killed
    for i in (6, 7):
        fake_openai.script(Behaviour.hang_for(30), path=f"mod{i:02d}.py")
    proc = start_cli(_review_args(repo, "-j", "2"), env, tmp_path)
    wait_for(
        lambda: fake_openai.calls_for("mod06.py") == 1 and fake_openai.calls_for("mod07.py") == 1,
        what="the last two files of the window in flight",
    )
    kill_hard(proc)
    r = run_cli(["status", str(repo), "--base", "main", "--json"], env, tmp_path)
    info = json.loads(r.stdout)
    assert info["done"] == 6 and info["current"] == ["mod06.py", "mod07.py"], info
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", info["updated_at"]), info["updated_at"]
    text = run_cli(["status", str(repo), "--base", "main"], env, tmp_path).stdout
    assert "current: mod06.py, mod07.py\n" in text


@pytest.mark.slow
def test_status_does_not_say_finished_when_the_post_never_completed(tmp_path: Path) -> None:
    env = {
        "REVIEW_AGENT_HOME": str(tmp_path / "home"),
        "GITHUB_TOKEN": TOKEN,
        "REVIEW_AGENT_GITHUB_RETRIES": "0",
    }
    with FakeGitHub(token=TOKEN) as gh:
        gh.add_pr("acme", "shop", 7, _pr_files(), head_sha=HEAD, base_sha="b" * 40, author="alice")
        env["GITHUB_API_URL"] = gh.url
        url = f"{gh.root}/acme/shop/pull/7"
        gh.fail_next("POST", "/pulls/7/reviews", 502, times=20)
        r = run_cli(["review", url, "--post"], env, tmp_path)
        assert r.returncode == 3, r.stderr
        status = run_cli(["status", url], env, tmp_path)
        assert "reviewed, not posted (the post did not complete: rerun with --post)" in status.stdout
        assert "finished" not in status.stdout
        history = run_cli(["history", url, "--json"], env, tmp_path)
        assert [run["outcome"] for run in json.loads(history.stdout)["runs"]] == ["error"]

        gh.clear_faults()
        ok = run_cli(["review", url, "--post"], env, tmp_path)
        assert ok.returncode == 0, ok.stderr
        status = run_cli(["status", url], env, tmp_path)
        assert "finished, 3/3 files done" in status.stdout and "posted: review" in status.stdout
        history = json.loads(run_cli(["history", url, "--json"], env, tmp_path).stdout)
        (posted,) = [e for e in history["events"] if e["event"] == "posted"]
        assert posted["review_id"] == gh.reviews("acme", "shop", 7)[0]["id"]
