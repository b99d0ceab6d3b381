"""What memory accepts. Everything kept in memory reaches later prompts, so memory is where a
credential or a runaway value is refused — for every way in: the CLI, ``prefs import``, the
learnings made from dismissed findings, and any future entry point.

A refusal is ``BadInput`` (exit 2), says which limit or which kind of secret, and never repeats
the refused text: the message goes to a terminal, a log, a CI job's output.
"""

from __future__ import annotations

import json
from typing import Any

from review_agent.errors import BadInput
from review_agent.redaction import secret_kinds

MAX_KEY_CHARS = 64
MAX_VALUE_CHARS = 4_000  # a preference's value, as JSON: it goes into every prompt of its user
MAX_LEARNING_CHARS = 2_000  # a learning is a short rule
MAX_NAME_CHARS = 200  # a login, an organisation, OWNER/REPO
MAX_ORIGIN_CHARS = 8_000  # where a learning came from, e.g. the dismissed finding


def _no_secret(what: str, text: str) -> None:
    kinds = secret_kinds(text)
    if kinds:
        raise BadInput(
            f"refused: {what} holds a {' and a '.join(kinds)}; memory never keeps credentials "
            "(they would reach every later prompt)"
        )


def check_name(kind: str, name: str) -> str:
    if not name or not name.strip():
        raise BadInput(f"a {kind} name may not be empty")
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise BadInput(f"a {kind} name must be printable and at most {MAX_NAME_CHARS} characters")
    _no_secret(f"the {kind} name", name)
    return name


def check_key(key: str) -> str:
    if not key or not key.strip():
        raise BadInput("a preference needs a key (it is empty)")
    if not key.isprintable() or key != key.strip():
        raise BadInput("a preference key must be printable, with no leading or trailing spaces")
    if len(key) > MAX_KEY_CHARS:
        raise BadInput(f"a preference key may have at most {MAX_KEY_CHARS} characters ({len(key)} given)")
    _no_secret("the key", key)
    return key


def check_value(key: str, value: Any) -> Any:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"the value of {key!r} is not JSON ({type(exc).__name__})") from exc
    if len(text) > MAX_VALUE_CHARS:
        raise BadInput(
            f"the value of {key!r} has {len(text):,} characters; at most {MAX_VALUE_CHARS:,} are "
            "kept (preferences go into every prompt)"
        )
    _no_secret(f"the value of {key!r}", text)
    return value


def check_learning(text: str, origin: dict[str, Any]) -> str:
    """The learning's text, whitespace-normalised, or BadInput."""
    text = " ".join(text.split())
    if not text:
        raise BadInput("a learning needs some text")
    if len(text) > MAX_LEARNING_CHARS:
        raise BadInput(
            f"a learning has at most {MAX_LEARNING_CHARS:,} characters ({len(text):,} given): "
            "keep it to one short rule"
        )
    if not text.isprintable():
        raise BadInput("a learning must be printable text (no control characters)")
    _no_secret("the learning", text)
    try:
        origin_text = json.dumps(origin, ensure_ascii=False, default=str)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"a learning's origin is not JSON ({type(exc).__name__})") from exc
    if len(origin_text) > MAX_ORIGIN_CHARS:
        raise BadInput(f"a learning's origin has more than {MAX_ORIGIN_CHARS:,} characters")
    _no_secret("the learning's origin", origin_text)
    return text
