"""The GitHub Action: its metadata and example workflows against GitHub's published schemas, and
``run_action`` driven the way the runner drives it — an event payload file, ``INPUT_*`` variables,
``GITHUB_STEP_SUMMARY`` / ``GITHUB_OUTPUT`` files — against the fake GitHub and model servers.

No real Actions run is possible here, so what can be checked offline is checked: the YAML is
valid for GitHub, every input the action declares reaches ``run_action`` under the name it reads,
every output it declares is one ``run_action`` writes, and the review, summary, outputs, exit
codes and masking behave as the job would see them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from review_agent.action import INPUTS, OUTPUTS, run_action
from tests.conftest import cli_env
from tests.fakes.github_server import FakeGitHub, added_file_patch, make_file
from tests.fakes.openai_server import WALKTHROUGH, FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
ACTION_YML = ROOT / "action.yml"
WORKFLOWS = [ROOT / "examples" / "review.yml", ROOT / "examples" / "review-sqlite.yml"]

API_KEY = "sk-action-secret-5d1f0e9a7c"
TOKEN = "ghp_action_secret_token_8b2c4d6e"
OWNER, REPO, NUMBER = "octo", "demo", 7
HEAD = "c" * 40
PR_URL = f"https://github.com/{OWNER}/{REPO}/pull/{NUMBER}"


# -- schemas and the action's own contract ---------------------------------------------------


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    """The venv's check-jsonschema with its vendored copy of GitHub's schema (works offline)."""
    exe = Path(sys.executable).parent / "check-jsonschema"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "check_jsonschema"]
    return subprocess.run(
        [*cmd, "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_action_yml_validates_against_githubs_action_schema() -> None:
    proc = check_jsonschema("vendor.github-actions", ACTION_YML)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_example_workflows_validate_against_githubs_workflow_schema() -> None:
    proc = check_jsonschema("vendor.github-workflows", *WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    """The two tests above prove something only if a broken file is refused."""
    broken = tmp_path / "action.yml"
    broken.write_text("name: x\nruns:\n  using: composite\n", encoding="utf-8")  # no description
    assert check_jsonschema("vendor.github-actions", broken).returncode != 0


def load_action() -> dict[str, Any]:
    return yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))


def review_step(action: dict[str, Any]) -> dict[str, Any]:
    steps = [s for s in action["runs"]["steps"] if s.get("id") == "review"]
    assert len(steps) == 1, "action.yml needs exactly one step with id: review"
    return steps[0]


def test_every_input_reaches_run_action_and_every_output_is_written() -> None:
    """A composite action does not export its inputs: each must be mapped by hand, and a name
    mapped wrongly would be silently ignored. Outputs likewise name step outputs by string."""
    action = load_action()
    step = review_step(action)
    assert re.search(r"(?m)^\s*python -m review_agent action\s*$", step["run"])
    declared = set(action["inputs"]) - {"python-version"}
    assert declared == set(INPUTS)
    env = step["env"]
    for name in INPUTS:
        key = "INPUT_" + name.upper().replace("-", "_")
        assert env.get(key) == f"${{{{ inputs.{name} }}}}", key
    for name, spec in action["outputs"].items():
        assert name in OUTPUTS
        assert spec["value"] == f"${{{{ steps.review.outputs.{name} }}}}"
    assert set(action["outputs"]) == set(OUTPUTS)
    assert action["inputs"]["github-token"]["default"] == "${{ github.token }}"


def test_example_workflows_resume_instead_of_racing() -> None:
    for path in WORKFLOWS:
        wf = yaml.safe_load(path.read_text(encoding="utf-8"))
        on = wf.get("on", wf.get(True))  # PyYAML reads a bare `on` key as True
        assert set(on["pull_request"]["types"]) == {"opened", "synchronize", "reopened"}
        assert wf["permissions"] == {"contents": "read", "pull-requests": "write"}
        assert wf["concurrency"]["cancel-in-progress"] is False
        assert "github.event.pull_request.number" in wf["concurrency"]["group"]
        steps = next(iter(wf["jobs"].values()))["steps"]
        saves = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache/save")]
        assert saves and all(s.get("if") == "always()" for s in saves), path.name
        restores = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache/restore")]
        assert restores and all("restore-keys" in s["with"] for s in restores), path.name


# -- run_action against the fakes ------------------------------------------------------------


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN, login="review-bot") as fake:
        fake.add_pr(
            OWNER,
            REPO,
            NUMBER,
            [
                make_file("src/app.py", added_file_patch(["x = 1", "y = 2"]), content="x = 1\ny = 2\n"),
                make_file("README.md", added_file_patch(["# demo"]), content="# demo\n"),
            ],
            head_sha=HEAD,
            author="alice",
            title="Add app",
        )
        yield fake


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(require_api_key=API_KEY) as fake:
        yield fake


def pr_payload(html_url: str = PR_URL) -> dict[str, Any]:
    return {
        "action": "synchronize",
        "number": NUMBER,
        "pull_request": {
            "number": NUMBER,
            "html_url": html_url,
            "state": "open",
            "user": {"login": "alice"},
            "head": {"sha": HEAD},
        },
        "repository": {"full_name": f"{OWNER}/{REPO}"},
    }


class Job:
    """One step's environment as the runner builds it, with the files it hands the step."""

    def __init__(self, tmp: Path, gh: FakeGitHub | None, llm: FakeOpenAI | None) -> None:
        self.tmp = tmp
        self.summary = tmp / "summary.md"
        self.output = tmp / "output.txt"
        self.event = tmp / "event.json"
        self.env: dict[str, str] = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_PATH": str(self.event),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
            "GITHUB_SERVER_URL": "https://github.com",
            "REVIEW_AGENT_HOME": str(tmp / "home"),
            "REVIEW_AGENT_MODEL_RETRIES": "0",
            "REVIEW_AGENT_MODEL_TIMEOUT": "10",
            "REVIEW_AGENT_GITHUB_RETRIES": "1",
            # what action.yml maps: empty when the workflow gives no value
            **{"INPUT_" + n.upper().replace("-", "_"): "" for n in INPUTS},
            "INPUT_CONCURRENCY": "4",
            "INPUT_FAIL_ON_FINDINGS": "none",
            "INPUT_REVIEW_EVENT": "COMMENT",
            "INPUT_MODEL": "fake-model",
        }
        if gh is not None:
            self.env["GITHUB_API_URL"] = gh.url
            self.env["INPUT_GITHUB_TOKEN"] = TOKEN
        if llm is not None:
            self.env["INPUT_BASE_URL"] = llm.base_url
            self.env["INPUT_API_KEY"] = API_KEY

    def run(self, event: str, payload: dict[str, Any], **env: str) -> tuple[int, str]:
        self.event.write_text(json.dumps(payload), encoding="utf-8")
        self.env["GITHUB_EVENT_NAME"] = event
        self.env.update(env)
        log = _Log()
        code = run_action(self.env, stdout=log)
        return code, log.getvalue()

    def outputs(self) -> dict[str, str]:
        """Parse GITHUB_OUTPUT the way the runner does (``name<<DELIM`` blocks)."""
        text = self.output.read_text(encoding="utf-8") if self.output.exists() else ""
        out: dict[str, str] = {}
        lines = iter(text.splitlines())
        for line in lines:
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            for v in lines:
                if v == delimiter:
                    break
                value.append(v)
            out[name] = "\n".join(value)
        return out


class _Log:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        return "".join(self.parts)


@pytest.fixture
def job(tmp_path: Path, gh: FakeGitHub, llm: FakeOpenAI) -> Job:
    return Job(tmp_path, gh, llm)


def test_pull_request_event_is_reviewed_with_summary_and_outputs(
    job: Job, gh: FakeGitHub, llm: FakeOpenAI
) -> None:
    code, log = job.run("pull_request", pr_payload())
    assert code == 0, log
    assert llm.calls_for("src/app.py") == 1 and llm.calls_for("README.md") == 1
    outputs = job.outputs()
    assert outputs["thread-id"] == f"github.com/{OWNER}/{REPO}#{NUMBER}@{HEAD}"
    assert outputs["files-reviewed"] == "2"
    assert outputs["files-total"] == "2"
    assert outputs["comment-count"] == "2"  # the fake model's one warning per file
    assert outputs["resumed"] == "false"
    summary = job.summary.read_text(encoding="utf-8")
    assert summary.startswith(f"## review-agent: {PR_URL}")
    assert "### `src/app.py`" in summary and "Fake finding on src/app.py" in summary
    assert "::error" not in log
    reviews = gh.reviews(OWNER, REPO, NUMBER)
    assert [str(r["id"]) for r in reviews] == [outputs["review-id"]]
    assert len(gh.review_comments(OWNER, REPO, NUMBER)) == 2


def test_a_rerun_of_the_job_resumes_without_model_calls_or_new_comments(
    job: Job, gh: FakeGitHub, llm: FakeOpenAI
) -> None:
    assert job.run("pull_request", pr_payload())[0] == 0
    calls, comments = llm.total_calls, len(gh.review_comments(OWNER, REPO, NUMBER))
    job.output.unlink()
    code, log = job.run("pull_request", pr_payload())  # "Re-run failed jobs": same event, same home
    assert code == 0, log
    assert llm.total_calls == calls
    assert len(gh.review_comments(OWNER, REPO, NUMBER)) == comments == 2
    assert len(gh.reviews(OWNER, REPO, NUMBER)) == 1
    assert "Already reviewed: 2/2" in log
    assert job.outputs()["comment-count"] == "2"
    assert job.summary.read_text(encoding="utf-8").count("## review-agent:") == 2  # appended


@pytest.mark.parametrize(("level", "expected"), [("none", 0), ("info", 1), ("warning", 1), ("error", 0)])
def test_fail_on_findings_threshold(job: Job, level: str, expected: int) -> None:
    # the runner's own spelling for JavaScript/Docker actions keeps the hyphen: accepted too
    del job.env["INPUT_FAIL_ON_FINDINGS"]
    code, log = job.run("pull_request", pr_payload(), **{"INPUT_FAIL-ON-FINDINGS": level})
    assert code == expected, log
    if expected:
        assert re.search(r"(?m)^::error title=review-agent::2 findings at or above", log)
        assert job.outputs()["comment-count"] == "2"  # outputs are written before failing


def test_enterprise_host_from_github_server_url_on_workflow_dispatch(
    job: Job, gh: FakeGitHub, llm: FakeOpenAI
) -> None:
    """A dispatched run names the PR by number: the URL is built on GITHUB_SERVER_URL, and the
    API is found from that host (/api/v3) as on GitHub Enterprise Server."""
    del job.env["GITHUB_API_URL"]
    job.env["GITHUB_SERVER_URL"] = gh.root
    code, log = job.run("workflow_dispatch", {"inputs": {"pr": str(NUMBER)}, "ref": "refs/heads/main"})
    assert code == 0, log
    host = gh.root.split("://", 1)[1]
    assert job.outputs()["thread-id"] == f"{host}/{OWNER}/{REPO}#{NUMBER}@{HEAD}"
    assert llm.total_calls == 3 and llm.calls_for(WALKTHROUGH) == 1  # two files, one walkthrough


def test_comment_on_a_pull_request_reviews_it(job: Job, llm: FakeOpenAI) -> None:
    payload = {
        "action": "created",
        "issue": {
            "number": NUMBER,
            "user": {"login": "alice"},
            "pull_request": {"html_url": PR_URL},
        },
        "comment": {"body": "/review", "user": {"login": "bob"}},
    }
    code, log = job.run("issue_comment", payload)
    assert code == 0, log
    assert job.outputs()["files-reviewed"] == "2"


@pytest.mark.parametrize(
    ("event", "payload", "reason"),
    [
        ("push", {"ref": "refs/heads/main", "after": HEAD}, "the push event is not about a pull request"),
        (
            "issue_comment",
            {"issue": {"number": 3, "user": {"login": "bob"}}, "comment": {"body": "hi"}},
            "not on a pull request",
        ),
        ("pull_request", {**pr_payload(), "action": "closed"}, "is closed"),
    ],
)
def test_an_event_without_a_pull_request_is_nothing_to_review(
    job: Job, gh: FakeGitHub, llm: FakeOpenAI, event: str, payload: dict[str, Any], reason: str
) -> None:
    code, log = job.run(event, payload)
    assert code == 0
    assert re.search(rf"(?m)^::notice title=review-agent::.*{re.escape(reason)}", log), log
    assert gh.requests == [] and llm.total_calls == 0
    assert not job.output.exists() and not job.summary.exists()


def test_workflow_dispatch_without_pr_input_is_bad_input(job: Job, gh: FakeGitHub) -> None:
    code, log = job.run("workflow_dispatch", {"inputs": {}})
    assert code == 2
    assert "::error title=review-agent::workflow_dispatch needs a `pr` input" in log
    assert gh.requests == []


def test_missing_event_path_is_a_clear_error(job: Job, gh: FakeGitHub) -> None:
    del job.env["GITHUB_EVENT_PATH"]
    log = _Log()
    code = run_action(job.env, stdout=log)
    assert code == 2
    assert "::error title=review-agent::GITHUB_EVENT_PATH is not set" in log.getvalue()
    job.env["GITHUB_EVENT_PATH"] = str(job.tmp / "nowhere.json")
    log = _Log()
    assert run_action(job.env, stdout=log) == 2
    assert "cannot read the event payload" in log.getvalue()
    assert "Traceback" not in log.getvalue()
    assert gh.requests == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"INPUT_FAIL_ON_FINDINGS": "warnings"},
            "fail-on-findings must be one of none, info, warning, error",
        ),
        ({"INPUT_CONCURRENCY": "0"}, "concurrency must be from 1 to 64"),
        ({"INPUT_CONCURRENCY": "many"}, "concurrency must be a whole number"),
        ({"INPUT_REVIEW_EVENT": "MERGE"}, "review-event must be one of"),
        ({"INPUT_PR": "the-big-one"}, "expected a pull request number or URL"),
        ({"REVIEW_AGENT_MODEL_TIMEOUT": "soon"}, "REVIEW_AGENT_MODEL_TIMEOUT"),
    ],
)
def test_bad_inputs_exit_2_before_any_request(
    job: Job, gh: FakeGitHub, llm: FakeOpenAI, env: dict[str, str], message: str
) -> None:
    code, log = job.run("pull_request", pr_payload(), **env)
    assert code == 2, log
    assert "::error title=review-agent::" in log and message in log
    assert gh.requests == [] and llm.total_calls == 0


def assert_only_masked(text: str, *secrets: str) -> None:
    """A secret may appear only on its own ``::add-mask::`` line, which the runner swallows."""
    for line in text.splitlines():
        for secret in secrets:
            if secret in line:
                assert line == f"::add-mask::{secret}", f"secret printed: {line!r}"


def test_secrets_are_masked_first_and_never_printed(job: Job, capfd: pytest.CaptureFixture[str]) -> None:
    code, log = job.run("pull_request", pr_payload())
    assert code == 0, log
    lines = log.splitlines()
    assert lines[:2] == [f"::add-mask::{API_KEY}", f"::add-mask::{TOKEN}"]
    captured = capfd.readouterr()
    for text in (log, captured.out, captured.err, job.summary.read_text(), job.output.read_text()):
        assert_only_masked(text, API_KEY, TOKEN)


def test_a_rejected_key_fails_without_echoing_it(
    job: Job, gh: FakeGitHub, llm: FakeOpenAI, capfd: pytest.CaptureFixture[str]
) -> None:
    """The fake model server, like some real ones, quotes a rejected key in full in its error."""
    wrong = "sk-wrong-key-never-to-be-shown-42"
    # plain environment variables work too when the inputs are empty
    job.env["INPUT_API_KEY"] = ""
    job.env["INPUT_GITHUB_TOKEN"] = ""
    code, log = job.run("pull_request", pr_payload(), OPENAI_API_KEY=wrong, GITHUB_TOKEN=TOKEN)
    assert code in (2, 3), log
    assert f"::add-mask::{wrong}" in log.splitlines()
    assert re.search(r"(?m)^::error title=review-agent::", log)
    captured = capfd.readouterr()
    for text in (log, captured.out, captured.err):
        assert_only_masked(text, wrong, TOKEN)
    assert not job.output.exists()


def test_offline_without_a_model_still_reviews(tmp_path: Path, gh: FakeGitHub) -> None:
    """A pull request from a fork gets no secrets: no key, no base URL → the built-in reviewer."""
    job = Job(tmp_path, gh, None)
    code, log = job.run("pull_request_target", pr_payload())
    assert code == 0, log
    assert "(offline)" in job.summary.read_text(encoding="utf-8")


def test_a_read_only_token_still_succeeds_and_says_why_nothing_was_posted(job: Job, gh: FakeGitHub) -> None:
    """A fork's pull request gets a read-only GITHUB_TOKEN: the review is in the job summary,
    the step stays green, and a warning says why nothing was posted."""
    read_only = "ghs_read_only_token_0123456789"
    gh.add_token(read_only, "github-actions[bot]", can_write=False)
    code, log = job.run("pull_request", pr_payload(), INPUT_GITHUB_TOKEN=read_only)
    assert code == 0, log
    assert re.search(r"(?m)^::warning title=review-agent::.*cannot write", log), log
    assert gh.reviews(OWNER, REPO, NUMBER) == []
    assert "review-id" not in job.outputs()
    assert "cannot write" in job.summary.read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_invocation_action_yml_runs(tmp_path: Path) -> None:
    """`python -m review_agent action` as the composite step runs it: environment in, exit code out."""
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"ref": "refs/heads/main"}), encoding="utf-8")
    env = cli_env(
        GITHUB_EVENT_PATH=str(event),
        GITHUB_EVENT_NAME="push",
        REVIEW_AGENT_HOME=str(tmp_path / "home"),
        INPUT_API_KEY=API_KEY,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "review_agent", "action"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == f"::add-mask::{API_KEY}"
    assert "::notice title=review-agent::the push event is not about a pull request" in proc.stdout
    env["GITHUB_EVENT_PATH"] = str(tmp_path / "missing.json")
    proc = subprocess.run(
        [sys.executable, "-m", "review_agent", "action"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "::error title=review-agent::cannot read the event payload" in proc.stdout


def test_a_secret_pasted_into_another_input_is_not_echoed(job: Job, gh: FakeGitHub) -> None:
    """Messages quote what the user gave; when that is a secret, the log shows *** instead."""
    code, log = job.run("pull_request", pr_payload(), INPUT_PR=TOKEN)
    assert code == 2
    assert "::error title=review-agent::the pr input: expected a pull request number or URL, not '***'" in log
    assert_only_masked(log, TOKEN, API_KEY)
    assert gh.requests == []
