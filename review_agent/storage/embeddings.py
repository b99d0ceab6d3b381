"""Embeddings for semantic memory (learnings).

With a model server configured, langchain-openai's ``OpenAIEmbeddings``. Without one, a small
local embedding: a signed feature-hashing bag of words over identifier parts and path segments.
It needs no weights and no network (this tool must work offline), is deterministic across
processes, and is good enough to tell "a rule about tests" from "a rule about SQL": learnings are
short rules, and retrieval only has to rank a handful of them.

Whatever is used, its name and dimension are recorded in the store the first time, and a later
process with another embedding is refused: a pgvector column cannot mix two dimensions, and
vectors of two models are not comparable anyway.
"""

from __future__ import annotations

import hashlib
import math
import re

from langchain_core.embeddings import Embeddings

LOCAL_DIMS = 256
_WORD = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|\d+")
# Words too common in English or in code to say what a rule or a file is about.
_STOP = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "don",
        "for",
        "from",
        "if",
        "in",
        "is",
        "it",
        "not",
        "of",
        "on",
        "or",
        "so",
        "than",
        "that",
        "the",
        "this",
        "to",
        "we",
        "with",
        "src",
        "lib",
        "py",
        "js",
        "ts",
        "def",
        "return",
        "self",
        "import",
        "class",
        "const",
        "let",
        "var",
        "function",
        "true",
        "false",
        "none",
        "null",
    }
)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for raw in _WORD.findall(text):
        w = raw.lower()
        if w in _STOP or len(w) < 2:
            continue
        out.append(w)
        if len(w) > 4 and w.endswith("s"):
            out.append(w[:-1])  # crude plural folding: "tests" ~ "test"
    return out


class HashingEmbeddings(Embeddings):
    name = f"local-hashing-{LOCAL_DIMS}"

    def __init__(self, dims: int = LOCAL_DIMS) -> None:
        self.dims = dims

    def _embed(self, text: str) -> list[float]:
        vec = [0.0] * self.dims
        for tok in _tokens(text):
            digest = hashlib.blake2b(tok.encode(), digest_size=8).digest()
            idx = int.from_bytes(digest[:4], "little") % self.dims
            sign = 1.0 if digest[4] & 1 else -1.0
            vec[idx] += sign
        norm = math.sqrt(sum(v * v for v in vec))
        return [v / norm for v in vec] if norm else vec

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)
