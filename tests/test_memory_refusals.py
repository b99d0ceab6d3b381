"""What memory refuses (issue 11), and the memory and storage errors of every command: one line,
the documented exit code, no traceback (issue 10)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from langgraph.store.memory import InMemoryStore
from typer.testing import CliRunner

from review_agent.cli import app
from review_agent.errors import BadInput
from review_agent.memory_admin import Memory, import_memory
from review_agent.storage.admission import MAX_KEY_CHARS, MAX_VALUE_CHARS
from review_agent.storage.memory import Learnings
from review_agent.storage.preferences import Preferences
from tests.crash import run_cli
from tests.gitrepo import make_repo

TOKEN = "ghp_" + "A1b2C3d4E5" * 4  # shaped like a GitHub token, valid nowhere


def _memory() -> Memory:
    store = InMemoryStore()
    return Memory(Preferences(store), Learnings(store, None))


def test_the_memory_layer_refuses_credentials_without_echoing_them() -> None:
    m = _memory()
    with pytest.raises(BadInput) as exc:
        m.preferences.set("a", "token", TOKEN)
    assert "GitHub token" in str(exc.value) and TOKEN not in str(exc.value)
    with pytest.raises(BadInput, match="GitHub token"):
        m.preferences.set("a", "style", {"nested": [f"use {TOKEN}"]})
    with pytest.raises(BadInput) as exc:
        m.learnings.add(("user", "a"), f"always use token {TOKEN}")
    assert "GitHub token" in str(exc.value) and TOKEN not in str(exc.value)
    with pytest.raises(BadInput, match="origin"):  # a dismissed finding that quotes a key
        m.learnings.add(("repo", "o/r"), "dismissed", {"dismissed_finding": f"key {TOKEN} leaked"})
    assert m.preferences.all("a") == {} and m.learnings.list(("user", "a")) == []


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("", "v", "empty"),
        ("   ", "v", "empty"),
        ("a\x1bkey", "v", "printable"),
        ("k" * (MAX_KEY_CHARS + 1), "v", f"at most {MAX_KEY_CHARS}"),
        ("k", "x" * 100_000, f"at most {MAX_VALUE_CHARS:,}"),
    ],
)
def test_preferences_refuse_bad_keys_and_oversized_values_stating_the_limit(
    key: str, value: str, said: str
) -> None:
    m = _memory()
    with pytest.raises(BadInput, match=said):
        m.preferences.set("a", key, value)
    assert m.preferences.all("a") == {}


def test_learnings_refuse_empty_oversized_and_control_characters() -> None:
    m = _memory()
    for text, said in (("  ", "needs some text"), ("x" * 5000, "at most 2,000"), ("a\x1b[31m", "printable")):
        with pytest.raises(BadInput, match=said):
            m.learnings.add(("user", "a"), text)


def test_an_import_with_a_refused_entry_writes_nothing() -> None:
    m = _memory()
    data = {
        "version": 1,
        "preferences": [{"user": "a", "values": {"style": "early returns", "token": TOKEN}}],
        "learnings": [{"scope": ["user", "a"], "text": "prefer pathlib"}],
    }
    with pytest.raises(BadInput) as exc:
        import_memory(m, data)
    assert "GitHub token" in str(exc.value) and TOKEN not in str(exc.value)
    data["preferences"][0]["values"].pop("token")  # type: ignore[index]
    data["learnings"].append({"scope": ["user", "a"], "text": f"use {TOKEN}"})  # type: ignore[attr-defined]
    with pytest.raises(BadInput):
        import_memory(m, data)
    assert m.preferences.all("a") == {} and m.learnings.list(("user", "a")) == []


@pytest.mark.slow
def test_cli_refusals_name_the_secret_kind_and_the_limit(tmp_path: Path, home: Path) -> None:
    env = {"REVIEW_AGENT_HOME": str(home)}
    r = run_cli(["prefs", "set", "token", TOKEN, "--user", "a"], env, tmp_path)
    assert r.returncode == 2 and "GitHub token" in r.stderr
    assert TOKEN not in r.stderr + r.stdout and "Traceback" not in r.stderr
    r = run_cli(["learn", f"always use token {TOKEN}", "--user", "a"], env, tmp_path)
    assert r.returncode == 2 and "GitHub token" in r.stderr and TOKEN not in r.stderr + r.stdout
    r = run_cli(["prefs", "set", "big", "x" * 100_000, "--user", "a"], env, tmp_path)
    assert r.returncode == 2 and f"at most {MAX_VALUE_CHARS:,}" in r.stderr
    r = run_cli(["prefs", "list", "--user", "a"], env, tmp_path)
    assert "no preferences" in r.stdout


# -- the embeddings server missing or without an embeddings endpoint --------------------------


class _NotFound(BaseHTTPRequestHandler):
    """A model server with no embeddings endpoint: every route is 404, OpenAI-style."""

    def do_POST(self) -> None:
        body = json.dumps({"error": {"message": "Unknown route", "type": "invalid_request_error"}}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def no_embeddings_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


@pytest.mark.slow
@pytest.mark.parametrize("server", ["404", "none"])
def test_learn_and_import_without_embeddings_keep_the_text_and_say_so(
    tmp_path: Path, home: Path, no_embeddings_url: str, server: str
) -> None:
    """A learning's text is the truth and its vector derived: a model server without embeddings
    (404) or no server at all costs the vector, with one warning, never the learning."""
    url = no_embeddings_url if server == "404" else _closed_port_url()
    env = {
        "REVIEW_AGENT_HOME": str(home),
        "OPENAI_API_KEY": "sk-test-key",
        "OPENAI_BASE_URL": url,
        "REVIEW_AGENT_MODEL_RETRIES": "0",
        "REVIEW_AGENT_MODEL_TIMEOUT": "5",
    }
    export = tmp_path / "mem.json"
    export.write_text(json.dumps({"version": 1, "learnings": [{"scope": ["user", "a"], "text": "no print"}]}))
    for args in (["learn", "prefer pathlib", "--user", "a"], ["prefs", "import", str(export)]):
        r = run_cli(args, env, tmp_path)
        assert r.returncode == 0, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert "saved without its vector" in r.stderr and "sk-test-key" not in r.stderr
        if server == "404":
            assert "set REVIEW_AGENT_EMBEDDINGS=local" in r.stderr
        else:
            assert "unreachable" in r.stderr
    listed = run_cli(["prefs", "list", "--user", "a"], env, tmp_path).stdout
    assert "prefer pathlib" in listed and "no print" in listed


# -- DATABASE_URL and REVIEW_AGENT_HOME that cannot work, in every command --------------------


def _commands(repo: Path, export: Path) -> list[list[str]]:
    return [
        ["review", str(repo), "--base", "main"],
        ["status", str(repo), "--base", "main"],
        ["history", str(repo), "--base", "main"],
        ["prefs", "set", "k", "v", "--user", "a"],
        ["prefs", "get", "k", "--user", "a"],
        ["prefs", "list", "--user", "a"],
        ["prefs", "forget", "--user", "a"],
        ["prefs", "export", "--user", "a"],
        ["prefs", "import", str(export)],
        ["learn", "prefer pathlib", "--user", "a"],
        ["db", "init"],
        ["db", "prune"],
    ]


@pytest.mark.parametrize(
    ("setting", "code", "said"),
    [
        ({"DATABASE_URL": "notaurl"}, 2, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://u:secretpw@db.example/app"}, 2, "mysql://"),
        ({"DATABASE_URL": "postgresql://u@h:notaport/db"}, 2, "port"),
        ({"REVIEW_AGENT_HOME": "FILE/home"}, 3, "is a file, not a directory"),
    ],
)
def test_a_storage_setting_that_cannot_work_is_one_line_and_one_code_in_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: dict[str, str], code: int, said: str
) -> None:
    repo = make_repo(tmp_path, files=1)
    export = tmp_path / "mem.json"
    export.write_text('{"version": 1}')
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("REVIEW_AGENT_HOME", str(tmp_path / "home"))
    for key, value in setting.items():
        monkeypatch.setenv(key, value.replace("FILE", str(tmp_path / "afile")))
    runner = CliRunner()
    for args in _commands(repo, export):
        res = runner.invoke(app, args)
        assert res.exit_code == code, (args, res.stderr, res.exception)
        assert said in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)
        assert "progress so far is saved" not in res.stderr and "secretpw" not in res.stderr
    assert not (tmp_path / "home").exists()
