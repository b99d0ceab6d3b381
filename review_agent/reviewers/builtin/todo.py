"""The ``todo`` check: ``TODO``, ``FIXME`` and ``XXX`` added in a comment or docstring.

Only comments count (Pygments says which tokens are comments in each language): the word in a
string (``label = "TODO list"``), an identifier or Markdown prose ("the TODO app") is not a
marker. In Markdown only an HTML comment (``<!-- TODO -->``) counts. Rust's ``todo!()`` and
``unimplemented!()`` are warnings: they panic when reached.
"""

from __future__ import annotations

import re

from review_agent.reviewers.builtin.context import FileContext
from review_agent.reviewers.builtin.findings import Finding

_TODO = re.compile(r"(?<![\w-])(TODO|FIXME|XXX)(?![\w-])")
_RUST_TODO = re.compile(r"(?<![\w:])(todo|unimplemented)!\s*\(")
_HTML_COMMENT = re.compile(r"<!--(.*?)(?:-->|$)")


def _message(word: str) -> str:
    return f"`{word}` added; resolve it or track it in an issue."


def check_todo(ctx: FileContext) -> list[Finding]:
    findings: list[Finding] = []
    if ctx.lang == "markdown":
        for number, text in ctx.lines:
            for comment in _HTML_COMMENT.findall(text[:4_000]):
                m = _TODO.search(comment)
                if m:
                    findings.append(Finding(number, "todo", "info", _message(m.group(1))))
                    break
        return findings
    views = ctx.views
    if views is None:
        return findings
    for number, _ in ctx.lines:
        view = views.get(number)
        if view is None:
            continue
        if ctx.lang == "rust":
            m = _RUST_TODO.search(view.code)
            if m:
                message = f"`{m.group(1)}!()` panics when reached; implement it before merging."
                findings.append(Finding(number, "todo", "warning", message))
                continue
        m = _TODO.search(view.comment)
        if m:
            findings.append(Finding(number, "todo", "info", _message(m.group(1))))
    return findings


def needs_view(text: str) -> bool:
    return _TODO.search(text) is not None or _RUST_TODO.search(text) is not None
