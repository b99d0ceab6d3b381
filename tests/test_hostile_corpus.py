"""The hostile-PR corpus (issue 11, item 8), reviewed end to end, and the README's fault table
kept honest.

``tests/data/hostile/`` describes one pull request that carries every hostile input the README
promises to survive: odd names, a 3 MB file and a 1 MB line, invalid UTF-8, symbolic links (one
out of the repository), prompt injection in code, title and description, a ``.env`` that points
the model client elsewhere, a ``.review-agent.toml`` of wrong types whose instructions try an
injection, and credentials in added lines. One test builds it twice, as a local git repository
and on the fake GitHub, and reviews both with a model that obeys every injection (an external
image, links to another host, raw HTML, a forged fingerprint, @mentions, a finding outside the
diff with severity error, control characters, "APPROVE"). Every promise is checked through what
a user or GitHub sees: exit codes, stdout and stderr, the JSON report, the fake servers' records
and the files on disk. Broken promises are collected and reported together.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from markdown_it import MarkdownIt

from review_agent.action import findings_at_or_above
from review_agent.publish.report import ReviewReport
from review_agent.reviewers.model import SYSTEM_PROMPT
from review_agent.reviewers.model.walkthrough import SYSTEM_PROMPT as WALKTHROUGH_PROMPT
from tests.conftest import cli_env
from tests.fakes.github_server import FakeGitHub
from tests.fakes.openai_server import WALKTHROUGH, Behaviour, FakeOpenAI
from tests.hostile_corpus import (
    AWS_KEY_IN_CODE,
    GITHUB_TOKEN_IN_CODE,
    Corpus,
    build_github,
    build_local,
    load_corpus,
)
from tests.pg import ADMIN_URL, temp_database
from tests.services import PrivateRedis
from tests.test_markdown_sanitizer import problems

ROOT = Path(__file__).resolve().parent.parent
OWNER, REPO = "acme", "shop"
USER_KEY = "sk-users-own-key-HostileCorpus-0123456789abcdef"
GH_TOKEN = "ghs_" + "HostileCorpusInstallationToken0123456"
SECRETS = {
    "GitHub token in the code": GITHUB_TOKEN_IN_CODE,
    "AWS key in the code": AWS_KEY_IN_CODE,
    "the user's model API key": USER_KEY,
    "the GitHub token": GH_TOKEN,
}
FORGED_HEX = "0123456789abcdef0123456789abcdef"  # the fingerprint the corpus forges everywhere
CANARY = "CANARY-of-the-file-a-symlink-points-at-4711"
MAX_PROMPT_CHARS = 150_000
_MARKDOWN = MarkdownIt("commonmark").enable("table")
_FENCED = re.compile(r"<<<(PR|DIFF|EXCERPT|REVIEWS) ([0-9a-f]{12})\n.*?\n\1 \2>>>", re.S)
_INJECTION = re.compile(r"ignore previous instructions", re.I)
_OUR_MARKER = re.compile(r"<!-- review-agent:(?:comment|review|summary):[0-9a-f]{32} -->")
# our own <details>: the skipped files, and a file's block (its name HTML-escaped in <code>)
_OUR_DETAILS = re.compile(
    r"^(?:<details><summary>\d+ files? skipped</summary>"
    r"|<details><summary><code>[^<>\n]*</code>(?: · \d+ findings?)?</summary>|</details>)$",
    re.M,
)
_OUR_HEADINGS = {"Walkthrough", "More findings, by severity"}


@dataclass
class Run:
    """One CLI process: its exit code and its raw output bytes (so that a raw control byte
    cannot hide behind a decoding step)."""

    name: str
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def report(self) -> ReviewReport:
        return ReviewReport.model_validate(json.loads(self.stdout))

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def run(name: str, args: list[str], env: dict[str, str], cwd: Path) -> Run:
    result = subprocess.run(
        [sys.executable, "-m", "review_agent", *args],
        env=cli_env(**env),
        cwd=cwd,
        capture_output=True,
        timeout=300,
    )
    return Run(name, result.returncode, result.stdout, result.stderr)


@dataclass
class Promises:
    """Broken promises, by name: every check runs, and the test reports them all at once."""

    broken: dict[str, list[str]] = field(default_factory=dict)

    def check(self, promise: str, found: list[str]) -> None:
        if found:
            self.broken.setdefault(promise, []).extend(found)


def control_chars(text: str) -> list[str]:
    """Characters a terminal would act on or that hide text (a newline aside)."""
    return [
        repr(ch) for ch in text if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs")
    ]


def unsafe_in_posted(body: str, host: str) -> list[str]:
    """What must never be in something posted: a forged fingerprint; a control or bidi character
    (it hides or reorders text); an image, a link or bare URL to another host, HTML, a live
    @mention (the sanitiser tests' oracle, markdown-it-py); a file heading that is not exactly one
    code span. Our own markers and the skipped-files ``<details>`` are taken out first."""
    found = [f"the forged fingerprint in {body[:60]!r}…"] if FORGED_HEX in body else []
    hidden = [ch for ch in control_chars(body) if ch != repr("\t")]  # a tab moves nothing
    found += [f"raw {sorted(set(hidden))} in {body[:60]!r}…"] if hidden else []
    ours = _OUR_DETAILS.sub("", _OUR_MARKER.sub("", body))
    found += [f"{p} in {body[:60]!r}…" for p in problems(ours, host)]
    tokens = _MARKDOWN.parse(ours)
    for i, t in enumerate(tokens):
        if t.type == "heading_open" and t.tag == "h3" and tokens[i + 1].content not in _OUR_HEADINGS:
            kids = tokens[i + 1].children or []
            if [k.type for k in kids] != ["code_inline"]:
                found.append(f"a file heading that is not one code span: {tokens[i + 1].content!r}")
    return found


def leaks(where: str, blob: bytes | str) -> list[str]:
    data = blob.encode("utf-8", "surrogateescape") if isinstance(blob, str) else blob
    return [f"{what} in {where}" for what, secret in SECRETS.items() if secret.encode() in data]


# --------------------------------------------------------------------------------------------
# the corpus, reviewed end to end


@dataclass
class Outcome:
    corpus: Corpus
    runs: dict[str, Run]
    model: FakeOpenAI
    attacker: FakeOpenAI
    gh: FakeGitHub
    number: int
    root: Path
    home: Path

    @property
    def json_runs(self) -> dict[str, Run]:
        return {"local": self.runs["local json"], "github": self.runs["github json"]}

    @property
    def offline(self) -> dict[str, Any]:
        return self.runs["local offline"].data

    @property
    def host(self) -> str:
        """The pull request's GitHub host (with its port): links there may stay links."""
        return self.gh.root.split("://", 1)[1]

    @property
    def reviews(self) -> list[dict[str, Any]]:
        return self.gh.reviews(OWNER, REPO, self.number)

    @property
    def comments(self) -> list[dict[str, Any]]:
        return self.gh.review_comments(OWNER, REPO, self.number)


@pytest.fixture
def reviewed(tmp_path: Path) -> Iterator[Outcome]:
    """The corpus built twice and reviewed: locally (JSON, then a rerun as text, then offline
    by the built-in reviewer) and on the fake GitHub with --post (JSON, then a rerun as text),
    every run from inside the repository, whose .env points at the attacker's server."""
    with (
        FakeOpenAI(require_api_key=USER_KEY) as model,
        FakeOpenAI() as attacker,
        FakeGitHub(token=GH_TOKEN) as gh,
    ):
        corpus = load_corpus({"attacker_base_url": attacker.base_url})
        # passwd.py -> ../../etc/passwd resolves (from tmp/work/repo) to tmp/etc/passwd
        (tmp_path / "etc").mkdir()
        (tmp_path / "etc" / "passwd").write_text(CANARY + "\n")
        repo = build_local(corpus, tmp_path / "work")
        number = build_github(corpus, gh, OWNER, REPO)
        home = tmp_path / "home"
        home.mkdir()
        # the user's own settings, where the user keeps them: nothing in the process environment,
        # so a .env read from the repository would take effect
        (home / ".env").write_text(
            f"OPENAI_API_KEY={USER_KEY}\nOPENAI_BASE_URL={model.base_url}\nREVIEW_AGENT_MODEL=fake-model\n"
        )
        env = {
            "REVIEW_AGENT_HOME": str(home),
            "REVIEW_AGENT_MODEL_RETRIES": "1",
            "REVIEW_AGENT_RETRY_INTERVAL": "0.1",
        }
        offline = {"REVIEW_AGENT_HOME": str(tmp_path / "home-offline")}
        on_github = {**env, "GITHUB_TOKEN": GH_TOKEN, "GITHUB_API_URL": gh.url}
        url = f"{gh.root}/{OWNER}/{REPO}/pull/{number}"
        obey = Behaviour.reply(corpus.obeying_answer)
        runs: dict[str, Run] = {}
        model.script(obey, path=corpus.obeying_path)
        runs["local json"] = run("local json", ["review", ".", "--base", "main", "-f", "json"], env, repo)
        runs["local text"] = run("local text", ["review", ".", "--base", "main"], env, repo)
        runs["local offline"] = run(
            "local offline", ["review", ".", "--base", "main", "-f", "json"], offline, repo
        )
        model.script(obey, path=corpus.obeying_path)
        runs["github json"] = run("github json", ["review", url, "--post", "-f", "json"], on_github, repo)
        runs["github text"] = run("github text", ["review", url, "--post"], on_github, repo)
        yield Outcome(corpus, runs, model, attacker, gh, number, tmp_path, home)


def _describe(path: str, reviewed: list[str], skipped: dict[str, str]) -> str:
    if path in skipped:
        return f"skipped: {skipped[path]}"
    return "reviewed" if path in reviewed else "not in the report"


def every_file_is_accounted_for(o: Outcome, p: Promises) -> None:
    """Reviewed or skipped with its reason, as the manifest expects, under its exact name (JSON
    keeps names exactly); nothing failed; the .env of the repository chose nothing."""
    for place, r in o.json_runs.items():
        data = r.data
        expected = o.corpus.where(place)
        reviewed = [f["path"] for f in data["files"]]
        skipped = {s["path"]: s["reason"] for s in data["skipped"]}
        wrong = [
            f"{f.path!r}: expected {f.expect}, got {_describe(f.path, reviewed, skipped)}"
            for f in expected
            if (f.expect == "skipped") != (f.path in skipped)
            or (f.expect != "skipped") != (f.path in reviewed)
            or (f.reason is not None and f.reason not in skipped.get(f.path, ""))
        ]
        wrong += [f"unexpected {n!r}" for n in {*reviewed, *skipped} - {f.path for f in expected}]
        wrong += [f"{f['path']!r} failed: {f['error']}" for f in data["files"] if f["status"] != "reviewed"]
        p.check(f"{place}: JSON names every file exactly, reviewed or skipped with its reason", wrong)
        p.check(
            f"{place}: the repository's .env chose neither the server nor the model",
            [] if data["reviewer"] == "openai:fake-model" else [f"reviewer {data['reviewer']!r}"],
        )


def symlinks_are_links(o: Outcome, p: Promises) -> None:
    """Reported as links ("Symbolic link to …"), never read, linted or sent as source."""
    links = {f.path: f.head.symlink for f in o.corpus.files if f.expect == "symlink"}
    for place, r in o.json_runs.items():
        entries = {f["path"]: f for f in r.data["files"]}
        wrong = []
        for path, target in links.items():
            e = entries.get(path, {"summary": "(not in the report)", "reviewer": None})
            findings = [*e.get("comments", []), *e.get("unanchored", [])]
            if (
                not e["summary"].startswith(f"Symbolic link to `{target}`")
                or e["reviewer"] != "symlink"
                or findings
            ):
                wrong.append(f"{path!r}: {e['summary']!r} by {e['reviewer']!r}, findings {findings}")
        p.check(f"{place}: a symlink is reported as a link", wrong)
    calls = o.model.calls
    p.check(
        "no symlink is sent to the model, and what one points at is read by nobody",
        [f"model call about {c.path!r}" for c in calls if c.path in links]
        + [
            f"the link's target in the request about {c.path!r}"
            for c in calls
            if CANARY in json.dumps(c.messages)
        ],
    )
    rules = {
        f["path"]: [c.get("rule") or "" for c in f["comments"] + f["unanchored"]] for f in o.offline["files"]
    }
    p.check(
        "the built-in reviewer lints the files and never a symlink",
        [f"{path!r} has findings {rules[path]}" for path in links if rules.get(path)]
        + (
            []
            if any("F821" in r for r in rules.get("injected.py", []))
            else [f"no ruff: {rules.get('injected.py')}"]
        ),
    )


def posted_once_as_a_comment_and_safe(o: Outcome, p: Promises) -> None:
    """Event COMMENT whatever the model said, one review even after a rerun, each comment once;
    nothing posted has an image, a link elsewhere, HTML, a forged fingerprint, a mention or a
    control character, and each file heading is one code span."""
    posts = o.gh.requests_to("POST", f"/pulls/{o.number}/reviews")
    events = [post.json.get("event") for post in posts]
    states = [rv["state"] for rv in o.reviews]
    bodies = [c["body"] for c in o.comments]
    p.check(
        "one review, event COMMENT, every comment once",
        ([] if events == ["COMMENT"] else [f"events {events}"])
        + ([] if states == ["COMMENTED"] else [f"reviews {states}"])
        + [f"twice: {c['path']!r}:{c['line']}" for i, c in enumerate(o.comments) if c["body"] in bodies[:i]],
    )
    posted = [rv["body"] for rv in o.reviews] + bodies
    posted += [c["body"] for c in o.gh.issue_comments(OWNER, REPO, o.number)]
    p.check(
        "nothing posted shows an image, links elsewhere, has HTML, a forged fingerprint or a mention",
        [problem for body in posted for problem in unsafe_in_posted(body, o.host)],
    )


def severity_counts_wherever_it_lands(o: Outcome, p: Promises) -> None:
    """The model's error outside the diff (moved to the review body) is counted as an error:
    in the report, by the Action's ``fail-on-findings: error``, in the posted and text counts."""
    for place, r in o.json_runs.items():
        report = r.report
        counts = report.severity_counts()
        ok = counts["error"] == 1 and findings_at_or_above(report, "error") == 1
        p.check(f"{place}: the error outside the diff is counted as an error", [] if ok else [f"{counts}"])
    texts = {
        "posted body": o.reviews[0]["body"] if o.reviews else "",
        "local text": o.runs["local text"].stdout.decode(),
        "github text": o.runs["github text"].stdout.decode(),
    }
    p.check(
        "the posted body and the text reports count the error",
        [f"{name}: no '(1 error,'" for name, text in texts.items() if "(1 error," not in text],
    )


def dotenv_and_config_of_the_repository(o: Outcome, p: Promises) -> None:
    """The repository's .env is never read; its wrong-typed .review-agent.toml is ignored with a
    note (its injected instructions with it); the system prompt is ours alone."""
    a = o.attacker
    p.check(
        "the server a repository's .env names receives nothing",
        [f"{a.total_calls} calls, {a.embedding_calls} embeddings"]
        if a.total_calls or a.embedding_calls
        else [],
    )
    p.check(
        "the system prompt is ours alone",
        [
            f"system message about {c.path!r}"
            for c in o.model.calls
            if c.messages[0].get("content")
            != (WALKTHROUGH_PROMPT if c.path == WALKTHROUGH else SYSTEM_PROMPT)
        ],
    )
    outside = [(c.path, _FENCED.sub("", str(c.messages[-1].get("content")))) for c in o.model.calls]
    p.check(
        "the change and the PR's title and description reach the model only inside their fences",
        [f"injection outside the fences about {path!r}" for path, text in outside if _INJECTION.search(text)]
        + (
            []
            if any(_INJECTION.search(str(c.messages[-1].get("content"))) for c in o.model.calls)
            else ["not sent"]
        ),
    )
    for place, r in o.json_runs.items():
        notes = r.data["notes"]
        ok = any(".review-agent.toml ignored" in n and "max_files" in n for n in notes)
        p.check(
            f"{place}: a .review-agent.toml of wrong types is ignored with a note", [] if ok else [f"{notes}"]
        )
    ok = bool(o.reviews) and ".review-agent.toml ignored" in o.reviews[0]["body"]
    p.check("the wrong-typed config's note reaches the posted review", [] if ok else ["no note"])


def prompts_stay_bounded(o: Outcome, p: Promises) -> None:
    """The 3 MB file (read through the blobs API on GitHub) and the 1 MB line grow no prompt."""
    sizes = [(len(json.dumps(c.messages, ensure_ascii=False)), c.path) for c in o.model.calls]
    p.check(
        "every prompt stays bounded",
        [f"{n} characters about {w!r}" for n, w in sizes if n > MAX_PROMPT_CHARS],
    )
    p.check(
        "the 3 MB file is read through the blobs API",
        [] if o.gh.count("GET", re.compile("/git/blobs/")) else ["no"],
    )


def secrets_go_nowhere(o: Outcome, p: Promises) -> None:
    """The credentials in the code, the user's API key and the GitHub token: in no request to
    the model or to GitHub, no output, no byte of state (the SQLite file included)."""
    found: list[str] = []
    for c, body in zip(o.model.calls, o.model.requests, strict=True):
        found += leaks(f"the model request about {c.path!r}", json.dumps(body, ensure_ascii=False))
    for req in o.gh.requests:
        found += leaks(
            f"GitHub {req.method} {req.route}", json.dumps([req.query, req.json], ensure_ascii=False)
        )
    found += leaks("what GitHub keeps", json.dumps([o.reviews, o.comments], ensure_ascii=False))
    for r in o.runs.values():
        found += leaks(f"{r.name} stdout", r.stdout) + leaks(f"{r.name} stderr", r.stderr)
    for home in (o.home, o.root / "home-offline"):
        for f in home.rglob("*"):
            if f.is_file() and f != o.home / ".env":  # the user's own .env holds the user's key
                data = f.read_bytes()
                found += leaks(str(f.relative_to(o.root)), data)
                found += [f"the symlink's target in {f.name}"] if CANARY.encode() in data else []
    p.check("no secret is sent, shown or stored anywhere", found)


def terminals_see_no_control_characters(o: Outcome, p: Promises) -> None:
    streams = [(r.name, "stderr", r.stderr) for r in o.runs.values()]
    streams += [(r.name, "stdout", r.stdout) for r in o.runs.values() if "text" in r.name]
    found = [
        (name, stream, control_chars(raw.decode("utf-8", "surrogateescape"))) for name, stream, raw in streams
    ]
    p.check(
        "text reports and stderr carry no raw control characters",
        [f"{name} {stream}: {sorted(set(bad))[:5]}" for name, stream, bad in found if bad],
    )


def nothing_leaves_the_repository(o: Outcome, p: Promises) -> None:
    here = f"/repos/{OWNER}/{REPO}"
    p.check(
        "GitHub reads stay inside the pull request's repository (and ask who the token is)",
        [
            r.route
            for r in o.gh.requests
            if not (r.route == here or r.route.startswith(here + "/") or r.route == "/user")
        ],
    )
    p.check(
        "nothing is written where a file name points",
        [e.name for e in o.root.iterdir() if e.name not in {"etc", "work", "home", "home-offline"}]
        + [e.name for e in (o.root / "etc").iterdir() if e.name != "passwd"],
    )


PROMISES = (
    every_file_is_accounted_for,
    symlinks_are_links,
    posted_once_as_a_comment_and_safe,
    severity_counts_wherever_it_lands,
    dotenv_and_config_of_the_repository,
    prompts_stay_bounded,
    secrets_go_nowhere,
    terminals_see_no_control_characters,
    nothing_leaves_the_repository,
)


@pytest.mark.slow
def test_a_hostile_pull_request_keeps_every_promise(reviewed: Outcome) -> None:
    """Every run exits 0 (no file legitimately fails here: 3 would mean one did), then every
    promise above is checked, and all broken ones are reported together."""
    failed = {
        r.name: (r.returncode, r.stderr.decode(errors="replace")[-300:]) for r in reviewed.runs.values()
    }
    assert {name: v for name, v in failed.items() if v[0] != 0} == {}
    promises = Promises()
    for check in PROMISES:
        check(reviewed, promises)
    assert promises.broken == {}, json.dumps(promises.broken, indent=1, ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# the suite owns the services it uses (issue 11, item 6)

# A Redis URL or client on the machine's default server: what the suite must never open.
_SHARED_REDIS = re.compile(r"redis://(?:[^@\s/]*@)?(?:localhost|127\.0\.0\.1)(?::6379)?/|\bRedis\(\s*\)")


def shared_service_uses(tests_dir: Path) -> list[str]:
    """Lines of the test code that would open the machine's own Redis (port 6379, or a client
    built with no address)."""
    found = []
    for path in sorted(tests_dir.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _SHARED_REDIS.search(line):
                found.append(f"{path.relative_to(tests_dir)}:{number}: {line.strip()}")
    return found


def _existing(names: list[str]) -> int:
    with psycopg.connect(ADMIN_URL) as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", (names,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.redis
@pytest.mark.postgres
def test_the_suite_starts_its_own_redis_and_creates_its_own_databases(
    session_redis: PrivateRedis, redis_url: str, tmp_path: Path
) -> None:
    """The Redis every test gets is a ``redis-server`` this session started, on a port of its
    own, persisting nothing; a Postgres database is created under a fresh name and dropped after;
    and no test opens the machine's own Redis."""
    assert session_redis.proc is not None and session_redis.port != 6379
    assert redis_url == session_redis.url
    with session_redis.client() as c:
        assert c.info("server")["process_id"] == session_redis.proc.pid  # our child, not a neighbour
        assert c.config_get("save")["save"] == "" and c.config_get("appendonly")["appendonly"] == "no"
    with temp_database("ra_own") as first, temp_database("ra_own") as second:
        names = [urlsplit(u).path.lstrip("/") for u in (first, second)]
        assert names[0] != names[1] and all(n.startswith("ra_own_") for n in names)
        assert _existing(names) == 2
    assert _existing(names) == 0  # dropped
    assert shared_service_uses(ROOT / "tests") == []
    bad = 'URL = "redis://local' + 'host:6379/0"\nclient = redis.Red' + "is()\n"  # split: not a use here
    (tmp_path / "test_bad.py").write_text(bad)
    assert len(shared_service_uses(tmp_path)) == 2  # the scan can fail


# --------------------------------------------------------------------------------------------
# the README's fault-tolerance table cites tests that exist

_CITATION = re.compile(r"`((?:tests/)?test_[A-Za-z0-9_]+\.py)?(?:::([A-Za-z0-9_*]+))?`")


def _fault_table(readme: str) -> list[str]:
    section = readme.split("## Fault tolerance", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| ---")][
        1:
    ]


def _test_names(path: Path) -> set[str]:
    return set(re.findall(r"^(?:async )?def (test_[A-Za-z0-9_]+)\(", path.read_text(encoding="utf-8"), re.M))


def cited_tests(readme: str) -> list[tuple[str, str | None]]:
    """Every (file, name or None) the table cites. A cell may say ``file::name``, ``file``, or
    ``::name`` for another test of the file named before it in the same cell; a name may end in
    ``*`` (a group of tests)."""
    cited: list[tuple[str, str | None]] = []
    for row in _fault_table(readme):
        cell = row.rstrip(" |").rsplit(" | ", 1)[-1]
        current: str | None = None
        for m in _CITATION.finditer(cell):
            file, name = m.group(1), m.group(2)
            if file is None and name is None:
                continue
            if file is not None:
                current = file.removeprefix("tests/")
            assert current is not None, f"{m.group(0)} names no file: {row}"
            cited.append((current, name))
    return cited


def missing_citations(readme: str, tests_dir: Path) -> list[str]:
    missing: list[str] = []
    for file, name in cited_tests(readme):
        path = tests_dir / file
        if not path.is_file():
            missing.append(file)
            continue
        if name is None:
            continue
        names = _test_names(path)
        pattern: Callable[[str], bool] = (
            (lambda n, p=name.rstrip("*"): n.startswith(p))
            if name.endswith("*")
            else (lambda n, p=name: n == p)
        )
        if not any(pattern(n) for n in names):
            missing.append(f"{file}::{name}")
    return missing


def test_every_test_the_fault_table_cites_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(cited_tests(readme)) > 20
    assert missing_citations(readme, ROOT / "tests") == []


def test_the_citation_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "test_here.py").write_text(
        "def test_one() -> None:\n    pass\n\n\ndef test_two_a() -> None:\n    pass\n"
    )
    table = (
        "## Fault tolerance\n\n| fault | what happens | test |\n| --- | --- | --- |\n"
        "| a | b | `test_here.py::test_one`, `::test_two_*`, `::test_three` |\n"
        "| c | d | `test_gone.py` |\n"
        "| e | f | `tests/test_here.py::test_twice` |\n\n## Next\n"
    )
    assert missing_citations(table, tmp_path) == [
        "test_here.py::test_three",
        "test_gone.py",
        "test_here.py::test_twice",
    ]
