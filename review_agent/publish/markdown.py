"""The one Markdown sanitiser for everything review-agent posts: model (or other untrusted) text
made safe for GitHub, with its Markdown kept where that is safe.

What comes out, whatever went in:

* **no HTML**: outside code every ``<`` is ``&lt;`` (tags, comments, autolinks ``<http://…>``);
* **no forged fingerprint**: anything shaped like our ``<!-- review-agent:… -->`` marker is removed,
  in code too (the publisher finds its markers by text, and a forged one would make a comment
  look posted);
* **no ping**: ``@login`` and ``@org/team`` outside code become code spans;
* **no image and no link to another host** (a tracking pixel, or a way to carry data out in a
  URL): images become their alt text; a link whose target is not on the pull request's GitHub
  host (``host``) becomes its text; a bare URL to another host becomes a code span (shown, not
  linked); reference-style links and definitions lose their brackets. Relative links and links
  to ``host`` stay links.

Why our own code and not a library: HTML sanitisers (nh3, bleach) work on HTML, and GitHub
renders our Markdown itself; formatters that round-trip Markdown rewrite the whole text. So
this is a small scanner with one design rule: it never has to understand Markdown perfectly,
only to be conservative where it might disagree with GitHub's parser. Fenced code blocks are
kept verbatim; every other line is scanned on its own (a construct spanning lines loses its
syntax, never its text), code spans are found as CommonMark finds them, and every bracket,
backtick, ``<`` and ``&`` that is not part of something we rebuilt is escaped. HTML entities are
decoded first, so sanitising twice gives the same text as sanitising once.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Callable

# zero-width and bidi controls (they hide or reorder text); other control characters have no
# business in a comment
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FORGED_WHOLE = re.compile(r"<!--\s*review-agent\s*:.*?-->", re.IGNORECASE | re.DOTALL)
_FORGED_OPEN = re.compile(r"<!--\s*review-agent\s*:", re.IGNORECASE)
# a fence opens a code block at the start of a line (GFM: up to three spaces of indent)
_FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
# a table's delimiter row: then "|" splits cells before anything inline is parsed
_DELIMITER_ROW = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_BACKTICKS = re.compile(r"`+")

_LINK_TEXT = r"((?:[^\[\]\\\n]|\\[^\n])*)"
_DEST = r"\(\s*([^\s()<>\\]*(?:\([^\s()<>\\]*\)[^\s()<>\\]*)*)(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)"
_IMAGE = re.compile(r"!\[" + _LINK_TEXT + r"\]" + _DEST)
_LINK = re.compile(r"\[" + _LINK_TEXT + r"\]" + _DEST)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s<>`]*|(?i:www)\.[^\s<>`]*")
# escapes whose backslash is dropped before scanning: they could hide "://", "www." or "@" from
# our scanner while the rendered text, where GitHub looks for links and mentions, has them
_ESCAPE_PAIR = re.compile(r"\\(.)")
_MENTION = re.compile(r"@([A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9_.-]+)?)")
_SAFE_DEST = re.compile(r"[^\s<>\\&\"'`|]+")
_ESCAPES = {"<": "&lt;", "&": "&amp;", "[": "&#91;", "]": "&#93;", "`": "\\`", "|": "\\|"}


def strip_markers(text: str) -> str:
    """Remove anything that looks like our fingerprint marker, until nothing does (removing one
    must not join the pieces around it into a new one)."""
    while True:
        cleaned = _FORGED_WHOLE.sub("", text)
        if cleaned == text:  # whole markers first; then openers left without a closing "-->"
            cleaned = _FORGED_OPEN.sub("", text)
        if cleaned == text:
            return cleaned
        text = cleaned


def code_span(text: str) -> str:
    """``text`` as one inline code span, whatever backticks it holds."""
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip(" ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _host_of(url: str) -> tuple[str, str] | None:
    """(scheme, "host[:port]") of an absolute http(s) URL without credentials, else None."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or "@" in parts.netloc or not parts.hostname:
        return None
    host = parts.hostname.lower()
    return parts.scheme.lower(), host if port is None else f"{host}:{port}"


def link_allowed(dest: str, host: str | None) -> bool:
    """A link target GitHub shows on ``host`` itself: a relative path or anchor, or an http(s)
    URL whose host (and port) is exactly ``host``. Anything with a character that could be
    decoded into something else (an entity, a backslash) is refused."""
    if not dest or _SAFE_DEST.fullmatch(dest) is None:
        return False
    if dest.startswith("#") or (dest.startswith("/") and not dest.startswith("//")):
        return True
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", dest):
        found = _host_of(dest)
        return found is not None and host is not None and found[1] == host.lower()
    return not dest.startswith("//")


class _Inline:
    """Sanitises one line (or table cell) of prose, outside fenced code."""

    def __init__(self, host: str | None) -> None:
        self.host = host

    def line(self, text: str) -> str:
        out: list[str] = []
        for is_code, part in _code_spans(text):
            out.append(part if is_code else self.prose(part))
        return _join(out)

    def prose(self, raw: str) -> str:
        """Text without code spans, its entities decoded (so that a second pass sees what the
        first one wrote); a decoded line break is a space: it must not start a new block."""
        text = html.unescape(raw).replace("\n", " ").replace("\r", " ")
        text = _ESCAPE_PAIR.sub(lambda m: m.group(1) if m.group(1) in ":/.@" else m.group(0), text)
        return self._scan(_CONTROL.sub("", _INVISIBLE.sub("", text)), links=True)

    def _scan(self, text: str, *, links: bool) -> str:
        """Rebuild what is allowed, escape everything else."""
        out: list[str] = []
        i = 0
        n = len(text)
        while i < n:
            ch = text[i]
            if ch == "\\" and i + 1 < n and text[i + 1] in _PUNCTUATION:
                out.append(text[i : i + 2])
                i += 2
                continue
            if ch == "!" and (m := _IMAGE.match(text, i)):
                # the alt text instead of the image, read again in its place (with what is
                # around it, it may make a URL or a mention)
                text = text[:i] + m.group(1) + text[m.end() :]
                n = len(text)
                continue
            if ch == "[" and (m := _LINK.match(text, i)):
                dest = m.group(2)
                inner = self._scan(m.group(1), links=False)
                if links and inner.strip() and link_allowed(dest, self.host):
                    out.append(f"[{inner}]({dest})")
                    i = m.end()
                else:  # the text instead of the link, read again in its place
                    text = text[:i] + m.group(1) + text[m.end() :]
                    n = len(text)
                continue
            if ch.isalpha() and (m := _URL.match(text, i)):
                url = m.group(0)
                found = _host_of(url) if "://" in url else None
                safe = found is not None and self.host is not None and found[1] == self.host.lower()
                out.append(url if safe and links and _SAFE_DEST.fullmatch(url) else code_span(url))
                i = m.end()
                continue
            if ch == "@" and not _after_word(out):
                # "@login" pings; a lone "@" might become one with what follows it once the
                # text around it is rewritten: both go into code
                m = _MENTION.match(text, i)
                found = m.group(0) if m is not None else "@"
                out.append(code_span(found))
                i += len(found)
                continue
            out.append(_ESCAPES.get(ch, ch))
            i += 1
        return _join(out)


def _after_word(out: list[str]) -> bool:
    """An "@" right after a letter or digit (an e-mail address) pings nobody. Judged on what was
    written so far, since that is what GitHub reads."""
    last = out[-1][-1:] if out else ""
    return last.isascii() and last.isalnum()


def _code_spans(text: str) -> list[tuple[bool, str]]:
    """``text`` cut into (is code, part), code spans found as CommonMark finds them: a run of
    backticks not escaped opens one, the next run of the same length closes it; a run without
    a closer is literal (and is escaped later)."""
    parts: list[tuple[bool, str]] = []
    start = i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in _PUNCTUATION:
            i += 2
            continue
        if ch != "`":
            i += 1
            continue
        run = _BACKTICKS.match(text, i)
        assert run is not None
        width = len(run.group(0))
        j = run.end()
        close = None
        while j < n:
            nxt = _BACKTICKS.search(text, j)
            if nxt is None:
                break
            if len(nxt.group(0)) == width:
                close = nxt
                break
            j = nxt.end()
        if close is None:
            i = run.end()  # literal backticks: they stay in the prose part
            continue
        if i > start:
            parts.append((False, text[start:i]))
        parts.append((True, text[i : close.end()]))
        start = i = close.end()
    if start < n:
        parts.append((False, text[start:]))
    return parts


def _join(pieces: list[str]) -> str:
    """Concatenate, keeping a code span from touching a backtick (the runs would merge and
    change which code spans GitHub sees) or a backslash (it would escape the opening one)."""
    out = ""
    for piece in pieces:
        if piece.startswith("`") and out.endswith(("`", "\\")):
            out += " "
        out += piece
    return out


def _split_cells(line: str) -> list[str]:
    """A table row cut at every "|" (kept as separate pieces). Cutting at an escaped one too is
    on the safe side: a code span that GitHub would see across it is only shown as text."""
    return re.split(r"(\|)", line)


def sanitize(text: str, *, host: str | None = None) -> str:
    """``text`` made safe to post on a pull request whose GitHub host is ``host`` (``None``: no
    absolute link is kept). See the module docstring for what that means."""
    text = strip_markers(_CONTROL.sub("", _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))))
    lines = text.split("\n")
    table = any("-" in line and _DELIMITER_ROW.match(line) for line in lines)
    inline = _Inline(host)
    out: list[str] = []
    fence: tuple[str, int] | None = None  # (fence chars, indent of the opener)
    for line in lines:
        if fence is not None:
            chars, indent = fence
            stripped = line.lstrip(" ")
            if re.fullmatch(rf"{re.escape(chars[0])}{{{len(chars)},}}[ \t]*", stripped):
                fence = None
                out.append(line)
                continue
            if not (indent and stripped and len(line) - len(stripped) < indent):
                out.append(line)
                continue
            # less indented than an indented opener: its container (a list item) may have
            # ended, and the fence with it; from here on, treat the text as prose
            out.append(chars)
            fence = None
        m = _FENCE_OPEN.match(line)
        if m is not None and not (m.group(2)[0] == "`" and "`" in m.group(3)):
            fence = (m.group(2), len(m.group(1)))
            out.append(line)
            continue
        if table and "|" in line:
            out.append("".join(p if p == "|" else inline.line(p) for p in _split_cells(line)))
        else:
            out.append(inline.line(line))
    if fence is not None:
        out.append(fence[0])
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def fit(raw: str, limit: int, render: Callable[[str], str] = sanitize) -> str:
    """``render(raw)``, with ``raw`` cut (before rendering, so a cut never splits a code span
    and frees a mention) until the result is at most ``limit`` characters."""
    out = render(raw)
    while len(out) > limit and raw:
        raw = raw[: max(0, min(len(raw) - 1, int(len(raw) * 0.9), int(len(raw) * limit / len(out))))]
        out = render(raw.rstrip() + " …")
    return out if len(out) <= limit else out[:limit]


def sanitize_bounded(text: str, limit: int, *, host: str | None = None) -> str:
    """``sanitize`` within ``limit`` characters (the reviewer's bound on a comment or summary)."""
    return fit(text, limit, lambda t: sanitize(t, host=host))
