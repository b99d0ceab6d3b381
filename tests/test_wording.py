"""What the CLI says, said right (issue 10): counted nouns, a resume that claims no progress it
has not made, the second signal's wording, both spellings of --event, the budget as given, and a
--wait that says it is waiting."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from review_agent.cli import _graceful_stop, _review_event, app
from review_agent.config import Settings
from review_agent.errors import ServiceUnavailable
from review_agent.service import _walk_again_message, resuming_message, thread_id_for
from review_agent.sources.local import LocalGitSource
from review_agent.storage.lease import thread_lease
from review_agent.wording import plural, severity_tally
from tests.crash import run_cli
from tests.fakes.github_server import FakeGitHub, make_file
from tests.fakes.openai_server import FakeOpenAI

runner = CliRunner()


def test_plural() -> None:
    assert [plural(n, "comment") for n in (0, 1, 2)] == ["0 comments", "1 comment", "2 comments"]
    assert plural(3, "entry", "entries") == "3 entries"


def test_walking_again_says_how_many_are_asked() -> None:
    todo = [{"path": "a.py"}, {"path": "b.py"}]
    every = _walk_again_message(todo, {}, "builtin", 0, 2)
    assert every.startswith("Going over all 2 files again") and "the rest" not in every
    assert "2 not reviewed yet" in every and "reused" not in every  # the cache may still serve them
    some = _walk_again_message(todo[1:], {}, "builtin", 1, 2)
    assert some.startswith("Continuing: 1/2 files done; going over the other 1 (")


def test_severities_are_counted_nouns_too() -> None:
    assert severity_tally({"error": 1, "warning": 0, "info": 2}) == "1 error, 0 warnings, 2 info"
    assert severity_tally({}) == "0 errors, 0 warnings, 0 info"


def test_resuming_says_only_what_was_done() -> None:
    assert resuming_message(6, 10) == "Resuming: 6/10 files done"
    nothing = resuming_message(0, 26)
    assert "0/26" not in nothing and "not finished a file" in nothing and "26 files planned" in nothing
    assert "planned" not in resuming_message(0, None)


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize(
    ("sig", "again"),
    [(signal.SIGTERM, "send SIGTERM or press Ctrl-C again"), (signal.SIGINT, "(press Ctrl-C again")],
)
def test_the_first_signal_says_how_to_stop_at_once_in_its_own_terms(
    sig: signal.Signals, again: str, restore_signals: None, capsys: pytest.CaptureFixture[str]
) -> None:
    stop = _graceful_stop()
    os.kill(os.getpid(), sig)
    assert stop.is_set()
    err = capsys.readouterr().err
    assert "stopping after the files in flight are saved" in err and again in err
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), sig)


@pytest.mark.parametrize(
    ("given", "event"),
    [
        ("comment", "COMMENT"),
        ("COMMENT", "COMMENT"),
        ("request-changes", "REQUEST_CHANGES"),
        ("REQUEST_CHANGES", "REQUEST_CHANGES"),
        ("Request_Changes", "REQUEST_CHANGES"),
        ("approve", "APPROVE"),
        ("APPROVE", "APPROVE"),
    ],
)
def test_event_accepts_the_cli_and_the_action_spelling(given: str, event: str) -> None:
    assert _review_event(given) == event


def test_an_unknown_event_is_bad_input(repo: Path, home: Path) -> None:
    with pytest.raises(typer.BadParameter):
        _review_event("merge")
    result = runner.invoke(app, ["review", str(repo), "--base", "main", "--event", "merge"])
    assert result.exit_code == 2 and "'merge' is not one of" in result.stderr


@pytest.mark.slow
def test_the_action_spelling_of_event_posts_that_event(
    fake_openai: FakeOpenAI, model_env: dict[str, str], tmp_path: Path
) -> None:
    token = "ghs_faketoken_for_tests_0123456789"
    with FakeGitHub(token=token) as gh:
        patch = "@@ -1,1 +1,2 @@\n def f(x):\n+    return x\n"
        gh.add_pr("acme", "shop", 3, [make_file("m.py", patch, content="def f(x):\n    return x\n")])
        env = {
            **model_env,
            "GITHUB_TOKEN": token,
            "GITHUB_API_URL": gh.url,
            "REVIEW_AGENT_HOME": str(tmp_path / "home"),
        }
        url = f"{gh.root}/acme/shop/pull/3"
        r = run_cli(["review", url, "--post", "--event", "REQUEST_CHANGES"], env, tmp_path)
        assert r.returncode == 0, r.stderr
        assert [rv["state"] for rv in gh.reviews("acme", "shop", 3)] == ["CHANGES_REQUESTED"]


@pytest.mark.slow
def test_budget_message_shows_the_limit_as_given(
    repo: Path, tmp_path: Path, fake_openai: FakeOpenAI, model_env: dict[str, str]
) -> None:
    env = {**model_env, "REVIEW_AGENT_HOME": str(tmp_path / "home"), "REVIEW_AGENT_PRICE": "1000,1000"}
    r = run_cli(["review", str(repo), "--base", "main", "-j", "1", "--max-cost", "0.005"], env, tmp_path)
    assert r.returncode == 4, r.stderr
    assert "of --max-cost $0.005 spent" in r.stderr


def _lease_of(repo: Path, home: Path) -> tuple[Settings, str]:
    thread = thread_id_for(LocalGitSource(repo, base="main").resolve())
    return Settings(REVIEW_AGENT_HOME=str(home)), thread


@pytest.mark.slow
def test_wait_says_once_whom_it_waits_for(repo: Path, home: Path, tmp_path: Path) -> None:
    settings, thread = _lease_of(repo, home)
    said: list[str] = []
    with thread_lease(settings, thread):
        with (
            pytest.raises(ServiceUnavailable, match=r"after waiting 0\.6s"),
            thread_lease(settings, thread, wait=0.6, on_wait=said.append),
        ):
            pass
        # the CLI says it too, before its wait runs out
        r = run_cli(
            ["review", str(repo), "--base", "main", "--wait", "0.5"],
            {"REVIEW_AGENT_HOME": str(home)},
            tmp_path,
        )
    assert said == [
        f"waiting for the run of this review held by review-agent pid {os.getpid()} on "
        f"{socket.gethostname()} since {said[0].split(' since ')[1].split(',')[0]}, up to 0.6 s…"
    ]
    assert r.returncode == 3
    assert f"waiting for the run of this review held by review-agent pid {os.getpid()}" in r.stderr
    assert r.stderr.count("waiting for the run") == 1


def test_no_wait_says_nothing_about_waiting(repo: Path, home: Path) -> None:
    settings, thread = _lease_of(repo, home)
    said: list[str] = []
    with (
        thread_lease(settings, thread),
        pytest.raises(ServiceUnavailable),
        thread_lease(settings, thread, on_wait=said.append),
    ):
        pass
    assert said == []


@pytest.mark.postgres
def test_wait_on_postgres_says_whom_it_waits_for(repo: Path, tmp_path: Path) -> None:
    from tests.pg import temp_database

    with temp_database("ra_wait") as url:
        settings = Settings(DATABASE_URL=url, REVIEW_AGENT_HOME=str(tmp_path / "home"))
        thread = thread_id_for(LocalGitSource(repo, base="main").resolve())
        said: list[str] = []
        with (
            thread_lease(settings, thread),
            pytest.raises(ServiceUnavailable),
            thread_lease(settings, thread, wait=0.5, on_wait=said.append),
        ):
            pass
    assert len(said) == 1 and f"held by review-agent pid {os.getpid()} on" in said[0]


def test_the_readme_lists_every_action_input_and_output() -> None:
    from tests.test_action import load_action

    action = load_action()
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    listed = readme[readme.index("\nInputs: ") : readme.index("The contract is in")]
    for name in [*action["inputs"], *action["outputs"]]:
        assert f"`{name}`" in listed, name
