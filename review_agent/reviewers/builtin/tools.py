"""Running external linters: found on PATH or next to the interpreter, run with a hard timeout,
killed with their whole process group."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from review_agent.reviewers.builtin.findings import CheckFailed

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class CommandOutput:
    returncode: int
    stdout: str
    stderr: str


# (argv, stdin bytes, timeout seconds) -> output. Raises CheckFailed when the command could not
# run or did not finish in time. Injectable so tests can replace the process boundary.
CommandRunner = Callable[[Sequence[str], bytes, float], CommandOutput]
# tool name -> executable path, or None when it is not installed.
ToolLocator = Callable[[str], str | None]


def run_command(argv: Sequence[str], stdin: bytes, timeout: float) -> CommandOutput:
    """Run a linter with a hard timeout.

    The child gets its own session and, on timeout, the whole process group is killed: a
    wrapper script's children would otherwise keep the pipes open and ``communicate`` would
    wait for them, turning a timeout into a hang. It runs in an empty temporary directory so
    that no configuration file of whatever directory we were started from changes its answer.
    """
    name = Path(argv[0]).name if argv else "?"
    try:
        with tempfile.TemporaryDirectory(prefix="review-agent-lint-") as cwd:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                start_new_session=True,
            )
            try:
                out, err = proc.communicate(stdin, timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                with contextlib.suppress(subprocess.TimeoutExpired, OSError, ValueError):
                    proc.communicate(timeout=2)
                raise CheckFailed(f"{name} timed out after {timeout:g} s") from None
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise CheckFailed(f"{name} could not run ({type(exc).__name__})") from None
    return CommandOutput(
        returncode=proc.returncode,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
    )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - not POSIX
            proc.kill()
    except OSError:
        pass


def find_tool(name: str) -> str | None:
    """Find an executable on PATH, then next to the running interpreter.

    The second place matters because ruff is usually installed into the same virtualenv as
    review-agent, and that virtualenv's ``bin`` is not on PATH when the console script is
    called by its full path (CI, cron, an IDE).
    """
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


def encode(text: str) -> bytes:
    """UTF-8 for a child process; text decoded with surrogateescape gets its bytes back, any
    other unencodable character becomes '?', so line numbers never shift."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool_error(name: str, out: CommandOutput) -> CheckFailed:
    """A failure naming the tool, its exit code and the first line of what it said."""
    said = next((line for line in out.stderr.splitlines() if line.strip()), "")
    detail = f": {clip(said, 120)}" if said else ""
    return CheckFailed(f"{name} exited with status {out.returncode}{detail}")
