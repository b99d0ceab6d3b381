"""Counted nouns, said right: "1 comment", "2 comments", never "1 comments" or "comment(s)"."""

from __future__ import annotations


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is one (``plural_form``
    for the irregular ones: ``plural(2, "entry", "entries")``)."""
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"


__all__ = ["plural"]
