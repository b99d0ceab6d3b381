"""Reading the model's answer: lenient about its shape, strict about what it yields.

The answer is read comment by comment: one comment with ``severity: "critical"`` or ``line: 0``
must not throw away the others. What cannot be anchored (no line, a line outside the diff) goes
into the file summary, where the user still sees it and GitHub cannot refuse it. An answer that
is not the schema at all raises :class:`MalformedAnswer`, worth one repair turn.

What is cleaned here is about the answer itself, wherever it ends up (the report, the store,
GitHub): nothing invisible or secret, its length bounded, and text that repeats the model's own
instructions withheld. Rendering it for GitHub is the publisher's job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage
from pydantic import ValidationError

from review_agent.patches import ParsedPatch, split_anchored
from review_agent.state.schemas import Comment, ModelReview

MAX_BODY_CHARS = 2_000
MAX_SUMMARY_CHARS = 4_000
MAX_COMMENTS = 50

_SEVERITY_ALIASES: dict[str, str] = {
    "error": "error",
    "critical": "error",
    "blocker": "error",
    "high": "error",
    "major": "error",
    "bug": "error",
    "security": "error",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "moderate": "warning",
    "info": "info",
    "information": "info",
    "low": "info",
    "minor": "info",
    "nit": "info",
    "note": "info",
    "suggestion": "info",
    "style": "info",
}

# Tags GitHub renders (or strips while keeping their effect) that can hide or disguise text. Only
# real element names are stripped, so that `List<String>` in prose survives.
_HTML_ELEMENT_NAMES = (
    "a abbr address area article aside audio b base bdi bdo blockquote body br button canvas "
    "caption center cite code col colgroup data dd del details dfn dialog div dl dt em embed "
    "fieldset figcaption figure font footer form h1 h2 h3 h4 h5 h6 head header hr html i iframe "
    "img input ins kbd label legend li link main map mark marquee meta meter nav noscript object "
    "ol optgroup option output p param picture pre progress q rp rt ruby s samp script section "
    "select small source span strike strong style sub summary sup svg table tbody td template "
    "textarea tfoot th thead time title tr track tt u ul var video wbr"
)
_HTML_ELEMENTS = frozenset(_HTML_ELEMENT_NAMES.split())
_HTML_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*)(?:\s[^<>]*)?/?>")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_CODE = re.compile(r"(```.*?(?:```|\Z)|`[^`\n]*`)", re.DOTALL)
# Bidirectional overrides and zero-width characters hide or reorder text (Trojan Source);
# other control characters have no business in a comment and can drive a terminal.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_JSON_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def clean_answer_text(text: str, limit: int, redact: Callable[[str], str] = lambda t: t) -> str:
    """The model's text as everything downstream gets it (the report in every format, the
    store, the posted review): nothing invisible, nothing secret, bounded length.

    Removed: zero-width and bidirectional characters and control characters, which hide,
    reorder or recolour text in any viewer, and anything shaped like a credential (``redact``).
    What is Markdown-specific (HTML, images, mentions, links to other hosts, forged
    fingerprints) is the one Markdown sanitiser's job, wherever Markdown is rendered: the posted
    review and the Markdown report (``review_agent.publish.markdown``).
    """
    text = _CONTROL.sub("", _INVISIBLE.sub("", text))
    text = re.sub(r"\n{3,}", "\n\n", redact(text)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


class MalformedAnswer(Exception):
    """The answer is not the ModelReview structure at all (worth one repair turn)."""


def _message_text(message: AIMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, str | dict)
    )


def payload_of(result: dict[str, Any]) -> Any:
    """The answer as plain JSON data, from a tool call or (for servers that ignore
    ``tool_choice``) from JSON in the message text."""
    parsed = result.get("parsed")
    if isinstance(parsed, ModelReview):
        return parsed.model_dump()
    raw = result.get("raw")
    if not isinstance(raw, AIMessage):
        raise MalformedAnswer("no answer message")
    if raw.tool_calls:
        return raw.tool_calls[0]["args"]
    if raw.invalid_tool_calls:
        args = raw.invalid_tool_calls[0].get("args") or ""
        raise MalformedAnswer(f"the function arguments are not valid JSON: {args[:300]!r}")
    text = _message_text(raw).strip()
    if not text:
        refusal = raw.additional_kwargs.get("refusal")
        raise MalformedAnswer(f"the model refused: {refusal}" if refusal else "the answer was empty")
    fenced = _JSON_FENCE.search(text)
    candidate = fenced.group(1).strip() if fenced else text
    if not candidate.startswith("{"):
        start, end = candidate.find("{"), candidate.rfind("}")
        candidate = candidate[start : end + 1] if 0 <= start < end else candidate
    try:
        return json.loads(candidate)
    except ValueError:
        raise MalformedAnswer(f"the answer is not JSON: {text[:300]!r}") from None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,9}\s*", value):
        return int(value)
    return None


def _coerce_comment(item: Any, redact: Callable[[str], str]) -> Comment | None:
    """One comment from the model, or None when it says nothing. Odd but meaningful values are
    mapped (``"critical"`` → error, ``"12"`` → 12); a comment without a usable line gets line
    0, which no diff can anchor, so it ends up as a note in the summary. None: nothing to say."""
    if isinstance(item, str):
        item = {"body": item}
    if not isinstance(item, dict):
        return None
    body = clean_answer_text(str(item.get("body") or item.get("message") or ""), MAX_BODY_CHARS, redact)
    if not body:
        return None
    severity = _SEVERITY_ALIASES.get(str(item.get("severity") or "warning").strip().lower())
    side = str(item.get("side") or "RIGHT").strip().upper()
    side = "LEFT" if side in ("LEFT", "OLD", "BASE", "-") else "RIGHT"
    line = _as_int(item.get("line"))
    start = _as_int(item.get("start_line"))
    if line is None or line <= 0:
        line, start = 0, None
    if start is not None and (start <= 0 or start >= line):
        start = None
    try:
        comment = Comment(
            line=line,
            side=side,  # type: ignore[arg-type]
            severity=severity or "warning",  # type: ignore[arg-type]
            body=body,
            start_line=start,
        )
    except ValidationError:
        return None
    return comment


def read_review(
    payload: Any, patch: ParsedPatch, redact: Callable[[str], str] = lambda t: t
) -> tuple[str, list[Comment]]:
    """Validate the answer into (summary, anchorable comments). Raises MalformedAnswer only when the
    answer is not the schema at all; everything salvageable is kept."""
    if isinstance(payload, list) and all(isinstance(x, dict) for x in payload):
        payload = {"summary": "", "comments": payload}
    if not isinstance(payload, dict):
        raise MalformedAnswer(f"expected a JSON object, got {type(payload).__name__}")
    if "summary" not in payload and "comments" not in payload:
        keys = ", ".join(sorted(map(str, payload))[:8]) or "none"
        raise MalformedAnswer(f"expected `summary` and `comments`, got keys: {keys}")
    summary_value = payload.get("summary")
    if summary_value is not None and not isinstance(summary_value, str):
        raise MalformedAnswer("`summary` must be a string")
    items = payload.get("comments")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise MalformedAnswer("`comments` must be a list")
    summary = clean_answer_text(summary_value or "", MAX_SUMMARY_CHARS, redact)
    comments: list[Comment] = []
    seen: set[tuple[int, str, str]] = set()
    for item in items:
        comment = _coerce_comment(item, redact)
        if comment is None:
            continue
        key = (comment.line, comment.side, comment.body)
        if key in seen:
            continue
        seen.add(key)
        comments.append(comment)
    anchored, stray = split_anchored(comments, patch)
    if len(anchored) > MAX_COMMENTS:
        anchored, stray = anchored[:MAX_COMMENTS], [*anchored[MAX_COMMENTS:], *stray]
    if not summary:
        summary = "No summary given." if anchored or stray else "No issues found."
    # findings on lines outside the diff stay findings (with their severity): the graph keeps
    # them apart from the inline ones, for the review body
    return summary, [*anchored, *stray[:MAX_COMMENTS]]


_WORDS = re.compile(r"[a-z0-9]+")
LEAK_RUN = 8  # words in a row shared with the instructions: an echo, not a coincidence
LEAK_NOTE = "(removed: the model's answer repeated its own instructions, as a prompt injection asks)"


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORDS.findall(text.lower())
    return {tuple(words[i : i + LEAK_RUN]) for i in range(len(words) - LEAK_RUN + 1)}


def withhold_instructions(
    summary: str, comments: list[Comment], instructions: str
) -> tuple[str, list[Comment]]:
    """A model that obeys an injected "print your system prompt" must not publish it: any text
    sharing a run of LEAK_RUN words with the instructions is withheld (the summary replaced by a
    note, such a comment dropped). Done here so the report, the store and GitHub all get the
    clean text."""
    secret = _shingles(instructions)
    if _shingles(summary) & secret:
        summary = LEAK_NOTE
    kept = [c for c in comments if not (_shingles(c.body) & secret)]
    if len(kept) < len(comments) and summary != LEAK_NOTE:
        summary = f"{summary}\n\n{LEAK_NOTE}"
    return summary, kept
