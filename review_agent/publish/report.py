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
    reviewer: str = ""  # this run's reviewer
    reviewers: list[str] = Field(default_factory=list)  # the reviewers whose reviews are reported
    offline: bool = False
    backend: str = ""
    user: str | None = None
    preferences: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    posted: dict[str, Any] | None = None  # what was published on the PR, when --post

    @property
    def comment_count(self) -> int:
        """Every finding, inline or in the body (a finding counts wherever it lands)."""
        return sum(len(f.findings) for f in self.files)

    @property
    def reviewed(self) -> list[FileReview]:
        return [f for f in self.files if f.ok]

    @property
    def failed(self) -> list[FileReview]:
        """Files whose review failed: listed with the reason, not counted as reviewed."""
        return [f for f in self.files if not f.ok]

    @property
    def usage(self) -> Usage:
        return Usage(
            input_tokens=sum(f.usage.input_tokens for f in self.files),
            output_tokens=sum(f.usage.output_tokens for f in self.files),
        )

    def severity_counts(self) -> dict[str, int]:
        counts = {k: 0 for k in SEVERITY_ORDER}
        for f in self.files:
            for c in f.findings:
                counts[c.severity] += 1
        return counts


def render_json(report: ReviewReport) -> str:
    data = report.model_dump(mode="json")
    data["comment_count"] = report.comment_count
    data["files_reviewed"] = len(report.reviewed)
    data["files_failed"] = len(report.failed)
    data["usage"] = report.usage.model_dump()
    return json.dumps(data, indent=2, ensure_ascii=False)


def _header_lines(report: ReviewReport) -> list[str]:
    lines = [f"Review of {report.target}" + (f" — {report.title}" if report.title else "")]
    lines.append(f"head {report.head_sha[:12]}  thread {report.thread_id}")
    involved = report.reviewers or [report.reviewer]
    who = ("reviewers " if len(involved) > 1 else "reviewer ") + ", ".join(involved)
    who += " (offline)" if report.offline else ""
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
        tag += "" if f.ok else " (FAILED: not reviewed)"
        out.append(f"== {f.path}{tag}  [{f.reviewer}]" if f.reviewer else f"== {f.path}{tag}")
        out.append(f"   {f.summary}".replace("\n", "\n   "))
        if f.error:
            out.append(f"   why: {f.error}")
        for c in f.comments:
            out.append(f"   {f.path}:{c.line} [{c.severity}] {c.body}".replace("\n", "\n     "))
        for c in f.unanchored:
            where = f"line {c.line}, outside the diff" if c.line > 0 else "the file"
            out.append(f"   {f.path} ({where}) [{c.severity}] {c.body}".replace("\n", "\n     "))
        out.append("")
    if report.skipped:
        out.append("Skipped:")
        out.extend(f"   {s.path}: {s.reason}" for s in report.skipped)
        out.append("")
    for n in report.notes:
        out.append(f"Note: {n}")
    sev = report.severity_counts()
    out.append(
        f"{len(report.reviewed)}/{report.files_total} files reviewed"
        + (f", {len(report.failed)} failed" if report.failed else "")
        + f", {report.comment_count} comments "
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
        f"{len(report.reviewed)}/{report.files_total} files reviewed · "
        + (f"{len(report.failed)} failed · " if report.failed else "")
        + f"{report.comment_count} comments "
        f"({sev['error']} error, {sev['warning']} warning, {sev['info']} info) · "
        f"{len(report.skipped)} skipped · reviewer `{', '.join(report.reviewers or [report.reviewer])}`"
        + (" (offline)" if report.offline else "")
    )
    out.append("")
    for f in report.files:
        out.append(f"### `{f.path}`" + (" (reused)" if f.reused else "") + ("" if f.ok else " — failed"))
        out.append("")
        out.append(f.summary)
        if f.error:
            out += ["", f"Not reviewed: {f.error}"]
        out.append("")
        if f.comments:
            out.append("| line | severity | comment |")
            out.append("| ---: | --- | --- |")
            for c in f.comments:
                out.append(f"| {c.line} | {c.severity} | {_md_escape_cell(c.body)} |")
            out.append("")
        if f.unanchored:
            out.append("Outside the diff:")
            out.append("")
            for c in f.unanchored:
                out.append(f"- line {c.line} ({c.severity}): {_md_escape_cell(c.body)}")
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
        for c in f.findings:
            if c.side != "RIGHT" or c.line < 1:
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


def files_failed_message(report: ReviewReport) -> str:
    n = len(report.failed)
    return f"{n} file{'' if n == 1 else 's'} could not be reviewed; rerun to retry them"


def _total_cost(files: list[FileReview]) -> float | None:
    costs = [f.cost_usd for f in files if f.model_calls or f.cost_usd]
    if any(c is None for c in costs):
        return None
    return round(sum(c for c in costs if c is not None), 6)


def build_report(
    values: dict[str, Any],
    reviews: dict[str, FileReview],
    plan: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    *,
    backend: str,
    reviewer: str,
    model_calls: int,
    resumed: bool,
    done_before: int,
    offline: bool,
    not_reached_reason: str | None = None,
) -> ReviewReport:
    """The report of a review from its saved state: the final graph values, the saved per-file
    reviews and the plan. Files of the plan that no run reached are listed as skipped, with
    ``not_reached_reason`` (an earlier stop at this run's ``--max-files``)."""
    target = values.get("target") or {}
    plan_paths = [p["path"] for p in plan]
    files = [reviews[p] for p in plan_paths if p in reviews]
    skipped_files = [Skipped.model_validate(s) for s in skipped]
    if not_reached_reason:
        skipped_files += [Skipped(path=p, reason=not_reached_reason) for p in plan_paths if p not in reviews]
    notes = list(target.get("notes") or []) + list(values.get("notes") or [])
    suppressed = sum(f.suppressed for f in files)
    if suppressed:
        notes.append(f"{suppressed} finding(s) dropped: they match findings dismissed earlier")
    reused = [f.path for f in files if f.reused]
    if reused and len(reused) < len(files):
        notes.append(
            f"{len(files) - len(reused)} file(s) new or changed since the last review; "
            f"{len(reused)} unchanged, taken from it"
        )
    failed = [f for f in files if not f.ok]
    if failed:
        notes.append(f"{len(failed)} file(s) could not be reviewed; rerun the same command to retry them")
    involved = sorted({f.reviewer for f in files if f.ok and f.reviewer and f.reviewer != "symlink"})
    return ReviewReport(
        target=target.get("display", ""),
        thread_id=values.get("thread_id", ""),
        head_sha=target.get("head_sha", ""),
        base_sha=target.get("base_sha", ""),
        title=target.get("title", ""),
        resumed=resumed,
        resumed_from=done_before,
        files_total=values.get("files_total", len(plan_paths)),
        files=files,
        skipped=skipped_files,
        model_calls=model_calls,
        model_calls_total=values.get("model_calls", 0),
        cost_usd=_total_cost(files),
        reviewer=reviewer,
        reviewers=involved or [reviewer],
        offline=offline,
        backend=backend,
        user=values.get("user"),
        preferences=values.get("preferences") or {},
        notes=notes,
        posted=values.get("posted"),
    )
