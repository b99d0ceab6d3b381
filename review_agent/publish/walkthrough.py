"""The walkthrough in Markdown: what heads the posted review, the Markdown report and the
Action's job summary.

One layout for all three, with what makes text safe given by the caller: the posted review
passes model text through the publisher's sanitiser (``publish.markdown``) and links each risk
to its line in the pull request's diff; the report escapes it with ``textsafe``. File names
are always code spans, and a table cell never holds a line break or a ``|`` that would end it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from review_agent.state.schemas import Risk, Walkthrough
from review_agent.wording import plural

MAX_TABLE_ROWS = 100  # beyond this many files, the table says how many more there are
_BARE_PIPE = re.compile(r"(?<!\\)\|")

Text = Callable[[str], str]
Link = Callable[[Risk], "str | None"]


def cell(text: str) -> str:
    """A table cell: one line, and every ``|`` escaped (GFM reads ``\\|`` as a pipe even inside
    a code span, where an unescaped one would still end the cell)."""
    return _BARE_PIPE.sub(r"\\|", " ".join(text.split()))


def render_head(walkthrough: Walkthrough, *, prose: Text, code: Text, link: Link = lambda risk: None) -> str:
    """The overview, the effort estimate, the top risks (each linked by ``link``) and the note."""
    w = walkthrough
    out = [prose(w.overview.strip())]
    if w.effort is not None:
        out += ["", f"**Review effort:** {w.effort}/5"]
    if w.risks:
        out += ["", "**Top risks**", ""]
        for n, risk in enumerate(w.risks, 1):
            where = code(risk.path) + (f" line {risk.line}" if risk.line > 0 else "")
            url = link(risk)
            where = f"[{where}]({url})" if url else where
            out.append(f"{n}. **{risk.severity}** · {where}: {cell(prose(risk.text))}")
    if w.note:
        out += ["", f"> {cell(prose(w.note))}"]
    return "\n".join(out)


def render_table(
    walkthrough: Walkthrough, *, prose: Text, code: Text, findings: Mapping[str, int] | None = None
) -> str:
    """The change table: one row per file (its findings counted when ``findings`` is given)."""
    rows = walkthrough.changes
    if not rows:
        return ""
    counted = findings is not None
    out = [
        "| File | Change |" + (" Findings |" if counted else ""),
        "| --- | --- |" + (" ---: |" if counted else ""),
    ]
    for row in rows[:MAX_TABLE_ROWS]:
        n = (findings or {}).get(row.path, 0)
        out.append(
            f"| {cell(code(row.path))} | {cell(prose(row.change))} |" + (f" {n or ''} |" if counted else "")
        )
    more = len(rows) - MAX_TABLE_ROWS
    if more > 0:
        out.append(f"| … | {plural(more, 'more file')}, each in the report |" + (" |" if counted else ""))
    return "\n".join(out)


def render_walkthrough(
    walkthrough: Walkthrough,
    *,
    prose: Text,
    code: Text,
    findings: Mapping[str, int] | None = None,
    link: Link = lambda risk: None,
    heading: str = "### Walkthrough",
) -> str:
    """The whole walkthrough under ``heading``. ``prose`` makes model text safe (it may keep
    its Markdown), ``code`` makes a path a code span, ``findings`` counts each file's findings
    for the table, ``link`` gives a risk's URL (None: not linked)."""
    parts = [heading, render_head(walkthrough, prose=prose, code=code, link=link)]
    table = render_table(walkthrough, prose=prose, code=code, findings=findings)
    return "\n\n".join([*parts, table] if table else parts)
