"""The GitHub source against the fake GitHub server, through the real PyGithub over HTTP.

Also checks the two behaviours of the fake that later tests (posting reviews exactly once) rely
on: GitHub's 422 for a comment outside the diff, and a POST that lands but answers 502.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from review_agent.errors import BadInput, ServiceUnavailable
from review_agent.sources.github import (
    EMPTY_BLOB_SHA,
    GitHubSource,
    PullRequestRef,
    parse_pr_url,
)
from tests.fakes.github_server import FakeGitHub, added_file_patch, make_file

TOKEN = "ghp_fake_valid_token_0123456789"
PR_URL = "https://github.com/octo/demo/pull/7"
MODIFIED_PATCH = "@@ -1,4 +1,5 @@\n import os\n-x = 1\n+x = 2\n+y = 3\n \n def f():"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN, login="review-bot") as fake:
        yield fake


def make_source(gh: FakeGitHub | None, url: str = PR_URL, **kw: Any) -> GitHubSource:
    """A source with retries that take milliseconds, pointed at the fake."""
    kw.setdefault("token", TOKEN)
    kw.setdefault("api_url", gh.url if gh is not None else None)
    kw.setdefault("retries", 2)
    kw.setdefault("backoff", 0.001)
    kw.setdefault("max_rate_limit_wait", 5.0)
    kw.setdefault("secondary_rate_wait", 0.01)
    return GitHubSource(url, **kw)


def add_demo_pr(gh: FakeGitHub, **kw: Any) -> None:
    files = [
        make_file("src/app.py", MODIFIED_PATCH, content="import os\nx = 2\ny = 3\n\ndef f():\n"),
        make_file(
            "README.md", added_file_patch(["# demo", "hello"]), status="added", content="# demo\nhello\n"
        ),
    ]
    kw.setdefault("title", "Make x two")
    kw.setdefault("author", "alice")
    gh.add_pr("octo", "demo", 7, files, head_sha="a" * 40, base_sha="b" * 40, **kw)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- parsing the target -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (PR_URL, PullRequestRef("github.com", "octo", "demo", 7)),
        ("https://github.com/octo/demo/pull/7/files", PullRequestRef("github.com", "octo", "demo", 7)),
        (
            "https://github.com/octo/demo/pull/7/commits/abc?w=1#r1",
            PullRequestRef("github.com", "octo", "demo", 7),
        ),
        ("github.com/octo/demo/pull/7", PullRequestRef("github.com", "octo", "demo", 7)),
        (
            "  https://WWW.GitHub.com/octo/my.repo_x/pull/12/  ",
            PullRequestRef("github.com", "octo", "my.repo_x", 12),
        ),
        ("https://ghe.example.com/team/svc/pull/3", PullRequestRef("ghe.example.com", "team", "svc", 3)),
        (
            "http://ghe.local:8080/team/svc/pull/3",
            PullRequestRef("ghe.local:8080", "team", "svc", 3, scheme="http"),
        ),
        ("https://api.github.com/repos/octo/demo/pulls/7", PullRequestRef("github.com", "octo", "demo", 7)),
    ],
)
def test_parse_pr_url_accepts_pull_request_urls(text: str, expected: PullRequestRef) -> None:
    assert parse_pr_url(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "https://github.com/octo/demo",
        "https://github.com/octo/demo/issues/7",
        "https://github.com/octo/demo/pull/abc",
        "https://github.com/octo/demo/pull/0",
        "ftp://github.com/octo/demo/pull/7",
        "https://github.com/pull/7",
        "./some/local/path",
    ],
)
def test_parse_pr_url_rejects_other_text_with_one_line(text: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_pr_url(text)
    message = str(info.value)
    assert "\n" not in message
    assert "pull" in message  # says what a valid target looks like
    assert info.value.exit_code == 2


def test_credentials_in_the_url_are_refused_and_never_echoed() -> None:
    with pytest.raises(BadInput) as info:
        parse_pr_url("https://x-access-token:ghs_SECRET123@github.com/octo/demo/pull/7")
    assert "ghs_SECRET123" not in str(info.value)
    assert "GITHUB_TOKEN" in str(info.value)


@pytest.mark.parametrize(
    ("url", "api_url", "expected"),
    [
        (PR_URL, None, "https://api.github.com"),
        ("https://ghe.example.com/team/svc/pull/3", None, "https://ghe.example.com/api/v3"),
        ("https://octo.ghe.com/team/svc/pull/3", None, "https://api.octo.ghe.com"),
        (
            "https://ghe.example.com/team/svc/pull/3",
            "https://gh-api.internal/api/v3/",
            "https://gh-api.internal/api/v3",
        ),
        (PR_URL, "http://127.0.0.1:9999/api/v3", "http://127.0.0.1:9999/api/v3"),
    ],
)
def test_api_url_is_derived_from_the_host_unless_given(url: str, api_url: str | None, expected: str) -> None:
    assert GitHubSource(url, None, api_url).api_url == expected


def test_bad_api_url_is_bad_input() -> None:
    with pytest.raises(BadInput, match="GITHUB_API_URL"):
        GitHubSource(PR_URL, None, "ghe.example.com/api/v3")


def test_enterprise_host_without_api_url_talks_to_host_api_v3(gh: FakeGitHub) -> None:
    """The derived Enterprise URL is really used: the fake serves /api/v3 on its own host."""
    add_demo_pr(gh)
    source = make_source(gh, f"{gh.root}/octo/demo/pull/7/files", api_url=None)
    assert source.api_url == gh.url
    target = source.resolve()
    assert target.host == f"127.0.0.1:{gh.port}"
    assert target.display == f"http://127.0.0.1:{gh.port}/octo/demo/pull/7"
    assert gh.requests[0].path == "/api/v3/repos/octo/demo/pulls/7"


# --- resolve and list -----------------------------------------------------------------------------


def test_resolve_reads_the_pull_request(gh: FakeGitHub) -> None:
    add_demo_pr(gh, head_ref="feature/x", base_ref="develop")
    target = make_source(gh, "https://github.com/OCTO/Demo/pull/7/files").resolve()
    assert target.kind == "github"
    # canonical: the repository's own spelling, whatever the user typed
    assert target.display == PR_URL
    assert target.repo_slug == "octo/demo"
    assert (target.host, target.number) == ("github.com", 7)
    assert (target.head_sha, target.base_sha) == ("a" * 40, "b" * 40)
    assert (target.head_ref, target.base_ref) == ("feature/x", "develop")
    assert target.title == "Make x two"
    assert target.author == "alice"
    assert target.changed_files == 2
    assert target.notes == ()
    # the token went in the Authorization header, which the fake does not record
    assert all(TOKEN not in str(r.headers) for r in gh.requests)


def test_resolve_is_pinned_to_the_first_head(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    source = make_source(gh)
    first = source.resolve()
    gh.push("octo", "demo", 7, "c" * 40)
    assert source.resolve().head_sha == first.head_sha == "a" * 40
    assert gh.count("GET", "/pulls/7") == 1


def test_list_files_reads_every_page_by_link_headers(gh: FakeGitHub) -> None:
    files = [
        make_file(f"pkg/m{i:03d}.py", added_file_patch([f"x = {i}"]), status="added") for i in range(250)
    ]
    gh.add_pr("octo", "demo", 7, list(reversed(files)))
    source = make_source(gh)
    listed = source.list_files()
    assert [f.path for f in listed] == sorted(f"pkg/m{i:03d}.py" for i in range(250))
    pages = gh.requests_to("GET", "/pulls/7/files")
    assert len(pages) == 3
    assert pages[0].query == {"per_page": "100"}
    assert [p.query.get("page") for p in pages[1:]] == ["2", "3"]  # followed from rel="next"
    first = source.get_file("pkg/m000.py")
    assert first is not None and first.patch == "@@ -0,0 +1,1 @@\n+x = 0" and first.additions == 1
    # cached: per-file lookups and a second listing cost no request
    requests_before = len(gh.requests)
    assert all(source.get_file(f.path) == f for f in source.list_files())
    assert source.get_file("not/in/the/pr.py") is None
    assert len(gh.requests) == requests_before
    assert not source.truncated


def test_file_kinds_are_told_apart(gh: FakeGitHub) -> None:
    gh.add_pr(
        "octo",
        "demo",
        7,
        [
            make_file("logo.png", None, status="added", content=b"\x89PNG\r\n\x1a\n\0\0"),
            make_file("huge.sql", None, status="modified", additions=40000, deletions=10),
            make_file("empty.txt", None, status="added", content=""),
            make_file("new/name.py", None, status="renamed", previous_filename="old/name.py"),
            make_file("gone.py", "@@ -1,2 +0,0 @@\n-a\n-b", status="removed"),
            make_file("src/app.py", MODIFIED_PATCH),
        ],
    )
    files = {f.path: f for f in make_source(gh).list_files()}
    assert files["logo.png"].is_binary and files["logo.png"].patch is None
    assert not files["huge.sql"].is_binary and files["huge.sql"].patch is None  # too large to show
    assert files["huge.sql"].additions == 40000
    assert not files["empty.txt"].is_binary and files["empty.txt"].blob_sha == EMPTY_BLOB_SHA
    assert files["new/name.py"].previous_path == "old/name.py" and not files["new/name.py"].is_binary
    assert files["gone.py"].status == "removed" and files["gone.py"].blob_sha is None
    assert files["gone.py"].deletions == 2
    app = files["src/app.py"]
    assert (app.status, app.additions, app.deletions, app.is_binary) == ("modified", 2, 1, False)
    assert app.patch == MODIFIED_PATCH


def test_truncated_listing_is_noted(gh: FakeGitHub) -> None:
    files = [make_file(f"f{i}.py", added_file_patch(["x"]), status="added") for i in range(3)]
    gh.add_pr("octo", "demo", 7, files, changed_files=5)
    source = make_source(gh)
    assert source.resolve().notes == ()  # not known before the listing
    assert len(source.list_files()) == 3
    assert source.truncated
    (note,) = source.resolve().notes
    assert "3 of the 5" in note
    assert source.notes == (note,)


def test_github_lists_at_most_3000_files(gh: FakeGitHub) -> None:
    files = [make_file(f"d/f{i:04d}.txt", "@@ -1 +1 @@\n-a\n+b") for i in range(3005)]
    gh.add_pr("octo", "demo", 7, files)
    source = make_source(gh)
    assert any("at most 3000" in n for n in source.resolve().notes)  # known from changed_files
    assert len(source.list_files()) == 3000
    assert source.truncated
    assert any("3000 of the 3005" in n for n in source.resolve().notes)


# --- errors -------------------------------------------------------------------------------------


def test_unknown_pull_request_is_bad_input(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    with pytest.raises(BadInput) as info:
        make_source(gh, "https://github.com/octo/demo/pull/8").resolve()
    assert str(info.value) == (
        "pull request octo/demo#8 not found at github.com "
        "(check the URL, and that GITHUB_TOKEN can read the repository)"
    )
    assert gh.count("GET", "/pulls/8") == 1  # a 404 is an answer, not retried


def test_unknown_repository_is_bad_input(gh: FakeGitHub) -> None:
    with pytest.raises(BadInput, match="octo/nope#7 not found"):
        make_source(gh, "https://github.com/octo/nope/pull/7").list_files()


def test_private_repository_without_token_looks_missing(gh: FakeGitHub) -> None:
    add_demo_pr(gh, private=True)
    with pytest.raises(BadInput, match="not found"):
        make_source(gh, token=None).resolve()
    assert make_source(gh).resolve().number == 7


def test_bad_token_is_bad_input_without_the_token(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    bad = "ghp_WRONG_TOKEN_abcdef"
    with pytest.raises(BadInput) as info:
        make_source(gh, token=bad).resolve()
    assert str(info.value) == "GitHub rejected the token (401): set a valid GITHUB_TOKEN"
    assert bad not in repr(info.value.__cause__)
    assert gh.requests[-1].login is None


def test_primary_rate_limit_says_when_to_rerun(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    gh.rate_limit_next("GET", "/pulls/7", reset_in=3600)
    with pytest.raises(ServiceUnavailable) as info:
        make_source(gh).resolve()
    message = str(info.value)
    assert "rate limit" in message
    assert re.search(r"rerun after \d\d:\d\d:\d\d UTC \(in about 60 min\)", message), message
    assert info.value.exit_code == 3
    assert gh.count("GET", "/pulls/7") == 1  # a reset an hour away is not waited for


def test_429_rate_limit_is_service_unavailable(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    gh.rate_limit_next("GET", "/pulls/7/files", status=429, reset_in=600)
    with pytest.raises(ServiceUnavailable, match=r"rate limit.*in about 10 min"):
        make_source(gh).list_files()


def test_exhausted_rate_limit_budget_is_service_unavailable(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    gh.set_rate_limit(0, reset_in=1800)
    with pytest.raises(ServiceUnavailable, match=r"in about 30 min"):
        make_source(gh).resolve()


def test_secondary_rate_limit_is_retried(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    gh.rate_limit_next("GET", "/pulls/7", kind="secondary")
    assert make_source(gh).resolve().number == 7
    assert [r.status for r in gh.requests_to("GET", "/pulls/7")] == [403, 200]


def test_secondary_rate_limit_that_persists_is_service_unavailable(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    gh.rate_limit_next("GET", "/pulls/7", kind="secondary", times=10)
    with pytest.raises(ServiceUnavailable, match="rate limit"):
        make_source(gh, retries=2).resolve()
    assert gh.count("GET", "/pulls/7") == 3


def test_long_retry_after_is_not_slept_through(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    gh.rate_limit_next("GET", "/pulls/7", kind="secondary", retry_after=900)
    with pytest.raises(ServiceUnavailable, match=r"rerun after .* \(in about 15 min\)"):
        make_source(gh, max_rate_limit_wait=60).resolve()
    assert gh.count("GET", "/pulls/7") == 1


def test_long_retry_after_on_a_server_error_is_not_slept_through(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    gh.fail_next("GET", "/pulls/7", 503, retry_after=900)
    with pytest.raises(ServiceUnavailable, match="unreachable: HTTP 503"):
        make_source(gh, max_rate_limit_wait=60).resolve()
    assert gh.count("GET", "/pulls/7") == 1


def test_server_errors_are_retried_then_succeed(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    gh.fail_next("GET", "/pulls/7", 502, times=2)
    gh.fail_next("GET", "/pulls/7/files", 500)
    source = make_source(gh, retries=2)
    assert source.resolve().head_sha == "a" * 40
    assert len(source.list_files()) == 2
    assert [r.status for r in gh.requests_to("GET", "/pulls/7")] == [502, 502, 200]
    assert [r.status for r in gh.requests_to("GET", "/pulls/7/files")] == [500, 200]
    assert gh.pending_faults == []


def test_server_errors_after_retries_are_service_unavailable(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    gh.fail_next("GET", "/pulls/7", 503, times=10)
    with pytest.raises(ServiceUnavailable) as info:
        make_source(gh, retries=3).resolve()
    assert str(info.value) == f"GitHub at {gh.url} unreachable: HTTP 503 after 4 attempts"
    assert gh.count("GET", "/pulls/7") == 4


def test_dropped_connections_are_retried(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    gh.fail_next("GET", "/pulls/7", None, disconnect=True)
    assert make_source(gh).resolve().number == 7
    assert gh.count("GET", "/pulls/7") == 2


def test_unreachable_host_is_service_unavailable() -> None:
    api = f"http://127.0.0.1:{closed_port()}/api/v3"
    with pytest.raises(ServiceUnavailable) as info:
        make_source(None, api_url=api, retries=1).resolve()
    assert str(info.value).startswith(f"GitHub at {api} unreachable: ")
    assert "refused" in str(info.value).lower()
    assert TOKEN not in str(info.value)


def test_slow_server_times_out_as_service_unavailable(gh: FakeGitHub) -> None:
    add_demo_pr(gh)
    gh.delay_next("GET", "/pulls/7", 3.0)
    with pytest.raises(ServiceUnavailable, match="no answer within 1s"):
        make_source(gh, timeout=1, retries=0).resolve()


# --- contents -----------------------------------------------------------------------------------


def test_get_content_reads_the_file_at_head(gh: FakeGitHub) -> None:
    add_demo_pr(gh, contents={"docs/a b#1.md": "ünïcode\n"})
    source = make_source(gh)
    assert source.get_content("src/app.py") == "import os\nx = 2\ny = 3\n\ndef f():\n"
    (req,) = gh.requests_to("GET", "/contents/src/app.py")
    assert req.query == {"ref": "a" * 40}  # pinned to the head SHA, not the branch
    assert gh.count("GET", re.compile("/git/blobs/")) == 0
    gh.push("octo", "demo", 7, "c" * 40, contents={"src/app.py": "changed after resolve\n"})
    assert source.get_content("src/app.py") == "import os\nx = 2\ny = 3\n\ndef f():\n"
    assert source.get_content("docs/a b#1.md") == "ünïcode\n"  # quoted on the way, not cut at '#'


def test_get_content_over_one_megabyte_comes_from_the_blobs_api(gh: FakeGitHub) -> None:
    big = "".join(f"row_{i} = {i}\n" for i in range(120_000))
    assert len(big.encode()) > 1024 * 1024
    gh.add_pr("octo", "demo", 7, [make_file("data/big.py", added_file_patch(["row_0 = 0"]), content=big)])
    source = make_source(gh)
    assert source.get_content("data/big.py") == big
    assert gh.count("GET", "/contents/data/big.py") == 1
    assert gh.count("GET", re.compile("/git/blobs/[0-9a-f]{40}$")) == 1


def test_get_content_falls_back_to_blob_on_too_large_403(gh: FakeGitHub) -> None:
    """Older Enterprise servers refuse files over 1 MB on the contents API with 403 too_large."""
    text = "print('hi')\n"
    gh.add_pr("octo", "demo", 7, [make_file("x.py", added_file_patch(["print('hi')"]), content=text)])
    gh.fail_next(
        "GET",
        "/contents/x.py",
        403,
        body={
            "message": "This API returns blobs up to 1 MB in size. The requested blob is too large "
            "to fetch via the API, but you can use the Git Data API to request blobs up to 100 MB.",
            "errors": [{"resource": "Blob", "field": "data", "code": "too_large"}],
        },
    )
    assert make_source(gh).get_content("x.py") == text
    assert gh.count("GET", re.compile("/git/blobs/")) == 1


def test_get_content_none_for_binary_undecodable_removed_and_missing(gh: FakeGitHub) -> None:
    gh.add_pr(
        "octo",
        "demo",
        7,
        [
            make_file("logo.png", None, status="added", content=b"\x89PNG\r\n\x1a\n\0\0"),
            make_file("latin1.txt", "@@ -1 +1 @@\n-a\n+b", content="café".encode("latin-1")),
            make_file("nul.txt", "@@ -1 +1 @@\n-a\n+b", content=b"a\0b\n"),
            make_file("gone.py", "@@ -1 +0,0 @@\n-a", status="removed"),
        ],
    )
    source = make_source(gh)
    assert source.get_content("logo.png") is None
    assert source.get_content("latin1.txt") is None
    assert source.get_content("nul.txt") is None
    assert source.get_content("gone.py") is None
    assert source.get_content("not/there.py") is None
    # binary and removed files are known from the listing: no content request for them
    assert gh.count("GET", "/contents/logo.png") == 0
    assert gh.count("GET", "/contents/gone.py") == 0


def test_get_content_respects_max_content_bytes(gh: FakeGitHub) -> None:
    gh.add_pr("octo", "demo", 7, [make_file("a.txt", "@@ -1 +1 @@\n-a\n+b", content="x" * 5000)])
    assert make_source(gh, max_content_bytes=4096).get_content("a.txt") is None
