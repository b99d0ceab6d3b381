"""Untrusted text (file names, PR titles, what a model wrote) made safe to show.

A file may be named ``esc\\x1b[31mred.py`` or carry a newline, a tab, a carriage return or a
right-to-left override; a model may answer with any of them too. Written raw, such a character
recolours or rewrites the user's terminal, splits one line of a log into two (a forged progress
line), or hides text. So everything we did not write passes through here on its way to a person:

- ``printable(s)``: one line for a terminal or a log: every control, format and line-separator
  character shown as a visible escape (``\\x1b``, ``\\n``, ``\\u202e``);
- ``printable_block(s)``: the same for text that has lines of its own (a summary, a comment):
  newlines kept, tabs expanded, the rest escaped;
- ``md_code(s)``: a name as a Markdown code span, with a fence longer than any run of backticks
  in it, so no name can end the span and inject Markdown;
- ``md_text(s)``: plain untrusted text (a title, a reason) inside Markdown, each character that
  could start markup backslash-escaped;
- ``md_block(s)``: untrusted Markdown (a summary) as one closed fragment of a larger document:
  controls escaped, an unclosed code fence closed, no HTML block opened (``<pre>``, ``<!--`` or
  ``<?`` at the start of a line would swallow every file reported after it).

Machine formats (JSON, SARIF) keep names exactly; only what a person reads is escaped. Python's
``repr`` or ``unicode_escape`` would also escape every non-ASCII letter, which a name in another
script does not deserve; hence this small module.
"""

from __future__ import annotations

import re
import unicodedata

# Letters of these categories are escaped: controls (Cc), invisible format characters (Cf:
# bidirectional overrides, zero-width spaces, tag characters), line and paragraph separators
# (Zl, Zp, which some terminals and editors treat as newlines) and lone surrogates (Cs: bytes
# that were not UTF-8).
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# Joiners shape letters in several scripts and compose emoji; they move no text and hide none.
_KEPT_FORMAT = frozenset({"\u200c", "\u200d"})
_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in _ESCAPED_CATEGORIES and ch not in _KEPT_FORMAT


def _escape(ch: str) -> str:
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` on one line, every character that could move the cursor, change colours, split
    the line or hide text replaced by its visible escape."""
    if text.isprintable():  # the common case, and the fast one
        return text
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in text)


def printable_block(text: str, tab_size: int = 4) -> str:
    """Multi-line ``text`` (a summary, a comment body) fit for a terminal: line breaks kept
    (``\\r\\n`` and a lone ``\\r`` read as one), tabs expanded, every other control, format or
    separator character escaped as ``printable`` does."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(printable(line.expandtabs(tab_size)) for line in lines)


_BACKTICK_RUNS = re.compile(r"`+")


def md_code(text: str) -> str:
    """``text`` as one Markdown code span: visible escapes for what ``printable`` escapes, and a
    fence of one backtick more than the longest run inside (CommonMark's rule), padded with a
    space where the text starts or ends with a backtick."""
    shown = printable(text)
    if not shown.strip(" "):
        return f"`{shown or ' '}`"  # spaces only: shown as they are (CommonMark strips none)
    longest = max((len(m) for m in _BACKTICK_RUNS.findall(shown)), default=0)
    fence = "`" * (longest + 1)
    # CommonMark strips one space from each end when both ends have one: pad to keep them, and
    # to keep a backtick at an end from joining the fence
    edges = shown[0] + shown[-1]
    pad = " " if "`" in edges or edges == "  " else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


# Characters that start inline markup wherever they stand (emphasis, code, links and images,
# HTML and autolinks, entities, escapes, GFM strikethrough and table cells) ...
_MD_INLINE = re.compile(r"([\\`*_\[\]<>&|~])")
# ... and what starts a block only at the beginning of a line (heading, quote, list, rule).
_MD_LINE_START = re.compile(r"^([#>+\-=]|\d+[.)])")


def md_text(text: str) -> str:
    """Untrusted plain text inside Markdown, on one line: each character that could start
    markup backslash-escaped (CommonMark allows that for any ASCII punctuation), so no ``*``,
    ``[``, ``<``, ``|`` or leading ``#`` in a title or a reason becomes emphasis, a link, HTML,
    a table cell or a heading. Other punctuation is left alone, so the Markdown stays readable."""
    # leading blanks dropped: Markdown ignores up to three, and four would start a code block
    escaped = _MD_INLINE.sub(r"\\\1", printable(text).lstrip(" "))
    return _MD_LINE_START.sub(lambda m: _escape_first(m[1]), escaped)


def _escape_first(token: str) -> str:
    return token[:-1] + "\\" + token[-1] if token[0].isdigit() else "\\" + token


_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_HTML_BLOCK_START = re.compile(r"^( {0,3})<")


def md_block(text: str) -> str:
    """Untrusted Markdown made a closed fragment: what it opens it closes, so the rest of the
    document (the next file's heading) is never read as part of it. Its own Markdown is kept."""
    out: list[str] = []
    fence: str | None = None
    for line in printable_block(text).split("\n"):
        if fence is not None:
            if re.fullmatch(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*", line):
                fence = None
        else:
            m = _FENCE_OPEN.match(line)
            if m and not (m[1][0] == "`" and "`" in m[2]):
                fence = m[1]
            else:
                line = _HTML_BLOCK_START.sub(r"\1\\<", line)
        out.append(line)
    if fence is not None:
        out.append(fence)
    return "\n".join(out)


__all__ = ["md_block", "md_code", "md_text", "printable", "printable_block"]
