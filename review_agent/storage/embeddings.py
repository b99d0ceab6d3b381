"""Embedders for the vector part of recall, and the errors they end a command with.

A learning's text is the truth; its vector is derived data, cached per embedder (see
``storage/vectors.py``): switching the model server on or off never refuses a command, and a
learning gets a vector for the embedder in use the first time one is needed.

Offline (no model server, or ``REVIEW_AGENT_EMBEDDINGS=local``) there is no embedder: recall is
lexical and path globs (``storage/lexical.py``), which beat any bag-of-words vector we could
compute locally. With a model server, its embeddings (langchain-openai's ``OpenAIEmbeddings``)
add a vector score.

``HashingEmbeddings`` is a deterministic bag-of-words embedding with no weights and no network;
the tests' fake model server answers ``/v1/embeddings`` with it, so that the vector path is
exercised through the real OpenAI client.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from langchain_core.embeddings import Embeddings

from review_agent.errors import BadInput, ReviewAgentError, ServiceUnavailable
from review_agent.redaction import redact_secrets, redact_url

if TYPE_CHECKING:
    from review_agent.config import Settings

T = TypeVar("T")

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


@dataclass(frozen=True)
class Embedder:
    """An embedding model in use, with the identity its vectors are cached under: vectors of two
    models (or of one model at two sizes) are never compared."""

    id: str  # e.g. "openai:text-embedding-3-small:1536"
    embeddings: Embeddings
    base_url: str | None = None

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._call(lambda: self.embeddings.embed_documents(texts))

    def embed_query(self, text: str) -> list[float]:
        return self._call(lambda: self.embeddings.embed_query(text))

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ReviewAgentError:
            raise
        except Exception as exc:
            raise embedding_error(exc, self.base_url) from exc


def choose_embedder(settings: Settings) -> Embedder | None:
    """The model server's embeddings when one is configured (and not turned off with
    ``REVIEW_AGENT_EMBEDDINGS=local``), else None: recall is then lexical. Builds a client only;
    nothing is sent until a vector is needed."""
    mode = settings.embeddings
    if not (mode == "openai" or (mode == "auto" and settings.model_configured)):
        return None
    from langchain_openai import OpenAIEmbeddings

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "unused"
    client = OpenAIEmbeddings(
        model=settings.embedding_model,
        dimensions=settings.embedding_dims,
        api_key=key,  # type: ignore[arg-type]
        base_url=settings.openai_base_url,
        check_embedding_ctx_length=False,
        max_retries=settings.model_max_retries,
        timeout=settings.model_timeout,
    )
    ident = f"openai:{settings.embedding_model}:{settings.embedding_dims}"
    return Embedder(ident, client, settings.openai_base_url or "https://api.openai.com/v1")


def embedding_error(exc: Exception, base_url: str | None) -> ReviewAgentError:
    """One line and the documented exit code for an embeddings request that failed."""
    import openai

    url = redact_url(base_url) or "the model server"
    said = redact_secrets(" ".join(str(getattr(exc, "message", exc)).split()))[:200]
    local = "set REVIEW_AGENT_EMBEDDINGS=local to keep memory without the model server's embeddings"
    if isinstance(exc, openai.NotFoundError):
        return ServiceUnavailable(f"the model server at {url} has no embeddings endpoint (404): {local}")
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return ServiceUnavailable(
            f"model server at {url} unreachable for embeddings ({said or 'connection failed'}); "
            f"rerun when it is back, or {local}"
        )
    if isinstance(exc, openai.AuthenticationError):
        return BadInput("the model server rejected the API key (401): check OPENAI_API_KEY")
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        if code >= 500 or code in (408, 409, 429):
            return ServiceUnavailable(
                f"model server at {url} failed an embeddings request (HTTP {code}): {said}"
            )
        return ServiceUnavailable(
            f"the model server at {url} refused an embeddings request (HTTP {code}): {said}; {local}"
        )
    return ServiceUnavailable(f"embeddings from {url} failed ({type(exc).__name__}: {said}); {local}")
