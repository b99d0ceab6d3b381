"""JSON for reports: readable (UTF-8, not ``\\u`` escapes) and always encodable.

``ensure_ascii=False`` keeps names in other scripts readable, but a lone surrogate (a name that
was not valid UTF-8, or a ``\\ud800`` escape in a server's or a model's JSON) would then make the
report impossible to write as UTF-8. Such a character can only sit inside a JSON string, where
its ``\\uXXXX`` escape is valid JSON and parses back to the same string: so exactly those are
escaped.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(data: Any) -> str:
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


__all__ = ["dumps"]
