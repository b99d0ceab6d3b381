"""Counting prompt tokens: exactly with tiktoken where we may, by estimate everywhere else.

tiktoken's wheel does not ship its encodings: the first ``get_encoding`` downloads the BPE file
and caches it (in ``TIKTOKEN_CACHE_DIR``, else ``<tmp>/data-gym-cache``). A reviewer must never
reach a host the user did not configure, so the exact count is used only when that file is
already in tiktoken's cache and matches tiktoken's own checksum (then tiktoken reads it and
downloads nothing); otherwise, and for models tiktoken does not know (any model behind another
OpenAI-compatible server), the count is an estimate of one token per ``CHARS_PER_TOKEN``
characters, which is close for English and code.

To get exact counts offline, put the encoding file in tiktoken's cache once, e.g.
``TIKTOKEN_CACHE_DIR=~/.cache/tiktoken python -c "import tiktoken; tiktoken.get_encoding('o200k_base')"``
on a machine that may download it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4  # tokens the chat format adds around each message

# Where tiktoken loads each encoding from, and its checksum: the cache key is the SHA-1 of the
# URL (tiktoken/load.py, read_file_cached).
_ENCODING_FILES: dict[str, tuple[str, str]] = {
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}

TokenCount = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def tiktoken_cache_dir() -> Path | None:
    """The folder tiktoken reads its encodings from, or None when its cache is disabled."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            value = os.environ[var]
            return Path(value) if value else None
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def cached_encoding_name(model: str) -> str | None:
    """The tiktoken encoding of ``model`` if it is already cached and intact, else None."""
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        name = tiktoken.encoding_name_for_model(model.split(":", 1)[-1])
    except KeyError:
        return None
    source = _ENCODING_FILES.get(name)
    folder = tiktoken_cache_dir()
    if source is None or folder is None:
        return None
    url, checksum = source
    cached = folder / hashlib.sha1(url.encode()).hexdigest()
    try:
        stat = cached.stat()
    except OSError:
        return None
    return name if _intact(str(cached), checksum, (stat.st_mtime_ns, stat.st_size)) else None


@lru_cache(maxsize=8)
def _intact(path: str, checksum: str, stamp: tuple[int, int]) -> bool:
    """The file matches tiktoken's checksum (read once per version of the file)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == checksum


@lru_cache(maxsize=8)
def _encoding(name: str) -> Any:
    import tiktoken

    return tiktoken.get_encoding(name)


def token_counter(model: str) -> tuple[TokenCount, bool]:
    """A function counting the tokens of a text for ``model``, and whether it is exact."""
    name = cached_encoding_name(model)
    if name is None:
        return estimate_tokens, False
    encoding = _encoding(name)

    def count(text: str) -> int:
        # encode_ordinary: text that spells a special token (<|endoftext|>) is just text
        return len(encoding.encode_ordinary(text))

    return count, True
