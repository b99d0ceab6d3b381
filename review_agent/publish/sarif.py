"""The report as SARIF 2.1.0, for GitHub code scanning (``--format sarif``).

What code scanning relies on, and so what this keeps:

- ``ruleId`` names the check that found the issue (``review-agent/secret``, ``ruff/S301``; the
  language model's findings are ``review-agent/model``), never a severity: code scanning groups
  and dismisses alerts by rule. Every rule used is described in ``tool.driver.rules`` and each
  result points at it by ``ruleIndex`` too.
- ``message.text`` is plain text (a finding's Markdown read with markdown-it and its markup
  dropped); the Markdown itself goes to ``message.markdown``.
- ``versionControlProvenance[].repositoryUri`` (required there) is the report's repository URI,
  with the head commit as ``revisionId``.
- ``artifactLocation.uri`` is the file's path relative to the repository root, percent-encoded
  (it is a URI reference: a space, ``#``, ``%`` or a control character must be encoded, and a
  ``:`` in the first segment would read as a scheme); decoding it gives back the exact name
  (``unquote(uri, errors="surrogatepass")``, for a name that holds a lone surrogate).

Only RIGHT-side findings are results: a finding on a removed line has no location at the head
commit that code scanning could show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from markdown_it import MarkdownIt
from markdown_it.token import Token

from review_agent import __version__
from review_agent.publish.jsontext import dumps
from review_agent.state.schemas import Comment, FileReview

if TYPE_CHECKING:
    from review_agent.publish.report import ReviewReport

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://github.com/review-agent/review-agent"
MODEL_RULE = "review-agent/model"
BUILTIN_RULE = "review-agent/builtin"  # a built-in finding that names no check of its own
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_DESCRIPTIONS = {
    MODEL_RULE: "A finding of the language-model reviewer.",
    BUILTIN_RULE: "A finding of the built-in offline reviewer.",
}


def rule_of(comment: Comment, review: FileReview) -> str:
    """The check behind a finding: its own rule, else the reviewer that wrote it."""
    if comment.rule:
        return comment.rule
    return BUILTIN_RULE if review.reviewer == "builtin" else MODEL_RULE


def _rule(rule_id: str) -> dict[str, Any]:
    description = _DESCRIPTIONS.get(rule_id)
    if description is None:
        tool, _, check = rule_id.partition("/")
        if tool == "review-agent":
            description = f"Built-in check {check or rule_id}."
        else:
            description = f"{tool} rule {check}, reported by the built-in reviewer." if check else rule_id
    return {"id": rule_id, "shortDescription": {"text": description}}


# -- Markdown to plain text ------------------------------------------------------------------

_MARKDOWN = MarkdownIt("commonmark")


def _inline_text(children: list[Token]) -> str:
    out: list[str] = []
    links: list[str] = []
    for tok in children:
        if tok.type in ("text", "code_inline", "text_special"):
            out.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif tok.type == "image":
            out.append(tok.content or "")  # the alt text
        elif tok.type == "link_open":
            links.append(str(tok.attrs.get("href", "")))
        elif tok.type == "link_close" and links:
            href = links.pop()
            if href and not "".join(out).endswith(href):
                out.append(f" ({href})")
        # emphasis markers, inline HTML: no text of their own
    return "".join(out)


def plain_text(markdown: str) -> str:
    """What a reader of ``markdown`` sees, without the markup: code kept as is, a link as its
    text and target, HTML (and the hidden comments in it) dropped, list items marked ``-``."""
    blocks: list[str] = []
    bullet = False
    for tok in _MARKDOWN.parse(markdown):
        if tok.type == "list_item_open":
            bullet = True
        elif tok.type == "inline":
            text = _inline_text(tok.children or [])
            blocks.append(("- " if bullet else "") + text)
            bullet = False
        elif tok.type in ("fence", "code_block"):
            blocks.append(tok.content.rstrip("\n"))
    return "\n".join(b for b in blocks if b.strip()).strip()


# -- the log ---------------------------------------------------------------------------------


def _result(comment: Comment, review: FileReview, rule_id: str, index: int) -> dict[str, Any]:
    # surrogatepass: a lone surrogate (from a server's "\ud800" escape) still has an encoding
    uri = quote(review.path, safe="/", errors="surrogatepass")
    location: dict[str, Any] = {"artifactLocation": {"uri": uri}}
    if comment.line >= 1:
        region: dict[str, int] = {"startLine": comment.start_line or comment.line}
        if comment.start_line:
            region["endLine"] = comment.line
        location["region"] = region
    text = plain_text(comment.body) or comment.body.strip() or _rule(rule_id)["shortDescription"]["text"]
    return {
        "ruleId": rule_id,
        "ruleIndex": index,
        "level": _LEVEL[comment.severity],
        "message": {"text": text, "markdown": comment.body},
        "locations": [{"physicalLocation": location}],
    }


def sarif_log(report: ReviewReport) -> dict[str, Any]:
    """The SARIF log as a dict (one run)."""
    rule_ids: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    for review in report.files:
        for comment in review.findings:
            if comment.side != "RIGHT" or comment.line < 1:  # no line at the head to point to
                continue
            rule_id = rule_of(comment, review)
            index = rule_ids.setdefault(rule_id, len(rule_ids))
            results.append(_result(comment, review, rule_id, index))
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "review-agent",
                "version": __version__,
                "informationUri": INFORMATION_URI,
                "rules": [_rule(r) for r in rule_ids],
            }
        },
        "results": results,
    }
    if report.repository_uri:
        provenance: dict[str, Any] = {"repositoryUri": report.repository_uri}
        if report.head_sha:
            provenance["revisionId"] = report.head_sha
        run["versionControlProvenance"] = [provenance]
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def render_sarif(report: ReviewReport) -> str:
    return dumps(sarif_log(report))


__all__ = ["MODEL_RULE", "plain_text", "render_sarif", "rule_of", "sarif_log"]
