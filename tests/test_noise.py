"""Less noise on the pull request: a finding repeated in several places is one comment that
lists the others, info findings stay out of the diff by default, and a review posts at most
``max_inline_comments`` inline (default 25), the rest in the body by severity. Each rerun posts
nothing twice. Against the fake GitHub through the real PyGithub."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from review_agent.publish.fingerprints import comment_fingerprint, fingerprints_in
from review_agent.publish.github import GitHubPublisher
from review_agent.publish.noise import NoisePolicy
from review_agent.publish.report import ReviewReport
from review_agent.repo_config import parse_repo_config
from review_agent.sources.github import GitHubSource
from review_agent.state.schemas import ChangeRow, Comment, FileReview, Risk, Walkthrough
from tests.fakes.github_server import FakeGitHub, make_file

TOKEN = "ghp_fake_noise_token_0123456789"
PR_URL = "https://github.com/octo/demo/pull/7"
HEAD = "a" * 40
POSTS = "/pulls/7/reviews"


def path(i: int) -> str:
    return f"src/m{i:02d}.py"


def content(i: int, version: int = 1) -> str:
    return "".join(f"x{k} = {i} * {version}\n" for k in range(40))


def patch(version: int = 1) -> str:
    """Forty added lines: RIGHT lines 1-40 are anchorable."""
    return "@@ -0,0 +1,40 @@\n" + "\n".join(f"+x{k} = i * {version}" for k in range(40))


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN, login="review-bot") as fake:
        yield fake


def add_pr(gh: FakeGitHub, n: int) -> None:
    files = [make_file(path(i), patch(), content=content(i), status="added") for i in range(n)]
    gh.add_pr("octo", "demo", 7, files, head_sha=HEAD, base_sha="b" * 40, author="alice")


def publisher(gh: FakeGitHub) -> GitHubPublisher:
    """A fresh source and publisher, as a new process (a rerun) would build them."""
    source = GitHubSource(PR_URL, api_url=gh.url, token=TOKEN, retries=2, backoff=0.001)
    return GitHubPublisher(source, recheck_delay=0.0)


def report(files: dict[str, list[Comment]], *, head: str = HEAD, **kw: Any) -> ReviewReport:
    return ReviewReport(
        target=PR_URL,
        thread_id=f"github.com/octo/demo#7@{head}",
        head_sha=head,
        files_total=len(files),
        files=[FileReview(path=p, summary=f"Summary of {p}.", comments=cs) for p, cs in files.items()],
        reviewer="fake-model",
        **kw,
    )


def inline(gh: FakeGitHub) -> list[dict[str, Any]]:
    return gh.review_comments("octo", "demo", 7)


def test_the_same_finding_on_several_files_is_one_comment_listing_the_others(gh: FakeGitHub) -> None:
    add_pr(gh, 4)
    same = "Missing timeout on this HTTP call."
    rep = report(
        {
            path(0): [Comment(line=3, body=same)],
            path(1): [Comment(line=5, body=same), Comment(line=9, body="Something else.")],
            path(2): [Comment(line=7, severity="error", body=f"  {same}\n")],  # same text, more severe
            path(3): [],
        }
    )
    rep.walkthrough = Walkthrough(
        overview="Adds calls.", risks=[Risk(path=path(0), line=3, text="No timeout.")]
    )
    result = publisher(gh).publish(rep)
    comments = inline(gh)
    assert sorted((c["path"], c["line"]) for c in comments) == [(path(1), 9), (path(2), 7)]
    # the walkthrough's risk on a place that is not its own comment links to the one that is
    anchor2 = hashlib.sha256(path(2).encode()).hexdigest()
    assert (
        f"[`{path(0)}` line 3]({PR_URL}/files#diff-{anchor2}R7): No timeout."
        in gh.reviews("octo", "demo", 7)[0]["body"]
    )
    lead = next(c for c in comments if c["path"] == path(2))
    assert lead["body"].startswith(f"**error**: {same}")
    anchor0 = hashlib.sha256(path(0).encode()).hexdigest()
    assert f"Also on [`{path(0)}` line 3]({PR_URL}/files#diff-{anchor0}R3)" in lead["body"]
    assert f"`{path(1)}` line 5" in lead["body"]
    # its fingerprint is the lead place's own
    blob = make_file(path(2), patch(), content=content(2))["sha"]
    assert fingerprints_in(lead["body"]) == {comment_fingerprint(path(2), rep.files[2].comments[0], blob)}
    (review,) = gh.reviews("octo", "demo", 7)
    assert "1 finding repeated in several places: each posted once" in review["body"]
    assert result.comments_posted == 2

    # a rerun, and a new push that changes only a place listed by the lead, post nothing
    again = publisher(gh).publish(rep)
    assert again.comments_posted == 0 and gh.count("POST", POSTS) == 1
    files = [make_file(path(i), patch(), content=content(i), status="added") for i in range(4)]
    files[0] = make_file(path(0), patch(2), content=content(0, 2), status="added")
    gh.push("octo", "demo", 7, "c" * 40, files)
    pushed = publisher(gh).publish(report({f.path: f.comments for f in rep.files}, head="c" * 40))
    assert pushed.comments_posted == 0
    assert len(inline(gh)) == 2 and sum(c["body"].count(same) for c in inline(gh)) == 1


def test_info_findings_stay_out_of_the_diff_by_default_and_in_the_body(gh: FakeGitHub) -> None:
    add_pr(gh, 2)
    rep = report(
        {
            path(0): [
                Comment(line=2, severity="info", body="A nit."),
                Comment(line=4, body="A real problem."),
            ],
            path(1): [Comment(line=6, severity="info", body="Another nit.")],
        }
    )
    result = publisher(gh).publish(rep)
    assert [(c["path"], c["line"]) for c in inline(gh)] == [(path(0), 4)]
    (review,) = gh.reviews("octo", "demo", 7)
    body = review["body"]
    assert "2 findings below `warning` are listed under their file below, not inline" in body
    block = body.split(f"<summary><code>{path(0)}</code>", 1)[1].split("</details>", 1)[0]
    assert "- **info** on line 2: A nit." in block and "A real problem." not in block
    assert (result.comments_posted, result.moved_to_body) == (3, 2)
    assert publisher(gh).publish(rep).comments_posted == 0 and gh.count("POST", POSTS) == 1

    # severity_threshold = "info" puts them inline again (another PR, same code path)
    assert NoisePolicy.from_preferences({"severity_threshold": "info"}).threshold == "info"
    assert NoisePolicy.from_preferences({}).threshold == "warning"
    assert NoisePolicy.from_preferences({"severity_threshold": "loud"}).threshold == "warning"


def test_inline_comments_are_capped_and_the_rest_ranked_in_the_body(gh: FakeGitHub) -> None:
    add_pr(gh, 3)
    findings: dict[str, list[Comment]] = {path(i): [] for i in range(3)}
    for k in range(30):  # 30 warnings and 3 errors, spread over three files
        findings[path(k % 3)].append(Comment(line=k + 1, body=f"warning number {k}"))
    for i in range(3):
        findings[path(i)].append(Comment(line=35, severity="error", body=f"error in {path(i)}"))
    rep = report(findings)
    result = publisher(gh).publish(rep)
    comments = inline(gh)
    assert len(comments) == 25
    assert sum(c["body"].startswith("**error**") for c in comments) == 3  # the most severe stay inline
    (review,) = gh.reviews("octo", "demo", 7)
    body = review["body"]
    assert "8 more findings over the limit of 25 inline comments (`max_inline_comments`)" in body
    section = body.split("### More findings, by severity", 1)[1].split("<details>", 1)[0]
    listed = re.findall(r"warning number (\d+)", section)
    assert len(listed) == 8 and not set(listed) & {re.search(r"\d+", c["body"])[0] for c in comments}
    assert (result.comments_posted, result.moved_to_body) == (33, 8)
    # every finding is posted once, inline or in the body: a rerun adds nothing
    assert publisher(gh).publish(rep).comments_posted == 0
    assert gh.count("POST", POSTS) == 1


def test_max_inline_comments_comes_from_the_review_preferences(gh: FakeGitHub) -> None:
    add_pr(gh, 1)
    rep = report(
        {path(0): [Comment(line=k + 1, body=f"w{k}") for k in range(5)]},
        preferences={"max_inline_comments": 2},
    )
    publisher(gh).publish(rep)
    assert len(inline(gh)) == 2
    (review,) = gh.reviews("octo", "demo", 7)
    assert "3 more findings over the limit of 2 inline comments" in review["body"]
    config, problem = parse_repo_config("max_inline_comments = 10\n")
    assert problem is None and config.as_preferences() == {"max_inline_comments": 10}
    _, problem = parse_repo_config("max_inline_comments = -1\n")
    assert problem is not None and "max_inline_comments" in problem


def test_files_without_findings_are_a_table_line_not_a_section(gh: FakeGitHub) -> None:
    add_pr(gh, 3)
    rep = report({path(0): [Comment(line=1, body="Careful.")], path(1): [], path(2): []})
    rep.walkthrough = Walkthrough(
        overview="Adds three modules.",
        risks=[Risk(path=path(0), line=1, text="It may break.")],
        changes=[ChangeRow(path=f.path, change=f"adds {f.path}") for f in rep.files],
        effort=1,
    )
    publisher(gh).publish(rep)
    (review,) = gh.reviews("octo", "demo", 7)
    body = review["body"]
    assert body.count("<details><summary><code>") == 1 and f"<code>{path(0)}</code> · 1 finding" in body
    assert all(f"| `{path(i)}` | adds {path(i)} |" in body for i in range(3))
    assert "Summary of src/m01.py." not in body  # its line in the table says it
    assert publisher(gh).publish(rep).comments_posted == 0 and gh.count("POST", POSTS) == 1
