"""Publishing a finished review on its GitHub pull request, exactly once (DESIGN.md §5).

Why it is built the way it is:

* **One review per run.** Every inline comment goes into one ``create_review`` call, so the PR
  gets one notification and one block in its timeline, not one per finding. The event is
  ``COMMENT`` unless the caller's ``event`` argument (a CLI flag) says otherwise: nothing the
  model wrote can approve or block a pull request.
* **Nothing GitHub would refuse.** A comment on a line outside the file's current diff hunks makes
  GitHub refuse the *whole* review with 422, so every comment is checked against the hunks first
  and a comment that cannot be anchored is written into the review body under its file instead.
  If GitHub still answers 422 (the PR moved under us, or GitHub disagrees with our parser), the
  hunks are read again and the refused comments moved to the body; as a last resort every inline
  comment goes to the body. A comment is never dropped.
* **Exactly once, by content.** Each comment carries a hidden fingerprint derived from what it says
  and where (``<!-- review-agent:comment:… -->``: path, side, lines, body and the file's blob SHA),
  the review body one derived from the PR and its head (``<!-- review-agent:review:… -->``).
  Before posting, the PR's reviews and review comments are listed and what is already there is
  skipped, so a rerun after a crash posts only what is missing, and a new push does not repeat a
  comment on a file it did not change. Python's ``hash()`` is never used: it changes per process.
* **No blind retries of a write.** A POST that may have landed (5xx, timeout, dropped connection)
  is followed by a fresh listing, and only what is still missing is posted again. The source's
  PyGithub client retries GET/HEAD only, so no layer below repeats the POST on its own.
* **Bounded waits.** A rate limit whose wait fits ``max_rate_limit_wait`` is waited out; a longer
  one stops the run with ServiceUnavailable (exit 3) saying when to rerun. The review is saved in
  the checkpoint, and the rerun posts what is missing.
* **Fork PRs are normal.** A token that cannot write (a fork PR's ``GITHUB_TOKEN``) gets 403
  "Resource not accessible by integration": that is a result (``read_only``), not a failure; the
  review is still in the report and the job summary.
* **Model text is untrusted.** It is Markdown for humans, but ``@name`` is neutralised (the model
  must not ping people), fingerprint markers are stripped (it must not forge "already posted"),
  and unbalanced code fences / HTML comments are closed (it must not hide the rest of the body).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests
from github import GithubException
from github.Commit import Commit
from github.PullRequest import PullRequest, ReviewComment
from github.PullRequestReview import PullRequestReview
from pydantic import BaseModel

from review_agent.errors import BadInput, ServiceUnavailable
from review_agent.patches import ParsedPatch, parse_patch
from review_agent.publish.report import ReviewReport
from review_agent.sources.base import ResolvedTarget
from review_agent.sources.github import GitHubSource, _header, _is_rate_limited, _message
from review_agent.state.schemas import Comment

T = TypeVar("T")

EVENTS = ("COMMENT", "APPROVE", "REQUEST_CHANGES")
BODY_LIMIT = 65536  # GitHub's limit on a review body and on an inline comment body
MOVED_COMMENT_LIMIT = 8000  # one comment moved to the body may not crowd out all the others
SUMMARY_MIN = 200  # a summary shortened to fewer characters than this is left out instead
SECONDARY_DEFAULT_WAIT = 60.0  # GitHub: without Retry-After, wait at least a minute
MARKER_OPEN = "<!-- review-agent:"
_MARKER = re.compile(r"<!-- review-agent:((?:comment|review):[0-9a-f]{32}) -->")

# 422 answers that are about the review itself, not about where a comment is anchored: moving
# comments to the body cannot fix them
_NOT_ABOUT_ANCHORS = ("your own pull request", "body is required", "commit_id", "pending review")


class PublishResult(BaseModel):
    """What one ``publish`` call did; plain JSON (it is stored in the checkpoint)."""

    review_id: int | None = None  # the review posted by this run, else the one already there
    comments_posted: int = 0  # comments this run put on the PR (inline or in a review body)
    comments_already_there: int = 0  # found (by fingerprint) before this run posted anything
    moved_to_body: int = 0  # of those posted by this run, written in a review body (no diff line)
    read_only: bool = False
    message: str = ""


# --------------------------------------------------------------------------------------------
# fingerprints


def _digest(kind: str, parts: list[object]) -> str:
    """``kind:<32 hex>`` from sha256 over a canonical JSON of ``parts``: stable across processes,
    machines and Python versions (never ``hash()``)."""
    payload = json.dumps([f"{kind}/v1", *parts], ensure_ascii=False, separators=(",", ":"))
    return f"{kind}:{hashlib.sha256(payload.encode('utf-8')).hexdigest()[:32]}"


def comment_fingerprint(path: str, comment: Comment, blob_sha: str | None) -> str:
    """A comment's identity: where it is (path, side, lines), what it says, and the file it is
    about (blob SHA). Content-derived, so a new push that leaves the file alone gives the same
    fingerprint (the comment is not repeated) and one that changes the file gives a new one."""
    return _digest(
        "comment",
        [path, comment.side, comment.start_line, comment.line, comment.body.strip(), blob_sha or ""],
    )


def review_fingerprint(target: ResolvedTarget) -> str:
    """The review body's identity: the pull request and the head it reviews."""
    pr = f"{(target.host or '').lower()}/{(target.repo_slug or '').lower()}#{target.number}"
    return _digest("review", [pr, target.head_sha])


def marker(fingerprint: str) -> str:
    return f"{MARKER_OPEN}{fingerprint} -->"


def fingerprints_in(text: str | None) -> set[str]:
    return set(_MARKER.findall(text or ""))


# --------------------------------------------------------------------------------------------
# sanitising model text

_FORGED_WHOLE = re.compile(r"<!--\s*review-agent\s*:.*?-->", re.IGNORECASE | re.DOTALL)
_FORGED_OPEN = re.compile(r"<!--\s*review-agent\s*:", re.IGNORECASE)
# a fence opens a code block at the start of a line (GFM: up to three spaces of indent)
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
# an inline code span: a run of backticks closed by a run of the same length
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)
# a GitHub user (@login) or team (@org/team); not an e-mail address, a URL path or code
_MENTION = re.compile(r"(?<![\w`@/.+-])@([A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9_.-]+)?)")


def _strip_markers(text: str) -> str:
    """Remove anything that looks like our fingerprint marker, until nothing does (removing one
    must not join the pieces around it into a new one)."""
    while True:
        cleaned = _FORGED_WHOLE.sub("", text)
        if cleaned == text:  # whole markers first; then openers left without a closing "-->"
            cleaned = _FORGED_OPEN.sub("", text)
        if cleaned == text:
            return cleaned
        text = cleaned


def _neutralise(prose: str) -> str:
    """Mentions into code spans and HTML comment openers into text, outside inline code."""
    out: list[str] = []
    at = 0
    for m in _CODE_SPAN.finditer(prose):
        out.append(_MENTION.sub(r"`@\1`", prose[at : m.start()]).replace("<!--", "&lt;!--"))
        out.append(m.group(0))
        at = m.end()
    out.append(_MENTION.sub(r"`@\1`", prose[at:]).replace("<!--", "&lt;!--"))
    return "".join(out)


def sanitize(text: str) -> str:
    """Model (or other untrusted) text made safe for a review on GitHub, Markdown kept:
    fingerprint markers removed, ``@mentions`` put in code spans so nobody is pinged, an unclosed
    code fence closed and HTML comments opened outside code shown as text, so that the text
    cannot hide what follows it in the body. Code blocks and spans are left as they are: nobody
    is pinged from code."""
    text = _strip_markers(text)
    out: list[str] = []
    prose: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        if fence is None:
            m = _FENCE_OPEN.match(line)
            if m is None or (m.group(1)[0] == "`" and "`" in m.group(2)):
                prose.append(line)
                continue
            if prose:
                out.append(_neutralise("\n".join(prose)))
                prose = []
            fence = m.group(1)
        elif re.fullmatch(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*", line):
            fence = None
        out.append(line)
    if prose:
        out.append(_neutralise("\n".join(prose)))
    if fence is not None:
        out.append(fence)
    return "\n".join(out).strip()


def _fit(raw: str, limit: int, render: Callable[[str], str] = sanitize) -> str:
    """``render(raw)``, with ``raw`` cut (before rendering, so a cut never splits a code span
    and frees a mention) until the result is at most ``limit`` characters."""
    out = render(raw)
    while len(out) > limit and raw:
        raw = raw[: max(0, min(len(raw) - 1, int(len(raw) * 0.9), int(len(raw) * limit / len(out))))]
        out = render(raw.rstrip() + " …")
    return out if len(out) <= limit else out[:limit]


# --------------------------------------------------------------------------------------------
# what to post


@dataclass
class _Item:
    """One comment of the report, with its identity and where it will go."""

    path: str
    comment: Comment
    fingerprint: str
    inline: bool  # False: it goes in the review body under its file

    def payload(self) -> ReviewComment:
        c = self.comment
        body = _fit(c.body, BODY_LIMIT - 200, lambda t: f"**{c.severity}**: {sanitize(t)}")
        out: ReviewComment = {
            "path": self.path,
            "body": f"{body}\n\n{marker(self.fingerprint)}",
            "line": c.line,
            "side": c.side,
        }
        if c.start_line is not None:
            out["start_line"] = c.start_line
            out["start_side"] = c.side
        return out

    def body_entry(self) -> str:
        """The comment as a list item of the review body, its fingerprint included."""
        c = self.comment
        if c.line <= 0:
            where = "the file"
        elif c.start_line is not None:
            where = f"lines {c.start_line}–{c.line}"
        else:
            where = f"line {c.line}"
        if c.side == "LEFT" and c.line > 0:
            where += " (removed side)"
        text = _fit(c.body, MOVED_COMMENT_LIMIT).replace("\n", "\n  ")
        return f"- **{c.severity}** on {where}: {text}\n  {marker(self.fingerprint)}"


@dataclass
class _Piece:
    """A block of the review body. ``rank`` orders what is kept when the body is too long:
    0 the header, 1 comments (they must reach the PR), 2 summaries, 3 skipped files and notes."""

    text: str
    rank: int
    group: str | None = None  # the file whose heading must precede it
    fingerprint: str | None = None
    raw: str | None = None  # a summary's unsanitised text, to shorten it safely


def _code(path: str) -> str:
    """A path as a code span (a backtick in a file name would end it early)."""
    return "`" + path.replace("`", "'") + "`"


def _heading(path: str) -> str:
    return f"### {_code(path)}"


def _compose(pieces: list[_Piece], footer: str, limit: int = BODY_LIMIT) -> tuple[str, set[str], int, int]:
    """The body from ``pieces`` within ``limit`` characters: comments first, then summaries
    (shortened if need be), then the rest. Returns the body, the fingerprints it carries, and how
    many comments and other pieces had to be left out."""
    note_reserve = 400
    budget = limit - len(footer) - 2 - note_reserve
    chosen: dict[int, str] = {}
    headed: set[str] = set()
    left_comments = left_other = 0
    for i in sorted(range(len(pieces)), key=lambda k: (pieces[k].rank, k)):
        p = pieces[i]
        head_cost = len(_heading(p.group)) + 2 if p.group is not None and p.group not in headed else 0
        text = p.text
        if len(text) + 2 + head_cost > budget and p.raw is not None:
            room = budget - head_cost - 2
            text = _fit(p.raw, room) if room >= SUMMARY_MIN else ""
        if not text or len(text) + 2 + head_cost > budget:
            if p.fingerprint is not None:
                left_comments += 1
            else:
                left_other += 1
            continue
        chosen[i] = text
        budget -= len(text) + 2 + head_cost
        if p.group is not None:
            headed.add(p.group)
    blocks: list[str] = []
    shown_groups: set[str] = set()
    for i, p in enumerate(pieces):
        if i not in chosen:
            continue
        if p.group is not None and p.group not in shown_groups:
            shown_groups.add(p.group)
            blocks.append(_heading(p.group))
        blocks.append(chosen[i])
    if left_comments or left_other:
        blocks.append(
            f"> This review is longer than GitHub allows ({limit} characters): "
            f"{left_comments} comment(s) continue in a follow-up review and {left_other} other "
            "part(s) are left out here; the full review is in the report."
        )
    blocks.append(footer)
    body = "\n\n".join(blocks)
    shown = {pieces[i].fingerprint for i in chosen if pieces[i].fingerprint is not None}
    return body, {f for f in shown if f is not None}, left_comments, left_other


def _main_body(
    report: ReviewReport,
    target: ResolvedTarget,
    moved: list[_Item],
    moved_earlier: int,
    review_fp: str,
) -> tuple[str, set[str]]:
    """The review body: counts, each file's summary with its comments that have no diff line,
    skipped files and notes, ending in the review fingerprint."""
    sev = report.severity_counts()
    counts = ", ".join(f"{sev.get(k, 0)} {k}" for k in ("error", "warning", "info"))
    reviewer = f" · reviewer `{report.reviewer}`" if report.reviewer else ""
    header = [
        "## review-agent review",
        "",
        f"**{len(report.files)}/{report.files_total} files reviewed** at `{target.head_sha[:12]}` · "
        f"{report.comment_count} comment(s) ({counts}) · {len(report.skipped)} skipped"
        + reviewer
        + (" (offline)" if report.offline else ""),
    ]
    if report.head_sha and report.head_sha != target.head_sha:
        header += ["", f"Reviewed at `{report.head_sha[:12]}`, posted on the head `{target.head_sha[:12]}`."]
    if moved:
        header += [
            "",
            f"{len(moved)} comment(s) could not be placed on a line of the diff: "
            "they are listed under their file below.",
        ]
    if moved_earlier:
        header += ["", f"{moved_earlier} comment(s) outside the diff were posted earlier: not repeated here."]
    pieces = [_Piece("\n".join(header), 0)]
    by_path: dict[str, list[_Item]] = {}
    for item in moved:
        by_path.setdefault(item.path, []).append(item)
    for f in report.files:
        if f.summary.strip():
            pieces.append(_Piece(sanitize(f.summary), 2, f.path, raw=f.summary))
        pieces.extend(_Piece(i.body_entry(), 1, f.path, i.fingerprint) for i in by_path.pop(f.path, []))
    for path, items in by_path.items():  # not expected: every comment belongs to a reviewed file
        pieces.extend(_Piece(i.body_entry(), 1, path, i.fingerprint) for i in items)
    if report.skipped:
        lines = [f"<details><summary>{len(report.skipped)} file(s) skipped</summary>", ""]
        lines += [f"- {_code(s.path)}: {sanitize(s.reason)}" for s in report.skipped]
        lines += ["", "</details>"]
        pieces.append(_Piece("\n".join(lines), 3))
    pieces.extend(_Piece(f"> {sanitize(n)}".replace("\n", "\n> "), 3) for n in report.notes)
    body, shown, _, _ = _compose(pieces, marker(review_fp))
    return body, shown


def _followup_body(moved: list[_Item]) -> tuple[str, set[str]]:
    """A body for comments still missing when the review body is already there (a partial
    earlier state, or the rest of a body that exceeded GitHub's limit). It has no review
    fingerprint: its comments carry their own."""
    if not moved:
        return "", set()
    pieces = [
        _Piece(
            "## review-agent review (continued)\n\n"
            "Comments that could not be placed on a line of the diff, under their file.",
            0,
        )
    ]
    pieces.extend(_Piece(i.body_entry(), 1, i.path, i.fingerprint) for i in moved)
    body, shown, _, _ = _compose(pieces, "")
    return body.rstrip(), shown


# --------------------------------------------------------------------------------------------
# the publisher


@dataclass
class _Existing:
    fingerprints: set[str]
    review_id: int | None  # the review that carries this head's body fingerprint


class GitHubPublisher:
    """Posts a ReviewReport as one GitHub review on the source's pull request, exactly once.

    It uses the source's PyGithub client (its GET-only retry, its error mapping) and the pull
    request and file list the source resolved, so the review is anchored to the head that was
    reviewed. ``recheck_delay`` is how long to let a POST that may have landed settle before
    listing again; ``max_attempts`` bounds the POSTs that fail that way or on a rate limit.
    """

    def __init__(
        self,
        source: GitHubSource,
        *,
        max_rate_limit_wait: float = 120.0,
        recheck_delay: float = 2.0,
        max_attempts: int = 5,
    ) -> None:
        self.source = source
        self.max_rate_limit_wait = max_rate_limit_wait
        self.recheck_delay = max(0.0, recheck_delay)
        self.max_attempts = max(1, max_attempts)

    # -- helpers ---------------------------------------------------------------------------

    def _pr_name(self, target: ResolvedTarget) -> str:
        return f"{target.repo_slug or self.source.ref.slug}#{target.number}"

    def _reading(self, fn: Callable[[], T]) -> T:
        """Run a read against GitHub; its failures become the source's project errors."""
        try:
            return fn()
        except (GithubException, requests.exceptions.RequestException) as exc:
            raise self.source.translate_error(exc) from exc

    def _existing(self, pr: PullRequest, review_fp: str) -> _Existing:
        """Every fingerprint already on the PR, from all pages of its review comments and reviews."""

        def read() -> _Existing:
            found: set[str] = set()
            for c in pr.get_review_comments():
                found |= fingerprints_in(c.body)
            review_id: int | None = None
            for r in pr.get_reviews():
                marks = fingerprints_in(r.body)
                found |= marks
                if review_fp in marks and review_id is None:
                    review_id = r.id
            return _Existing(found, review_id)

        return self._reading(read)

    def _fresh_anchors(self, pr: PullRequest) -> dict[str, ParsedPatch]:
        """The PR's hunks as GitHub lists them now (the source's listing is cached)."""

        def read() -> dict[str, ParsedPatch]:
            return {f.filename: parse_patch(f.filename, f.patch) for f in pr.get_files() if f.patch}

        return self._reading(read)

    def _rate_wait(self, exc: GithubException) -> float:
        """Seconds GitHub asks us to wait: Retry-After, else until x-ratelimit-reset when the
        budget is spent, else a minute (GitHub's advice for secondary limits)."""
        retry_after = _header(exc.headers, "retry-after")
        if retry_after:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                pass
        if _header(exc.headers, "x-ratelimit-remaining") == "0":
            reset = _header(exc.headers, "x-ratelimit-reset")
            if reset and reset.isdigit():
                return max(0.0, int(reset) - time.time()) + 1.0
        return SECONDARY_DEFAULT_WAIT

    def _items(self, report: ReviewReport, anchors: dict[str, ParsedPatch]) -> list[_Item]:
        blobs = {f.path: f.blob_sha for f in self.source.list_files()}
        items: list[_Item] = []
        seen: set[str] = set()
        for f in report.files:
            blob = blobs.get(f.path) or f.blob_sha
            patch = anchors.get(f.path)
            for c in f.comments:
                fp = comment_fingerprint(f.path, c, blob)
                if fp in seen:
                    continue  # the same finding twice on the same line: one comment
                seen.add(fp)
                items.append(_Item(f.path, c, fp, patch is not None and c.line > 0 and patch.can_anchor(c)))
        return items

    # -- publishing ------------------------------------------------------------------------

    def publish(self, report: ReviewReport, *, event: str = "COMMENT") -> PublishResult:
        """Post what of ``report`` is not on the pull request yet, as one review.

        Raises BadInput for a bad ``event`` or a review GitHub refuses outright (e.g. approving
        one's own PR), ServiceUnavailable when GitHub stays unreachable or rate limited beyond
        ``max_rate_limit_wait``; a token that cannot write gives a ``read_only`` result.
        """
        event = (event or "").strip().upper().replace("-", "_")
        if event not in EVENTS:
            raise BadInput(f"review event must be one of {', '.join(EVENTS)}, not {event!r}")
        target = self.source.resolve()
        name = self._pr_name(target)
        pr = self.source.pull_request
        anchors = {
            f.path: parse_patch(f.path, f.patch) for f in self.source.list_files() if f.patch is not None
        }
        items = self._items(report, anchors)
        review_fp = review_fingerprint(target)
        existing = self._existing(pr, review_fp)
        before = set(existing.fingerprints)
        already = sum(1 for i in items if i.fingerprint in before)
        moved_earlier = sum(1 for i in items if not i.inline and i.fingerprint in before)

        posted: set[str] = set()  # fingerprints this run saw land (a successful answer)
        review_id = existing.review_id
        failures = 0
        refusals = 0
        commit: Commit | None = None
        while True:
            there = existing.fingerprints | posted
            missing = [i for i in items if i.fingerprint not in there]
            need_body = review_fp not in there
            if not missing and not need_body:
                break
            inline = [i for i in missing if i.inline]
            in_body = [i for i in missing if not i.inline]
            if need_body:
                body, shown = _main_body(report, target, in_body, moved_earlier, review_fp)
            else:
                body, shown = _followup_body(in_body)
            if not inline and not shown and not need_body:
                raise RuntimeError("publisher made no progress: a comment fits no review body")  # a bug
            if commit is None:
                commit = Commit(
                    pr.requester,
                    attributes={"sha": target.head_sha},
                    url=f"{pr.base.repo.url}/commits/{target.head_sha}",
                    completed=True,  # pins the review to the reviewed head without a request
                )
            try:
                review: PullRequestReview = pr.create_review(
                    commit=commit,
                    body=body,
                    event=event if need_body else "COMMENT",
                    comments=[i.payload() for i in inline],
                )
            except (GithubException, requests.exceptions.RequestException) as exc:
                if isinstance(exc, GithubException) and _is_rate_limited(exc):
                    failures += 1
                    wait = self._rate_wait(exc)
                    if wait > self.max_rate_limit_wait or failures >= self.max_attempts:
                        raise self._rate_limited(exc) from exc
                    time.sleep(wait)
                    continue  # refused, not applied: nothing can have landed
                if _may_have_landed(exc):
                    failures += 1
                    if failures >= self.max_attempts:
                        raise ServiceUnavailable(
                            f"GitHub at {self.source.api_url} did not confirm the review of {name} "
                            f"after {failures} attempts ({_describe(exc)}): rerun later; the review is "
                            "saved and a rerun posts only what is missing"
                        ) from exc
                    # it may be there: let it settle, then trust only what GitHub lists
                    time.sleep(self.recheck_delay * failures)
                    existing = self._existing(pr, review_fp)
                    if existing.review_id is not None:
                        review_id = existing.review_id
                    continue
                assert isinstance(exc, GithubException)
                if exc.status == 403:
                    return self._read_only(exc, target, already)
                if exc.status == 422 and inline and not _not_about_anchors(exc):
                    refusals += 1
                    if refusals == 1:
                        fresh = self._fresh_anchors(pr)
                        stale = [i for i in inline if not _anchorable(fresh.get(i.path), i.comment)]
                        if stale:
                            for i in stale:
                                i.inline = False
                            continue
                    for i in inline:  # GitHub does not say which: keep them all, in the body
                        i.inline = False
                    continue
                if exc.status == 422:
                    raise BadInput(f"GitHub refused the review of {name}: {_message(exc)}") from exc
                raise self.source.translate_error(exc) from exc
            posted |= {i.fingerprint for i in inline} | shown
            if need_body:
                posted.add(review_fp)
            review_id = review.id

        landed = existing.fingerprints | posted
        new = [i for i in items if i.fingerprint not in before and i.fingerprint in landed]
        moved = sum(1 for i in new if not i.inline)
        if review_fp not in before or new:
            message = (
                f"posted a review on {name}: {len(new)} comment(s) ({len(new) - moved} inline, "
                f"{moved} in the review body), {already} already there"
            )
        else:
            message = f"nothing to post: the review and its {already} comment(s) are already on {name}"
        return PublishResult(
            review_id=review_id,
            comments_posted=len(new),
            comments_already_there=already,
            moved_to_body=moved,
            read_only=False,
            message=message,
        )

    def _rate_limited(self, exc: GithubException) -> ServiceUnavailable:
        """The source's rate-limit message (which says when to rerun), plus what a rerun does."""
        err = self.source.translate_error(exc)
        return ServiceUnavailable(f"{err}; the review is saved, and a rerun posts only what is missing")

    def _read_only(self, exc: GithubException, target: ResolvedTarget, already: int) -> PublishResult:
        slug = target.repo_slug or self.source.ref.slug
        if "not accessible" in _message(exc).lower():
            message = (
                f"the token cannot write to {slug} (a fork PR?): "
                "the review is in the report/job summary instead"
            )
        else:
            message = (
                f"GitHub refused to post on {self._pr_name(target)} (403: {_message(exc)}): "
                "the review is in the report/job summary instead"
            )
        return PublishResult(comments_already_there=already, read_only=True, message=message)


def _anchorable(patch: ParsedPatch | None, comment: Comment) -> bool:
    return patch is not None and comment.line > 0 and patch.can_anchor(comment)


def _not_about_anchors(exc: GithubException) -> bool:
    text = _message(exc).lower()
    return any(k in text for k in _NOT_ABOUT_ANCHORS)


def _may_have_landed(exc: Exception) -> bool:
    """A failure after which the POST may have been applied: a 5xx, a timeout, a connection lost
    while waiting for the answer. (A refused connection has not landed, but listing again is
    harmless, so it is treated the same.)"""
    if isinstance(exc, GithubException):
        return exc.status >= 500
    return isinstance(exc, requests.exceptions.RequestException)


def _describe(exc: Exception) -> str:
    if isinstance(exc, GithubException):
        return f"HTTP {exc.status}"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    return "connection lost"
