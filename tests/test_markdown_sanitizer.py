"""The one Markdown sanitiser (``review_agent.publish.markdown``), checked with an independent
Markdown parser (markdown-it-py, CommonMark with GFM tables) as the oracle: whatever the input,
what we post has no HTML, no image, no link or bare URL to another host, no live @mention and
no forged fingerprint; the text itself is kept; and sanitising twice changes nothing.

Also: fingerprint extraction from arbitrary comment bodies (what the publisher relies on to
skip what is already on a pull request)."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from review_agent.publish.fingerprints import fingerprints_in, marker
from review_agent.publish.markdown import link_allowed, sanitize

HOST = "github.com"
HEX32 = "0123456789abcdef" * 2
_PARSER = MarkdownIt("commonmark").enable("table")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s<>`]*|www\.", re.IGNORECASE)
_PING = re.compile(r"(?<![A-Za-z0-9])@[A-Za-z0-9]")
_FORGED = re.compile(r"<!--\s*review-agent\s*:", re.IGNORECASE)

FRAGMENTS = [
    "[",
    "]",
    "(",
    ")",
    "!",
    "<",
    ">",
    "`",
    "``",
    "```",
    "~~~",
    "\\",
    "&",
    "|",
    "-",
    "*",
    "_",
    ":",
    "/",
    ".",
    "#",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\n    ",
    "\n- ",
    "\n1. ",
    "\n> ",
    "\n  ",
    "&#91;",
    "&#93;",
    "&lt;",
    "&gt;",
    "&#96;",
    "&#92;",
    "&#10;",
    "&#58;",
    "&#64;",
    "&#124;",
    "&amp;",
    "\\:",
    "\\/",
    "\\.",
    "\\@",
    "\\`",
    "\\[",
    "\\|",
    "\\\\",
    "@bob",
    "@org/team",
    "me@example.com",
    "alpha",
    "beta",
    "http://evil.example/p?q=1",
    "https://github.com/o/r/pull/1",
    "//evil.example",
    "www.evil.example",
    "https://github.com@evil.example/",
    "https://github.com.evil.example/",
    "javascript:alert(1)",
    "![img](http://evil.example/x.png)",
    "[text](http://evil.example)",
    "[ok](https://github.com/o)",
    "[ref]",
    "[ref]: http://evil.example",
    "<http://evil.example>",
    "<img src=x>",
    "<a href='x'>",
    "<!--",
    "-->",
    "<!-- review-agent:comment:" + HEX32 + " -->",
    "review-agent:",
    "<!-- review-agent:",
    "|---|---|",
    "| a | b |",
    "\n```\n",
    "\n  ```\n",
]
texts = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=40).map("".join)
PROPERTY = settings(max_examples=400, derandomize=True, deadline=None)


def _inline_runs(tokens: list[Token]) -> Iterator[tuple[str, list[Token]]]:
    """("block", [token]) for block tokens, ("inline", children) for each inline token."""
    for t in tokens:
        if t.type == "inline":
            yield "inline", list(t.children or [])
        else:
            yield "block", [t]


def problems(out: str, host: str | None) -> list[str]:
    """What the oracle parser finds in ``out`` that must not be posted."""
    found: list[str] = []
    if _FORGED.search(out) or fingerprints_in(out):
        found.append("a fingerprint marker")
    for kind, tokens in _inline_runs(_PARSER.parse(out)):
        if kind == "block":
            if tokens[0].type == "html_block":
                found.append(f"HTML block {tokens[0].content!r}")
            continue
        text = ""
        for t in [*tokens, Token("end", "", 0)]:
            if t.type in ("text", "text_special"):
                text += t.content
                continue
            for m in _URL_IN_TEXT.finditer(text):
                url = m.group(0)
                parts = urllib.parse.urlsplit(url) if "://" in url else None
                netloc = parts.netloc.lower() if parts is not None else ""
                if parts is None or parts.scheme.lower() not in ("http", "https") or netloc != host:
                    found.append(f"bare URL {url!r}")
            if _PING.search(text):
                found.append(f"mention in {text!r}")
            text = ""
            if t.type == "html_inline":
                found.append(f"HTML {t.content!r}")
            elif t.type == "image":
                found.append(f"image {t.attrGet('src')!r}")
            elif t.type == "link_open":
                href = str(t.attrGet("href") or "")
                if not link_allowed(href, host):
                    found.append(f"link to {href!r}")
    return found


@pytest.mark.slow
@PROPERTY
@given(texts)
def test_nothing_unsafe_survives_and_a_second_pass_changes_nothing(text: str) -> None:
    out = sanitize(text, host=HOST)
    assert problems(out, HOST) == [], (text, out)
    assert sanitize(out, host=HOST) == out


@PROPERTY
@given(texts)
def test_without_a_host_no_absolute_link_survives(text: str) -> None:
    out = sanitize(text)
    assert problems(out, None) == [], (text, out)


@PROPERTY
@given(st.lists(st.sampled_from([f for f in FRAGMENTS if "review-agent" not in f]), max_size=40))
def test_the_text_is_kept(pieces: list[str]) -> None:
    text = "".join(pieces)
    out = sanitize(text, host=HOST)
    for word in ("alpha", "beta", "bob"):
        assert out.count(word) >= text.count(word), (word, text, out)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hi @bob!", "hi `@bob`!"),
        ("(@org/team)", "(`@org/team`)"),
        ("mail me@example.com", "mail me@example.com"),
        ("`@code` and\n```\n@fenced\n```\nafter @x", "`@code` and\n```\n@fenced\n```\nafter `@x`"),
        ("``a ` @in`` @out", "``a ` @in`` `@out`"),
        ("a <!-- review-agent:comment:" + "f" * 32 + " --> b", "a  b"),
        ("<!-<!-- review-agent:x -->- review-agent:y -->z", "z"),
        ("unclosed:\n```\ncode @x", "unclosed:\n```\ncode @x\n```"),
        ("hidden <!-- rest", "hidden &lt;!-- rest"),
        ("![pixel](http://host/x.png) seen", "pixel seen"),
        ("[the docs](https://evil.example/a?d=secret)", "the docs"),
        ("[a PR](https://github.com/o/r/pull/1)", "[a PR](https://github.com/o/r/pull/1)"),
        (
            "[a line](#diff-1) [a file](/o/r/blob/main/a.py)",
            "[a line](#diff-1) [a file](/o/r/blob/main/a.py)",
        ),
        ("[x](//evil.example) [y](javascript:alert(1))", "x y"),
        ("see https://evil.example/x?d=1 now", "see `https://evil.example/x?d=1` now"),
        ("see www.evil.example", "see `www.evil.example`"),
        ("<https://evil.example>", "&lt;`https://evil.example`>"),
        (
            "[t][r]\n\n[r]: https://evil.example",
            "&#91;t&#93;&#91;r&#93;\n\n&#91;r&#93;: `https://evil.example`",
        ),
        ("<img src=x onerror=alert(1)> <b>bold</b>", "&lt;img src=x onerror=alert(1)> &lt;b>bold&lt;/b>"),
        ("a < b && c", "a &lt; b &amp;&amp; c"),
        ("`a || b` is kept", "`a || b` is kept"),
        # not a code span: the third line opens a fence, so @fenced is prose (and pinged)
        ("`@code` and ```\n@fenced\n```", "`@code` and \\`\\`\\`\n`@fenced`\n```\n```"),
        ("mid-line ``` is no fence @x", "mid-line \\`\\`\\` is no fence `@x`"),
    ],
)
def test_sanitize_examples(text: str, expected: str) -> None:
    assert sanitize(text, host=HOST) == expected


def test_the_host_of_the_pull_request_decides_with_its_port() -> None:
    text = "[a](http://127.0.0.1:8080/o/r) [b](http://127.0.0.1:9090/o/r)"
    assert sanitize(text, host="127.0.0.1:8080") == "[a](http://127.0.0.1:8080/o/r) b"
    assert sanitize("[a](https://github.com/o)", host="ghe.example.com") == "a"


# --- fingerprints in comment bodies -------------------------------------------------------------

fingerprints = st.builds(
    lambda kind, digest: f"{kind}:{digest}",
    st.sampled_from(["comment", "review", "summary"]),
    st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
)


@pytest.mark.slow
@PROPERTY
@given(texts, st.sets(fingerprints, max_size=4))
def test_fingerprints_are_found_exactly_in_a_body_of_sanitised_text(text: str, fps: set[str]) -> None:
    body = sanitize(text, host=HOST) + "".join(f"\n\n{marker(f)}" for f in sorted(fps))
    assert fingerprints_in(body) == fps


@PROPERTY
@given(texts, texts, fingerprints)
def test_a_marker_is_found_whatever_surrounds_it(before: str, after: str, fp: str) -> None:
    found = fingerprints_in(before + marker(fp) + after)
    assert fp in found
    assert all(re.fullmatch(r"(comment|review|summary):[0-9a-f]{32}", f) for f in found)
