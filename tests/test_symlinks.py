"""Symbolic links are reported as links, never read as source (issue 11, item 5), by both
sources; and a file without a diff says why (a local rename is not "too large for the API")."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from review_agent.graph.planning import plan_files
from review_agent.sources.github import GitHubSource
from review_agent.sources.local import LocalGitSource
from tests.fakes.github_server import FakeGitHub, make_file, symlink_patch
from tests.gitrepo import git, make_repo

TOKEN = "ghp_fake_symlink_token_0123456789"
CONTENTS = re.compile(r"/contents/")
HEAD, BASE = "a" * 40, "b" * 40


# --- a local repository -----------------------------------------------------------------------


@pytest.fixture
def linked_repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path, files=1)
    git(repo, "checkout", "-q", "main")
    (repo / "keep.py").write_text("x = 1\n")
    (repo / "old.txt").write_text("a\n")
    os.symlink("keep.py", repo / "was.py")
    os.symlink("nowhere.py", repo / "gone.py")
    (repo / "ren.py").write_text("r = 1\n" * 5)
    (repo / "mode.sh").write_text("echo\n")
    (repo / "tc.py").write_text("y = 2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base with links")
    git(repo, "checkout", "-q", "feature")
    git(repo, "merge", "-q", "main", "-m", "merge")
    os.symlink("keep.py", repo / "link.py")  # added
    os.remove(repo / "was.py")
    os.symlink("old.txt", repo / "was.py")  # retargeted
    os.remove(repo / "gone.py")  # removed
    os.remove(repo / "tc.py")
    os.symlink("../outside/secret.py", repo / "tc.py")  # a file became a link
    git(repo, "mv", "ren.py", "renamed.py")
    os.chmod(repo / "mode.sh", 0o755)
    (repo / "one.txt").write_text("no newline")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "links")
    return repo


def test_local_symlinks_are_links_with_their_targets(linked_repo: Path) -> None:
    source = LocalGitSource(linked_repo, base="main", head="feature")
    files = {f.path: f for f in source.list_files()}
    links = {
        p: (f.status, f.previous_symlink_target, f.symlink_target) for p, f in files.items() if f.is_symlink
    }
    assert links == {
        "link.py": ("added", None, "keep.py"),
        "was.py": ("modified", "keep.py", "old.txt"),
        "gone.py": ("removed", "nowhere.py", None),
        "tc.py": ("changed", None, "../outside/secret.py"),
    }
    assert not files["one.txt"].is_symlink and not files["mod00.py"].is_symlink
    for path in ("link.py", "was.py", "tc.py"):
        assert source.get_content(path) is None  # a path, not source: never read as a file
    assert source.get_content("one.txt") == "no newline"


def test_local_files_without_a_diff_say_why(linked_repo: Path) -> None:
    files = {f.path: f for f in LocalGitSource(linked_repo, base="main", head="feature").list_files()}
    assert files["renamed.py"].no_diff_reason == "renamed without changes"
    assert files["renamed.py"].previous_path == "ren.py"
    assert files["mode.sh"].no_diff_reason == "mode change only (100644 to 100755)"
    _, skipped = plan_files(files.values())
    reasons = {s.path: s.reason for s in skipped}
    assert reasons["renamed.py"] == "renamed without changes"
    assert not any("too large" in r for r in reasons.values())


# --- a pull request on GitHub -------------------------------------------------------------------


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        files = [
            make_file("keep.py", "@@ -0,0 +1 @@\n+x = 1", status="added", content="x = 1\n"),
            make_file("link.py", symlink_patch(None, "keep.py"), status="added", symlink="keep.py"),
            make_file("was.py", symlink_patch("keep.py", "old.txt"), symlink="old.txt"),
            make_file("gone.py", symlink_patch("keep.py", None), status="removed"),
            make_file("docs", symlink_patch(None, "src/docs"), status="added", symlink="src/docs"),
            make_file("one.txt", symlink_patch("yes", "no newline"), content="no newline"),
            make_file("app.py", "@@ -1 +1,2 @@\n x = 1\n+y = 2", content="x = 1\ny = 2\n"),
        ]
        fake.add_pr(
            "octo",
            "demo",
            7,
            files,
            head_sha=HEAD,
            base_sha=BASE,
            contents={"old.txt": "a\n"},
            base_contents={"keep.py": "x = 0\n", "one.txt": "yes"},
        )
        for path in ("was.py", "gone.py"):
            fake.set_symlink("octo", "demo", path, "keep.py", ref=BASE)
        yield fake


def test_github_symlinks_are_links_with_their_targets(gh: FakeGitHub) -> None:
    source = GitHubSource("https://github.com/octo/demo/pull/7", TOKEN, gh.url, retries=1, backoff=0.001)
    files = {f.path: f for f in source.list_files()}
    # only the files whose patch looks like a link were asked about, once per side
    asked = sorted(
        (r.route.split("/contents/", 1)[1], r.query.get("ref")) for r in gh.requests_to("GET", CONTENTS)
    )
    assert asked == sorted(
        [
            ("link.py", HEAD),
            ("was.py", HEAD),
            ("was.py", BASE),
            ("gone.py", BASE),
            ("docs", HEAD),
            ("one.txt", HEAD),
            ("one.txt", BASE),
        ]
    )
    links = {
        p: (f.status, f.previous_symlink_target, f.symlink_target) for p, f in files.items() if f.is_symlink
    }
    assert links == {
        "link.py": ("added", None, "keep.py"),  # GitHub follows it to keep.py: still a link
        "was.py": ("modified", "keep.py", "old.txt"),
        "gone.py": ("removed", "keep.py", None),
        "docs": ("added", None, "src/docs"),  # names no file: GitHub describes the link
    }
    assert not files["one.txt"].is_symlink  # one line without a newline, but a file
    assert source.get_content("link.py") is None  # not keep.py's text
    assert source.get_content("one.txt") == "no newline"


# --- the review: a link is recorded as one, never sent to a reviewer ----------------------------


@pytest.mark.slow
def test_a_review_records_links_as_links_and_never_lints_them(linked_repo: Path, tmp_path: Path) -> None:
    import json

    from tests.crash import run_cli

    env = {"REVIEW_AGENT_HOME": str(tmp_path / "home")}
    r = run_cli(
        ["review", str(linked_repo), "--base", "main", "--head", "feature", "-f", "json"], env, tmp_path
    )
    assert r.returncode == 0, r.stderr
    files = {f["path"]: f for f in json.loads(r.stdout)["files"]}
    assert files["link.py"]["summary"] == "Symbolic link to `keep.py`."
    assert files["was.py"]["summary"] == "Symbolic link: target changed from `keep.py` to `old.txt`."
    assert "tc.py" in files and "../outside/secret.py" in files["tc.py"]["summary"]
    for path in ("link.py", "was.py", "tc.py"):
        assert files[path]["comments"] == [] and files[path]["reviewer"] == "symlink", path
