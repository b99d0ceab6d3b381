"""Checkpoint deserialization accepts only what review-agent writes (issue 7): a tampered row is
refused with a clear error and nothing it names is executed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import ormsgpack
import pytest
from typer.testing import CliRunner

from review_agent.cli import app
from review_agent.storage.serde import StrictSerializer
from tests.crash import run_cli

runner = CliRunner()


def _evil_blob(marker: Path) -> bytes:
    # what a row would hold to make a permissive loader call os.system("touch MARKER")
    inner = ormsgpack.packb(["os", "system", f"touch {marker}"])
    return ormsgpack.packb({"user": ormsgpack.Ext(0, inner)})


def test_strict_serializer_refuses_foreign_types_and_pickle(tmp_path: Path) -> None:
    import pytest

    from review_agent.errors import CorruptState

    serde = StrictSerializer()
    plain = {"plan": [{"path": "a.py"}], "cursor": 3}
    assert serde.loads_typed(serde.dumps_typed(plain)) == plain
    marker = tmp_path / "pwned"
    with pytest.raises(CorruptState, match=r"os\.system"):
        serde.loads_typed(("msgpack", _evil_blob(marker)))
    with pytest.raises(CorruptState, match="pickle"):
        serde.loads_typed(("pickle", b"cos\nsystem\n(S'true'\ntR."))
    assert not marker.exists()


@pytest.mark.slow
def test_a_tampered_checkpoint_row_stops_the_cli_with_a_clear_error(
    tmp_path: Path, repo: Path, home: Path
) -> None:
    assert runner.invoke(app, ["review", str(repo), "--base", "main"]).exit_code == 0
    db = home / "review-agent.sqlite"
    marker = tmp_path / "pwned"
    conn = sqlite3.connect(db)
    # replace the latest checkpoint's data with a row naming os.system
    (cid,) = conn.execute("SELECT max(checkpoint_id) FROM checkpoints").fetchone()
    serde = StrictSerializer()
    typ, blob = conn.execute(
        "SELECT type, checkpoint FROM checkpoints WHERE checkpoint_id = ?", (cid,)
    ).fetchone()
    checkpoint = serde.loads_typed((typ, blob))
    checkpoint["channel_values"]["user"] = ormsgpack.Ext(
        0, ormsgpack.packb(["os", "system", f"touch {marker}"])
    )
    tampered = ormsgpack.packb(checkpoint, option=ormsgpack.OPT_NON_STR_KEYS)
    conn.execute("UPDATE checkpoints SET checkpoint = ? WHERE checkpoint_id = ?", (tampered, cid))
    conn.commit()
    conn.close()

    r = run_cli(["status", str(repo), "--base", "main"], {"REVIEW_AGENT_HOME": str(home)}, tmp_path)
    assert r.returncode == 3, r.stderr
    assert "refusing to load" in r.stderr and "os.system" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(["review", str(repo), "--base", "main"], {"REVIEW_AGENT_HOME": str(home)}, tmp_path)
    assert r.returncode == 3 and "--fresh" in r.stderr
    assert not marker.exists()
    # --fresh starts over and works
    r = run_cli(
        ["review", str(repo), "--base", "main", "--fresh"], {"REVIEW_AGENT_HOME": str(home)}, tmp_path
    )
    assert r.returncode == 0, r.stderr
