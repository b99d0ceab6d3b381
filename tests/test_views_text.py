"""`status` and `history` print names from the reviewed change: control characters in them are
shown escaped, never sent to the terminal (issue 11 item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash import run_cli
from tests.gitrepo import make_repo

# Runs the CLI several times in subprocesses: seconds, so not in the unit tier.
pytestmark = pytest.mark.slow

ESC_NAME = "esc\x1b[31mred.py"


def test_status_and_history_escape_control_characters_in_names(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, files=1, extra={ESC_NAME: "x = 1\n"})
    env = {"REVIEW_AGENT_HOME": str(tmp_path / "home")}
    assert run_cli(["review", str(repo), "--base", "main"], env, tmp_path).returncode == 0
    for args in (["status", str(repo), "--base", "main"], ["history", str(repo), "--base", "main"]):
        r = run_cli(args, env, tmp_path)
        assert r.returncode == 0, r.stderr
        assert "\x1b" not in r.stdout + r.stderr, args
    history = run_cli(["history", str(repo), "--base", "main"], env, tmp_path).stdout
    assert "esc\\x1b[31mred.py" in history
