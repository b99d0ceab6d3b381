"""The built-in offline reviewer: deterministic static checks of a file's added lines.

Why it exists: with no model configured (no ``OPENAI_API_KEY`` and no ``OPENAI_BASE_URL``) a
review must still say something true and useful, in CI as on a laptop, without a network. So
this reviewer looks only at what the change *adds*: every comment sits on an added line (its
new-side number, side ``RIGHT``), which GitHub can always anchor, and which is the author's
own doing. It makes no model call, never raises on odd content (invalid text, huge lines,
empty patches), and gives the same answer for the same input, so its results can be reused
and fingerprinted like a model's.

Check ids, shown in every comment as ``**id** (builtin/id): …`` and accepted in the
``disabled_checks`` preference (with or without the ``builtin/`` prefix):

``secret`` (error for known token formats, warning for a literal assigned to a credential-like
    name): AWS access key ids, GitHub tokens (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``,
    ``github_pat_``), Slack tokens and webhooks, Stripe live keys, Google API keys, private key
    headers, ``password = "…"`` / ``api_key: "…"`` style assignments. The value is never
    repeated: comments show only the public scheme prefix and the length.
``conflict-marker`` (error): ``<<<<<<<``, ``|||||||``, ``=======``, ``>>>>>>>`` at line start.
    A lone ``=======`` (a heading underline in Markdown or reStructuredText) counts only when
    another marker was added too.
``debug`` (error for calls that stop the program, warning for debugger statements and imports,
    info for output calls): Python ``breakpoint()``, ``pdb.set_trace()``, ``import pdb``,
    ``print()``; JS/TS ``debugger``, ``console.log()``; Ruby ``binding.pry``, ``byebug``; PHP
    ``var_dump()``, ``print_r()``, ``dd()``; Java ``System.out.println()``; Rust ``dbg!()``;
    C# ``Debugger.Break()``; Elixir ``IEx.pry``, ``IO.inspect``. Go is skipped on purpose
    (``fmt.Println`` is too often intended). Strings and comments are ignored, and output calls
    are not reported in scripts and command-line tools, where printing is the point.
``lint`` (warning for likely bugs and syntax errors, info otherwise): ruff on Python, ``node
    --check`` on JavaScript, shellcheck on shell scripts, each only when installed; only
    findings on added lines are kept. One linter can be turned off by its name: ``ruff``,
    ``node``, ``shellcheck``.
``todo`` (info; warning for Rust ``todo!()``/``unimplemented!()``, which panic): ``TODO``,
    ``FIXME``, ``XXX`` in an added comment.
``long-line`` (info): added lines longer than ``max_line_length`` (default 200), one comment
    per file on the first of them; data and prose files are skipped.
``trailing-whitespace`` (info): one comment per file on the first added line that ends in
    spaces or tabs (CRLF line ends do not count); Markdown is skipped (hard line breaks).

Preferences read from ``request.preferences``: ``disabled_checks`` (list, or a comma-separated
string), ``severity_threshold`` (``info`` | ``warning`` | ``error``: findings below it are
dropped), ``max_line_length`` (int).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import tokenize
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from review_agent.redaction import PRIVATE_KEY, TOKEN_PATTERNS
from review_agent.reviewers.base import ReviewRequest, ReviewResult
from review_agent.state.schemas import SEVERITY_ORDER, Comment, Severity

log = logging.getLogger(__name__)

CHECK_IDS: tuple[str, ...] = (
    "secret",
    "conflict-marker",
    "debug",
    "lint",
    "todo",
    "long-line",
    "trailing-whitespace",
)
LINTER_NAMES: tuple[str, ...] = ("ruff", "node", "shellcheck")
DEFAULT_MAX_COMMENTS = 25
DEFAULT_MAX_LINE_LENGTH = 200
DEFAULT_LINTER_TIMEOUT = 10.0

# Bounds that keep a pathological file (a minified bundle, a 50 MB single line) cheap: the
# syntax-aware checks look at the start of a line only, secrets at a larger prefix, and a
# linter is not started on a file it would take long to read.
_ANALYSE_LIMIT = 4_000
_SECRET_SCAN_LIMIT = 100_000
_MAX_KEYWORD_HITS = 20
_LINT_MAX_CHARS = 1_000_000
_TOKENIZE_MAX_CHARS = 2_000_000
_MESSAGE_LIMIT = 300
_WHOLE_LINE = sys.maxsize


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """One problem on one added line, before it becomes a Comment.

    ``key`` separates findings that may share a line and check (two ruff codes); findings with
    the same (line, check, key) are reported once, the most severe one winning.
    """

    line: int
    check: str
    severity: Severity
    message: str
    key: str = ""

    def body(self) -> str:
        return f"**{self.check}** (builtin/{self.check}): {self.message}"


# --------------------------------------------------------------------------- running tools


@dataclass(frozen=True)
class CommandOutput:
    returncode: int
    stdout: str
    stderr: str


# (argv, stdin bytes, timeout seconds) -> output, or None when the command could not run or
# did not finish in time. Injectable so tests can replace the process boundary.
CommandRunner = Callable[[Sequence[str], bytes, float], CommandOutput | None]
# tool name -> executable path, or None when it is not installed.
ToolLocator = Callable[[str], str | None]


def run_command(argv: Sequence[str], stdin: bytes, timeout: float) -> CommandOutput | None:
    """Run a linter with a hard timeout; any failure is None, never an exception.

    The child gets its own session and, on timeout, the whole process group is killed: a
    wrapper script's children would otherwise keep the pipes open and ``communicate`` would
    wait for them, turning a timeout into a hang. It runs in an empty temporary directory so
    that no configuration file of whatever directory we were started from changes its answer.
    """
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
                _kill_group(proc)
                with contextlib.suppress(subprocess.TimeoutExpired, OSError, ValueError):
                    proc.communicate(timeout=2)
                log.debug("linter timed out after %ss: %s", timeout, argv[:1])
                return None
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        log.debug("linter could not run: %s: %s", argv[:1], exc)
        return None
    return CommandOutput(
        returncode=proc.returncode,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
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


def _encode(text: str) -> bytes:
    """UTF-8 for a child process; text decoded with surrogateescape gets its bytes back, any
    other unencodable character becomes '?', so line numbers never shift."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _clip(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- languages


_EXT_LANG: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".ts": "javascript", ".tsx": "javascript", ".mts": "javascript", ".cts": "javascript",
    ".vue": "javascript", ".svelte": "javascript",
    ".rb": "ruby", ".rake": "ruby", ".gemspec": "ruby",
    ".php": "php", ".phtml": "php",
    ".go": "go", ".java": "java", ".kt": "kotlin", ".kts": "kotlin", ".scala": "java",
    ".rs": "rust", ".cs": "csharp", ".swift": "swift", ".dart": "java",
    ".c": "c", ".h": "c", ".cc": "c", ".cpp": "c", ".cxx": "c", ".hpp": "c", ".hh": "c",
    ".m": "c", ".mm": "c",
    ".ex": "elixir", ".exs": "elixir",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".ksh": "shell",
    ".yml": "yaml", ".yaml": "yaml", ".toml": "toml",
    ".ini": "ini", ".cfg": "ini", ".conf": "ini", ".properties": "ini", ".env": "env",
    ".sql": "sql", ".lua": "sql", ".hs": "sql",
    ".pl": "perl", ".pm": "perl", ".r": "perl",
    ".md": "markdown", ".markdown": "markdown", ".rst": "text", ".txt": "text",
    ".adoc": "text",
}  # fmt: skip
_NAME_LANG: dict[str, str] = {
    "Gemfile": "ruby", "Rakefile": "ruby", "Dockerfile": "dockerfile",
    "Makefile": "make", "makefile": "make", "GNUmakefile": "make",
}  # fmt: skip
_LANG_ALIASES: dict[str, str] = {
    "py": "python", "python3": "python", "js": "javascript", "typescript": "javascript",
    "ts": "javascript", "tsx": "javascript", "jsx": "javascript", "node": "javascript",
    "rb": "ruby", "golang": "go", "rs": "rust", "c#": "csharp", "cs": "csharp",
    "c++": "c", "cpp": "c", "sh": "shell", "bash": "shell", "zsh": "shell",
    "yml": "yaml", "md": "markdown",
}  # fmt: skip


def detect_language(path: str, declared: str | None = None) -> str | None:
    """The family of syntax a file is written in, from its name first (the most reliable
    evidence we have), else from the language the source declared."""
    p = PurePosixPath(path)
    name = p.name
    if name in _NAME_LANG:
        return _NAME_LANG[name]
    if name == ".env" or name.startswith(".env."):
        return "env"
    lang = _EXT_LANG.get(p.suffix.lower())
    if lang:
        return lang
    if declared:
        d = declared.strip().lower()
        d = _LANG_ALIASES.get(d, d)
        if d in set(_EXT_LANG.values()) | set(_NAME_LANG.values()):
            return d
    return None


@dataclass(frozen=True)
class _Syntax:
    """Just enough of a language's lexical rules to tell code from strings and comments on a
    single line, which is what keeps the debug and TODO checks from firing on prose."""

    line_comments: tuple[str, ...]
    quotes: str
    hash_needs_space: bool = False  # shell-like: '#' starts a comment only after whitespace
    comment_prefixes: tuple[str, ...] = ()  # a line starting with one is all comment


_C_BLOCK = ("/*", "*", "<!--")
_SYNTAX: dict[str, _Syntax] = {
    "python": _Syntax(("#",), "\"'", comment_prefixes=(">>>", "...")),
    "ruby": _Syntax(("#",), "\"'`", comment_prefixes=("=begin",)),
    "elixir": _Syntax(("#",), "\"'"),
    "perl": _Syntax(("#",), "\"'"),
    "shell": _Syntax(("#",), "\"'`", hash_needs_space=True),
    "yaml": _Syntax(("#",), "\"'", hash_needs_space=True),
    "toml": _Syntax(("#",), "\"'"),
    "ini": _Syntax(("#", ";"), "\"'", hash_needs_space=True),
    "env": _Syntax(("#",), "\"'", hash_needs_space=True),
    "dockerfile": _Syntax(("#",), "\"'", hash_needs_space=True),
    "make": _Syntax(("#",), "", hash_needs_space=True),
    "javascript": _Syntax(("//",), "\"'`", comment_prefixes=_C_BLOCK),
    "go": _Syntax(("//",), "\"'`", comment_prefixes=_C_BLOCK),
    "java": _Syntax(("//",), "\"'", comment_prefixes=_C_BLOCK),
    "kotlin": _Syntax(("//",), "\"'", comment_prefixes=_C_BLOCK),
    "csharp": _Syntax(("//",), "\"'", comment_prefixes=_C_BLOCK),
    "swift": _Syntax(("//",), '"', comment_prefixes=_C_BLOCK),
    "c": _Syntax(("//",), "\"'", comment_prefixes=_C_BLOCK),
    "rust": _Syntax(("//",), '"', comment_prefixes=_C_BLOCK),  # ' starts lifetimes too
    "php": _Syntax(("//", "#"), "\"'", comment_prefixes=_C_BLOCK),
    "sql": _Syntax(("--",), "'\"", comment_prefixes=("/*", "*")),
}


def _split_code_comment(text: str, syntax: _Syntax) -> tuple[str, str]:
    """(code with string contents blanked, comment text) of one line.

    A per-line approximation: a string or block comment spanning lines is not followed
    (Python's multi-line strings are handled separately with tokenize).
    """
    stripped = text.lstrip()
    if any(stripped.startswith(p) for p in syntax.comment_prefixes):
        return "", text
    code: list[str] = []
    quote = ""
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\":
                code.append(" " * min(2, n - i))
                i += 2
                continue
            if ch == quote:
                quote = ""
                code.append(ch)
            else:
                code.append(" ")
            i += 1
            continue
        if ch in syntax.quotes:
            quote = ch
            code.append(ch)
            i += 1
            continue
        for marker in syntax.line_comments:
            if text.startswith(marker, i) and (
                not (syntax.hash_needs_space and marker == "#") or i == 0 or text[i - 1].isspace()
            ):
                return "".join(code), text[i + len(marker) :]
        code.append(ch)
        i += 1
    return "".join(code), ""


def _python_string_rows(content: str) -> dict[int, int]:
    """Rows covered by a multi-line Python string (docstrings), mapped to the column where code
    resumes on that row (``_WHOLE_LINE`` when the row is inside the string throughout).

    A parse failure keeps what was found so far: a half-analysed file is still analysed.
    """
    rows: dict[int, int] = {}
    if len(content) > _TOKENIZE_MAX_CHARS:
        return rows
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    open_fstrings: list[tuple[int, int]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(content).readline):
            if tok.type == tokenize.STRING:
                start, end = tok.start, tok.end
            elif fstring_start is not None and tok.type == fstring_start:
                open_fstrings.append(tok.start)
                continue
            elif fstring_end is not None and tok.type == fstring_end and open_fstrings:
                start, end = open_fstrings.pop(), tok.end
            else:
                continue
            if end[0] > start[0]:
                for row in range(start[0] + 1, end[0]):
                    rows[row] = _WHOLE_LINE
                rows[end[0]] = max(rows.get(end[0], 0), end[1])
    except (tokenize.TokenError, SyntaxError, ValueError):
        pass
    return rows


# --------------------------------------------------------------------------- secrets


# Credential-like names. Bare "token" and "key" are left out: far too many are not secrets.
_SECRET_NAME = re.compile(
    r"password|passwd|passphrase|secret|api[_-]?key|api[_-]?token|access[_-]?key"
    r"|auth[_-]?token|access[_-]?token|refresh[_-]?token|bearer[_-]?token|private[_-]?key",
    re.IGNORECASE,
)
# What may follow the name: a closing quote (JSON/dict keys), an optional type annotation, an
# assignment operator that is not a comparison, then a quoted literal. Every repetition is
# bounded so a long line cannot make it backtrack for long.
_ASSIGN_QUOTED = re.compile(
    r"""["']?[ \t]{0,10}"""
    r"""(?::[ \t]{0,10}[A-Za-z_][\w\[\], |.]{0,40}?[ \t]{0,10}=|:=|=>|=|:)(?![=>])"""
    r"""[ \t]{0,10}[A-Za-z]{0,2}(?P<q>["'`])(?P<value>[^"'`\\\n]{1,300})(?P=q)"""
)
_ASSIGN_BARE = re.compile(r"""["']?[ \t]{0,10}(?:=|:)(?![=>])[ \t]{0,10}(?P<value>[^\s"'`#;,]{1,300})""")
_BARE_VALUE_LANGS = frozenset({"env", "yaml", "ini", "shell", "dockerfile"})
_NON_SECRET_SUFFIXES = frozenset(
    {
        "name", "names", "id", "ids", "field", "label", "path", "file", "dir", "env", "var",
        "variable", "url", "uri", "header", "param", "prompt", "placeholder", "hint", "length",
        "len", "type", "policy", "regex", "pattern", "format", "hash", "hashed", "question",
        "message", "error", "title", "text", "help", "min", "max", "enabled", "required", "column",
        "attr", "count", "mode", "rotation", "expiry", "expires", "ttl", "reset", "strength",
        "validator", "hasher", "algorithm", "version", "salt", "re", "regexp", "rx",
    }
)  # fmt: skip
_PLACEHOLDER_WORDS = (
    "example", "changeme", "change_me", "change-me", "placeholder", "dummy", "sample", "your_",
    "your-", "yourpass", "xxx", "***", "...", "redacted", "secret", "password", "passwd",
    "todo", "fixme", "replace", "insert", "none", "null", "undefined", "fake", "mock", "test",
    "foobar",
)  # fmt: skip
_FILE_LIKE = re.compile(r"^[\w./-]+\.(?:pem|key|crt|cer|p12|pfx|json|txt|ya?ml|env|ini|cfg|conf|toml)$", re.I)
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
_CAMEL_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def _mask(value: str, shown: int) -> str:
    """Name a secret without repeating it: its public prefix and its length only."""
    prefix = value[:shown] if 0 < shown < len(value) else ""
    return f"`{prefix}…`, {len(value)} characters" if prefix else f"{len(value)} characters"


def _name_parts(name: str) -> list[str]:
    last = re.split(r"[.]", name)[-1]
    parts: list[str] = []
    for chunk in re.split(r"[_-]+", last):
        parts.extend(p.lower() for p in _CAMEL_PARTS.findall(chunk))
    return parts


def _plausible_secret(value: str, keyword: str) -> bool:
    """Whether a literal looks like a real credential rather than a placeholder, a reference
    to one (an environment variable name, a template, a file name) or a label."""
    v = value.strip()
    if len(v) < 6 or any(c.isspace() for c in v):
        return False
    if v[0] in "$%{<![&*|>@~^" or "{{" in v or "${" in v or "%(" in v or "%s" in v:
        return False
    low = v.lower()
    if keyword.lower().replace("-", "_") in low.replace("-", "_"):
        return False
    if any(word in low for word in _PLACEHOLDER_WORDS):
        return False
    if low.startswith(("/", "./", "../", "http://", "https://", "file:")):
        return False
    if _ENV_NAME.match(v) or _FILE_LIKE.match(v):
        return False
    return len(set(v)) > 2  # "aaaaaaa", "0000000"


def _check_secrets(text: str, lang: str | None) -> list[tuple[Severity, str]]:
    """Secrets on one line as (severity, message); messages never contain the value."""
    text = text[:_SECRET_SCAN_LIMIT]
    found: list[tuple[Severity, str]] = []
    seen: set[str] = set()
    for pattern in TOKEN_PATTERNS:
        for m in pattern.regex.finditer(text):
            value = m.group(0)
            if "EXAMPLE" in value:  # AWS's documentation key, AKIAIOSFODNN7EXAMPLE
                continue
            if pattern.kind not in seen:
                seen.add(pattern.kind)
                found.append(
                    (
                        "error",
                        f"Possible {pattern.kind} ({_mask(value, pattern.shown)}) added. "
                        "Remove it, rotate the credential, and load it from the environment "
                        "or a secret store.",
                    )
                )
            break
    key = PRIVATE_KEY.search(text)
    if key:
        found.append(
            (
                "error",
                f"A private key (`{key.group(0)}`) is added. Remove it from the repository and "
                "replace the key: it must be considered leaked.",
            )
        )
    if found:
        return found  # a generic "password = ..." on the same line would only repeat it
    generic = _generic_secret(text, lang)
    return [generic] if generic else []


def _generic_secret(text: str, lang: str | None) -> tuple[Severity, str] | None:
    """A string literal assigned to a credential-like name (``password = "…"``)."""
    for hits, m in enumerate(_SECRET_NAME.finditer(text)):
        if hits >= _MAX_KEYWORD_HITS:
            break
        start, end = m.start(), m.end()
        limit = max(0, start - 100)
        while start > limit and (text[start - 1].isalnum() or text[start - 1] in "_-."):
            start -= 1
        limit = min(len(text), end + 100)
        while end < limit and (text[end].isalnum() or text[end] in "_-"):
            end += 1
        name = text[start:end].strip(".-")
        parts = _name_parts(name)
        if parts and parts[-1] in _NON_SECRET_SUFFIXES:
            continue
        tail = _ASSIGN_QUOTED.match(text, end)
        if tail is None and lang in _BARE_VALUE_LANGS:
            tail = _ASSIGN_BARE.match(text, end)
        if tail is None:
            continue
        value = tail.group("value")
        if not _plausible_secret(value, m.group(0)):
            continue
        shown = name if len(name) <= 60 else name[:59] + "…"
        return (
            "warning",
            f"Possible hard-coded credential: a literal is assigned to `{shown}` (value hidden, "
            f"{len(value)} characters). Load it from the environment or a secret store.",
        )
    return None


# --------------------------------------------------------------------------- conflict markers

_CONFLICT_START = re.compile(r"<{7}(?:[ \t]|$)")
_CONFLICT_BASE = re.compile(r"\|{7}(?:[ \t]|$)")
_CONFLICT_MID = re.compile(r"={7}[ \t]*$")
_CONFLICT_END = re.compile(r">{7}(?:[ \t]|$)")


def _check_conflicts(lines: Sequence[tuple[int, str]]) -> list[Finding]:
    """One finding per conflict block (on its ``<<<<<<<`` line), plus any marker added without
    its opening one; a lone ``=======`` only counts next to another marker."""
    kinds: list[tuple[int, str]] = []
    for number, text in lines:
        head = text[:80]
        if _CONFLICT_START.match(head):
            kinds.append((number, "start"))
        elif _CONFLICT_BASE.match(head):
            kinds.append((number, "base"))
        elif _CONFLICT_MID.match(head):
            kinds.append((number, "mid"))
        elif _CONFLICT_END.match(head):
            kinds.append((number, "end"))
    if not any(kind != "mid" for _, kind in kinds):
        return []
    findings: list[Finding] = []
    open_block = False
    for number, kind in kinds:
        if kind == "start":
            open_block = True
            message = (
                "Unresolved merge conflict: a `<<<<<<<` … `>>>>>>>` block starts here. "
                "Resolve it and remove the markers."
            )
        elif open_block:
            if kind == "end":
                open_block = False
            continue
        else:
            marker = {"base": "|||||||", "mid": "=======", "end": ">>>>>>>"}[kind]
            message = f"Merge conflict marker `{marker}` left in the file; remove it."
        findings.append(Finding(number, "conflict-marker", "error", message))
    return findings


# --------------------------------------------------------------------------- debug leftovers


@dataclass(frozen=True)
class _DebugPattern:
    regex: re.Pattern[str]
    severity: Severity
    message: str  # "{call}" is replaced by the matched call, compacted
    output: bool = False  # an output call a script or CLI may make on purpose


_HALTS = "`{call}` stops the program when it is reached; remove it before merging."
_PRINTS = "`{call}` looks like debug output; remove it or use the project's logger."
_DEBUG_PATTERNS: dict[str, tuple[_DebugPattern, ...]] = {
    "python": (
        _DebugPattern(re.compile(r"(?<![\w.])breakpoint\s*\(\s*\)"), "error", _HALTS),
        _DebugPattern(
            re.compile(r"(?<![\w.])(?:i?pdb|pudb|pdbpp|remote_pdb|web_pdb)\s*\.\s*set_trace\s*\("),
            "error",
            _HALTS,
        ),
        _DebugPattern(
            re.compile(r"^\s*(?:import\s+(?:i?pdb|pudb)\b|from\s+(?:i?pdb|pudb)\s+import\b)"),
            "warning",
            "Debugger import (`{call}`) left in; remove it before merging.",
        ),
        _DebugPattern(re.compile(r"(?<![\w.])print\s*\("), "info", _PRINTS, output=True),
    ),
    "javascript": (
        _DebugPattern(
            re.compile(r"(?<![\w$.])debugger\s*(?:;|$)"),
            "warning",
            "`debugger` statement pauses execution whenever dev tools are open; remove it.",
        ),
        _DebugPattern(
            re.compile(r"(?<![\w$.])console\s*\.\s*(?:log|debug|trace|dir|table)\s*\("),
            "info",
            _PRINTS,
            output=True,
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
_SCRIPT_DIRS = frozenset(
    {
        "scripts", "script", "bin", "cli", "tools", "tool", "examples", "example", "demo", "demos",
        "docs", "doc", "bench", "benchmarks", "benchmark",
    }
)  # fmt: skip
_SCRIPT_FILES = frozenset({"__main__.py", "manage.py", "setup.py", "cli.py", "noxfile.py"})
_MAIN_GUARD = re.compile(r"""^if\s+__name__\s*==\s*["']__main__["']""", re.M)


def _is_script(path: str, content: str | None) -> bool:
    """Whether printing is likely this file's job (a CLI, a script, an example), in which case
    output calls are not debug leftovers."""
    p = PurePosixPath(path)
    if p.name in _SCRIPT_FILES or p.stem in ("cli", "main") or p.stem.endswith(("_cli", "-cli")):
        return True
    if any(part.lower() in _SCRIPT_DIRS for part in p.parts[:-1]):
        return True
    if content is not None:
        if content.startswith("#!"):
            return True
        if _MAIN_GUARD.search(content[:_TOKENIZE_MAX_CHARS]):
            return True
    return False


def _call_label(matched: str) -> str:
    label = re.sub(r"\s+", "", matched)
    if label.startswith(("import", "from")):
        label = " ".join(matched.split())
    if label.endswith("("):
        label += ")"
    return label.rstrip(";")


def _check_debug(code: str, lang: str, script: bool) -> tuple[Severity, str] | None:
    """The most severe debug leftover in a line's code part (strings and comments removed)."""
    best: tuple[Severity, str] | None = None
    for pattern in _DEBUG_PATTERNS.get(lang, ()):
        if pattern.output and script:
            continue
        m = pattern.regex.search(code)
        if m is None:
            continue
        if lang == "python" and pattern.output and re.search(r"\bfile\s*=", code[m.end() :]):
            continue  # print(..., file=sys.stderr) is deliberate
        candidate = (pattern.severity, pattern.message.format(call=_call_label(m.group(0))))
        if best is None or SEVERITY_ORDER[candidate[0]] > SEVERITY_ORDER[best[0]]:
            best = candidate
    return best


# --------------------------------------------------------------------------- TODO

_TODO = re.compile(r"(?<![\w-])(TODO|FIXME|XXX)(?![\w-])")
_RUST_TODO = re.compile(r"(?<![\w:])(todo|unimplemented)!\s*\(")


def _check_todo(code: str, comment: str, lang: str | None) -> tuple[Severity, str] | None:
    if lang == "rust":
        m = _RUST_TODO.search(code)
        if m:
            return (
                "warning",
                f"`{m.group(1)}!()` panics when reached; implement it before merging.",
            )
    m = _TODO.search(comment)
    if m:
        return ("info", f"`{m.group(1)}` added; resolve it or track it in an issue.")
    return None


# --------------------------------------------------------------------------- linters


@dataclass(frozen=True)
class _LintJob:
    path: str
    content: str
    added: Mapping[int, str]
    runner: CommandRunner
    locate: ToolLocator
    timeout: float


def parse_ruff_output(stdout: str, added: Iterable[int]) -> list[Finding]:
    """ruff's JSON findings on added lines. Likely bugs (F codes) and syntax errors (E9, and
    ruff's code-less or ``invalid-syntax`` entries) are warnings, the rest info."""
    wanted = set(added)
    data = json.loads(stdout)
    findings: list[Finding] = []
    if not isinstance(data, list):
        return findings
    for item in data:
        if not isinstance(item, dict):
            continue
        location = item.get("location")
        row = location.get("row") if isinstance(location, dict) else None
        if not isinstance(row, int) or row not in wanted:
            continue
        code = item.get("code")
        message = _clip(str(item.get("message") or ""))
        syntax = code in (None, "", "E999", "invalid-syntax") or message.startswith("SyntaxError")
        code_text = "syntax error" if syntax and not isinstance(code, str) else str(code)
        severity: Severity = "warning" if syntax or code_text.startswith(("F", "E9")) else "info"
        findings.append(
            Finding(row, "lint", severity, f"ruff `{code_text}`: {message}", key=f"ruff:{code_text}")
        )
    return findings


def _lint_ruff(job: _LintJob) -> list[Finding] | None:
    """ruff with its default rule set and no configuration file: the answer must not depend on
    the directory review-agent runs in, and the reviewed repository is not on disk for a PR."""
    exe = job.locate("ruff")
    if exe is None:
        return None
    argv = [
        exe, "check", "--isolated", "--no-cache", "--exit-zero",
        "--select", "E4,E7,E9,F", "--output-format", "json",
        f"--stdin-filename={job.path}", "-",
    ]  # fmt: skip
    out = job.runner(argv, _encode(job.content), job.timeout)
    if out is None or out.returncode != 0:
        return None
    return parse_ruff_output(out.stdout, job.added)


_NODE_LINE = re.compile(r":(\d+)\s*$")
_NODE_ERROR = re.compile(r"^\s*((?:[A-Z]\w*)?Error): (.+)$")
_NODE_AMBIGUOUS = ("Cannot use import statement", "Unexpected token 'export'", "await is only")
_JSX_OR_FLOW = re.compile(r"</[A-Za-z]|/>|<>|@flow|\bReact\b")


def _lint_node(job: _LintJob) -> list[Finding] | None:
    """``node --check``: syntax errors only. Skipped for a ``.js`` file that looks like JSX or
    Flow, and for module-type ambiguities, which node would report as syntax errors."""
    suffix = PurePosixPath(job.path).suffix.lower()
    if suffix == ".js" and _JSX_OR_FLOW.search(job.content[:_LINT_MAX_CHARS]):
        return None
    exe = job.locate("node")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory(prefix="review-agent-node-") as tmp:
        target = Path(tmp) / f"check{suffix}"
        target.write_bytes(_encode(job.content))
        out = job.runner([exe, "--check", str(target)], b"", job.timeout)
    if out is None or out.returncode == 0:
        return None
    lines = out.stderr.splitlines()
    if not lines:
        return None
    where = _NODE_LINE.search(lines[0])
    error = next((m for m in map(_NODE_ERROR.match, lines) if m), None)
    if where is None or error is None:
        return None
    message = f"{error.group(1)}: {error.group(2)}"
    if any(marker in message for marker in _NODE_AMBIGUOUS):
        return None
    row = int(where.group(1))
    if row not in job.added:
        return []
    return [Finding(row, "lint", "warning", f"`node --check`: {_clip(message)}", key="node:syntax")]


def parse_shellcheck_output(stdout: str, added: Iterable[int]) -> list[Finding]:
    """shellcheck's ``json1`` findings on added lines: errors and warnings are warnings,
    info and style notes are info."""
    wanted = set(added)
    data = json.loads(stdout)
    comments = data.get("comments") if isinstance(data, dict) else data
    findings: list[Finding] = []
    if not isinstance(comments, list):
        return findings
    for item in comments:
        if not isinstance(item, dict):
            continue
        row = item.get("line")
        if not isinstance(row, int) or row not in wanted:
            continue
        code = f"SC{item.get('code')}"
        severity: Severity = "warning" if item.get("level") in ("error", "warning") else "info"
        message = _clip(str(item.get("message") or ""))
        findings.append(Finding(row, "lint", severity, f"shellcheck `{code}`: {message}", key=f"sc:{code}"))
    return findings


def _lint_shellcheck(job: _LintJob) -> list[Finding] | None:
    """shellcheck on stdin. Without a shebang the dialect comes from the extension (zsh is not
    supported by shellcheck and is skipped); ``source`` targets cannot be followed from stdin,
    so the notes saying so are excluded."""
    suffix = PurePosixPath(job.path).suffix.lower()
    argv_shell: list[str] = []
    if not job.content.startswith("#!"):
        if suffix in (".zsh",):
            return None
        argv_shell = [f"--shell={'bash' if suffix == '.bash' else 'sh'}"]
    elif "zsh" in job.content.split("\n", 1)[0]:
        return None
    exe = job.locate("shellcheck")
    if exe is None:
        return None
    argv = [exe, "--format=json1", "--exclude=SC1090,SC1091", *argv_shell, "-"]
    out = job.runner(argv, _encode(job.content), job.timeout)
    # shellcheck exits 1 when it has findings; anything else (2: bad usage, ...) is a failure
    if out is None or out.returncode not in (0, 1):
        return None
    return parse_shellcheck_output(out.stdout, job.added)


@dataclass(frozen=True)
class _Linter:
    name: str
    suffixes: frozenset[str]
    run: Callable[[_LintJob], list[Finding] | None]


_LINTERS: tuple[_Linter, ...] = (
    _Linter("ruff", frozenset({".py", ".pyi"}), _lint_ruff),
    _Linter("node", frozenset({".js", ".mjs", ".cjs"}), _lint_node),
    _Linter("shellcheck", frozenset({".sh", ".bash", ".ksh", ".zsh"}), _lint_shellcheck),
)


# --------------------------------------------------------------------------- aggregate checks

_PROSE_OR_DATA = frozenset(
    {
        ".md", ".markdown", ".rst", ".txt", ".adoc", ".json", ".jsonl", ".ndjson", ".lock", ".svg",
        ".csv", ".tsv", ".map", ".snap", ".ipynb", ".xml", ".pem", ".crt", ".patch", ".diff",
        ".po", ".pot",
    }
)  # fmt: skip
_NO_TRAILING_CHECK = frozenset({".md", ".markdown", ".patch", ".diff"})


def _check_long_lines(lines: Sequence[tuple[int, str]], path: str, limit: int) -> list[Finding]:
    p = PurePosixPath(path)
    if p.suffix.lower() in _PROSE_OR_DATA or ".min." in p.name:
        return []
    long_lines = [(n, len(t)) for n, t in lines if len(t) > limit]
    if not long_lines:
        return []
    first, _ = long_lines[0]
    longest = max(length for _, length in long_lines)
    if len(long_lines) == 1:
        message = f"This added line is {longest} characters long (limit {limit})."
    else:
        message = (
            f"{len(long_lines)} added lines are longer than {limit} characters (the longest "
            f"{longest}); this is the first."
        )
    return [Finding(first, "long-line", "info", message)]


def _check_trailing_whitespace(lines: Sequence[tuple[int, str]], path: str) -> list[Finding]:
    if PurePosixPath(path).suffix.lower() in _NO_TRAILING_CHECK:
        return []
    hits = [n for n, t in lines if t[-1:] in (" ", "\t")]
    if not hits:
        return []
    if len(hits) == 1:
        message = "Trailing whitespace on this added line."
    else:
        message = f"Trailing whitespace on {len(hits)} added lines; this is the first."
    return [Finding(hits[0], "trailing-whitespace", "info", message)]


# --------------------------------------------------------------------------- preferences


@dataclass(frozen=True)
class _Prefs:
    disabled: frozenset[str]
    threshold: int
    max_line_length: int


def _read_prefs(preferences: Any) -> _Prefs:
    """Preferences come from a store that users write to by hand: accept lists or
    comma-separated strings, any case, an optional ``builtin/`` prefix, and ignore what cannot
    be understood rather than failing the review."""
    prefs = preferences if isinstance(preferences, Mapping) else {}
    raw = prefs.get("disabled_checks") or ()
    items: Iterable[Any] = raw.split(",") if isinstance(raw, str) else raw
    disabled: set[str] = set()
    if isinstance(items, Iterable):
        for item in items:
            if isinstance(item, str):
                name = item.strip().lower()
                disabled.add(name.removeprefix("builtin/"))
    threshold_raw = prefs.get("severity_threshold")
    threshold = SEVERITY_ORDER.get(threshold_raw.strip().lower(), 0) if isinstance(threshold_raw, str) else 0
    length = prefs.get("max_line_length")
    max_len = (
        length
        if isinstance(length, int) and not isinstance(length, bool) and length >= 40
        else DEFAULT_MAX_LINE_LENGTH
    )
    return _Prefs(frozenset(disabled), threshold, max_len)


# --------------------------------------------------------------------------- the reviewer


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class BuiltinReviewer:
    """The offline reviewer (see the module docstring for its checks).

    ``run_linters=False`` turns every external linter off (tests, or a locked-down host);
    ``runner`` and ``locate`` replace how linters are found and run; ``linter_timeout`` bounds
    each linter run; ``max_comments_per_file`` keeps a noisy file from burying the review,
    the rest being counted in the summary.
    """

    name = "builtin"

    def __init__(
        self,
        *,
        run_linters: bool = True,
        runner: CommandRunner | None = None,
        locate: ToolLocator | None = None,
        linter_timeout: float = DEFAULT_LINTER_TIMEOUT,
        max_comments_per_file: int = DEFAULT_MAX_COMMENTS,
    ) -> None:
        self.run_linters = run_linters
        self.runner: CommandRunner = runner or run_command
        self.locate: ToolLocator = locate or find_tool
        self.linter_timeout = linter_timeout
        self.max_comments_per_file = max(0, max_comments_per_file)

    def review(self, request: ReviewRequest) -> ReviewResult:
        """Never raises: a check that fails on some content is skipped (and logged), so one
        strange file cannot stop a whole review."""
        try:
            return self._review(request)
        except Exception:  # the port's contract: no exception on odd content
            log.exception("built-in review failed for %s", getattr(request, "path", "?"))
            return ReviewResult(
                summary="The built-in checks could not analyse this file.",
                comments=[],
                failed="the built-in checks crashed on this file",
            )

    # -- internals

    def _review(self, request: ReviewRequest) -> ReviewResult:
        prefs = _read_prefs(request.preferences)
        lines = self._added_lines(request)
        findings: list[Finding] = []
        enabled = [c for c in CHECK_IDS if c not in prefs.disabled]
        for check in enabled:
            findings.extend(self._guarded(check, request, lines, prefs))
        findings = [f for f in findings if SEVERITY_ORDER[f.severity] >= prefs.threshold]
        findings = self._dedupe(findings)
        shown = self._select(findings)
        comments = [Comment(line=f.line, side="RIGHT", severity=f.severity, body=f.body()) for f in shown]
        return ReviewResult(
            summary=self._summary(len(lines), findings, len(shown)),
            comments=comments,
            model_calls=0,
        )

    @staticmethod
    def _added_lines(request: ReviewRequest) -> list[tuple[int, str]]:
        """Added lines in order, CR of CRLF files removed (it is the line end, not content)."""
        out: list[tuple[int, str]] = []
        for number, text in sorted(request.patch.added.items()):
            if not isinstance(text, str):
                text = str(text)
            out.append((number, text[:-1] if text.endswith("\r") else text))
        return out

    def _guarded(
        self, check: str, request: ReviewRequest, lines: list[tuple[int, str]], prefs: _Prefs
    ) -> list[Finding]:
        try:
            return self._run_check(check, request, lines, prefs)
        except Exception:
            log.warning("builtin check %s failed on %s; skipped", check, request.path, exc_info=True)
            return []

    def _run_check(
        self, check: str, request: ReviewRequest, lines: list[tuple[int, str]], prefs: _Prefs
    ) -> list[Finding]:
        if not lines:
            return []
        path = request.path
        lang = detect_language(path, request.language)
        if check == "secret":
            return [
                Finding(n, "secret", sev, msg) for n, text in lines for sev, msg in _check_secrets(text, lang)
            ]
        if check == "conflict-marker":
            return _check_conflicts(lines)
        if check in ("debug", "todo"):
            return self._line_checks(check, request, lines, lang)
        if check == "lint":
            return self._lint(request, prefs)
        if check == "long-line":
            return _check_long_lines(lines, path, prefs.max_line_length)
        if check == "trailing-whitespace":
            return _check_trailing_whitespace(lines, path)
        return []

    @staticmethod
    def _line_checks(
        check: str, request: ReviewRequest, lines: list[tuple[int, str]], lang: str | None
    ) -> list[Finding]:
        """Debug and TODO checks, which look at the code part or the comment part of a line."""
        syntax = _SYNTAX.get(lang or "")
        if check == "debug" and (syntax is None or lang not in _DEBUG_PATTERNS):
            return []
        in_string: dict[int, int] = {}
        if lang == "python" and request.content is not None:
            in_string = _python_string_rows(request.content)
        script = check == "debug" and _is_script(request.path, request.content)
        findings: list[Finding] = []
        for number, full in lines:
            text = full[:_ANALYSE_LIMIT]
            resume = in_string.get(number, 0)
            string_part = text[:resume]
            text = text[resume:] if resume < len(text) else ""
            if syntax is None:
                code, comment = "", text
            else:
                code, comment = _split_code_comment(text, syntax)
            if check == "debug":
                hit = _check_debug(code, lang or "", script)
            else:
                # a docstring is prose, so a TODO in it counts like one in a comment
                hit = _check_todo(code, f"{string_part}\n{comment}", lang)
            if hit:
                findings.append(Finding(number, check, hit[0], hit[1]))
        return findings

    def _lint(self, request: ReviewRequest, prefs: _Prefs) -> list[Finding]:
        content = request.content
        if not self.run_linters or content is None or len(content) > _LINT_MAX_CHARS:
            return []
        suffix = PurePosixPath(request.path).suffix.lower()
        job = _LintJob(
            path=request.path,
            content=content,
            added=dict(request.patch.added),
            runner=self.runner,
            locate=self.locate,
            timeout=self.linter_timeout,
        )
        findings: list[Finding] = []
        for linter in _LINTERS:
            if suffix not in linter.suffixes or linter.name in prefs.disabled:
                continue
            try:
                result = linter.run(job)
            except (ValueError, OSError, TypeError, KeyError, AttributeError) as exc:
                # unparseable output, an unwritable temp dir: the linter is skipped, silently
                log.debug("linter %s skipped on %s: %s", linter.name, request.path, exc)
                result = None
            findings.extend(result or ())
        return findings

    @staticmethod
    def _dedupe(findings: list[Finding]) -> list[Finding]:
        """One finding per (line, check, key), the most severe first found."""
        order = sorted(enumerate(findings), key=lambda item: (-SEVERITY_ORDER[item[1].severity], item[0]))
        seen: set[tuple[int, str, str]] = set()
        kept: list[Finding] = []
        for _, f in order:
            ident = (f.line, f.check, f.key)
            if ident not in seen:
                seen.add(ident)
                kept.append(f)
        return sorted(kept, key=_position)

    def _select(self, findings: list[Finding]) -> list[Finding]:
        """The most severe findings up to the per-file limit, then in file order."""
        ranked = sorted(findings, key=lambda f: (-SEVERITY_ORDER[f.severity], *_position(f)))
        return sorted(ranked[: self.max_comments_per_file], key=_position)

    def _summary(self, line_count: int, findings: list[Finding], shown: int) -> str:
        if line_count == 0:
            return "No added lines to check."
        if not findings:
            return f"No findings in {_plural(line_count, 'added line')}."
        counts = {c: sum(1 for f in findings if f.check == c) for c in CHECK_IDS}
        by_check = ", ".join(f"{c} {n}" for c, n in counts.items() if n)
        summary = (
            f"Checked {_plural(line_count, 'added line')}: {_plural(len(findings), 'finding')} ({by_check})."
        )
        hidden = len(findings) - shown
        if hidden:
            summary += (
                f" Only the {shown} most severe are shown as comments (limit "
                f"{self.max_comments_per_file} per file); {hidden} more are not shown."
            )
        return summary


def _position(f: Finding) -> tuple[int, int, str, str]:
    return (f.line, CHECK_IDS.index(f.check), f.key, f.message)
