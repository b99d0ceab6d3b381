"""GitHub's webhook signature: ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body>``.

Checked on the raw bytes before anything parses them, with a constant-time comparison. A
delivery signed with another secret (a rotated-out one: a stale delivery), signed only with the
legacy SHA-1 header, or not signed at all is refused the same way, and nothing is queued.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    """The header value GitHub sends for ``body`` (tests and the benchmark sign with it too)."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_ok(secret: bytes | None, body: bytes, header: str | None) -> bool:
    """True only for a well-formed SHA-256 signature of ``body`` with ``secret``. No secret
    configured: nothing is ever accepted."""
    if not secret or not header or not header.startswith(PREFIX):
        return False
    given = header[len(PREFIX) :].strip().lower()
    if len(given) != 64:
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii"))
