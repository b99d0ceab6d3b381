"""The pull request's context in a file's prompt, and the prompt's token budget: cross-file
references (Python through ``ast``, other languages through Pygments tokens), the PR section,
the excerpt that shrinks to the enclosing function before anything is cut, and token counting
that never downloads anything."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from review_agent.patches import parse_patch
from review_agent.reviewers.base import ReviewRequest
from review_agent.reviewers.context import CrossRef, PRContext, build_pr_context
from review_agent.reviewers.model import PromptBudget, build_prompt
from review_agent.reviewers.model.pr_section import SectionBudget, render_pr_section
from review_agent.reviewers.model.tokens import estimate_tokens, token_counter


@dataclass(frozen=True)
class Changed:
    """A changed file as a source lists it (the fields ``build_pr_context`` reads)."""

    path: str
    status: str
    patch: str | None
    additions: int = 0
    deletions: int = 0


def hunks(before: str, after: str) -> str:
    """The file's hunks as GitHub's ``patch`` field has them (no ---/+++ header)."""
    lines = difflib.unified_diff(before.splitlines(True), after.splitlines(True), n=3)
    return "".join(list(lines)[2:])


def changed(path: str, before: str, after: str, status: str = "modified") -> Changed:
    patch = hunks(before, after)
    plus = sum(1 for x in patch.splitlines() if x.startswith("+"))
    minus = sum(1 for x in patch.splitlines() if x.startswith("-"))
    return Changed(path, status, patch, plus, minus)


LIB_BEFORE = """\
import os


def load_items(user):
    rows = fetch(user)
    return rows


def gone_helper():
    return 1
"""
LIB_AFTER = """\
import os


def load_items(user, limit):
    rows = fetch(user)
    return rows[:limit]
"""
APP_BEFORE = """\
from lib import load_items


def handler(request):
    items = load_items(request.user)
    return items
"""
APP_AFTER = APP_BEFORE.replace("load_items(request.user)", "load_items(request.user, 10)")
JS_BEFORE = """\
import { renderPage } from './view.js';

export function start() {
  return renderPage();
}
"""
JS_AFTER = JS_BEFORE.replace("renderPage();", "renderPage(gone_helper());")
VIEW_BEFORE = """\
export function renderPage(child) {
  return '<main>' + child + '</main>';
}

export function footer() {
  return '<footer/>';
}
"""
VIEW_AFTER = VIEW_BEFORE.replace("'<main>' + child", "'<main class=\"page\">' + child")


def the_change() -> tuple[list[Changed], dict[str, str]]:
    files = [
        changed("src/lib.py", LIB_BEFORE, LIB_AFTER),
        changed("src/app.py", APP_BEFORE, APP_AFTER),
        changed("web/main.js", JS_BEFORE, JS_AFTER),
        changed("web/view.js", VIEW_BEFORE, VIEW_AFTER),
    ]
    contents = {
        "src/lib.py": LIB_AFTER,
        "src/app.py": APP_AFTER,
        "web/main.js": JS_AFTER,
        "web/view.js": VIEW_AFTER,
    }
    return files, contents


def test_python_refs_name_the_changed_and_the_removed_function_and_their_users() -> None:
    files, contents = the_change()
    pr = build_pr_context("Limit load_items", "Callers pass a limit.", files, contents.get)

    lib = {(r.name, r.direction, r.change, r.other_path): r for r in pr.refs_for("src/lib.py")}
    used = lib[("load_items", "used_by", "changed", "src/app.py")]
    # the line of the use, a call rather than the import that brings the name in
    assert (used.line, used.text) == (5, "items = load_items(request.user, 10)")
    gone = lib[("gone_helper", "used_by", "removed", "web/main.js")]  # another language still calls it
    assert (gone.line, gone.text) == (4, "return renderPage(gone_helper());")

    # the caller left behind learns it too, in its own prompt
    assert CrossRef("gone_helper", "uses", "removed", "src/lib.py", 0, "", 4) in pr.refs_for("web/main.js")
    (uses,) = [r for r in pr.refs_for("src/app.py") if r.name == "load_items"]
    assert (uses.direction, uses.other_path, uses.line, uses.text, uses.here) == (
        "uses",
        "src/lib.py",
        4,
        "def load_items(user, limit):",
        5,
    )


def test_javascript_refs_come_from_pygments_tokens() -> None:
    files, contents = the_change()
    pr = build_pr_context("", "", files, contents.get)
    view = pr.refs_for("web/view.js")
    assert (
        CrossRef("renderPage", "used_by", "changed", "web/main.js", 4, "return renderPage(gone_helper());")
        in view
    )
    assert not [r for r in view if r.name == "footer"]  # untouched by the hunks: not a link
    main = pr.refs_for("web/main.js")
    assert [(r.name, r.direction, r.other_path, r.line, r.here) for r in main if r.name == "renderPage"] == [
        ("renderPage", "uses", "web/view.js", 1, 4)
    ]


def test_pr_context_survives_a_checkpoint_as_plain_data() -> None:
    files, contents = the_change()
    pr = build_pr_context("t", "d", files, contents.get)
    data = pr.to_dict()
    assert PRContext.from_dict(data) == pr
    json.dumps(data)  # plain data only


def test_files_that_are_not_code_or_do_not_parse_give_no_refs_and_no_error() -> None:
    files = [
        changed("README.md", "# A\n", "# A\nload_items is great\n"),
        changed("src/broken.py", "def f(:\n", "def f(:\n    load_items(\n"),
        changed("data.bin", "", "", status="added"),
        Changed("gone.py", "removed", "@@ -1,2 +0,0 @@\n-def load_items():\n-    pass\n", 0, 2),
    ]
    contents = {"README.md": "# A\nload_items is great\n", "src/broken.py": "def f(:\n    load_items(\n"}
    pr = build_pr_context("t", "", files, contents.get)
    assert [f.path for f in pr.files] == ["README.md", "src/broken.py", "data.bin", "gone.py"]
    # the removed file's function is still used by the broken file (read from tokens)
    assert [(r.name, r.change, r.other_path) for r in pr.refs_for("gone.py")] == [
        ("load_items", "removed", "src/broken.py")
    ]
    # and the broken file is told that what it calls is gone
    assert [(r.name, r.direction, r.other_path) for r in pr.refs_for("src/broken.py")] == [
        ("load_items", "uses", "gone.py")
    ]
    assert pr.refs_for("README.md") == ()


# -- the PR section --------------------------------------------------------------------------


def test_pr_section_strips_template_comments_and_bounds_the_description() -> None:
    description = "<!-- Describe your change -->\nFixes the limit.\n\n\n\n" + "word " * 2000
    pr = PRContext(title="Fix\nlimits", description=description)
    text = render_pr_section(pr, "a.py", SectionBudget(description=100), estimate_tokens)
    assert text.startswith("Title: Fix\\nlimits\nDescription:\nFixes the limit.\n\nword")
    assert "Describe your change" not in text
    assert text.endswith("[description truncated]")
    assert estimate_tokens(text) <= 110


def test_a_long_file_list_keeps_this_file_and_its_links_first() -> None:
    from review_agent.reviewers.context import FileChange

    files = tuple(FileChange(f"pkg/mod{i:03d}.py", i, 1) for i in range(300))
    link = CrossRef("thing", "used_by", "changed", "pkg/mod250.py", 3, "thing()")
    pr = PRContext(title="t", files=files, refs={"pkg/mod299.py": (link,)})
    text = render_pr_section(pr, "pkg/mod299.py", SectionBudget(files=120), estimate_tokens)
    listing = text.split("Changed files", 1)[1].split("Cross-file", 1)[0]
    assert listing.startswith(" (300, +44850 -300):\npkg/: mod000.py +0 -1")
    assert "mod299.py +299 -1 (this file)" in listing and "mod250.py +250 -1" in listing
    assert "more" in listing.splitlines()[-1]
    assert estimate_tokens(listing) <= 130


# -- the budget ------------------------------------------------------------------------------


def big_module(functions: int = 60) -> str:
    out = ["import os", ""]
    for i in range(functions):
        out += [
            "",
            f"def handler_{i}(request):",
            f'    """Handle request kind {i}."""',
            "    user = request.user",
            "    if user is None:",
            "        raise PermissionError(request)",
            f"    items = load_items(user, limit={i})",
            "    items = [item for item in items if item.visible]",
            "    items.sort(key=lambda item: item.rank)",
            "    total = sum(item.price for item in items)",
            "    log.info('total %s', total)",
            "    return total",
        ]
    out += ["", "", "class Store:", '    """Keeps things."""', ""]
    for i in range(8):
        out += [
            f"    def method_{i}(self, key):",
            "        if key is None:",
            "            return None",
            f"        value = self.get(key, {i})",
            "        self.seen.add(key)",
            "        self.hits += 1",
            "        self.log(key, value)",
            "        return value",
            "",
        ]
    return "\n".join(out) + "\n"


def request_for(path: str, before: str, after: str, **kwargs: object) -> ReviewRequest:
    return ReviewRequest(path=path, patch=parse_patch(path, hunks(before, after)), content=after, **kwargs)  # type: ignore[arg-type]


def excerpt_of(prompt_text: str) -> str:
    return prompt_text.split("<<<EXCERPT ", 1)[1].split("\n", 1)[1].rsplit("\nEXCERPT ", 1)[0]


def covered(excerpt: str) -> set[int]:
    """The line numbers an excerpt shows or says the diff shows."""
    lines: set[int] = set()
    for m in re.finditer(r"^ *(\d+)\| ", excerpt, re.M):
        lines.add(int(m.group(1)))
    for m in re.finditer(r"^   \.\.\. lines (\d+)-(\d+): shown in the diff$", excerpt, re.M):
        lines.update(range(int(m.group(1)), int(m.group(2)) + 1))
    return lines


def line_of(text: str, needle: str) -> int:
    return text.splitlines().index(needle) + 1


def test_a_large_file_shrinks_to_the_enclosing_function_before_anything_is_cut() -> None:
    before = big_module()
    after = before.replace("limit=30)", "limit=30, strict=True)")
    request = request_for("svc.py", before, after)
    roomy = build_prompt(request, budget=PromptBudget(excerpt=100_000))
    assert roomy.excerpt == "whole"

    prompt = build_prompt(request)  # the default budget: the whole file does not fit
    assert prompt.excerpt == "scopes"
    text = excerpt_of(str(prompt.messages[1].content))
    start = line_of(after, "def handler_30(request):")
    # the enclosing function, from its header to its end, and nothing else
    assert covered(text) == set(range(start, start + 11))
    assert "handler_29" not in text and "handler_31" not in text

    tight = build_prompt(request, budget=PromptBudget(excerpt=25))
    assert tight.excerpt in ("windows", "truncated") and tight.tokens < prompt.tokens


def test_a_method_keeps_its_class_header() -> None:
    before = big_module()
    after = before.replace("self.get(key, 5)", "self.get(key, 55)")
    prompt = build_prompt(request_for("svc.py", before, after))
    assert prompt.excerpt == "scopes"
    text = excerpt_of(str(prompt.messages[1].content))
    start = line_of(after, "    def method_5(self, key):")
    # the method, and the line of its class
    assert covered(text) == {line_of(after, "class Store:"), *range(start, start + 8)}
    assert "| class Store:" in text and "Keeps things" not in text


def test_javascript_scopes_come_from_tokens_and_indentation() -> None:
    functions = "\n".join(
        f"export function part{i}(x) {{\n  const y = x + {i};\n  if (y > 10) {{\n    log(y);\n  }}\n"
        f"  const z = y * 2;\n  check(z);\n  return z;\n}}\n"
        for i in range(80)
    )
    after = functions.replace("x + 40;", "x + 41;")
    prompt = build_prompt(request_for("web/parts.js", functions, after))
    assert prompt.excerpt == "scopes"
    text = excerpt_of(str(prompt.messages[1].content))
    start = line_of(after, "export function part40(x) {")
    assert covered(text) == set(range(start, start + 9))  # the function, its closing brace included
    assert "part39" not in text and "part41" not in text


def test_lines_the_diff_shows_are_not_repeated_in_the_excerpt() -> None:
    before = "".join(f"value_{i} = {i}\n" for i in range(40))
    after = before.replace("value_20 = 20", "value_20 = 21")
    prompt = build_prompt(request_for("v.py", before, after))
    text = excerpt_of(str(prompt.messages[1].content))
    assert "   ... lines 18-24: shown in the diff" in text
    assert "    21| value_20" not in text and "     1| value_0 = 0" in text


def test_a_new_file_has_no_excerpt_the_diff_shows_it_all() -> None:
    prompt = build_prompt(request_for("new.py", "", "a = 1\nb = 2\n"))
    assert prompt.excerpt == "none" and "<<<EXCERPT" not in str(prompt.messages[1].content)


def test_the_diff_is_cut_to_the_total_budget_and_says_so() -> None:
    after = "".join(f"line_{i} = {i}\n" for i in range(5000))
    prompt = build_prompt(request_for("gen.py", "", after), budget=PromptBudget(total=4000))
    assert prompt.diff_cut and prompt.tokens <= 4000
    assert "more lines not shown]" in str(prompt.messages[1].content)


# -- counting ----------------------------------------------------------------------------------


def test_tokens_are_estimated_when_tiktoken_has_no_cached_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    count, exact = token_counter("gpt-4o-mini")
    assert not exact and count("x" * 40) == 10
    # a file in the cache that is not the real encoding (a partial download) is not used either:
    # tiktoken would throw it away and download again
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"not the encoding")
    count, exact = token_counter("gpt-4o-mini")
    assert not exact
    count, exact = token_counter("some-local-model")  # a model tiktoken does not know
    assert not exact and count("abcd" * 3) == 3
