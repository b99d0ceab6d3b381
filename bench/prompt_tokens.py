"""Prompt tokens per pull request, before and after the PR's context and the token budget (issue 14).

    python -m bench.prompt_tokens                          # pip: the system copy vs this venv's
    python -m bench.prompt_tokens --old DIR --new DIR      # any two trees of one package

The change set is real: two released versions of one package installed on this machine (by
default pip, which Debian ships as ``python3-pip`` and every virtualenv carries in another
version), committed one over the other in a temporary git repository, and read back through the
real ``LocalGitSource``, so every patch and every file content is what a local review sees.
Vendored code (``_vendor``) is left out, as the review's own planning would skip it. The files
reviewed are those ``plan_files`` keeps.

For every reviewed file both prompts are built and counted with the same counter:

- *before*: the prompt as it was (``bench.old_prompt``, a frozen copy): the diff and a ±20-line
  excerpt of up to 8,000 characters;
- *after*: ``build_prompt`` with the PR's title, description, changed files and cross-file
  references (``build_pr_context``), within the default budget.

Tokens are counted exactly with tiktoken when its encoding for ``--model`` is already cached
(nothing is downloaded), else estimated at four characters a token; the output says which.
Target: the total after is at most 1.15x the total before.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit_json, print_table, target_line
from bench.old_prompt import old_messages
from review_agent.graph.planning import plan_files
from review_agent.patches import parse_patch
from review_agent.reviewers.base import ReviewRequest
from review_agent.reviewers.context import build_pr_context
from review_agent.reviewers.model import build_prompt
from review_agent.reviewers.model.tokens import MESSAGE_OVERHEAD, token_counter
from review_agent.sources.local import LocalGitSource

TARGET_RATIO = 1.15
MIN_FILES = 30
SYSTEM_SITE = Path("/usr/lib/python3/dist-packages")


def package_version(tree: Path) -> str:
    """The version a dist-info or egg-info folder next to ``tree`` records, or "?"."""
    for info in sorted(tree.parent.glob(f"{tree.name}-*.*-info")):
        return info.name[len(tree.name) + 1 :].rsplit(".", 1)[0]
    return "?"


def default_trees() -> tuple[Path, Path]:
    """pip as Debian installed it, and pip in the environment running this benchmark."""
    import pip

    new = Path(pip.__file__).resolve().parent
    old = SYSTEM_SITE / "pip"
    if not old.is_dir() or package_version(old) == package_version(new):
        sys.exit(
            f"no second version of pip at {old} (install python3-pip, or pass --old and --new "
            "as two source trees of one package)"
        )
    return old, new


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return proc.stdout


def copy_tree(src: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_vendor"))


def make_change(root: Path, old: Path, new: Path, name: str) -> tuple[Path, str, str]:
    """A repository whose ``main`` holds ``old`` and whose ``feature`` commits ``new`` over it."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@example.invalid")
    git(repo, "config", "user.name", "bench")
    copy_tree(old, repo / name)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"{name} {package_version(old)}")
    git(repo, "checkout", "-q", "-b", "feature")
    copy_tree(new, repo / name)
    git(repo, "add", "-A")
    title = f"Upgrade {name} from {package_version(old)} to {package_version(new)}"
    body = (
        f"Brings {name} up to the {package_version(new)} release.\n\n"
        "<!-- Describe the change and link the issue it fixes. -->\n"
        "The release drops support for old interpreters, reworks the command line options "
        "and tightens how configuration files are read. Review the behaviour changes of the "
        "commands first; the rest follows from them."
    )
    git(repo, "commit", "-q", "-m", f"{title}\n\n{body}")
    return repo, title, body


def measure(repo: Path, model: str) -> dict[str, Any]:
    source = LocalGitSource(repo, base="main", head="feature")
    source.resolve()
    files = source.list_files()
    planned, skipped = plan_files(files)
    # a local review's title and description: the head commit's subject and body
    title = git(repo, "log", "-1", "--format=%s", "feature").strip()
    description = git(repo, "log", "-1", "--format=%b", "feature").strip()
    count, exact = token_counter(model)
    contents: dict[str, str | None] = {}

    def content(path: str) -> str | None:
        if path not in contents:
            contents[path] = source.get_content(path)
        return contents[path]

    started = time.perf_counter()
    pr = build_pr_context(title, description, files, content)
    context_seconds = time.perf_counter() - started
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for plan in planned:
        changed = source.get_file(plan.path)
        assert changed is not None and changed.patch is not None
        request = ReviewRequest(
            path=plan.path, patch=parse_patch(plan.path, changed.patch), content=content(plan.path), pr=pr
        )
        before = sum(count(text) + MESSAGE_OVERHEAD for text in old_messages(request))
        prompt = build_prompt(request, count=count)
        user = str(prompt.messages[1].content)
        rows.append(
            {
                "path": plan.path,
                "before": before,
                "after": prompt.tokens,
                "excerpt": prompt.excerpt,
                "refs": len(pr.refs_for(plan.path)),
                "has_context": f"Title: {title}" in user and "Changed files (" in user,
            }
        )
    build_seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "files_changed": len(files),
        "skipped": len(skipped),
        "exact": exact,
        "context_seconds": context_seconds,
        "build_seconds": build_seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, help="the older source tree of a package")
    parser.add_argument("--new", type=Path, help="the newer source tree of the same package")
    parser.add_argument("--model", default="gpt-4o-mini", help="whose tokenizer counts (if cached)")
    args = parser.parse_args(argv)
    if (args.old is None) != (args.new is None):
        parser.error("give both --old and --new, or neither")
    old, new = (args.old.resolve(), args.new.resolve()) if args.old else default_trees()
    name = new.name
    with tempfile.TemporaryDirectory(prefix="bench-prompt-tokens-") as tmp:
        repo, _, _ = make_change(Path(tmp), old, new, name)
        result = measure(repo, args.model)
    rows = result["rows"]
    if len(rows) < MIN_FILES:
        sys.exit(f"the change reviews only {len(rows)} files; a measurement needs at least {MIN_FILES}")
    before = sum(r["before"] for r in rows)
    after = sum(r["after"] for r in rows)
    ratio = after / before
    counting = f"tiktoken ({args.model})" if result["exact"] else "estimate, 4 characters a token"
    print(
        f"{name} {package_version(old)} -> {package_version(new)}: {result['files_changed']} files changed, "
        f"{len(rows)} reviewed, {result['skipped']} skipped; tokens counted by {counting}"
    )
    per_file = [r["after"] - r["before"] for r in rows]
    print_table(
        ["prompt", "total tokens", "median per file", "max per file"],
        [
            ["before", before, statistics.median(r["before"] for r in rows), max(r["before"] for r in rows)],
            ["after", after, statistics.median(r["after"] for r in rows), max(r["after"] for r in rows)],
            ["after - before", after - before, statistics.median(per_file), max(per_file)],
        ],
        title="Prompt tokens per PR (system prompt and user message of every reviewed file)",
    )
    modes = collections.Counter(r["excerpt"] for r in rows)
    print_table(
        ["excerpt", "files"],
        sorted(modes.items()),
        title="How each file's excerpt fit the budget",
    )
    with_context = sum(1 for r in rows if r["has_context"])
    with_refs = sum(1 for r in rows if r["refs"])
    print(
        f"\n{with_context}/{len(rows)} prompts carry the title, description and changed files; "
        f"{with_refs} carry cross-file references ({sum(r['refs'] for r in rows)} in all). "
        f"PR context built in {result['context_seconds']:.2f} s, prompts in {result['build_seconds']:.2f} s."
    )
    check = target_line("after / before (total prompt tokens)", ratio, TARGET_RATIO)
    emit_json(
        {
            "bench": "prompt_tokens",
            "package": name,
            "old_version": package_version(old),
            "new_version": package_version(new),
            "files_changed": result["files_changed"],
            "files_reviewed": len(rows),
            "tokens_before": before,
            "tokens_after": after,
            "ratio": round(ratio, 4),
            "exact_tokens": result["exact"],
            "with_context": with_context,
            "with_refs": with_refs,
            "excerpt_modes": dict(modes),
            "context_seconds": round(result["context_seconds"], 3),
            "target": check,
        }
    )


if __name__ == "__main__":
    main()
