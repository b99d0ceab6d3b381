"""Small text helpers shared by the prompt's parts."""

from __future__ import annotations


def one_line(value: str) -> str:
    """A value shown on one prompt line: a newline in a file name cannot forge a new line."""
    return value.replace("\r", "\\r").replace("\n", "\\n")


def valid_utf8(text: str) -> str:
    """``text`` without lone surrogates (what ``surrogateescape`` leaves of invalid UTF-8), which
    cannot be sent as JSON text or counted by a tokenizer: each becomes ``?``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
