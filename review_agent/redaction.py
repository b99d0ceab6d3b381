"""Redaction, in one place: what may never be shown is removed the same way everywhere.

Three kinds of text reach a person or a server: log lines and error messages, reports and
posted reviews, and prompts sent to the model. All of them pass through this module:

- ``redact_known`` removes the secrets this process was given (the API key, the GitHub token),
  whatever their shape — servers sometimes echo a key back in an error message;
- ``redact_secrets`` also removes anything that *looks* like a credential (the detector's token
  patterns), for text we did not write: file contents, model answers, memory;
- ``redact_url`` drops the password, the query and the fragment of a connection or base URL.

The token patterns are the built-in reviewer's secret detector too (``secret_kinds``), so what is
flagged in a diff is exactly what is refused in memory and masked in a prompt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class TokenPattern:
    kind: str
    regex: re.Pattern[str]
    shown: int  # how many leading characters are a public scheme prefix, safe to show


# Only formats with a fixed, distinctive prefix or shape: each match is a credential with near
# certainty. High-entropy heuristics are left out on purpose: lock-file hashes, checksums and
# test fixtures look exactly like random keys (see ``reviewers/builtin/secrets_check.py``).
TOKEN_PATTERNS: tuple[TokenPattern, ...] = (
    TokenPattern(
        "AWS access key ID",
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        4,
    ),
    TokenPattern(
        "GitHub token",
        re.compile(r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255}(?![A-Za-z0-9_])"),
        4,
    ),
    TokenPattern(
        "GitHub fine-grained token",
        re.compile(r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{50,255}"),
        11,
    ),
    TokenPattern(
        "GitLab token",
        re.compile(r"(?<![A-Za-z0-9_-])gl(?:pat|dt|rt|cbt|ptt|ft|agent|oas)-[A-Za-z0-9_-]{20,255}"),
        6,
    ),
    TokenPattern("Slack token", re.compile(r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,250}"), 5),
    TokenPattern(
        "Slack webhook URL",
        re.compile(r"https://hooks\.slack\.com/(?:services|workflows)/T[A-Za-z0-9_]+/[AB][A-Za-z0-9_]+/\w+"),
        len("https://hooks.slack.com/services/"),
    ),
    TokenPattern("Stripe live key", re.compile(r"(?<![A-Za-z0-9])[sr]k_live_[A-Za-z0-9]{20,250}"), 8),
    TokenPattern(
        "Google API key",
        re.compile(r"(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])"),
        4,
    ),
    TokenPattern(
        "Google OAuth client secret",
        re.compile(r"(?<![A-Za-z0-9_-])GOCSPX-[A-Za-z0-9_-]{28}(?![A-Za-z0-9_-])"),
        7,
    ),
    TokenPattern(
        "Anthropic API key",
        re.compile(r"(?<![A-Za-z0-9_-])sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_-]{32,250}"),
        7,
    ),
    TokenPattern(
        "OpenAI API key",
        re.compile(
            r"(?<![A-Za-z0-9_-])sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,250}(?![A-Za-z0-9_-])"
        ),
        3,
    ),
    TokenPattern("npm token", re.compile(r"(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9_])"), 4),
    TokenPattern("PyPI token", re.compile(r"(?<![A-Za-z0-9_-])pypi-AgE[A-Za-z0-9_-]{50,}"), 8),
    TokenPattern(
        "SendGrid API key",
        re.compile(r"(?<![A-Za-z0-9_-])SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),
        3,
    ),
)
PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*-----|\Z)", re.S
)
SCAN_LIMIT = 1_000_000  # characters scanned per text: bounded work on hostile input


# A run of eight identical characters: "XXXXXXXX", "00000000". In a random key it practically
# never happens (about 62**-7 per position), in documentation placeholders it always does.
_PLACEHOLDER_RUN = re.compile(r"([A-Za-z0-9*])\1{7}")
_PLACEHOLDER_WORDS = ("EXAMPLE", "example", "PLACEHOLDER", "placeholder", "REDACTED", "redacted")


def is_placeholder(value: str) -> bool:
    """Whether a token-shaped value is a documented placeholder rather than a credential: AWS's
    documentation key (``AKIAIOSFODNN7EXAMPLE``), Slack's sample webhook
    (``T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX``), ``ghp_xxxx…``. Such values are neither
    flagged nor redacted: hiding them would only make documentation unreadable."""
    return any(word in value for word in _PLACEHOLDER_WORDS) or _PLACEHOLDER_RUN.search(value) is not None


def _documented_example(value: str) -> bool:
    return is_placeholder(value)


def secret_kinds(text: str) -> list[str]:
    """The kinds of credential found in ``text`` (e.g. ``["GitHub token"]``), each once."""
    text = text[:SCAN_LIMIT]
    kinds: list[str] = []
    for pattern in TOKEN_PATTERNS:
        if any(not _documented_example(m.group(0)) for m in pattern.regex.finditer(text)):
            kinds.append(pattern.kind)
    if PRIVATE_KEY.search(text):
        kinds.append("private key")
    return kinds


def redact_known(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (values this process holds) replaced by ``***``;
    longest first, so a secret that contains another is replaced whole."""
    for s in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def redact_secrets(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with known secrets and anything shaped like a credential replaced by a label
    naming its kind (``[redacted GitHub token]``), so the reader still sees that one was there.

    Unlike ``secret_kinds``, placeholders are redacted too: redaction guards what leaves the
    process (prompts, logs, answers), where masking a documented sample costs nothing and telling
    a real token from a sample-looking one is not worth a leak."""
    text = redact_known(text, known)
    if len(text) > SCAN_LIMIT:
        return redact_secrets(text[:SCAN_LIMIT]) + redact_secrets(text[SCAN_LIMIT:])
    text = _PRIVATE_KEY_BLOCK.sub("[redacted private key]", text)
    for pattern in TOKEN_PATTERNS:
        text = pattern.regex.sub(f"[redacted {pattern.kind}]", text)
    return text


def redact_url(url: str | None) -> str:
    """A connection or base URL fit for messages and logs: the password replaced by ``***``,
    no query and no fragment (tokens travel there too). On http(s) a user name alone is a token
    (``https://TOKEN@host``, as git and proxies take it), so it is replaced too."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(an unparseable URL)"
    netloc = parts.netloc
    if password is not None:
        netloc = netloc.replace(f":{password}@", ":***@")
    elif "@" in netloc and parts.scheme.lower() in ("http", "https"):
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RedactingFilter(logging.Filter):
    """A logging filter that removes this process's secrets and credential-shaped text from
    every record before any handler formats it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_secrets(record.getMessage(), self.secrets), None
        return True


__all__ = [
    "PRIVATE_KEY",
    "TOKEN_PATTERNS",
    "RedactingFilter",
    "TokenPattern",
    "is_placeholder",
    "redact_known",
    "redact_secrets",
    "redact_url",
    "secret_kinds",
]
