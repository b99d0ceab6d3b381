"""The main job on the embedded default: an offline review of a local repository, via the CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from review_agent.cli import app
from tests.gitrepo import git, make_repo

runner = CliRunner()


def review(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["review", *args])
    return result.exit_code, result.stdout, result.stderr


def test_offline_review_of_a_local_branch(repo: Path, home: Path) -> None:
    (repo / "secrets.py").write_text('API_KEY = "abcd1234abcd1234"\n<<<<<<< HEAD\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more")
    code, out, err = review(str(repo), "--base", "main", "--head", "feature", "--format", "json")
    assert code == 0, err
    assert "offline" in err
    data = json.loads(out)
    for key in (
        "target",
        "thread_id",
        "head_sha",
        "resumed",
        "files_total",
        "files",
        "skipped",
        "model_calls",
    ):
        assert key in data
    assert data["files_total"] == 9
    assert [f["path"] for f in data["files"]] == sorted(f["path"] for f in data["files"])
    assert data["resumed"] is False and data["model_calls"] == 0
    by_path = {f["path"]: f for f in data["files"]}
    # the offline reviewer's real findings, on added lines
    mod = by_path["mod00.py"]
    assert any("print" in c["body"].lower() or "debug" in c["body"] for c in mod["comments"])
    assert all(c["line"] == 2 for c in mod["comments"])
    sec = by_path["secrets.py"]
    bodies = " ".join(c["body"] for c in sec["comments"])
    assert "secret" in bodies and "conflict" in bodies
    assert "abcd1234abcd1234" not in out
    assert (home / "review-agent.sqlite").exists()
    assert data["thread_id"].startswith("local:") and data["head_sha"] in data["thread_id"]


def test_rerun_of_a_finished_review_does_no_work(repo: Path, home: Path) -> None:
    code, out1, _ = review(str(repo), "--base", "main", "--head", "feature", "-f", "json")
    assert code == 0
    code, out2, err = review(str(repo), "--base", "main", "--head", "feature", "-f", "json")
    assert code == 0
    assert "Already reviewed: 8/8" in err
    first, second = json.loads(out1), json.loads(out2)
    assert second["resumed"] is True
    assert second["files"] == first["files"]
    code, out3, err = review(str(repo), "--base", "main", "--head", "feature", "-f", "json", "--fresh")
    assert code == 0 and json.loads(out3)["resumed"] is False


def test_formats_and_output_file(repo: Path, home: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "review.md"
    code, out, err = review(str(repo), "--base", "main", "-f", "markdown", "-o", str(target))
    assert code == 0, err
    text = target.read_text()
    assert text.startswith("## review-agent:") and "`mod03.py`" in text
    code, out, _ = review(str(repo), "--base", "main", "-f", "sarif")
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    code, out, _ = review(str(repo), "--base", "main")
    assert "8/8 files reviewed" in out and "mod07.py" in out


def test_skipped_files_have_reasons(tmp_path: Path, home: Path) -> None:
    repo = make_repo(
        tmp_path,
        files=2,
        extra={"vendor/lib.js": "x = 1\n", "logo.png": b"\x89PNG\r\n\x00\x00\x01", "gone.txt": "x"},
    )
    git(repo, "rm", "-q", "README.md")
    git(repo, "commit", "-q", "-m", "rm")
    code, out, err = review(str(repo), "--base", "main", "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    reasons = {s["path"]: s["reason"] for s in data["skipped"]}
    assert reasons["vendor/lib.js"] == "vendored or generated"
    assert reasons["logo.png"] == "binary file"
    assert reasons["README.md"] == "deleted"
    assert {f["path"] for f in data["files"]} == {"mod00.py", "mod01.py", "gone.txt"}


def test_status_and_history(repo: Path, home: Path) -> None:
    result = runner.invoke(app, ["status", str(repo), "--base", "main"])
    assert result.exit_code == 0 and "not reviewed yet" in result.stdout
    assert review(str(repo), "--base", "main", "-j", "1")[0] == 0
    result = runner.invoke(app, ["status", str(repo), "--base", "main"])
    assert "finished, 8/8 files done" in result.stdout
    result = runner.invoke(app, ["history", str(repo), "--base", "main"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    reviewed = [ln for ln in lines if "reviewed mod" in ln]
    assert len(reviewed) == 8
    assert any("planned 8 files" in ln for ln in lines) and "finished" in lines[-1]
    result = runner.invoke(app, ["history", str(repo), "--base", "main", "--json"])
    events = json.loads(result.stdout)["events"]
    files = [e["path"] for e in events if e["event"] == "file_reviewed"]
    assert files == [f"mod{i:02d}.py" for i in range(8)]


def test_bad_inputs_exit_2_without_traceback_or_checkpoint(tmp_path: Path, home: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    repo = make_repo(tmp_path / "r", files=1)
    cases = [
        ([str(tmp_path / "missing")], "no such directory"),
        ([str(plain)], "not a git repository"),
        ([str(repo), "--base", "nope"], "'nope' is not a commit"),
        ([str(repo), "--base", "main", "--head", "nope"], "'nope' is not a commit"),
        (["ftp://example.com/x"], "pull request URL"),
        (["https://github.com/owner/repo/issues/3"], "pull request URL"),
    ]
    for args, message in cases:
        code, out, err = review(*args)
        assert code == 2, (args, err)
        assert message in err, (args, err)
        assert "Traceback" not in err + out
    db = home / "review-agent.sqlite"
    if db.exists():
        rows = sqlite3.connect(db).execute("SELECT count(*) FROM checkpoints").fetchone()[0]
        assert rows == 0


def test_concurrency_flag_is_validated(repo: Path, home: Path) -> None:
    code, _, err = review(str(repo), "--base", "main", "-j", "0")
    assert code == 2 and "Traceback" not in err
