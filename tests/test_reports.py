"""The reports a person reads and the ones a machine reads: SARIF for code scanning, validated
against the SARIF 2.1.0 schema; file names with control characters, backticks and newlines shown
escaped in text and Markdown and kept exactly in JSON and SARIF (issues 10 and 11)."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest
from jsonschema import Draft4Validator
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from review_agent.cli import app
from review_agent.publish.report import ReviewReport, render
from review_agent.publish.sarif import plain_text, sarif_log
from review_agent.service import repository_uri
from review_agent.sources.base import ResolvedTarget
from review_agent.state.schemas import Comment, FileReview, Skipped
from review_agent.textsafe import md_code, printable
from tests.gitrepo import git

# The OASIS SARIF 2.1.0 schema (errata 01), vendored so that tests need no network.
SCHEMA_PATH = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
SARIF_SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
SARIF = Draft4Validator(SARIF_SCHEMA, format_checker=Draft4Validator.FORMAT_CHECKER)
MARKDOWN = MarkdownIt("commonmark").enable("table")

runner = CliRunner()


def sarif_errors(log: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in SARIF.iter_errors(log)]


def control_chars(text: str) -> set[str]:
    """Characters a terminal could act on (the newline, our line separator, aside)."""
    return {ch for ch in text if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs")}


def make_report(files: list[FileReview], **extra: object) -> ReviewReport:
    values: dict[str, object] = {
        "target": "https://github.com/acme/shop/pull/7",
        "thread_id": "github.com/acme/shop#7@" + "a" * 40,
        "head_sha": "a" * 40,
        "files_total": len(files),
        "files": files,
        "reviewer": "openai:gpt-4o-mini",
        "repository_uri": "https://github.com/acme/shop",
    }
    values.update(extra)
    return ReviewReport.model_validate(values)


# -- SARIF -----------------------------------------------------------------------------------


def test_sarif_names_the_check_of_each_finding_and_validates_against_the_schema() -> None:
    builtin = FileReview(
        path="src/app.py",
        summary="two findings",
        reviewer="builtin",
        comments=[
            Comment(line=3, severity="error", body="**secret**: an AWS key", rule="review-agent/secret"),
            Comment(line=5, severity="warning", body="`pickle.loads` of untrusted data", rule="ruff/S301"),
            Comment(line=6, severity="info", body="a leftover `print()`"),  # no rule of its own
        ],
    )
    model = FileReview(
        path="src/db.py",
        summary="one finding",
        reviewer="openai:gpt-4o-mini",
        comments=[
            Comment(line=9, start_line=7, severity="warning", body="This loop is **quadratic**."),
            Comment(line=2, side="LEFT", severity="info", body="on a removed line"),
        ],
    )
    log = sarif_log(make_report([builtin, model]))
    assert sarif_errors(log) == []
    run = log["runs"][0]
    results = run["results"]
    assert [r["ruleId"] for r in results] == [
        "review-agent/secret",
        "ruff/S301",
        "review-agent/builtin",
        "review-agent/model",
    ]  # the check, never the severity; the LEFT-side finding has no place at head
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert sorted(rules) == sorted({r["ruleId"] for r in results})
    assert all(rules[r["ruleIndex"]] == r["ruleId"] for r in results)
    assert [r["level"] for r in results] == ["error", "warning", "note", "warning"]
    assert results[3]["locations"][0]["physicalLocation"]["region"] == {"startLine": 7, "endLine": 9}
    # plain text in text, the Markdown in markdown
    assert results[0]["message"] == {"text": "secret: an AWS key", "markdown": "**secret**: an AWS key"}
    assert results[1]["message"]["text"] == "pickle.loads of untrusted data"
    assert run["versionControlProvenance"] == [
        {"repositoryUri": "https://github.com/acme/shop", "revisionId": "a" * 40}
    ]


def test_the_schema_check_can_fail() -> None:
    """The validator is a real one: what code scanning would reject, it rejects."""
    log = sarif_log(make_report([]))
    del log["runs"][0]["versionControlProvenance"][0]["repositoryUri"]
    log["runs"][0]["results"] = [{"ruleId": "x", "message": {"markdown": "no text"}, "level": "fatal"}]
    errors = sarif_errors(log)
    assert any("repositoryUri" in e for e in errors)
    assert any("level" in e or "fatal" in e for e in errors)


def test_plain_text_of_a_finding_drops_the_markup_and_keeps_the_words() -> None:
    md = (
        "**Bug**: `x` is *never* freed; see [the docs](https://example.com/x).\n\n"
        "- first\n- second\n\n```py\nfree(x)\n```\n<!-- review-agent:comment:abc -->"
    )
    assert plain_text(md) == (
        "Bug: x is never freed; see the docs (https://example.com/x).\n- first\n- second\nfree(x)"
    )


@pytest.mark.parametrize(
    "path",
    ["src/a b.py", "x#y%z.py", "c:colon.py", "esc\x1b[31mred.py", "nai\u0308ve/ü.py", "new\nline.py"],
)
def test_sarif_location_is_a_uri_reference_that_decodes_to_the_exact_name(path: str) -> None:
    report = make_report([FileReview(path=path, summary="", comments=[Comment(line=1, body="b")])])
    log = sarif_log(report)
    assert sarif_errors(log) == []
    uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert unquote(uri) == path
    assert all(33 <= ord(ch) < 127 and ch not in '"<>\\^`{|}' for ch in uri)  # RFC 3986 characters


def test_repository_uri_of_a_pull_request_is_its_repository() -> None:
    target = ResolvedTarget(
        kind="github",
        display="https://ghe.example.com/acme/shop/pull/7",
        head_sha="a" * 40,
        base_sha="b" * 40,
    )
    assert repository_uri(object(), target) == "https://ghe.example.com/acme/shop"  # type: ignore[arg-type]


def test_local_sarif_names_the_remote_without_credentials_or_the_repository_itself(
    repo: Path, home: Path
) -> None:
    git(repo, "remote", "add", "origin", "https://x-access-token:ghs_secret123456@github.com/acme/shop.git")
    result = runner.invoke(app, ["review", str(repo), "--base", "main", "-f", "sarif"])
    assert result.exit_code == 0, result.stderr
    log = json.loads(result.stdout)
    assert sarif_errors(log) == []
    assert (
        log["runs"][0]["versionControlProvenance"][0]["repositoryUri"] == "https://github.com/acme/shop.git"
    )
    assert "ghs_secret" not in result.stdout

    git(repo, "remote", "remove", "origin")
    result = runner.invoke(app, ["review", str(repo), "--base", "main", "-f", "sarif", "--fresh"])
    assert result.exit_code == 0, result.stderr
    provenance = json.loads(result.stdout)["runs"][0]["versionControlProvenance"][0]
    assert provenance["repositoryUri"] == repo.resolve().as_uri()


# -- untrusted names and text ----------------------------------------------------------------

ODD_NAMES = ["esc\x1b[31mred.py", "tick`name.py", "tab\there.py", "new\nline.py", "rtl\u202eyp.txt.py"]
ODD_BINARY = "bin`ary\x1b.png"


@pytest.fixture
def odd_repo(repo: Path) -> Path:
    git(repo, "checkout", "-q", "feature")
    for name in ODD_NAMES:
        (repo / name).write_text("def f(x):\n    print(x)  # debug\n    return x\n")
    (repo / ODD_BINARY).write_bytes(b"\x00\x01binary")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "odd names")
    return repo


def _review(repo: Path, fmt: str) -> tuple[str, str]:
    result = runner.invoke(app, ["review", str(repo), "--base", "main", "-f", fmt])
    assert result.exit_code == 0, result.stderr
    return result.stdout, result.stderr


def test_text_report_and_progress_escape_control_characters_in_names(odd_repo: Path, home: Path) -> None:
    out, err = _review(odd_repo, "text")
    assert control_chars(out) == set() and control_chars(err) == set()
    for name in ODD_NAMES:
        assert f"== {printable(name)}" in out
        assert f"{printable(name)}: 1 comment" in err  # the progress line, in one piece
    assert "esc\\x1b[31mred.py" in out and "rtl\\u202eyp.txt.py" in out
    assert f"   {printable(ODD_BINARY)}: binary file" in out
    # no name can start a line of its own: each line is one the report wrote
    assert not any(line.startswith(("line.py", "here.py")) for line in (out + err).splitlines())
    assert "1 comments" not in out + err and "comment(s)" not in out + err


def test_markdown_report_puts_every_name_in_a_code_span_it_cannot_close(odd_repo: Path, home: Path) -> None:
    out, _ = _review(odd_repo, "markdown")
    assert control_chars(out) == set()
    tokens = MARKDOWN.parse(out)
    headings = [
        tokens[i + 1].children for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h3"
    ]
    shown = {kids[0].content for kids in headings if kids and kids[0].type == "code_inline"}
    assert {printable(n) for n in ODD_NAMES} <= shown
    assert "### ``tick`name.py``" in out
    skipped = [
        t.children[0].content
        for t in tokens
        if t.type == "inline"
        and t.children
        and t.children[0].type == "code_inline"
        and t.content.endswith("binary file")
    ]
    assert skipped == [printable(ODD_BINARY)]


def test_json_and_sarif_keep_the_exact_names(odd_repo: Path, home: Path) -> None:
    out, _ = _review(odd_repo, "json")
    data = json.loads(out)
    paths = {f["path"] for f in data["files"]}
    assert set(ODD_NAMES) <= paths
    assert ODD_BINARY in {s["path"] for s in data["skipped"]}
    out, _ = _review(odd_repo, "sarif")
    log = json.loads(out)
    assert sarif_errors(log) == []
    uris = {
        unquote(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
        for r in log["runs"][0]["results"]
    }
    assert set(ODD_NAMES) <= uris


def test_model_text_in_the_text_report_carries_no_control_characters() -> None:
    review = FileReview(
        path="m.py",
        summary="clears\x1b[2J the screen\r\nand\u2028splits\tlines",
        comments=[Comment(line=1, body="a bell\x07 and a \u202eright-to-left override")],
    )
    out = render(make_report([review]), "text")
    assert control_chars(out) == set()
    assert "clears\\x1b[2J the screen" in out and "a bell\\x07 and a \\u202eright-to-left" in out
    lines = out.splitlines()
    at = lines.index("== m.py")
    assert lines[at + 1 : at + 3] == ["   clears\\x1b[2J the screen", "   and\\u2028splits  lines"]


def test_markdown_report_closes_what_a_summary_opens() -> None:
    """An unclosed fence or HTML block in one file's summary must not swallow the next file."""
    first = FileReview(path="a.py", summary="see:\n```py\nopen fence", comments=[Comment(line=1, body="x")])
    second = FileReview(path="b.py", summary="<pre>\nnever closed")
    third = FileReview(path="c.py", summary="fine")
    tokens = MARKDOWN.parse(render(make_report([first, second, third]), "markdown"))
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert [h for h in headings if h.startswith("`")] == ["`a.py`", "`b.py`", "`c.py`"]


def test_the_markdown_report_sanitises_what_a_model_wrote_like_a_posted_review() -> None:
    """The job summary is Markdown GitHub renders: a model's pixel, HTML, forged fingerprint or
    link to another host is neutralised there as in a posted review (issue 11 item 4)."""
    review = FileReview(
        path="m.py",
        summary='ok ![px](http://evil.example/p.png) <img src="http://evil.example/x"> '
        "<!-- review-agent:review:" + "0" * 32 + " --> [docs](http://evil.example/d) @octocat",
        comments=[Comment(line=1, body="see ![x](http://evil.example/y.png) and <b>bold</b>")],
    )
    out = render(make_report([review]), "markdown")
    assert "evil.example/p.png" not in out and "<img" not in out and "review-agent:review" not in out
    assert "](http://evil.example" not in out and "<b>" not in out
    assert "docs" in out and "octocat" in out  # the text is kept


def test_title_and_reasons_are_plain_text_in_markdown() -> None:
    report = make_report(
        [],
        title="# [click](javascript:alert(1)) <img src=x onerror=y> **bold**",
        skipped=[Skipped(path="x`y.bin", reason="binary <b>file</b>")],
    )
    out = render(report, "markdown")
    html = MARKDOWN.render(out)
    assert "<a " not in html and "<img" not in html and "<strong>bold" not in html and "<b>" not in html
    assert "<code>x`y.bin</code>" in html
    assert md_code("x`y.bin") == "``x`y.bin``"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a", "`a`"),
        ("`a", "`` `a ``"),
        ("a``b", "```a``b```"),
        (" a ", "`  a  `"),
        ("", "` `"),
        ("a\nb", "`a\\nb`"),
    ],
)
def test_md_code_spans(name: str, expected: str) -> None:
    assert md_code(name) == expected
    kids = MARKDOWN.parseInline(expected)[0].children
    assert [k.type for k in kids] == ["code_inline"]
    if name.strip():
        assert kids[0].content == printable(name)


def test_job_summary_and_annotations_escape_names() -> None:
    from review_agent.action import escape_data, job_summary

    review = FileReview(path="esc\x1b[31mred`.py", summary="s", comments=[Comment(line=1, body="b")])
    summary = job_summary(make_report([review]), "posted a review on acme/shop#7: 1 comment <b>")
    assert control_chars(summary) == set()
    assert "### ``esc\\x1b[31mred`.py``" in summary and "1 comment \\<b\\>" in summary
    assert escape_data("bad name esc\x1b[2J\r\nnext 100%") == "bad name esc\\x1b[2J%0Anext 100%25"
