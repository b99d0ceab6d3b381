"""The ``secret`` check: credentials added to the repository.

Four detectors, on every added line of every file (a key pasted in a README leaks as surely as
one in code): the token formats of ``review_agent.redaction`` (so what is flagged here is what
memory refuses and prompts mask), private key headers, a literal assigned to a credential-like
name (``password = "…"``, ``"client_secret": "…"``, ``DB_PASSWORD=…`` in env files), and a
password written into a URL (``postgres://app:…@db/prod``).

Why not Yelp's detect-secrets: measured on the seeded corpus of
``tests/test_builtin_precision.py`` (its secret lines), detect-secrets 1.5.0 found 11 of the 12
seeded secrets (these detectors: 12) with 8 false positives (these: 0), a precision of 0.58. It
flags documented placeholders (AWS's ``AKIAIOSFODNN7EXAMPLE``, Slack's ``T00000000/B00000000/
XXXX…`` webhook), ``POSTGRES_PASSWORD: postgres`` in a CI service, ``DEFAULT_PASSWORD =
"changeme"`` and a private key header over ``...`` in a guide, and misses ``ENV API_KEY=…`` in a
Dockerfile; its last release is from May 2024. Its format detectors are the same kind as the
token patterns here, which cover more formats. So these stay, placeholders excluded on purpose.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from review_agent.redaction import PRIVATE_KEY, TOKEN_PATTERNS, is_placeholder
from review_agent.reviewers.builtin.context import FileContext
from review_agent.reviewers.builtin.findings import Finding
from review_agent.reviewers.builtin.lexing import name_parts
from review_agent.state.schemas import Severity

SECRET_SCAN_LIMIT = 100_000
_MAX_KEYWORD_HITS = 20

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
_BARE_VALUE_LANGS = frozenset({"env", "yaml", "ini", "shell", "dockerfile", "toml"})
_NON_SECRET_SUFFIXES = frozenset(
    {
        "name", "names", "id", "ids", "field", "label", "path", "file", "dir", "env", "var",
        "variable", "url", "uri", "header", "param", "prompt", "placeholder", "hint", "length",
        "len", "type", "policy", "regex", "pattern", "format", "hash", "hashed", "question",
        "message", "error", "title", "text", "help", "min", "max", "enabled", "required", "column",
        "attr", "count", "mode", "rotation", "expiry", "expires", "ttl", "reset", "strength",
        "validator", "hasher", "algorithm", "version", "salt", "re", "regexp", "rx", "ref", "arn",
        "source", "provider", "manager", "store", "command", "cmd",
    }
)  # fmt: skip
_PLACEHOLDER_WORDS = (
    "example", "changeme", "change_me", "change-me", "placeholder", "dummy", "sample", "your_",
    "your-", "yourpass", "xxx", "***", "...", "redacted", "secret", "password", "passwd",
    "todo", "fixme", "replace", "insert", "none", "null", "undefined", "fake", "mock", "test",
    "foobar",
)  # fmt: skip
_FILE_LIKE = re.compile(r"^[\w./-]+\.(?:pem|key|crt|cer|p12|pfx|json|txt|ya?ml|env|ini|cfg|conf|toml)$", re.I)
_KEY_BODY = re.compile(r"[A-Za-z0-9+/=]{40,}")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
# scheme://user:password@host — the password group stops at the first '@', '/', or space.
_URL_PASSWORD = re.compile(
    r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@'\"]{1,100}:(?P<value>[^\s@/'\"]{1,200})@[\w.-]"
)


def mask(value: str, shown: int) -> str:
    """Name a secret without repeating it: its public prefix and its length only."""
    prefix = value[:shown] if 0 < shown < len(value) else ""
    return f"`{prefix}…`, {len(value)} characters" if prefix else f"{len(value)} characters"


def plausible_secret(value: str, keyword: str = "") -> bool:
    """Whether a literal looks like a real credential rather than a placeholder, a reference
    to one (an environment variable name, a template, a file name) or a label."""
    v = value.strip()
    if len(v) < 6 or any(c.isspace() for c in v):
        return False
    if v[0] in "$%{<![&*|>@~^" or "{{" in v or "${" in v or "%(" in v or "%s" in v:
        return False
    low = v.lower()
    if keyword and keyword.lower().replace("-", "_") in low.replace("-", "_"):
        return False
    if any(word in low for word in _PLACEHOLDER_WORDS) or is_placeholder(v):
        return False
    if low.startswith(("/", "./", "../", "http://", "https://", "file:")):
        return False
    if _ENV_NAME.match(v) or _FILE_LIKE.match(v):
        return False
    return len(set(v)) > 2  # "aaaaaaa", "0000000"


def _token_secrets(text: str, key_body: bool = True) -> list[tuple[Severity, str]]:
    found: list[tuple[Severity, str]] = []
    for pattern in TOKEN_PATTERNS:
        for m in pattern.regex.finditer(text):
            value = m.group(0)
            if is_placeholder(value):
                continue
            found.append(
                (
                    "error",
                    f"Possible {pattern.kind} ({mask(value, pattern.shown)}) added. Remove it, "
                    "rotate the credential, and load it from the environment or a secret store.",
                )
            )
            break
    key = PRIVATE_KEY.search(text)
    if key and (key_body or _KEY_BODY.search(text, key.end())):
        found.append(
            (
                "error",
                f"A private key (`{key.group(0)}`) is added. Remove it from the repository and "
                "replace the key: it must be considered leaked.",
            )
        )
    return found


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
        parts = name_parts(name)
        if parts and parts[-1] in _NON_SECRET_SUFFIXES:
            continue
        tail = _ASSIGN_QUOTED.match(text, end)
        if tail is None and lang in _BARE_VALUE_LANGS:
            tail = _ASSIGN_BARE.match(text, end)
        if tail is None:
            continue
        value = tail.group("value")
        if not plausible_secret(value, m.group(0)) or value.lower() in parts:
            continue  # POSTGRES_PASSWORD=postgres: a well-known default, not a secret
        shown = name if len(name) <= 60 else name[:59] + "…"
        return (
            "warning",
            f"Possible hard-coded credential: a literal is assigned to `{shown}` (value hidden, "
            f"{len(value)} characters). Load it from the environment or a secret store.",
        )
    return None


def _url_password(text: str) -> tuple[Severity, str] | None:
    for m in _URL_PASSWORD.finditer(text):
        if plausible_secret(m.group("value")):
            return (
                "warning",
                f"A password is written into a URL (value hidden, {len(m.group('value'))} "
                "characters). Pass it from the environment or a secret store instead.",
            )
    return None


def secrets_in_line(text: str, lang: str | None, key_body: bool = True) -> list[tuple[Severity, str]]:
    """Secrets on one line as (severity, message); messages never contain the value.
    ``key_body``: whether key material follows a private key header (see ``check_secrets``)."""
    text = text[:SECRET_SCAN_LIMIT]
    found = _token_secrets(text, key_body)
    if found:
        return found  # a generic "password = ..." on the same line would only repeat it
    generic = _generic_secret(text, lang) or _url_password(text)
    return [generic] if generic else []


def _key_body_follows(rows: list[str], number: int) -> bool:
    return any(_KEY_BODY.match(row.strip()) for row in rows[number : number + 3])


def check_secrets(ctx: FileContext) -> list[Finding]:
    """In documentation (Markdown, reStructuredText, AsciiDoc) a private key header counts only
    when key material follows it: guides show ``-----BEGIN … PRIVATE KEY-----`` over ``...``."""
    prose = ctx.lang == "markdown" or PurePosixPath(ctx.path).suffix.lower() in (".rst", ".adoc")
    findings: list[Finding] = []
    for n, text in ctx.lines:
        key_body = not prose or _key_body_follows(ctx.rows, n)
        for severity, message in secrets_in_line(text, ctx.lang, key_body):
            findings.append(Finding(n, "secret", severity, message))
    return findings
