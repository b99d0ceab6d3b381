"""The review report, and its text, Markdown, JSON and SARIF renderings.

JSON keeps at least the keys of DESIGN.md §6, so that scripts and the Action can rely on them.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from review_agent.state.schemas import SEVERITY_ORDER, FileReview, Skipped, Usage


class ReviewReport(BaseModel):
    target: str
    thread_id: str
    head_sha: str
    base_sha: str = ""
    title: str = ""
    resumed: bool = False
    resumed_from: int = 0
    files_total: int
    files: list[FileReview] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)
    model_calls: int = 0  # calls made by this run
    model_calls_total: int = 0  # over the thread's life, all runs
    cost_usd: float | None = None  # of the reviews in this report; None when a price is unknown
    reviewer: str = ""
    offline: bool = False
    backend: str = ""
    user: str | None = None
    preferences: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    posted: dict[str, Any] | None = None  # what was published on the PR, when --post

    @property
    def comment_count(self) -> int:
        return sum(len(f.comments) for f in self.files)

    @property
    def usage(self) -> Usage:
        return Usage(
            input_tokens=sum(f.usage.input_tokens for f in self.files),
            output_tokens=sum(f.usage.output_tokens for f in self.files),
        )

    def severity_counts(self) -> dict[str, int]:
        counts = {k: 0 for k in SEVERITY_ORDER}
        for f in self.files:
            for c in f.comments:
                counts[c.severity] += 1
        return counts


def render_json(report: ReviewReport) -> str:
    data = report.model_dump(mode="json")
    data["comment_count"] = report.comment_count
    data["usage"] = report.usage.model_dump()
    return json.dumps(data, indent=2, ensure_ascii=False)


def _header_lines(report: ReviewReport) -> list[str]:
    lines = [f"Review of {report.target}" + (f" — {report.title}" if report.title else "")]
    lines.append(f"head {report.head_sha[:12]}  thread {report.thread_id}")
    who = f"reviewer {report.reviewer}" + (" (offline)" if report.offline else "")
    lines.append(f"{who}  storage {report.backend}")
    if report.user:
        lines.append(f"preferences of {report.user}: {len(report.preferences)} rule(s)")
    if report.resumed:
        lines.append(f"resumed: {report.resumed_from}/{report.files_total} files were already done")
    return lines


def render_text(report: ReviewReport) -> str:
    out = _header_lines(report)
    out.append("")
    for f in report.files:
        tag = " (reused)" if f.reused else ""
        out.append(f"== {f.path}{tag}")
        out.append(f"   {f.summary}".replace("\n", "\n   "))
        for c in f.comments:
            out.append(f"   {f.path}:{c.line} [{c.severity}] {c.body}".replace("\n", "\n     "))
        out.append("")
    if report.skipped:
        out.append("Skipped:")
        out.extend(f"   {s.path}: {s.reason}" for s in report.skipped)
        out.append("")
    for n in report.notes:
        out.append(f"Note: {n}")
    sev = report.severity_counts()
    out.append(
        f"{len(report.files)}/{report.files_total} files reviewed, {report.comment_count} comments "
        f"({sev['error']} error, {sev['warning']} warning, {sev['info']} info), "
        f"{len(report.skipped)} skipped, {report.model_calls} model calls this run"
    )
    u = report.usage
    if u.input_tokens or u.output_tokens:
        cost = f", about ${report.cost_usd:.4f}" if report.cost_usd is not None else ", price unknown"
        out.append(f"tokens: {u.input_tokens} in, {u.output_tokens} out{cost}")
    return "\n".join(out) + "\n"


def _md_escape_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: ReviewReport) -> str:
    sev = report.severity_counts()
    out = [f"## review-agent: {report.target}", ""]
    if report.title:
        out += [f"**{report.title}**", ""]
    out.append(
        f"{len(report.files)}/{report.files_total} files reviewed · {report.comment_count} comments "
        f"({sev['error']} error, {sev['warning']} warning, {sev['info']} info) · "
        f"{len(report.skipped)} skipped · reviewer `{report.reviewer}`"
        + (" (offline)" if report.offline else "")
    )
    out.append("")
    for f in report.files:
        out.append(f"### `{f.path}`" + (" (reused)" if f.reused else ""))
        out.append("")
        out.append(f.summary)
        out.append("")
        if f.comments:
            out.append("| line | severity | comment |")
            out.append("| ---: | --- | --- |")
            for c in f.comments:
                out.append(f"| {c.line} | {c.severity} | {_md_escape_cell(c.body)} |")
            out.append("")
    if report.skipped:
        out.append("<details><summary>Skipped files</summary>")
        out.append("")
        out.extend(f"- `{s.path}`: {s.reason}" for s in report.skipped)
        out.append("")
        out.append("</details>")
        out.append("")
    for n in report.notes:
        out.append(f"> {n}")
    return "\n".join(out).rstrip() + "\n"


_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def render_sarif(report: ReviewReport) -> str:
    results = []
    for f in report.files:
        for c in f.comments:
            if c.side != "RIGHT":
                continue
            region: dict[str, int] = {"startLine": c.start_line or c.line}
            if c.start_line:
                region["endLine"] = c.line
            results.append(
                {
                    "ruleId": "review-agent/" + c.severity,
                    "level": _SARIF_LEVEL[c.severity],
                    "message": {"text": c.body},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": f.path},
                                "region": region,
                            }
                        }
                    ],
                }
            )
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "review-agent",
                        "informationUri": "https://github.com/review-agent/review-agent",
                        "rules": [
                            {"id": f"review-agent/{s}", "shortDescription": {"text": f"{s} finding"}}
                            for s in SEVERITY_ORDER
                        ],
                    }
                },
                "versionControlProvenance": [{"revisionId": report.head_sha}],
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2, ensure_ascii=False)


RENDERERS = {
    "text": render_text,
    "markdown": render_markdown,
    "json": render_json,
    "sarif": render_sarif,
}


def render(report: ReviewReport, fmt: str) -> str:
    return RENDERERS[fmt](report)
