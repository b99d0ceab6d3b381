"""Publishing a finished review on its GitHub pull request, exactly once (docs/architecture.md,
"Exactly once").

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
* **Exactly once, by content.** Comments, file summaries and the review body carry hidden
  fingerprints of what they say (``publish.fingerprints``). Before posting, the PR's reviews and
  review comments are listed and what is already there is skipped: a rerun after a crash posts
  only what is missing, a new push repeats nothing it did not change, and a different review at
  the same commit (another reviewer, other findings) is still posted, body included.
  Only what *we* wrote counts: markers in comments by the token's own user, or by a bot (the
  Action's and an App's posts), never by anyone else, so a pull request's author cannot hide a
  finding by posting its marker first (the built-in reviewer's findings are predictable).
* **No blind retries of a write.** A POST that may have landed (5xx, timeout, dropped connection)
  is followed by a fresh listing, and only what is still missing is posted again. The shared
  client retries GET/HEAD only, so no layer below repeats the POST on its own.
* **Bounded waits.** A rate limit whose wait fits ``max_rate_limit_wait`` is waited out; a longer
  one stops the run with ServiceUnavailable (exit 3) saying when to rerun. The review is saved in
  the checkpoint, and the rerun posts what is missing.
* **Fork PRs are normal.** A token that cannot write (a fork PR's ``GITHUB_TOKEN``) gets 403
  "Resource not accessible by integration": that is a result (``read_only``), not a failure; the
  review is still in the report and the job summary.
* **Few but relevant comments** (``publish.noise``): a finding repeated in several places is
  one comment listing the others; ``info`` findings and those over ``max_inline_comments`` go
  to the body. Decided from the report and the diff alone, so a rerun decides the same.
* **Model text is untrusted.** Everything it wrote goes through the one sanitiser
  (``publish.markdown``) with the pull request's host.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

import requests
from github import GithubException
from github.Commit import Commit
from github.NamedUser import NamedUser
from github.PullRequest import PullRequest
from github.PullRequestReview import PullRequestReview

from review_agent.errors import BadInput, ServiceUnavailable
from review_agent.github.auth import InstallationCredentials
from review_agent.github.errors import describe, is_rate_limited, may_have_landed, message_of, rate_wait
from review_agent.patches import ParsedPatch, parse_patch
from review_agent.publish.base import PublishResult
from review_agent.publish.fingerprints import (
    comment_fingerprint,
    fingerprints_in,
    marker,
    review_fingerprint,
)
from review_agent.publish.markdown import sanitize
from review_agent.publish.noise import NoisePolicy, apply_policy, group_repeats
from review_agent.publish.report import ReviewReport
from review_agent.publish.review_body import BODY_LIMIT, BodyContext, Item, followup_body, main_body
from review_agent.sources.base import ResolvedTarget
from review_agent.sources.github import GitHubSource
from review_agent.state.schemas import Comment
from review_agent.wording import plural

__all__ = [
    "BODY_LIMIT",
    "EVENTS",
    "GitHubPublisher",
    "PublishResult",
    "comment_fingerprint",
    "fingerprints_in",
    "marker",
    "review_fingerprint",
    "sanitize",
]

EVENTS = ("COMMENT", "APPROVE", "REQUEST_CHANGES")

# 422 answers that are about the review itself, not about where a comment is anchored: moving
# comments to the body cannot fix them
_NOT_ABOUT_ANCHORS = ("your own pull request", "body is required", "commit_id", "pending review")


@dataclass
class _Existing:
    fingerprints: set[str]
    reviews: dict[str, tuple[int, str]]  # review fingerprint -> (id, html_url) of the first holder


class GitHubPublisher:
    """Posts a ReviewReport as one GitHub review on the source's pull request, exactly once.

    It writes through the source's pull request handle (the same client, credentials and error
    mapping) and uses the file list the source resolved, so the review is anchored to the head
    that was reviewed. ``recheck_delay`` is how long to let a POST that may have landed settle
    before listing again; ``max_attempts`` bounds the POSTs that fail that way or on a rate limit.
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
        self.pull = source.pull
        self.max_rate_limit_wait = max_rate_limit_wait
        self.recheck_delay = max(0.0, recheck_delay)
        self.max_attempts = max(1, max_attempts)

    # -- reading what is there ---------------------------------------------------------------

    @cached_property
    def _own_login(self) -> str | None:
        """The login the token posts as, when GitHub says: a user's token answers ``GET /user``;
        an installation's (an App, the Action's ``GITHUB_TOKEN``) is not a user and gets 403, and
        then its posts are known by being a bot's. An App installation is not even asked."""
        if isinstance(self.pull.credentials, InstallationCredentials):
            return None

        def read() -> str | None:
            try:
                return self.pull.github.get_user().login
            except GithubException as exc:
                if exc.status in (401, 403, 404) and not is_rate_limited(exc):
                    return None
                raise

        return self.pull.read(read)

    def _existing(self, pr: PullRequest) -> _Existing:
        """Every fingerprint already on the PR that we put there, from all pages of its review
        comments and reviews."""
        login = self._own_login

        def ours(user: NamedUser | None) -> bool:
            return user is not None and (user.type == "Bot" or (login is not None and user.login == login))

        def read() -> _Existing:
            found: set[str] = set()
            for c in pr.get_review_comments():
                if ours(c.user):
                    found |= fingerprints_in(c.body)
            reviews: dict[str, tuple[int, str]] = {}
            for r in pr.get_reviews():
                if not ours(r.user):
                    continue
                marks = fingerprints_in(r.body)
                found |= marks
                for fp in marks:
                    if fp.startswith("review:"):
                        reviews.setdefault(fp, (r.id, r.html_url or ""))
            return _Existing(found, reviews)

        return self.pull.read(read)

    def _fresh_anchors(self, pr: PullRequest) -> dict[str, ParsedPatch]:
        """The PR's hunks as GitHub lists them now (the source's listing is cached)."""
        return self.pull.read(
            lambda: {f.filename: parse_patch(f.filename, f.patch) for f in pr.get_files() if f.patch}
        )

    def _items(
        self, report: ReviewReport, anchors: dict[str, ParsedPatch], blobs: dict[str, str | None]
    ) -> list[Item]:
        items: list[Item] = []
        seen: set[str] = set()
        for f in report.files:
            blob = blobs.get(f.path) or f.blob_sha
            patch = anchors.get(f.path)
            for c in f.findings:  # those outside the diff too: they go to the body, not lost
                fp = comment_fingerprint(f.path, c, blob)
                if fp in seen:
                    continue  # the same finding twice on the same line: one comment
                seen.add(fp)
                items.append(Item(f.path, c, fp, patch is not None and c.line > 0 and patch.can_anchor(c)))
        return group_repeats(items)

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
        name = self.pull.name
        pr = self.pull.pull_request
        files = self.source.list_files()
        anchors = {f.path: parse_patch(f.path, f.patch) for f in files if f.patch is not None}
        blobs = {f.path: f.blob_sha for f in files}
        items = self._items(report, anchors, blobs)
        review_fp = review_fingerprint(target, report, (i.fingerprint for i in items))
        existing = self._existing(pr)
        before = set(existing.fingerprints)
        already = sum(1 for i in items if i.fingerprint in before)
        policy = NoisePolicy.from_preferences(report.preferences)
        apply_policy(items, policy, before)
        pr_url = target.display.rstrip("/") if "/pull/" in target.display else None

        posted: set[str] = set()  # fingerprints this run saw land (a successful answer)
        first_posted: tuple[int, str] | None = None  # the first review this run posted
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
            if need_body:
                ctx = BodyContext(target, self.pull.ref.host, items, frozenset(there), blobs, policy)
                body, shown = main_body(report, ctx, review_fp)
            else:
                body, shown = followup_body([i for i in missing if not i.inline], self.pull.ref.host, pr_url)
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
                    comments=[i.payload(self.pull.ref.host, pr_url) for i in inline],
                )
            except (GithubException, requests.exceptions.RequestException) as exc:
                if isinstance(exc, GithubException) and is_rate_limited(exc):
                    failures += 1
                    wait = rate_wait(exc)
                    if wait > self.max_rate_limit_wait or failures >= self.max_attempts:
                        raise self._rate_limited(exc) from exc
                    time.sleep(wait)
                    continue  # refused, not applied: nothing can have landed
                if may_have_landed(exc):
                    failures += 1
                    if failures >= self.max_attempts:
                        raise ServiceUnavailable(
                            f"GitHub at {self.pull.api_url} did not confirm the review of {name} "
                            f"after {failures} attempts ({describe(exc)}): rerun later; the review is "
                            "saved and a rerun posts only what is missing"
                        ) from exc
                    # it may be there: let it settle, then trust only what GitHub lists
                    time.sleep(self.recheck_delay * failures)
                    landed_before = existing.fingerprints | posted
                    existing = self._existing(pr)
                    if first_posted is None and review_fp not in landed_before:
                        first_posted = existing.reviews.get(review_fp)
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
                                i.inline, i.why = False, "outside"
                            continue
                    for i in inline:  # GitHub does not say which: keep them all, in the body
                        i.inline, i.why = False, "outside"
                    continue
                if exc.status == 422:
                    raise BadInput(f"GitHub refused the review of {name}: {message_of(exc)}") from exc
                raise self.pull.translate(exc) from exc
            posted |= {i.fingerprint for i in inline} | shown
            if need_body:
                posted.add(review_fp)
            if first_posted is None:
                first_posted = (review.id, review.html_url or "")

        landed = existing.fingerprints | posted
        new = [i for i in items if i.fingerprint not in before and i.fingerprint in landed]
        moved = sum(1 for i in new if not i.inline)
        holder = first_posted or existing.reviews.get(review_fp)
        review_id, review_url = holder if holder is not None else (None, None)
        where = f"review {review_id}" + (f", {review_url}" if review_url else "")
        if first_posted is not None:
            message = (
                f"posted a review on {name} ({where}): {plural(len(new), 'comment')} posted "
                f"({len(new) - moved} inline, {moved} in the review body), {already} already there"
            )
        else:
            there = plural(already, "comment")
            message = f"nothing to post: this review and its {there} are already on {name} ({where})"
        return PublishResult(
            review_id=review_id,
            review_url=review_url or None,
            comments_posted=len(new),
            comments_already_there=already,
            moved_to_body=moved,
            read_only=False,
            message=message,
        )

    def _rate_limited(self, exc: GithubException) -> ServiceUnavailable:
        """The client's rate-limit message (which says when to rerun), plus what a rerun does."""
        err = self.pull.rate_limited(exc)
        return ServiceUnavailable(f"{err}; the review is saved, and a rerun posts only what is missing")

    def _read_only(self, exc: GithubException, target: ResolvedTarget, already: int) -> PublishResult:
        slug = target.repo_slug or self.pull.ref.slug
        if "not accessible" in message_of(exc).lower():
            message = (
                f"the token cannot write to {slug} (a fork PR?): "
                "the review is in the report/job summary instead"
            )
        else:
            message = (
                f"GitHub refused to post on {self.pull.name} (403: {message_of(exc)}): "
                "the review is in the report/job summary instead"
            )
        return PublishResult(comments_already_there=already, read_only=True, message=message)


def _anchorable(patch: ParsedPatch | None, comment: Comment) -> bool:
    return patch is not None and comment.line > 0 and patch.can_anchor(comment)


def _not_about_anchors(exc: GithubException) -> bool:
    text = message_of(exc).lower()
    return any(k in text for k in _NOT_ABOUT_ANCHORS)
