"""The review report, and its text, Markdown, JSON and SARIF renderings.

JSON keeps at least the keys the README documents, so that scripts and the Action can rely on
them. File names, titles and what a model wrote are untrusted: the text and Markdown renderings
show them through ``review_agent.textsafe`` (no control character reaches a terminal, no name
breaks out of its code span); JSON and SARIF keep them exactly.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from review_agent.publish.jsontext import dumps
from review_agent.publish.markdown import sanitize
from review_agent.publish.sarif import render_sarif
from review_agent.publish.walkthrough import render_walkthrough
from review_agent.state.schemas import SEVERITY_ORDER, FileReview, Skipped, Usage, Walkthrough
from review_agent.textsafe import md_block, md_code, md_text, printable, printable_block
from review_agent.wording import plural, severity_tally


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
    # https://HOST/OWNER/REPO of a pull request; locally the git remote's URL (credentials
    # removed), else a file:// URI of the repository. SARIF's versionControlProvenance needs it.
    repository_uri: str = ""
    # what the change does, its top risks, a change table: written once after the files
    walkthrough: Walkthrough | None = None

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
        """Every file's tokens, and the walkthrough's."""
        extra = self.walkthrough.usage if self.walkthrough is not None else Usage()
        return Usage(
            input_tokens=sum(f.usage.input_tokens for f in self.files) + extra.input_tokens,
            output_tokens=sum(f.usage.output_tokens for f in self.files) + extra.output_tokens,
        )

    def findings_by_file(self) -> dict[str, int]:
        return {f.path: len(f.findings) for f in self.files}

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
    return dumps(data)


def _counts(report: ReviewReport) -> tuple[str, str]:
    """("2/3 files reviewed", "1 comment (0 errors, 1 warning, 0 info)")."""
    sev = report.severity_counts()
    files = f"{len(report.reviewed)}/{plural(report.files_total, 'file')} reviewed"
    if report.failed:
        files += f", {len(report.failed)} failed"
    comments = f"{plural(report.comment_count, 'comment')} ({severity_tally(sev)})"
    return files, comments


def _resumed_line(report: ReviewReport) -> str:
    if report.resumed_from:
        return f"resumed: {report.resumed_from}/{plural(report.files_total, 'file')} were already done"
    return "resumed: an earlier run of this review had started, no file was done yet"


def _header_lines(report: ReviewReport) -> list[str]:
    title = f" — {printable(report.title)}" if report.title else ""
    lines = [f"Review of {printable(report.target)}{title}"]
    lines.append(f"head {report.head_sha[:12]}  thread {printable(report.thread_id)}")
    involved = report.reviewers or [report.reviewer]
    who = ("reviewers " if len(involved) > 1 else "reviewer ") + ", ".join(printable(r) for r in involved)
    who += " (offline)" if report.offline else ""
    lines.append(f"{who}  storage {printable(report.backend)}")
    if report.user:
        lines.append(f"preferences of {printable(report.user)}: {plural(len(report.preferences), 'rule')}")
    if report.resumed:
        lines.append(_resumed_line(report))
    return lines


def _indented(text: str, indent: str) -> str:
    return indent + printable_block(text).replace("\n", "\n" + indent)


def render_text(report: ReviewReport) -> str:
    """For a terminal or a CI log: every untrusted string escaped (no control character, no
    line a file name could forge)."""
    out = _header_lines(report)
    out.append("")
    if report.walkthrough is not None:
        out += _walkthrough_text(report.walkthrough)
    for f in report.files:
        path = printable(f.path)
        tag = " (reused)" if f.reused else ""
        tag += "" if f.ok else " (FAILED: not reviewed)"
        out.append(f"== {path}{tag}")
        if len(report.reviewers) > 1 and f.reviewer:  # one reviewer: the header names it
            out.append("   by " + printable(f.reviewer))
        out.append(_indented(f.summary, "   "))
        if f.error:
            out.append("   why: " + printable(f.error))
        for c in f.comments:
            where = f"{path}:{c.line} [{c.severity}] "
            out.append("   " + where + _indented(c.body, "     ").lstrip(" "))
        for c in f.unanchored:
            spot = f"line {c.line}, outside the diff" if c.line > 0 else "the file"
            where = f"{path} ({spot}) [{c.severity}] "
            out.append("   " + where + _indented(c.body, "     ").lstrip(" "))
        out.append("")
    if report.skipped:
        out.append("Skipped:")
        out.extend(f"   {printable(s.path)}: {printable(s.reason)}" for s in report.skipped)
        out.append("")
    for n in report.notes:
        out.append(f"Note: {printable(n)}")
    files, comments = _counts(report)
    out.append(
        f"{files}, {comments}, {len(report.skipped)} skipped, "
        f"{plural(report.model_calls, 'model call')} this run"
    )
    u = report.usage
    if u.input_tokens or u.output_tokens:
        cost = f", about ${report.cost_usd:.4f}" if report.cost_usd is not None else ", price unknown"
        out.append(f"tokens: {u.input_tokens} in, {u.output_tokens} out{cost}")
    return "\n".join(out) + "\n"


def _walkthrough_text(w: Walkthrough) -> list[str]:
    """The walkthrough's overview, effort and top risks for a terminal (the change table is the
    files below)."""
    out = ["Walkthrough:", _indented(w.overview, "   ")]
    if w.effort is not None:
        out.append(f"   review effort: {w.effort}/5")
    for n, r in enumerate(w.risks, 1):
        where = printable(r.path) + (f":{r.line}" if r.line > 0 else "")
        out.append(f"   risk {n}: {where} [{r.severity}] " + _indented(r.text, "     ").lstrip(" "))
    if w.note:
        out.append("   note: " + printable(w.note))
    return [*out, ""]


def _md_cell(text: str, host: str | None = None) -> str:
    """A comment body in a table cell: sanitised like anything posted, one line, and a ``|``
    that does not end the cell."""
    return printable_block(sanitize(text, host=host)).replace("|", "\\|").replace("\n", " ")


def _github_host(report: ReviewReport) -> str | None:
    """The host links in the Markdown report may point at: the reviewed repository's, when it is
    on the web (a job summary is rendered by GitHub, like a posted review)."""
    uri = report.repository_uri
    if not uri.startswith(("https://", "http://")):
        return None
    return uri.split("://", 1)[1].split("/", 1)[0] or None


def render_markdown(report: ReviewReport) -> str:
    """For the job summary and ``--format markdown``: names in code spans no backtick can
    close, plain untrusted text (title, reasons) escaped, model text without control characters
    (it is Markdown by design, kept, but closed: an open fence or HTML block in one summary
    must not swallow the files after it)."""
    host = _github_host(report)

    def model_md(text: str) -> str:  # what a model wrote, with the posted review's sanitiser
        return md_block(sanitize(text, host=host))

    out = [f"## review-agent: {md_text(report.target)}", ""]
    if report.title:
        out += [f"**{md_text(report.title)}**", ""]
    if report.walkthrough is not None:
        out += [
            render_walkthrough(
                report.walkthrough, prose=model_md, code=md_code, findings=report.findings_by_file()
            ),
            "",
        ]
    files, comments = _counts(report)
    out.append(
        f"{files} · {comments} · {len(report.skipped)} skipped · "
        + ("reviewers " if len(report.reviewers) > 1 else "reviewer ")
        + ", ".join(md_code(r) for r in (report.reviewers or [report.reviewer]))
        + (" (offline)" if report.offline else "")
    )
    out.append("")
    for f in report.files:
        failed = "" if f.ok else " — failed, not reviewed"
        out.append(f"### {md_code(f.path)}" + (" (reused)" if f.reused else "") + failed)
        out.append("")
        out.append(model_md(f.summary))
        if f.error:
            out += ["", "Not reviewed: " + md_text(f.error)]
        out.append("")
        if f.comments:
            out.append("| line | severity | comment |")
            out.append("| ---: | --- | --- |")
            for c in f.comments:
                out.append(f"| {c.line} | {c.severity} | {_md_cell(c.body, host)} |")
            out.append("")
        if f.unanchored:
            out.append("Outside the diff:")
            out.append("")
            for c in f.unanchored:
                out.append(f"- line {c.line} ({c.severity}): {_md_cell(c.body, host)}")
            out.append("")
    if report.skipped:
        out.append("<details><summary>Skipped files</summary>")
        out.append("")
        out.extend(f"- {md_code(s.path)}: {md_text(s.reason)}" for s in report.skipped)
        out.append("")
        out.append("</details>")
        out.append("")
    for n in report.notes:
        out.append(f"> {md_text(n)}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


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


def _total_cost(files: list[FileReview], walkthrough: Walkthrough | None = None) -> float | None:
    costs = [f.cost_usd for f in files if f.model_calls or f.cost_usd]
    if walkthrough is not None and (walkthrough.model_calls or walkthrough.cost_usd):
        costs.append(walkthrough.cost_usd)
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
    repository_uri: str = "",
    not_reached_reason: str | None = None,
    walkthrough: Walkthrough | None = None,
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
        notes.append(f"{plural(suppressed, 'finding')} dropped: they match findings dismissed earlier")
    reused = [f.path for f in files if f.reused]
    if reused and len(reused) < len(files):
        notes.append(
            f"{plural(len(files) - len(reused), 'file')} new or changed since the last review; "
            f"{len(reused)} unchanged, taken from it"
        )
    failed = [f for f in files if not f.ok]
    if failed:
        notes.append(f"{plural(len(failed), 'file')} could not be reviewed; rerun to retry them")
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
        cost_usd=_total_cost(files, walkthrough),
        reviewer=reviewer,
        reviewers=involved or [reviewer],
        offline=offline,
        backend=backend,
        user=values.get("user"),
        preferences=values.get("preferences") or {},
        notes=notes,
        posted=values.get("posted"),
        repository_uri=repository_uri,
        walkthrough=walkthrough,
    )
