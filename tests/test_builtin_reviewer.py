"""The built-in offline reviewer: each check fires on added lines only, secrets stay masked,
preferences are obeyed, odd content never crashes it, linters are real and optional.

Secret-looking test values are assembled at run time ("gh" + "p_" + …) so that this file itself
never contains anything a secret scanner (or GitHub push protection) would flag.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from review_agent.patches import parse_patch
from review_agent.reviewers.base import Reviewer, ReviewRequest, ReviewResult
from review_agent.reviewers.builtin import (
    CHECK_IDS,
    CHECKS,
    BuiltinReviewer,
    Check,
    CommandOutput,
    Finding,
    detect_language,
    find_tool,
    parse_ruff_output,
    run_command,
)
from review_agent.reviewers.builtin.linters import RUFF_SELECT

AWS_KEY = "AKIA" + "Q3VZ7XK2M9PL4RT8"
GH_TOKEN = "gh" + "p_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
GH_PAT = "github" + "_pat_" + "11ABCDEFG0" + "abcdefghijKLMNOPQRST_" + "uvwxyz0123456789" * 4
SLACK = "xo" + "xb-" + "1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
PRIVATE_KEY = "-----BEGIN " + "RSA PRIVATE" + " KEY-----"
PASSWORD = "Zq8!kLm2" + "#pXw"
NPM_TOKEN = "np" + "m_" + "Qm7Rt2Vx9Lk4Np8Ws3Yb6Hd1Fg5Jc0Za2Xe7"
GITLAB_TOKEN = "gl" + "pat-" + "Qm7Rt2Vx9Lk4Np8Ws3Yb6"
ANTHROPIC_KEY = "sk-" + "ant-api03-" + "Qm7Rt2Vx9Lk4Np8Ws3Yb6Hd1Fg5Jc0Za2Xe7" * 2
SLACK_HOOK = "https://hooks.slack.com/services/" + "T024BE7LD/B01QX7ZK2M9/" + "q8ZkLm2pXwT7rV4nB9sD1fGh"


def hunk(before: Sequence[str], after: Sequence[str], *, context: Sequence[str] = ()) -> str:
    """One hunk: leading context lines, then removed lines, then added lines."""
    old_len = len(context) + len(before)
    new_len = len(context) + len(after)
    body = [f" {c}" for c in context] + [f"-{b}" for b in before] + [f"+{a}" for a in after]
    return f"@@ -1,{old_len} +1,{new_len} @@\n" + "\n".join(body) + "\n"


def review(
    path: str,
    hunk_text: str,
    *,
    content: str | None = None,
    prefs: dict[str, object] | None = None,
    reviewer: BuiltinReviewer | None = None,
    may_fail: bool = False,
) -> ReviewResult:
    """Review one file. Unless ``may_fail``, no check may have failed: a "not reported" test
    must not pass because the check crashed."""
    patch = parse_patch(path, hunk_text)
    request = ReviewRequest(path=path, patch=patch, content=content, preferences=prefs or {})
    result = (reviewer or BuiltinReviewer(run_linters=False)).review(request)
    if not may_fail:
        assert " failed: " not in result.summary, result.summary
        assert "could not analyse" not in result.summary, result.summary
    for c in result.comments:  # every comment must be one GitHub accepts, on an added line
        assert c.side == "RIGHT"
        assert c.line in patch.added
        assert patch.can_anchor(c)
        assert c.rule and c.rule.startswith(("review-agent/", "ruff/", "node/", "shellcheck/"))
    return result


def checks(result: ReviewResult) -> list[tuple[int, str]]:
    """(line, check id) of each comment, read back from the body as a user would see it."""
    out = []
    for c in result.comments:
        check = c.body.split("**")[1]
        assert f"(builtin/{check})" in c.body
        out.append((c.line, check))
    return out


# --------------------------------------------------------------------------- the port


def test_satisfies_the_reviewer_port_and_makes_no_model_call() -> None:
    reviewer: Reviewer = BuiltinReviewer(run_linters=False)
    assert reviewer.name == "builtin"
    result = review("a.py", hunk([], ["x = 1"]), reviewer=BuiltinReviewer(run_linters=False))
    assert isinstance(result, ReviewResult)
    assert result.model_calls == 0
    assert result.comments == []
    assert result.summary == "No findings in 1 added line."


def test_is_deterministic() -> None:
    text = hunk(["old()"], ["print(1)", "# TODO later", f'key = "{AWS_KEY}"', "<<<<<<< HEAD"])
    first = review("m.py", text)
    second = review("m.py", text)
    assert first.summary == second.summary
    assert first.comments == second.comments


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("path", "line", "secret", "kind"),
    [
        ("settings.py", f'AWS_KEY = "{AWS_KEY}"', AWS_KEY, "AWS access key ID"),
        ("deploy.sh", f"export GH={GH_TOKEN}", GH_TOKEN, "GitHub token"),
        ("ci.yml", f"token: {GH_PAT}", GH_PAT, "GitHub fine-grained token"),
        ("bot.js", f'const slack = "{SLACK}";', SLACK, "Slack token"),
        ("app.py", f'password = "{PASSWORD}"', PASSWORD, "hard-coded credential"),
        ("app.ts", f'const cfg = {{ api_key: "{PASSWORD}" }};', PASSWORD, "hard-coded credential"),
        ("config.json", f'  "client_secret": "{PASSWORD}",', PASSWORD, "hard-coded credential"),
        (".env", f"DB_PASSWORD={PASSWORD}", PASSWORD, "hard-coded credential"),
        ("ci.sh", f"npm config set //registry/:_authToken {NPM_TOKEN}", NPM_TOKEN, "npm token"),
        (".gitlab-ci.yml", f"  TOKEN: {GITLAB_TOKEN}", GITLAB_TOKEN, "GitLab token"),
        ("llm.py", f'client = Anthropic(api_key="{ANTHROPIC_KEY}")', ANTHROPIC_KEY, "Anthropic API key"),
        (
            "app.py",
            f'DSN = "postgres://app:{PASSWORD}@db.internal/prod"',
            PASSWORD,
            "password is written into a URL",
        ),
        ("notify.py", f'HOOK = "{SLACK_HOOK}"', SLACK_HOOK, "Slack webhook URL"),
    ],
)
def test_secret_on_added_line_is_reported_and_masked(path: str, line: str, secret: str, kind: str) -> None:
    result = review(path, hunk([], [line]))
    assert checks(result) == [(1, "secret")]
    body = result.comments[0].body
    assert kind in body
    # the value is never repeated, not even most of it
    assert secret not in body
    assert secret[6:] not in body
    assert secret not in result.summary


def test_token_formats_are_errors_and_generic_assignments_warnings() -> None:
    result = review("s.py", hunk([], [f'K = "{AWS_KEY}"', f'password = "{PASSWORD}"']))
    assert [(c.line, c.severity) for c in result.comments] == [(1, "error"), (2, "warning")]


def test_private_key_header() -> None:
    result = review("id_rsa.txt", hunk([], [PRIVATE_KEY, "MIIEowIBAAKCAQEA"]))
    assert checks(result) == [(1, "secret")]
    assert result.comments[0].severity == "error"
    assert "private key" in result.comments[0].body


def test_secret_on_context_or_removed_line_is_not_reported() -> None:
    text = hunk([f'OLD = "{AWS_KEY}"'], ["x = 1"], context=[f'password = "{PASSWORD}"'])
    assert review("s.py", text).comments == []


@pytest.mark.parametrize(
    "line",
    [
        'password = os.environ["DB_PASSWORD"]',
        'password = "changeme"',
        'password = ""',
        'if password == "Zq8kLm2pXw":',
        'api_key = "${API_KEY}"',
        'API_KEY_ENV = "OPENAI_API_KEY"',
        'password_label = "Enter your password"',
        'secret_name = "prod-database-creds"',
        'private_key_path = "keys/server.pem"',
        'PASSWORD_RE = r"^.{8,}$"',
        'aws_key = "AKIAIOSFODNN7EXAMPLE"',  # the AWS documentation key
        # Slack's documented placeholder webhook, and a token made of placeholder characters
        'HOOK = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"',
        'TOKEN = "ghp_' + "x" * 36 + '"',
        'DSN = "postgres://app:${DB_PASSWORD}@db/prod"',
        'DSN = "postgres://postgres@localhost/app"',
        'POSTGRES_PASSWORD = "postgres"',
        "def login(password: str) -> None:",
    ],
)
def test_secret_lookalikes_are_not_reported(line: str) -> None:
    assert review("app.py", hunk([], [line])).comments == []


# --------------------------------------------------------------------------- conflict markers


def test_conflict_block_is_reported_once_on_its_start() -> None:
    text = hunk([], ["<<<<<<< HEAD", "a = 1", "=======", "a = 2", ">>>>>>> feature"])
    result = review("c.py", text)
    assert checks(result) == [(1, "conflict-marker")]
    assert result.comments[0].severity == "error"


def test_orphan_conflict_marker_is_reported() -> None:
    result = review("c.go", hunk([], ["x := 1", ">>>>>>> main"]))
    assert checks(result) == [(2, "conflict-marker")]


def test_conflict_markers_on_context_lines_are_not_reported() -> None:
    text = hunk(["<<<<<<< HEAD"], ["x = 1"], context=[">>>>>>> theirs"])
    assert review("c.py", text).comments == []


def test_lone_equals_row_is_a_heading_underline_not_a_conflict() -> None:
    assert review("README.rst", hunk([], ["Title", "======="])).comments == []


def test_conflict_sample_in_a_string_literal_is_not_a_conflict() -> None:
    lines = ['SAMPLE = """', "<<<<<<< HEAD", "a", "=======", "b", ">>>>>>> other", '"""']
    content = "\n".join(lines) + "\n"
    assert review("tests/test_merge.py", hunk([], lines), content=content).comments == []
    # without the file, the hunk's own lines are lexed: still a string
    assert review("tests/test_merge.py", hunk([], lines)).comments == []
    js = ["const SAMPLE = `", "<<<<<<< HEAD", "a", "=======", "b", ">>>>>>> other", "`;"]
    assert review("src/sample.js", hunk([], js)).comments == []


def test_conflict_sample_in_a_markdown_fence_is_not_a_conflict_but_one_in_prose_is() -> None:
    fenced = ["```", "<<<<<<< HEAD", "ours", "=======", "theirs", ">>>>>>> branch", "```"]
    assert review("docs/merge.md", hunk([], fenced)).comments == []
    prose = ["# Notes", "<<<<<<< HEAD", "- one", "=======", "- two", ">>>>>>> branch"]
    assert checks(review("docs/merge.md", hunk([], prose))) == [(2, "conflict-marker")]


# --------------------------------------------------------------------------- debug leftovers


@pytest.mark.parametrize(
    ("path", "line", "severity"),
    [
        ("pkg/m.py", "    breakpoint()", "error"),
        ("pkg/m.py", "import pdb; pdb.set_trace()", "error"),
        ("pkg/m.py", "import ipdb", "warning"),
        ("pkg/m.py", "    print(result)", "info"),
        ("src/a.ts", "  console.log(user);", "info"),
        ("src/a.jsx", "  debugger;", "warning"),
        ("app/models/user.rb", "    binding.pry", "error"),
        ("app/models/user.rb", "  byebug", "error"),
        ("web/index.php", "var_dump($user);", "info"),
        ("web/index.php", "    dd($request);", "error"),
        ("src/Main.java", '        System.out.println("here");', "info"),
        ("src/lib.rs", "    let y = dbg!(x * 2);", "warning"),
        ("lib/app.ex", "    IEx.pry()", "error"),
    ],
)
def test_debug_leftover_on_added_line(path: str, line: str, severity: str) -> None:
    result = review(path, hunk([], ["ok = 1", line]))
    assert checks(result) == [(2, "debug")]
    assert result.comments[0].severity == severity


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ("pkg/m.py", 'msg = "call print(x) to debug"'),
        ("pkg/m.py", "# print(x) was useful here"),
        ("pkg/m.py", "rich_console.print(x)"),
        ("pkg/m.py", "pprint(x)"),
        ("pkg/m.py", "print(x, file=sys.stderr)"),
        ("src/a.ts", "// console.log(user)"),
        ("src/a.ts", "const s = 'console.log(x)';"),
        ("src/a.ts", "logger.console.log(x);"),
        ("web/index.php", "$out = print_r($data, true);"),
        ("main.go", '\tfmt.Println("hello")'),  # Go output is too often intended
        ("scripts/release.py", "print('released')"),  # printing is a script's job
        ("src/lib.rs", "fn f<'a>(x: &'a str) {} // dbg!(x)"),
        ("notes.md", "Call `breakpoint()` to stop."),
    ],
)
def test_debug_lookalikes_are_not_reported(path: str, line: str) -> None:
    assert review(path, hunk([], [line])).comments == []


def test_debug_on_removed_or_context_line_is_not_reported() -> None:
    text = hunk(["breakpoint()"], ["x = 1"], context=["print('ctx')"])
    assert review("pkg/m.py", text).comments == []


def test_print_inside_a_docstring_is_not_debug_but_code_after_it_is() -> None:
    content = 'def f():\n    """Usage:\n    print(f())\n    """\n    print(1)\n'
    text = hunk([], content.rstrip("\n").split("\n"))
    result = review("pkg/m.py", text, content=content)
    assert checks(result) == [(5, "debug")]


@pytest.mark.parametrize("runs_ruff", [True, False])
def test_print_with_noqa_or_inside_a_logging_function_is_not_debug(runs_ruff: bool) -> None:
    content = (
        "def work(rows):\n"
        "    print(rows)  # noqa: T201\n"
        "    print(rows)  # noqa\n"
        "    print(rows)  # noqa: E501\n"
        "    return rows\n"
        "\n"
        "\n"
        "def log(message):\n"
        "    print(message)\n"
    )
    text = hunk([], content.rstrip("\n").split("\n"))
    reviewer = BuiltinReviewer(run_linters=runs_ruff)
    if runs_ruff and RUFF is None:
        pytest.skip("ruff is not installed")
    result = review("pkg/work.py", text, content=content, reviewer=reviewer)
    assert checks(result) == [(4, "debug")]  # a noqa for another code does not silence T201
    assert result.comments[0].rule == ("ruff/T201" if runs_ruff else "review-agent/debug")


def test_console_log_inside_the_logging_code_or_silenced_is_not_debug() -> None:
    lines = [
        "export function log(...args) {",
        '  console.log("[app]", ...args);',
        "}",
        "export class Logger {",
        "  info(m) { console.log(m); }",
        "}",
        "function handler(req) {",
        "  console.log(req.body);",
        "  console.log(req.query); // eslint-disable-line no-console",
        "  // eslint-disable-next-line no-console",
        "  console.log(req.params);",
        "  console.log(req.path); // eslint-disable-line no-undef",
        "}",
    ]
    assert checks(review("src/app.js", hunk([], lines))) == [(8, "debug"), (12, "debug")]
    assert review("src/logger.ts", hunk([], ["console.log(message);"])).comments == []


def test_print_in_a_file_with_a_main_guard_is_output_not_debug() -> None:
    content = "def main():\n    print('hi')\n\nif __name__ == '__main__':\n    main()\n"
    text = hunk([], content.rstrip("\n").split("\n"))
    assert review("tool.py", text, content=content).comments == []


# --------------------------------------------------------------------------- TODO


def test_todo_in_added_comment_is_info() -> None:
    text = hunk(["# FIXME old"], ["x = 1  # TODO: handle None", "// XXX not python"])
    result = review("m.py", text)
    assert checks(result) == [(1, "todo")]
    assert result.comments[0].severity == "info"


def test_todo_in_string_or_identifier_is_not_reported() -> None:
    text = hunk([], ['label = "TODO list"', "TODOS = []", "def todo_items(): ..."])
    assert review("m.py", text).comments == []


def test_todo_in_js_block_comment_and_markdown_comment_but_not_prose() -> None:
    assert checks(review("a.js", hunk([], ["/**", " * FIXME: leaks", " */"]))) == [(2, "todo")]
    assert checks(review("NOTES.md", hunk([], ["- TODO write docs", "<!-- TODO: pictures -->"]))) == [
        (2, "todo")
    ]
    assert review("NOTES.md", hunk([], ["The TODO app keeps a list of tasks."])).comments == []


def test_todo_in_docstring_counts_and_in_yaml_string_does_not() -> None:
    content = 'def f():\n    """Load it.\n\n    TODO: cache.\n    """\n'
    text = hunk([], content.rstrip("\n").split("\n"))
    assert checks(review("m.py", text, content=content)) == [(4, "todo")]
    yaml_text = hunk([], ['name: "TODO list"', "run: make  # TODO: pin"])
    assert checks(review("ci.yml", yaml_text)) == [(2, "todo")]


def test_rust_todo_macro_is_a_warning() -> None:
    result = review("src/lib.rs", hunk([], ["fn f() -> u8 {", "    todo!()", "}"]))
    assert checks(result) == [(2, "todo")]
    assert result.comments[0].severity == "warning"


# --------------------------------------------------------------------------- long lines, whitespace


def test_long_lines_get_one_comment_on_the_first() -> None:
    long_a = "x = " + "1 + " * 60 + "1"
    long_b = "y = " + "2 + " * 70 + "2"
    result = review("m.py", hunk(["z = " + "3" * 300], ["ok = 1", long_a, long_b]))
    assert checks(result) == [(2, "long-line")]
    assert "2 added lines" in result.comments[0].body
    assert result.comments[0].severity == "info"


def test_long_line_limit_from_preferences_and_data_files_skipped() -> None:
    line = "value = " + "'a' + " * 10 + "'a'"
    assert checks(review("m.py", hunk([], [line]), prefs={"max_line_length": 40})) == [(1, "long-line")]
    assert review("data.json", hunk([], ['{"k": "' + "v" * 500 + '"}'])).comments == []


def test_trailing_whitespace_once_per_file_and_not_for_crlf() -> None:
    result = review("m.py", hunk(["old = 1   "], ["a = 1", "b = 2  ", "c = 3\t"]))
    assert checks(result) == [(2, "trailing-whitespace")]
    assert "2 added lines" in result.comments[0].body
    crlf = "@@ -0,0 +1,2 @@\n+a = 1\r\n+b = 2\r\n"
    assert review("m.py", crlf).comments == []
    assert review("README.md", hunk([], ["hard break  ", "next"])).comments == []


# --------------------------------------------------------------------------- preferences


NOISY = ["print(1)  # TODO remove", f'TOKEN = "{GH_TOKEN}"', "x = 1   "]


def test_disabled_checks_stay_off() -> None:
    everything = checks(review("m.py", hunk([], NOISY)))
    assert {c for _, c in everything} == {"debug", "todo", "secret", "trailing-whitespace"}
    result = review("m.py", hunk([], NOISY), prefs={"disabled_checks": ["debug", "builtin/todo"]})
    assert {c for _, c in checks(result)} == {"secret", "trailing-whitespace"}
    as_text = review("m.py", hunk([], NOISY), prefs={"disabled_checks": "secret, TRAILING-WHITESPACE"})
    assert {c for _, c in checks(as_text)} == {"debug", "todo"}


def test_comments_carry_their_rule_and_a_precise_rule_can_be_disabled() -> None:
    result = review("m.py", hunk([], NOISY))
    assert sorted(c.rule or "" for c in result.comments) == [
        "review-agent/debug",
        "review-agent/secret",
        "review-agent/todo",
        "review-agent/trailing-whitespace",
    ]
    quiet = review("m.py", hunk([], NOISY), prefs={"disabled_checks": ["review-agent/todo"]})
    assert {c for _, c in checks(quiet)} == {"debug", "secret", "trailing-whitespace"}


def test_severity_threshold_drops_lower_findings_and_their_counts() -> None:
    result = review("m.py", hunk([], NOISY), prefs={"severity_threshold": "warning"})
    assert checks(result) == [(2, "secret")]
    assert result.summary == "Checked 3 added lines: 1 finding (secret 1)."
    errors_only = review("m.py", hunk([], ["import pdb"]), prefs={"severity_threshold": "error"})
    assert errors_only.comments == []
    assert errors_only.summary == "No findings in 1 added line."


@pytest.mark.parametrize(
    "prefs",
    [
        {"disabled_checks": None, "severity_threshold": "loud"},
        {"disabled_checks": 42, "severity_threshold": 3, "max_line_length": "wide"},
        {"disabled_checks": ["nonexistent", 7]},
    ],
)
def test_unreadable_preferences_are_ignored(prefs: dict[str, object]) -> None:
    result = review("m.py", hunk([], NOISY), prefs=prefs)
    assert {c for _, c in checks(result)} == {"debug", "todo", "secret", "trailing-whitespace"}


# --------------------------------------------------------------------------- summary and limits


def test_summary_counts_by_check_in_a_fixed_order() -> None:
    result = review("m.py", hunk([], NOISY))
    assert result.summary == (
        "Checked 3 added lines: 4 findings (secret 1, debug 1, todo 1, trailing-whitespace 1)."
    )
    assert review("m.py", "").summary == "No added lines to check."


def test_comments_per_file_are_bounded_and_the_most_severe_kept() -> None:
    lines = [f"print({i})" for i in range(30)] + ["breakpoint()"]
    result = review("m.py", hunk([], lines), reviewer=BuiltinReviewer(run_linters=False))
    assert len(result.comments) == 25
    assert (31, "debug") in checks(result)  # the one error survives the cut
    assert [c.line for c in result.comments] == sorted(c.line for c in result.comments)
    assert "31 findings (debug 31)" in result.summary
    assert "6 more are not shown" in result.summary

    small = review(
        "m.py", hunk([], lines), reviewer=BuiltinReviewer(run_linters=False, max_comments_per_file=3)
    )
    assert len(small.comments) == 3
    assert "28 more are not shown" in small.summary


# --------------------------------------------------------------------------- odd content


def test_invalid_utf8_nul_and_huge_lines_do_not_crash() -> None:
    garbage = b"x = '\xff\xfe\xc3\x28'\x00 # TODO \xed\xa0\x80".decode("utf-8", "surrogateescape")
    huge = "a" * 1_000_000
    keywords = "password" * 100_000
    text = hunk([], [garbage, huge, keywords, "\ud800 = 1", f"{huge} {AWS_KEY}"])
    content = "\n".join([garbage, huge, keywords, "\ud800 = 1", huge]) + "\n"
    result = review("m.py", text, content=content, reviewer=BuiltinReviewer())
    assert (1, "todo") in checks(result)
    assert (2, "long-line") in checks(result)
    assert isinstance(result.summary, str)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("m.py", ""),
        ("m.py", "this is not a diff at all\n"),
        ("bin.dat", "@@ -0,0 +1,1 @@\n+\x00\x01\x02\n"),
        ("no_extension", hunk([], ["<<<<<<<"])),
        ("weird name with spaces -and-dash.py", hunk([], ["print(1)"])),
    ],
)
def test_odd_patches_do_not_crash(path: str, text: str) -> None:
    result = review(path, text, content="", reviewer=BuiltinReviewer())
    assert result.model_calls == 0


def test_language_detection() -> None:
    assert detect_language("a/b.py") == "python"
    assert detect_language("Gemfile") == "ruby"
    assert detect_language(".env.production") == "env"
    assert detect_language("script", "Python") == "python"
    assert detect_language("x.unknown", "klingon") is None


# --------------------------------------------------------------------------- linters


RUFF = find_tool("ruff")
needs_ruff = pytest.mark.skipif(RUFF is None, reason="ruff is not installed")


@needs_ruff
def test_ruff_findings_are_mapped_to_added_lines_only() -> None:
    content = "import os\nimport sys\n\n\nif sys == None:\n    pass\nprint(undefined_name)\n"
    text = (
        "@@ -1,4 +1,7 @@\n"
        " import os\n"
        "+import sys\n"
        " \n"
        " \n"
        "-x = 1\n"
        "+if sys == None:\n"
        "+    pass\n"
        "+print(undefined_name)\n"
    )
    prefs = {"disabled_checks": ["debug"]}
    result = review("pkg/m.py", text, content=content, prefs=prefs, reviewer=BuiltinReviewer())
    found = {(c.line, c.severity, c.body.split("`")[1]) for c in result.comments}
    # F401 on line 1 (import os) is on a context line: not reported
    assert found == {(5, "info", "E711"), (7, "warning", "F821")}
    assert all(c.body.startswith("**lint** (builtin/lint): ruff") for c in result.comments)


@needs_ruff
def test_ruff_syntax_error_on_added_line_is_a_warning() -> None:
    content = "def f(:\n    pass\n"
    result = review("m.py", hunk([], ["def f(:", "    pass"]), content=content, reviewer=BuiltinReviewer())
    assert checks(result) == [(1, "lint")]
    assert result.comments[0].severity == "warning"


@needs_ruff
def test_lint_can_be_disabled_by_check_or_linter_name_or_constructor() -> None:
    content = "import os\n"
    text = hunk([], ["import os"])
    assert checks(review("m.py", text, content=content, reviewer=BuiltinReviewer())) == [(1, "lint")]
    for prefs in ({"disabled_checks": ["lint"]}, {"disabled_checks": ["ruff"]}):
        assert review("m.py", text, content=content, prefs=prefs, reviewer=BuiltinReviewer()).comments == []
    assert review("m.py", text, content=content, reviewer=BuiltinReviewer(run_linters=False)).comments == []
    # no content at head: nothing to lint
    assert review("m.py", text, content=None, reviewer=BuiltinReviewer()).comments == []


class RecordingRunner:
    """The process boundary, recorded: which tools were started with which arguments."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], stdin: bytes, timeout: float) -> CommandOutput:
        self.calls.append(list(argv))
        return run_command(argv, stdin, timeout)


@pytest.mark.parametrize("content", ["keep.py", "../lib/keep.py", None])
def test_a_symlink_target_or_missing_file_is_never_linted(content: str | None) -> None:
    # git stores link.py -> keep.py as a one-line blob "keep.py" without a newline; linted as
    # Python it would give "F821 Undefined name 'keep'"
    text = "@@ -0,0 +1 @@\n+" + (content or "keep.py") + "\n\\ No newline at end of file\n"
    runner = RecordingRunner()
    result = review("link.py", text, content=content, reviewer=BuiltinReviewer(runner=runner))
    assert result.comments == []
    assert runner.calls == []


def test_content_that_is_not_the_patched_file_is_not_linted() -> None:
    # the source sent some other text (a stale blob): linting it would report other lines
    runner = RecordingRunner()
    text = hunk([], ["import os", "x = undefined_name"])
    other = "def f(:\n    pass\n"
    result = review("m.py", text, content=other, reviewer=BuiltinReviewer(runner=runner))
    assert result.comments == []
    assert runner.calls == []


@needs_ruff
def test_ruff_runs_isolated_with_the_curated_rules_once_per_file() -> None:
    runner = RecordingRunner()
    content = "import pickle\n\n\ndef load(blob):\n    print(blob)\n    return pickle.loads(blob)\n"
    text = hunk([], content.rstrip("\n").split("\n"))
    result = review("pkg/cache.py", text, content=content, reviewer=BuiltinReviewer(runner=runner))
    assert len(runner.calls) == 1  # one ruff run feeds the lint, debug and security checks
    argv = runner.calls[0]
    assert "--isolated" in argv and argv[argv.index("--select") + 1] == RUFF_SELECT
    assert [(c.line, c.rule) for c in result.comments] == [(5, "ruff/T201"), (6, "ruff/S301")]
    assert checks(result) == [(5, "debug"), (6, "security")]
    prefs = {"disabled_checks": ["ruff/S301"]}
    quiet = review("pkg/cache.py", text, content=content, prefs=prefs, reviewer=BuiltinReviewer())
    assert [c.rule for c in quiet.comments] == ["ruff/T201"]


def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.timeout(30)
def test_a_hanging_linter_is_killed_and_reported(tmp_path: Path) -> None:
    # the child "sleep" inherits the pipes: only killing the process group ends the wait
    hanging = _script(tmp_path, "ruff", "sleep 60 &\nsleep 60\n")
    reviewer = BuiltinReviewer(locate=lambda name: hanging, linter_timeout=0.5)
    result = review(
        "m.py",
        hunk([], ["import os", "breakpoint()"]),
        content="import os\nbreakpoint()\n",
        reviewer=reviewer,
        may_fail=True,
    )
    assert checks(result) == [(2, "debug")]  # found from the tokens when ruff cannot answer
    assert "Check security, lint failed: ruff timed out after 0.5 s." in result.summary


@pytest.mark.parametrize(
    "body",
    [
        "echo 'not json at all'\n",
        'echo \'[{"location": "nowhere"}, 7, {"location": {"row": "x"}}]\'\n',
        "echo boom >&2\nexit 2\n",
    ],
)
def test_a_failing_or_garbled_linter_is_reported_not_taken_as_clean(tmp_path: Path, body: str) -> None:
    broken = _script(tmp_path, "ruff", body)
    reviewer = BuiltinReviewer(locate=lambda name: broken)
    result = review("m.py", hunk([], ["import os"]), content="import os\n", reviewer=reviewer, may_fail=True)
    assert result.comments == []
    assert result.summary.startswith("No findings in 1 added line. Check security, lint failed: ruff ")
    assert "boom" in result.summary or "JSON" in result.summary or "diagnostic" in result.summary


def test_a_crashing_check_is_named_and_the_others_still_report() -> None:
    def crash(ctx: object) -> list[Finding]:
        raise RuntimeError(f"unexpected input near {GH_TOKEN}")

    reviewer = BuiltinReviewer(run_linters=False, checks=[*CHECKS[:1], Check("boom", crash), *CHECKS[1:]])
    result = review("m.py", hunk([], NOISY), reviewer=reviewer, may_fail=True)
    assert {c for _, c in checks(result)} == {"debug", "todo", "secret", "trailing-whitespace"}
    assert "Check boom failed: RuntimeError: unexpected input near [redacted GitHub token]." in result.summary
    assert GH_TOKEN not in result.summary
    # a disabled check is not run, so it cannot fail
    quiet = review("m.py", hunk([], NOISY), reviewer=reviewer, prefs={"disabled_checks": ["boom"]})
    assert "failed" not in quiet.summary


def test_a_missing_linter_is_skipped_and_one_that_cannot_start_is_reported(tmp_path: Path) -> None:
    reviewer = BuiltinReviewer(locate=lambda name: str(tmp_path / "no-such-tool"))
    result = review("m.py", hunk([], ["import os"]), content="import os\n", reviewer=reviewer, may_fail=True)
    assert result.comments == []
    assert "lint failed: no-such-tool could not run" in result.summary
    reviewer = BuiltinReviewer(locate=lambda name: None)
    assert review("m.py", hunk([], ["import os"]), content="import os\n", reviewer=reviewer).comments == []


def test_parse_ruff_output_keeps_added_rows() -> None:
    stdout = (
        '[{"code": "F401", "location": {"row": 1}, "message": "unused"},'
        ' {"code": null, "location": {"row": 2}, "message": "SyntaxError: bad"},'
        ' {"code": "E731", "location": {"row": 3}, "message": "lambda"}]'
    )
    found = [(f.line, f.severity) for f in parse_ruff_output(stdout, {2, 3})]
    assert found == [(2, "warning"), (3, "info")]


def test_shellcheck_output_is_mapped_through_the_injected_runner() -> None:
    # shellcheck is not installed everywhere; its JSON is fed through the runner port
    calls: list[list[str]] = []

    def runner(argv: Sequence[str], stdin: bytes, timeout: float) -> CommandOutput:
        calls.append(list(argv))
        assert stdin.startswith(b"rm -rf")
        payload = (
            '{"comments": ['
            '{"line": 1, "level": "warning", "code": 2115, "message": "Use ${var:?}"},'
            '{"line": 2, "level": "style", "code": 2001, "message": "See if you can use ${x//}"},'
            '{"line": 3, "level": "error", "code": 1000, "message": "on a context line"}]}'
        )
        return CommandOutput(returncode=1, stdout=payload, stderr="")

    reviewer = BuiltinReviewer(runner=runner, locate=lambda name: f"/opt/{name}")
    content = 'rm -rf "$dir/"*\necho $(echo $x | sed s/a/b/)\necho done\n'
    text = '@@ -1,1 +1,3 @@\n+rm -rf "$dir/"*\n+echo $(echo $x | sed s/a/b/)\n echo done\n'
    result = review("clean.sh", text, content=content, reviewer=reviewer)
    assert calls and calls[0][0] == "/opt/shellcheck" and "--shell=sh" in calls[0]
    assert [(c.line, c.severity) for c in result.comments] == [(1, "warning"), (2, "info")]
    assert "shellcheck `SC2115`" in result.comments[0].body


NODE = find_tool("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_node_check_reports_a_syntax_error_on_an_added_line() -> None:
    content = "const a = 1;\nfunction f( {\n  return a;\n}\n"
    text = hunk([], content.rstrip("\n").split("\n"))
    result = review("src/a.js", text, content=content, reviewer=BuiltinReviewer())
    lint = [c for c in result.comments if "(builtin/lint)" in c.body]
    assert len(lint) == 1 and lint[0].severity == "warning"
    assert "SyntaxError" in lint[0].body
    # valid code, or JSX node cannot parse, is left alone
    ok = "const a = 1;\nexport default a;\n"
    assert (
        review(
            "src/b.js", hunk([], ok.rstrip("\n").split("\n")), content=ok, reviewer=BuiltinReviewer()
        ).comments
        == []
    )
    jsx = "const a = <div>hi</div>;\n"
    assert (
        review("src/c.js", hunk([], [jsx.rstrip()]), content=jsx, reviewer=BuiltinReviewer()).comments == []
    )


def test_find_tool_looks_next_to_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    # ruff is installed in the test virtualenv; it is found even with an empty PATH
    venv_ruff = Path(sys.executable).parent / "ruff"
    if not venv_ruff.exists():
        pytest.skip("ruff is not installed next to the interpreter")
    monkeypatch.setenv("PATH", "")
    assert find_tool("ruff") == str(venv_ruff)
    assert find_tool("surely-not-a-tool-review-agent") is None


def test_the_package_modules_stay_small() -> None:
    import review_agent.reviewers.builtin as module

    for path in Path(module.__file__).parent.glob("*.py"):
        assert len(path.read_text().splitlines()) < 450, path.name


def test_check_ids_are_documented() -> None:
    import review_agent.reviewers.builtin as module

    assert module.__doc__ is not None
    for check in CHECK_IDS:
        assert f"``{check}``" in module.__doc__
