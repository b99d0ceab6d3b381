"""Switching the model server on or off in one home or database never refuses a command
(issue 10): a learning's text is the truth, its vector a cache per embedder. Real CLI processes,
the fake model server for chat and embeddings, on SQLite and on Postgres."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.crash import run_cli
from tests.fakes.openai_server import FakeOpenAI
from tests.gitrepo import make_repo

RULE_SQL = "SQL migrations (*.sql) must be reversible: write the down migration too"
RULE_PICKLE = "serializer must never use pickle"


def _prompt_text(fake: FakeOpenAI, path: str) -> str:
    return "\n".join(str(m.get("content")) for c in fake.calls if c.path == path for m in c.messages)


def _recalled(stdout: str) -> dict[str, list[str]]:
    return {f["path"]: f["learnings_recalled"] for f in json.loads(stdout)["files"]}


@pytest.mark.slow  # about fifteen CLI processes per case
@pytest.mark.parametrize("first", ["offline", "model"])
def test_switching_the_model_server_on_and_off_never_refuses(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    model_env: dict[str, str],
    backend_env: dict[str, str],
    first: str,
) -> None:
    offline = dict(backend_env)
    online = {**backend_env, **model_env}
    envs = [offline, online] if first == "offline" else [online, offline]
    repo = make_repo(
        tmp_path,
        files=1,
        extra={
            "db/0042_add_index.sql": "CREATE INDEX orders_idx ON orders (created_at);\n",
            "app/serializer.py": "import pickle\n\ndef dump(o):\n    return pickle.dumps(o)\n",
        },
    )
    # learned with the first embedder; the second makes its own vectors when it needs them
    ids = {}
    for rule in (RULE_SQL, RULE_PICKLE):
        r = run_cli(["learn", rule, "--user", "ann"], envs[0], tmp_path)
        assert r.returncode == 0, r.stderr
        ids[rule] = r.stdout.rsplit("[id ", 1)[1].rstrip("]\n")

    for n, env in enumerate(envs):  # off then on, or on then off
        args = ["review", str(repo), "--base", "main", "--user", "ann", "-f", "json"]
        r = run_cli([*args, "--fresh"] if n else args, env, tmp_path)
        assert r.returncode == 0, r.stderr
        assert "indexed with" not in r.stderr and "Traceback" not in r.stderr
        recalled = _recalled(r.stdout)
        assert recalled["db/0042_add_index.sql"] == [ids[RULE_SQL]], (n, recalled)
        assert recalled["app/serializer.py"] == [ids[RULE_PICKLE]], (n, recalled)
        assert recalled["mod00.py"] == []
        for cmd in (
            ["status", str(repo), "--base", "main"],
            ["history", str(repo), "--base", "main"],
            ["prefs", "list", "--user", "ann"],
            ["db", "init"],
        ):
            r = run_cli(cmd, env, tmp_path)
            assert r.returncode == 0, (cmd, r.stderr)
    # with the model: the rule reached the prompt of its file, and only that one
    assert RULE_SQL in _prompt_text(fake_openai, "db/0042_add_index.sql")
    assert RULE_SQL not in _prompt_text(fake_openai, "mod00.py")
    assert fake_openai.embedding_calls > 0
    # learning with the second embedder works too, and `prefs list` shows both embedders' learnings
    r = run_cli(["learn", "prefer pathlib over os.path", "--user", "ann"], envs[1], tmp_path)
    assert r.returncode == 0, r.stderr
    listed = run_cli(["prefs", "list", "--user", "ann"], envs[0], tmp_path).stdout
    assert RULE_PICKLE in listed and "prefer pathlib" in listed
