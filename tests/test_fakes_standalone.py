"""The fakes run on their own, as the README's Development section says
(``python -m tests.fakes.openai_server``, ``python -m tests.fakes.github_server --config …``):
each prints its base URL on the first line, answers the real clients there, and stops cleanly on
SIGTERM. A new user trying the tool against them follows exactly this path."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from github import Auth, Github
from langchain_openai import ChatOpenAI

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def standalone(module: str, *args: str) -> Iterator[str]:
    """Run ``python -m module args``; yield the URL it prints first; SIGTERM it after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.poll() else "")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, proc.stderr.read() if proc.stderr else code


def test_fake_openai_runs_standalone_and_answers_langchain_openai() -> None:
    with standalone("tests.fakes.openai_server", "--require-api-key", "sk-standalone") as url:
        model = ChatOpenAI(model="gpt-4o-mini", base_url=url, api_key="sk-standalone", max_retries=0)
        answer = model.invoke("Say something.")
    assert isinstance(answer.content, str)


def test_fake_github_runs_standalone_from_a_config(tmp_path: Path) -> None:
    config = tmp_path / "pr.json"
    config.write_text(
        json.dumps(
            {
                "token": "ghp_standalone000000000000000000000000000",
                "prs": [
                    {
                        "owner": "o",
                        "repo": "r",
                        "number": 7,
                        "title": "Add a helper",
                        "files": [{"path": "a.py", "patch": "@@ -0,0 +1 @@\n+x = 1\n", "content": "x = 1\n"}],
                    }
                ],
            }
        )
    )
    with standalone("tests.fakes.github_server", "--config", str(config)) as url:
        gh = Github(auth=Auth.Token("ghp_standalone000000000000000000000000000"), base_url=url, retry=None)
        pr = gh.get_repo("o/r").get_pull(7)
        assert pr.title == "Add a helper"
        assert [f.filename for f in pr.get_files()] == ["a.py"]
