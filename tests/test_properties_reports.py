"""Property-based tests of the report renderers on arbitrary file names and finding texts: JSON
and SARIF parse back exactly (and SARIF stays valid), the text report carries no control
character, and in Markdown no name escapes its code span. Derandomised: repeatable in CI."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator
from markdown_it import MarkdownIt

from review_agent.publish.report import ReviewReport, render
from review_agent.state.schemas import Comment, FileReview, Skipped
from review_agent.textsafe import md_code, md_text, printable, printable_block

# Hundreds of generated reports per property (SARIF checked against its schema each time):
# seconds per test, so these run in CI and on demand, not in the unit tier.
pytestmark = pytest.mark.slow

PROPERTIES = settings(derandomize=True, max_examples=300, deadline=None)
SARIF = Draft4Validator(json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text()))
MARKDOWN = MarkdownIt("commonmark").enable("table")

# Any character, the hostile ones made likely: terminal escapes, line breaks of every kind,
# bidirectional overrides, zero-width and tag characters, Markdown and table syntax, and lone
# surrogates (a name that was not UTF-8).
HOSTILE = st.sampled_from(
    [
        "\x1b",
        "\x1b[31m",
        "\n",
        "\r",
        "\t",
        "\x00",
        "\x07",
        "\x7f",
        "\x85",
        "\u2028",
        "\u202e",
        "\u200b",
        "\U000e0041",
        "\ud800",
        "`",
        "``",
        "|",
        "*",
        "#",
        "<!--",
        "<pre>",
        "```",
        "[x](y)",
        "\\",
        " ",
        "%",
    ]
)
TEXT = st.lists(st.characters(codec=None) | HOSTILE, max_size=20).map("".join)
NAME = TEXT.filter(bool)


def _unsafe(ch: str) -> bool:
    return (
        ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") and ch not in "\u200c\u200d"
    )


@st.composite
def reports(draw: st.DrawFn) -> ReviewReport:
    paths = draw(st.lists(NAME, max_size=4, unique=True))
    files = [
        FileReview(
            path=path,
            summary=draw(TEXT),
            reviewer=draw(st.sampled_from(["builtin", "openai:gpt-4o-mini"])),
            reused=draw(st.booleans()),
            comments=[
                Comment(
                    line=draw(st.integers(1, 500)),
                    severity=draw(st.sampled_from(["info", "warning", "error"])),
                    side=draw(st.sampled_from(["RIGHT", "RIGHT", "LEFT"])),
                    body=draw(TEXT),
                    rule=draw(st.none() | st.sampled_from(["review-agent/secret", "ruff/S301"])),
                )
                for _ in range(draw(st.integers(0, 3)))
            ],
        )
        for path in paths
    ]
    skipped = [Skipped(path=p, reason=draw(TEXT)) for p in draw(st.lists(NAME, max_size=2))]
    return ReviewReport(
        target=draw(TEXT),
        thread_id="local:/r:a..b",
        head_sha="a" * 40,
        title=draw(TEXT),
        files_total=len(files) + len(skipped),
        files=files,
        skipped=skipped,
        reviewer="openai:gpt-4o-mini",
        notes=draw(st.lists(TEXT, max_size=2)),
        repository_uri="https://github.com/acme/shop",
    )


@PROPERTIES
@given(reports())
def test_json_parses_back_to_the_same_report(report: ReviewReport) -> None:
    text = render(report, "json")
    text.encode("utf-8")  # writable as UTF-8, whatever the names
    assert ReviewReport.model_validate(json.loads(text)) == report


@PROPERTIES
@given(reports())
def test_sarif_is_valid_and_keeps_every_name_and_finding(report: ReviewReport) -> None:
    text = render(report, "sarif")
    text.encode("utf-8")
    log = json.loads(text)
    assert list(SARIF.iter_errors(log)) == []
    results = log["runs"][0]["results"]
    expected = [(f.path, c.body) for f in report.files for c in f.comments if c.side == "RIGHT"]
    found = [
        (
            unquote(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], errors="surrogatepass"),
            r["message"]["markdown"],
        )
        for r in results
    ]
    assert found == expected
    rules = [r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]]
    assert all(rules[r["ruleIndex"]] == r["ruleId"] for r in results)
    assert all(r["message"]["text"] for r in results)


@PROPERTIES
@given(reports())
def test_text_report_has_no_control_characters_and_one_heading_per_file(report: ReviewReport) -> None:
    text = render(report, "text")
    assert not any(_unsafe(ch) for ch in text)
    headings = [line for line in text.split("\n") if line.startswith("== ")]
    assert [h.removeprefix("== ").removesuffix(" (reused)") for h in headings] == [
        printable(f.path) for f in report.files
    ]


@PROPERTIES
@given(reports())
def test_markdown_shows_every_name_in_its_own_code_span(report: ReviewReport) -> None:
    text = render(report, "markdown")
    assert not any(_unsafe(ch) for ch in text)
    tokens = MARKDOWN.parse(text)
    file_headings = [
        tokens[i + 1].children
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.tag == "h3" and tokens[i + 1].content.startswith("`")
    ]
    # each file's heading is its name in a code span (a summary may add headings of its own,
    # never remove or split ours)
    shown = [kids[0].content for kids in file_headings if kids and kids[0].type == "code_inline"]
    names = [printable(f.path) for f in report.files]
    it = iter(shown)
    assert all(any(s == n for s in it) for n in names), (names, shown)


@PROPERTIES
@given(TEXT)
def test_text_helpers(text: str) -> None:
    assert not any(_unsafe(ch) or ch == "\n" for ch in printable(text))
    assert not any(_unsafe(ch) for ch in printable_block(text))
    span = md_code(text)
    kids = MARKDOWN.parseInline(span)[0].children
    assert [k.type for k in kids] == ["code_inline"]
    if printable(text).strip(" "):
        assert kids[0].content == printable(text)
    # plain text stays plain: no emphasis, link, image, HTML or code comes out of it
    inline = MARKDOWN.parseInline(md_text(text))[0].children
    assert {k.type for k in inline} <= {"text", "text_special", "softbreak"}
