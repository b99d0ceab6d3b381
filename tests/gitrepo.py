"""Build real git repositories for tests: a ``main`` branch and a ``feature`` branch that changes
several files, so that a local review has something to review."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(root: Path, files: int = 8, *, extra: dict[str, str | bytes] | None = None) -> Path:
    """A repository whose ``feature`` branch changes ``files`` Python files (plus ``extra``),
    named ``mod00.py`` … (three digits from 100 files on, so that names sort in order)."""
    repo = root / "repo"
    width = max(2, len(str(files - 1)))
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    git(repo, "config", "commit.gpgsign", "false")
    for i in range(files):
        (repo / f"mod{i:0{width}d}.py").write_text(f"def f{i}(x):\n    return x + {i}\n")
    (repo / "README.md").write_text("# demo\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "feature")
    for i in range(files):
        (repo / f"mod{i:0{width}d}.py").write_text(
            f"def f{i}(x):\n    print(x)  # debug\n    return x + {i} + 1\n"
        )
    for name, content in (extra or {}).items():
        p = repo / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feature work")
    return repo
