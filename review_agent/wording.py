"""Counted nouns, said right: "1 comment", "2 comments", never "1 comments" or "comment(s)"."""

from __future__ import annotations

from collections.abc import Mapping


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is one (``plural_form``
    for the irregular ones: ``plural(2, "entry", "entries")``)."""
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"


def severity_tally(counts: Mapping[str, int]) -> str:
    """ "0 errors, 1 warning, 2 info": each severity counted ("info" is not counted in the plural)."""
    return ", ".join(
        [
            plural(counts.get("error", 0), "error"),
            plural(counts.get("warning", 0), "warning"),
            f"{counts.get('info', 0)} info",
        ]
    )


__all__ = ["plural", "severity_tally"]
