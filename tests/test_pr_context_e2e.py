"""The pull request's context in every file's prompt, end to end through the real CLI: the title,
the description and the other changed paths reach each file's prompt on the fake model server,
for a local branch (the head commit's subject and body) and for a pull request on the fake
GitHub (its title and body). Built once per review: each file is read from GitHub once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.crash import run_cli
from tests.fakes.github_server import FakeGitHub, make_file
from tests.fakes.openai_server import WALKTHROUGH, Call, FakeOpenAI
from tests.gitrepo import git, make_repo

TOKEN = "ghs_context_token_for_tests_0123456789"
PR_SECTION = re.compile(r"<<<PR ([0-9a-f]{12})\n(.*?)\nPR \1>>>", re.DOTALL)


def pr_section(call: Call) -> str:
    """The fenced PR section of a file's prompt (empty when there is none)."""
    user = "\n".join(str(m.get("content")) for m in call.messages if m.get("role") == "user")
    found = PR_SECTION.search(user)
    return found.group(2) if found else ""


def file_calls(fake: FakeOpenAI) -> list[Call]:
    return [c for c in fake.calls if c.path not in (None, WALKTHROUGH)]


def test_every_file_prompt_of_a_local_review_carries_the_commit_subject_body_and_other_paths(
    tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path, files=4, extra={"lib/helpers.py": "def helper(x):\n    return x\n"})
    git(
        repo,
        "commit",
        "-q",
        "--amend",
        "-m",
        "Fix the off-by-one in f",
        "-m",
        "Callers passed n+1.\n\nSee #12.",
    )
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home")}
    r = run_cli(["review", str(repo), "--base", "main", "-f", "json"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    paths = [f["path"] for f in json.loads(r.stdout)["files"]]
    assert paths == ["lib/helpers.py", "mod00.py", "mod01.py", "mod02.py", "mod03.py"]
    calls = file_calls(fake_openai)
    assert sorted(c.path or "" for c in calls) == sorted(paths)
    for call in calls:
        section = pr_section(call)
        assert "Title: Fix the off-by-one in f" in section, call.path
        assert "Callers passed n+1." in section and "See #12." in section
        # the files are listed grouped by folder: every other path is there by folder and name
        for other in paths:
            folder, _, name = other.rpartition("/")
            assert name in section and (f"{folder}/:" in section if folder else "./:" in section)
        assert f"{call.path.rpartition('/')[2]} +" in section and "(this file)" in section


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as gh:
        yield gh


def _files(version: int = 1) -> list[dict]:
    out = []
    for i in range(5):
        patch = (
            f"@@ -1,2 +1,3 @@\n def f{i}(x):\n+    y = x * {version}\n-    return x\n+    return y + {i}\n"
        )
        content = f"def f{i}(x):\n    y = x * {version}\n    return y + {i}\n"
        out.append(make_file(f"src/pkg{i % 2}/mod{i}.py", patch, content=content))
    out.append(make_file("docs/notes.md", "@@ -0,0 +1 @@\n+Notes.", status="added", content="Notes.\n"))
    return out


def test_every_file_prompt_of_a_pull_request_carries_its_title_body_and_other_paths(
    github: FakeGitHub, fake_openai: FakeOpenAI, model_env: dict[str, str], tmp_path: Path
) -> None:
    body = "## Why\n\nThe cache was never invalidated.\n<!-- template: describe your change -->\n"
    github.add_pr(
        "acme",
        "shop",
        9,
        _files(),
        head_sha="a" * 40,
        base_sha="b" * 40,
        title="Invalidate the cache",
        body=body,
    )
    env = {
        **model_env,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": github.url,
        "REVIEW_AGENT_HOME": str(tmp_path / "home"),
    }
    url = f"{github.root}/acme/shop/pull/9"
    r = run_cli(["review", url, "-f", "json"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    paths = [f["path"] for f in json.loads(r.stdout)["files"]]
    assert len(paths) == 6
    calls = file_calls(fake_openai)
    assert sorted(c.path or "" for c in calls) == sorted(paths)
    for call in calls:
        section = pr_section(call)
        assert "Title: Invalidate the cache" in section
        assert "The cache was never invalidated." in section
        assert "template: describe your change" not in section  # the unfilled template is dropped
        for other in paths:
            folder, _, name = other.rpartition("/")
            assert f"{folder}/:" in section and name in section, (call.path, other)

    # built once per review: each file's text is read from GitHub once (the context and the
    # file's own prompt share it), and a rerun reads nothing
    reads = [q.path for q in github.requests if q.method == "GET" and "/contents/" in q.path]
    for path in paths:
        assert sum(q.split("?")[0].endswith("/contents/" + path) for q in reads) == 1, (path, reads)
    before = len(github.requests)
    again = run_cli(["review", url, "-f", "json"], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert not [q for q in github.requests[before:] if "/contents/src/" in q.path]


def test_a_new_push_and_an_edited_description_still_reuse_unchanged_files(
    github: FakeGitHub, fake_openai: FakeOpenAI, model_env: dict[str, str], tmp_path: Path
) -> None:
    """The PR's context is not part of a file's reuse key: a new description and another file
    changed do not send an unchanged file to the model again."""
    github.add_pr(
        "acme", "shop", 9, _files(), head_sha="a" * 40, base_sha="b" * 40, title="One", body="First."
    )
    env = {
        **model_env,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": github.url,
        "REVIEW_AGENT_HOME": str(tmp_path / "home"),
    }
    url = f"{github.root}/acme/shop/pull/9"
    assert run_cli(["review", url, "-f", "json"], env, tmp_path).returncode == 0
    files = _files()
    files[0] = _files(version=2)[0]  # only src/pkg0/mod0.py changes
    github.push("acme", "shop", 9, "c" * 40, files)
    pr = github.pr("acme", "shop", 9)
    pr.title, pr.body = "One, revised", "Second, and longer."
    fake_openai.reset()
    r = run_cli(["review", url, "-f", "json"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    calls = file_calls(fake_openai)
    assert [c.path for c in calls] == ["src/pkg0/mod0.py"]
    assert "Title: One, revised" in pr_section(calls[0]) and "Second, and longer." in pr_section(calls[0])
    report = json.loads(r.stdout)
    assert sum(f["reused"] for f in report["files"]) == 5
