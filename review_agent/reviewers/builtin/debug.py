"""The ``debug`` check: debugger statements and debug output left in code.

Python is ruff's job (T100 debugger calls and imports, T201 ``print``, T203 ``pprint``, with
``# noqa`` honoured as ruff honours it); when ruff cannot run (no file text, linters off) the
same leftovers are found from the line's code tokens here. Other languages: JS/TS
``debugger`` and ``console.log``, Ruby ``binding.pry``, PHP ``dd()``/``var_dump()``, Java
``System.out.println``, Rust ``dbg!``, C# ``Debugger.Break()``, Elixir ``IEx.pry``. Go is skipped
on purpose (``fmt.Println`` is too often intended).

Output calls are not leftovers where output is the point: entry points and scripts (``cli.py``,
``__main__.py``, ``scripts/``, ``bin/``, a ``__main__`` guard or a shebang), logging modules, and
the body of a function or class whose name says it logs or prints (``function log()``,
``class Logger``). Suppression comments are honoured: ``# noqa``/``# noqa: T201`` and
``eslint-disable-line``/``eslint-disable-next-line`` (bare or naming ``no-console`` /
``no-debugger``), and a file-wide ``/* eslint-disable no-console */``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from review_agent.reviewers.builtin.context import FileContext
from review_agent.reviewers.builtin.findings import CheckFailed, Finding
from review_agent.reviewers.builtin.lexing import LineView, name_parts
from review_agent.reviewers.builtin.linters import RuffDiagnostic
from review_agent.state.schemas import SEVERITY_ORDER, Severity


@dataclass(frozen=True)
class _DebugPattern:
    regex: re.Pattern[str]
    severity: Severity
    message: str  # "{call}" is replaced by the matched call, compacted
    output: bool = False  # an output call a script or CLI may make on purpose
    suppressed_by: str = ""  # the ruff code (Python) or ESLint rule (JS) that silences it


_HALTS = "`{call}` stops the program when it is reached; remove it before merging."
_PRINTS = "`{call}` looks like debug output; remove it or use the project's logger."
DEBUG_PATTERNS: dict[str, tuple[_DebugPattern, ...]] = {
    "python": (  # used only when ruff cannot run
        _DebugPattern(re.compile(r"(?<![\w.])breakpoint\s*\(\s*\)"), "error", _HALTS, suppressed_by="T100"),
        _DebugPattern(
            re.compile(r"(?<![\w.])(?:i?pdb|pudb|pdbpp|remote_pdb|web_pdb)\s*\.\s*set_trace\s*\("),
            "error",
            _HALTS,
            suppressed_by="T100",
        ),
        _DebugPattern(
            re.compile(r"^\s*(?:import\s+(?:i?pdb|pudb)\b|from\s+(?:i?pdb|pudb)\s+import\b)"),
            "warning",
            "Debugger import (`{call}`) left in; remove it before merging.",
            suppressed_by="T100",
        ),
        _DebugPattern(
            re.compile(r"(?<![\w.])print\s*\("), "info", _PRINTS, output=True, suppressed_by="T201"
        ),
    ),
    "javascript": (
        _DebugPattern(
            re.compile(r"(?<![\w$.])debugger\s*(?:;|$)"),
            "warning",
            "`debugger` statement pauses execution whenever dev tools are open; remove it.",
            suppressed_by="no-debugger",
        ),
        _DebugPattern(
            re.compile(r"(?<![\w$.])console\s*\.\s*(?:log|debug|trace|dir|table)\s*\("),
            "info",
            _PRINTS,
            output=True,
            suppressed_by="no-console",
        ),
    ),
    "ruby": (
        _DebugPattern(re.compile(r"(?<![\w.])binding\s*\.\s*(?:pry|irb)\b"), "error", _HALTS),
        _DebugPattern(re.compile(r"^\s*(?:byebug|debugger)\s*(?:;|$)"), "error", _HALTS),
    ),
    "php": (
        _DebugPattern(
            re.compile(r"(?<![\w$>:\\])dd\s*\("),
            "error",
            "`{call}` dumps and stops the request; remove it before merging.",
        ),
        _DebugPattern(re.compile(r"(?<![\w$>:\\])var_dump\s*\("), "info", _PRINTS, output=True),
        _DebugPattern(
            re.compile(r"(?<![\w$>:\\])print_r\s*\((?![^;]{0,300},\s*true\s*\))", re.I),
            "info",
            _PRINTS,
            output=True,
        ),
    ),
    "java": (
        _DebugPattern(
            re.compile(r"\bSystem\s*\.\s*(?:out|err)\s*\.\s*print(?:ln|f)?\s*\("),
            "info",
            _PRINTS,
            output=True,
        ),
        _DebugPattern(
            re.compile(r"\.\s*printStackTrace\s*\(\s*\)"),
            "info",
            "`{call}` prints to stderr and loses the error; log it or rethrow.",
        ),
    ),
    "rust": (
        _DebugPattern(
            re.compile(r"(?<![\w:])dbg!\s*\("),
            "warning",
            "`{call}` is a debugging macro; remove it before merging.",
        ),
    ),
    "csharp": (
        _DebugPattern(
            re.compile(r"\bDebugger\s*\.\s*(?:Break|Launch)\s*\("),
            "warning",
            "`{call}` breaks into a debugger; remove it before merging.",
        ),
    ),
    "elixir": (
        _DebugPattern(re.compile(r"\bIEx\s*\.\s*pry\b"), "error", _HALTS),
        _DebugPattern(re.compile(r"\bIO\s*\.\s*inspect\b"), "info", _PRINTS, output=True),
    ),
}
# Name parts that say "this is where output is meant to happen".
_OUTPUT_NAMES = frozenset(
    {"log", "logger", "logging", "logs", "print", "printer", "debug", "trace", "console", "output", "echo"}
)
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.I)
_ESLINT_LINE = re.compile(r"eslint-disable-(?P<which>line|next-line)(?P<rules>[^*\n]*)")
_ESLINT_FILE = re.compile(r"/\*\s*eslint-disable(?P<rules>[^*]*)\*/")
_FILE_KEYWORD = re.compile(r"\bfile\s*=")


def _call_label(matched: str) -> str:
    label = re.sub(r"\s+", "", matched)
    if label.startswith(("import", "from")):
        label = " ".join(matched.split())
    if label.endswith("("):
        label += ")"
    return label.rstrip(";")


def _names_rule(rules_text: str, rule: str) -> bool:
    """An ESLint directive's rule list: empty (every rule) or naming ``rule``."""
    rules = [r.strip() for r in rules_text.split("--", 1)[0].split(",") if r.strip()]
    return not rules or rule in rules


def _suppressed(ctx: FileContext, number: int, view: LineView, code: str) -> bool:
    if not code:
        return False
    if ctx.lang == "python":
        m = _NOQA.search(view.comment if view.comment else "")
        if m is None:
            return False
        codes = m.group("codes")
        return codes is None or code.upper() in re.split(r"[\s,]+", codes.upper())
    if ctx.lang == "javascript":
        for row, which in ((number, "line"), (number - 1, "next-line")):
            v = (ctx.views or {}).get(row)
            for m in _ESLINT_LINE.finditer(v.comment if v else ""):
                if m.group("which") == which and _names_rule(m.group("rules"), code):
                    return True
        text = ctx.file_text or ""
        return any(_names_rule(m.group("rules"), code) for m in _ESLINT_FILE.finditer(text[:200_000]))
    return False


def _output_is_the_point(ctx: FileContext, view: LineView | None) -> bool:
    if ctx.is_script:
        return True
    if _OUTPUT_NAMES & set(name_parts(PurePosixPath(ctx.path).stem)):
        return True
    return view is not None and any(_OUTPUT_NAMES & set(name_parts(s)) for s in view.scopes)


def _from_ruff(ctx: FileContext, diagnostics: list[RuffDiagnostic]) -> list[Finding]:
    views = ctx.views or {}
    findings: list[Finding] = []
    for d in diagnostics:
        if d.row not in ctx.added or not d.code.startswith(("T10", "T20")):
            continue
        view = views.get(d.row)
        if d.code.startswith("T20"):
            code_part = view.code if view else ctx.added[d.row]
            if _output_is_the_point(ctx, view) or _FILE_KEYWORD.search(code_part):
                continue  # print(..., file=sys.stderr) is deliberate
            severity: Severity = "info"
            message = f"ruff `{d.code}`: {d.message}; remove it or use the project's logger."
        elif d.message.startswith("Import"):
            severity = "warning"
            message = f"ruff `{d.code}`: {d.message}; remove the debugger import before merging."
        else:
            severity = "error"
            message = f"ruff `{d.code}`: {d.message}; it stops the program, remove it before merging."
        findings.append(Finding(d.row, "debug", severity, message, rule=f"ruff/{d.code}"))
    return findings


def _from_patterns(ctx: FileContext) -> list[Finding]:
    patterns = DEBUG_PATTERNS.get(ctx.lang or "")
    views = ctx.views
    if not patterns or views is None:
        return []
    findings: list[Finding] = []
    for number, _ in ctx.lines:
        view = views.get(number)
        if view is None:
            continue
        best: tuple[Severity, str] | None = None
        for pattern in patterns:
            m = pattern.regex.search(view.code)
            if m is None:
                continue
            if pattern.output and (
                _output_is_the_point(ctx, view)
                or (ctx.lang == "python" and _FILE_KEYWORD.search(view.code[m.end() :]))
            ):
                continue
            if _suppressed(ctx, number, view, pattern.suppressed_by):
                continue
            candidate = (pattern.severity, pattern.message.format(call=_call_label(m.group(0))))
            if best is None or SEVERITY_ORDER[candidate[0]] > SEVERITY_ORDER[best[0]]:
                best = candidate
        if best:
            findings.append(Finding(number, "debug", best[0], best[1]))
    return findings


def check_debug(ctx: FileContext) -> list[Finding]:
    if ctx.lang == "python":
        try:
            diagnostics = ctx.ruff()
        except CheckFailed:
            diagnostics = None  # the lint check reports ruff's failure; fall back to tokens
        if diagnostics is not None:
            return _from_ruff(ctx, diagnostics)
    return _from_patterns(ctx)


_ALL_PATTERNS = tuple(p.regex for patterns in DEBUG_PATTERNS.values() for p in patterns)
# Words every pattern above contains: a fast test before the patterns themselves (a guard test
# checks that no pattern can match a line without one of them).
TRIGGER = re.compile(
    r"print|console|debugger|breakpoint|set_trace|pdb|pudb|binding|byebug|dd\s*\(|var_dump|System"
    r"|printStackTrace|dbg!|Debugger|IEx|IO\s*\."
)


def needs_view(text: str) -> bool:
    return TRIGGER.search(text) is not None and any(regex.search(text) for regex in _ALL_PATTERNS)
