"""External linters: ruff on Python (its diagnostics feed the lint, debug and security checks),
``node --check`` on JavaScript, shellcheck on shell scripts.

Each runs only on the file's own text (``FileContext.lintable_text``): never on a patch, a
symlink's target or a file we do not have. A linter that is not installed is skipped; one that
fails (timeout, error exit, unreadable output) raises ``CheckFailed``, which the review reports.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from review_agent.reviewers.builtin.findings import CheckFailed, Finding
from review_agent.reviewers.builtin.tools import clip, encode, tool_error
from review_agent.state.schemas import Severity

if TYPE_CHECKING:
    from review_agent.reviewers.builtin.context import FileContext

LINTER_NAMES: tuple[str, ...] = ("ruff", "node", "shellcheck")

# The curated rule set, passed explicitly with --isolated: the reviewed repository's own
# configuration can neither change what runs nor load plugins.
#  - E4, E7, E9, F: pyflakes and the error-prone pycodestyle rules (the lint check);
#  - T10, T20: debugger calls and imports, print/pprint (the debug check);
#  - bandit's rules with few false positives (the security check): exec, chmod 0o777,
#    pickle/marshal loads, mktemp, eval, unverified SSL context, verify=False, yaml.load,
#    shell=True and os.system on a built command (the "seems safe" variants for a constant
#    command are dropped), SQL built from strings, Jinja2 without autoescape.
# Left out on purpose: S105-S107 (hard-coded passwords: they flag ``TOKEN_URL = "https://…"``
# and ``token_type = "bearer"``; the secret check covers assignments in every language with
# placeholder filtering), S101, S104, S108, S113, S311, S324, S603, S607 (mostly noise).
LINT_RULES = ("E4", "E7", "E9", "F")
DEBUG_RULES = ("T10", "T20")
SECURITY_RULES = (
    "S102", "S103", "S301", "S302", "S306", "S307", "S323", "S501", "S506", "S602", "S604", "S605",
    "S608", "S701",
)  # fmt: skip
RUFF_SELECT = ",".join((*LINT_RULES, *DEBUG_RULES, *SECURITY_RULES))
_RUFF_SUFFIXES = frozenset({".py", ".pyi", ".pyw"})
# bandit's own "seems safe" variants (a constant command with shell=True): not a finding.
_SEEMS_SAFE = "seems safe"


@dataclass(frozen=True)
class RuffDiagnostic:
    row: int
    code: str  # "" for a syntax error
    message: str


def _ruff_diagnostics(stdout: str) -> list[RuffDiagnostic]:
    try:
        data = json.loads(stdout)
    except ValueError:
        raise CheckFailed("ruff printed output that is not JSON") from None
    if not isinstance(data, list):
        raise CheckFailed("ruff printed JSON that is not a list of diagnostics")
    found: list[RuffDiagnostic] = []
    for item in data:
        if not isinstance(item, dict):
            raise CheckFailed("ruff printed a diagnostic that is not an object")
        location = item.get("location")
        row = location.get("row") if isinstance(location, dict) else None
        if not isinstance(row, int):
            raise CheckFailed("ruff printed a diagnostic without a line number")
        code = item.get("code")
        message = clip(str(item.get("message") or ""))
        syntax = code in (None, "", "E999", "invalid-syntax") or message.startswith("SyntaxError")
        found.append(RuffDiagnostic(row, "" if syntax else str(code), message))
    return found


def lint_finding(d: RuffDiagnostic) -> Finding:
    """Likely bugs (F codes) and syntax errors are warnings, the rest info."""
    code_text = d.code or "syntax error"
    severity: Severity = "warning" if not d.code or d.code.startswith(("F", "E9")) else "info"
    return Finding(
        d.row,
        "lint",
        severity,
        f"ruff `{code_text}`: {d.message}",
        key=f"ruff:{code_text}",
        rule=f"ruff/{d.code or 'syntax-error'}",
    )


def parse_ruff_output(stdout: str, added: Iterable[int]) -> list[Finding]:
    """ruff's JSON as lint findings on the given rows (debug and security codes excluded)."""
    wanted = set(added)
    return [
        lint_finding(d)
        for d in _ruff_diagnostics(stdout)
        if d.row in wanted and not d.code.startswith(("T", "S"))
    ]


def run_ruff(ctx: FileContext) -> list[RuffDiagnostic] | None:
    """ruff's diagnostics for the file, or None when ruff does not apply (not Python, no file
    text, linters off, ``ruff`` disabled, not installed). Runs with ``--isolated`` and an empty
    working directory, so the answer does not depend on where review-agent runs."""
    text = ctx.lintable_text
    if text is None or PurePosixPath(ctx.path).suffix.lower() not in _RUFF_SUFFIXES:
        return None
    if ctx.prefs.disables("ruff"):
        return None
    exe = ctx.tools.locate("ruff")
    if exe is None:
        return None
    argv = [
        exe, "check", "--isolated", "--no-cache", "--exit-zero", "--select", RUFF_SELECT,
        "--output-format", "json", f"--stdin-filename={PurePosixPath(ctx.path).name}", "-",
    ]  # fmt: skip
    out = ctx.tools.runner(argv, encode(text), ctx.tools.timeout)
    if out.returncode != 0:
        raise tool_error("ruff", out)
    return [d for d in _ruff_diagnostics(out.stdout) if _SEEMS_SAFE not in d.message]


def ruff_lint(ctx: FileContext) -> list[Finding]:
    diagnostics = ctx.ruff() or []
    return [lint_finding(d) for d in diagnostics if d.row in ctx.added and not d.code.startswith(("T", "S"))]


# --------------------------------------------------------------------------- node --check

_NODE_LINE = re.compile(r":(\d+)\s*$")
_NODE_ERROR = re.compile(r"^\s*((?:[A-Z]\w*)?Error): (.+)$")
_NODE_AMBIGUOUS = ("Cannot use import statement", "Unexpected token 'export'", "await is only")
_JSX_OR_FLOW = re.compile(r"</[A-Za-z]|/>|<>|@flow|\bReact\b")
_NODE_SUFFIXES = frozenset({".js", ".mjs", ".cjs"})


def node_lint(ctx: FileContext) -> list[Finding]:
    """``node --check``: syntax errors only. Skipped for a ``.js`` file that looks like JSX or
    Flow, and for module-type ambiguities, which node would report as syntax errors."""
    text = ctx.lintable_text
    suffix = PurePosixPath(ctx.path).suffix.lower()
    if text is None or suffix not in _NODE_SUFFIXES or ctx.prefs.disables("node"):
        return []
    if suffix == ".js" and _JSX_OR_FLOW.search(text):
        return []
    exe = ctx.tools.locate("node")
    if exe is None:
        return []
    with tempfile.TemporaryDirectory(prefix="review-agent-node-") as tmp:
        target = Path(tmp) / f"check{suffix}"
        target.write_bytes(encode(text))
        out = ctx.tools.runner([exe, "--check", str(target)], b"", ctx.tools.timeout)
    if out.returncode == 0:
        return []
    lines = out.stderr.splitlines()
    where = _NODE_LINE.search(lines[0]) if lines else None
    error = next((m for m in map(_NODE_ERROR.match, lines) if m), None)
    if where is None or error is None:
        raise tool_error("node", out)
    message = f"{error.group(1)}: {error.group(2)}"
    row = int(where.group(1))
    if any(marker in message for marker in _NODE_AMBIGUOUS) or row not in ctx.added:
        return []
    return [
        Finding(
            row, "lint", "warning", f"`node --check`: {clip(message)}", key="node:syntax", rule="node/syntax"
        )
    ]


# --------------------------------------------------------------------------- shellcheck

_SHELL_SUFFIXES = frozenset({".sh", ".bash", ".ksh", ".zsh"})


def parse_shellcheck_output(stdout: str, added: Iterable[int]) -> list[Finding]:
    """shellcheck's ``json1`` findings on added lines: errors and warnings are warnings,
    info and style notes are info."""
    wanted = set(added)
    try:
        data = json.loads(stdout)
    except ValueError:
        raise CheckFailed("shellcheck printed output that is not JSON") from None
    comments = data.get("comments") if isinstance(data, dict) else data
    if not isinstance(comments, list):
        raise CheckFailed("shellcheck printed JSON without a list of comments")
    findings: list[Finding] = []
    for item in comments:
        if not isinstance(item, dict):
            continue
        row = item.get("line")
        if not isinstance(row, int) or row not in wanted:
            continue
        code = f"SC{item.get('code')}"
        severity: Severity = "warning" if item.get("level") in ("error", "warning") else "info"
        message = clip(str(item.get("message") or ""))
        findings.append(
            Finding(
                row,
                "lint",
                severity,
                f"shellcheck `{code}`: {message}",
                key=f"sc:{code}",
                rule=f"shellcheck/{code}",
            )
        )
    return findings


def shellcheck_lint(ctx: FileContext) -> list[Finding]:
    """shellcheck on stdin. Without a shebang the dialect comes from the extension (zsh is not
    supported by shellcheck and is skipped); ``source`` targets cannot be followed from stdin,
    so the notes saying so are excluded."""
    text = ctx.lintable_text
    suffix = PurePosixPath(ctx.path).suffix.lower()
    if text is None or suffix not in _SHELL_SUFFIXES or ctx.prefs.disables("shellcheck"):
        return []
    argv_shell: list[str] = []
    if not text.startswith("#!"):
        if suffix == ".zsh":
            return []
        argv_shell = [f"--shell={'bash' if suffix == '.bash' else 'sh'}"]
    elif "zsh" in text.split("\n", 1)[0]:
        return []
    exe = ctx.tools.locate("shellcheck")
    if exe is None:
        return []
    argv = [exe, "--format=json1", "--exclude=SC1090,SC1091", *argv_shell, "-"]
    out = ctx.tools.runner(argv, encode(text), ctx.tools.timeout)
    # shellcheck exits 1 when it has findings; anything else (2: bad usage, ...) is a failure
    if out.returncode not in (0, 1):
        raise tool_error("shellcheck", out)
    return parse_shellcheck_output(out.stdout, ctx.added)


def check_lint(ctx: FileContext) -> list[Finding]:
    """The ``lint`` check: every applicable linter. A failure is raised after the others have
    run, carrying their findings, so one broken linter neither hides the others nor passes for
    a clean file."""
    findings: list[Finding] = []
    failure: CheckFailed | None = None
    for run in (ruff_lint, node_lint, shellcheck_lint):
        try:
            findings.extend(run(ctx))
        except CheckFailed as exc:
            failure = failure or exc
    if failure is not None:
        raise CheckFailed(str(failure), findings)
    return findings
