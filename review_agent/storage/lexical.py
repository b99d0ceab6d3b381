"""Lexical recall: which learnings a file's path, names and changed lines speak of.

A learning is a short rule ("serializer must never use pickle", "don't flag missing docstrings
in tests/"). Offline, the words it shares with the file are the best evidence there is, so the
default recall is lexical, with two parts:

- **terms**: words split out of identifiers (``parse_request``, ``HttpClient``), lower-cased,
  stemmed with the Snowball English stemmer (``serializer`` ~ ``serialize`` ~ ``serialization``),
  minus English and code stop words. Words of the file's path count several times: a rule about
  serializers is about ``serializer.py`` even when the diff never says "serializer";
- **path globs** written in the learning (``tests/``, ``*.sql``, ``api/handlers.py``), matched
  against the file's path the way a person reads them.

The score is BM25's (inverse document frequency over the learnings in scope, saturated term
frequency over the file), normalised by the learning's own maximum so that it lies in 0..1 and
means "how much of what this rule talks about the file contains". BM25 is a few lines; the
maintained packages (``bm25s``, ``rank-bm25``) index a corpus of documents for queries, the
opposite shape of this problem (tens of short rules scored against one file at a time), and
would bring numpy or scipy into the first, offline command.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

import snowballstemmer

PATH_WEIGHT = 3  # a word of the file's path counts as this many occurrences
K1 = 1.2  # BM25's term-frequency saturation
PRIOR_DOCS = 10  # pseudo-learnings with no terms: IDF stays sensible with only a few learnings

_RUN = re.compile(r"[A-Za-z]+")  # digits say nothing a rule talks about
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
# English function words and the words every rule uses ("never use", "don't flag"), then words
# of code that say nothing about what a file or a rule is about
_STOP_WORDS = """
a about above after again all also always an and any are as at avoid be because been before being
below between both but by can could did do does doing don done each else ever every few flag
flagged for from further had has have having he her here how if in instead into is it its just may
me might more most must my need needs never no nor not now of off on once only or other our out
over own please prefer rather same she should so some such than that the their them then there
these they this those through to too under until up us use used uses using very was we were what
when where which while who why will with without would you your
py js ts src lib def return self cls import from class const let var function fn func true false
none null nil new pass end elif int str bool
"""
_STOP = frozenset(_STOP_WORDS.split())
# Extensions that make a bare word a file name ("serializer.py"), not prose ("e.g.", "os.path").
_EXTENSION_WORDS = """
py pyi js jsx ts tsx mjs cjs sql go rs java kt kts rb php c h cc cpp hpp cs swift m mm scala sh
bash zsh ps1 md rst txt yml yaml toml json ini cfg conf xml html css scss less vue svelte tf hcl
proto graphql gql lock gradle dockerfile mk cmake lua pl r dart ex exs erl hs ml clj ipynb csv env
"""
_EXTENSIONS = frozenset(_EXTENSION_WORDS.split())
_GLOB_EDGE = "\"'`()[]{}<>,;:!?"
_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=50_000)
def _stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def terms(text: str) -> list[str]:
    """The stemmed content words of ``text``, in order, repeats kept. An identifier gives its
    parts and, when it has several, itself: ``HttpClient`` gives http, client, httpclient, and
    ``GitHub`` matches ``.github``."""
    out: list[str] = []
    for run in _RUN.findall(text):
        parts = [w.lower() for w in _WORD.findall(run)]
        if len(parts) > 1:
            parts.append(run.lower())
        for word in parts:
            if len(word) < 2 or word in _STOP:
                continue
            out.append(_stem(word))
    return out


def path_globs(text: str) -> list[str]:
    """The path patterns a learning names: words with a ``/`` or a ``*``, or a file name with a
    known extension. Lower-cased; URLs are not paths."""
    globs: list[str] = []
    for raw in text.split():
        word = raw.strip(_GLOB_EDGE).rstrip(".")
        if not word or "://" in word or word.startswith("@"):
            continue
        if "/" in word or "*" in word:
            if word.strip("/*."):  # "/", "*", "**/" alone name nothing
                globs.append(word.lower())
        elif "." in word and word.rsplit(".", 1)[1].lower() in _EXTENSIONS and word[0] != ".":
            globs.append(word.lower())
    return globs


def glob_matches(pattern: str, path: str) -> bool:
    """Whether ``path`` is what ``pattern`` names, read as a person means it:

    - ``tests/`` (ends with ``/``): a directory anywhere in the path (``pkg/tests/x.py``);
    - ``api/*.py`` (has a ``/``): the tail of the path (``src/api/v1.py`` matches);
    - ``*.sql``, ``serializer.py`` (no ``/``): the file name.
    A leading ``/`` anchors at the repository root. Case-insensitive.
    """
    path = path.lower().strip("/")
    parts = path.split("/")
    anchored = pattern.startswith("/")
    pat = pattern.strip("/")
    if pattern.endswith("/"):  # a directory
        dirs = parts[:-1]
        width = pat.count("/") + 1
        starts = [0] if anchored else range(len(dirs) - width + 1)
        return any(fnmatchcase("/".join(dirs[i : i + width]), pat) for i in starts)
    if "/" in pat:
        starts = [0] if anchored else range(len(parts))
        return any(fnmatchcase("/".join(parts[i:]), pat) for i in starts)
    return fnmatchcase(parts[-1], pat)


def file_terms(path: str, text: str) -> Counter[str]:
    """Term frequencies of a file: its path's words weighted, then its names and changed lines."""
    counts: Counter[str] = Counter(terms(text))
    for term in terms(path.replace("/", " ")):
        counts[term] += PATH_WEIGHT
    return counts


@dataclass(frozen=True)
class LexicalMatch:
    score: float  # 0..1: the share of the learning's (IDF-weighted) terms found, saturated
    glob: bool | None  # True: a path it names matches; False: it names paths, none match; None: names none
    matched: int = 0  # how many distinct terms of the learning the file has


class LexicalIndex:
    """The learnings of one review, indexed once; each file is scored against all of them."""

    def __init__(self, texts: Sequence[str]) -> None:
        self._terms = [set(terms(t)) for t in texts]
        self._globs = [path_globs(t) for t in texts]
        df: Counter[str] = Counter(t for ts in self._terms for t in ts)
        n = len(texts) + PRIOR_DOCS
        self._idf = {t: math.log(1 + (n - k + 0.5) / (k + 0.5)) for t, k in df.items()}

    def score(self, path: str, text: str) -> list[LexicalMatch]:
        counts = file_terms(path, text)
        out: list[LexicalMatch] = []
        for ts, globs in zip(self._terms, self._globs, strict=True):
            total = sum(self._idf[t] for t in ts)
            hits = [t for t in ts if counts[t]]
            got = sum(self._idf[t] * counts[t] / (counts[t] + K1) for t in hits)
            glob = any(glob_matches(g, path) for g in globs) if globs else None
            out.append(LexicalMatch(got / total if total else 0.0, glob, len(hits)))
        return out


def term_cosine(a: str, b: str) -> float:
    """Cosine of two texts' term counts: how alike two findings read, with no model at all."""
    ca, cb = Counter(terms(a)), Counter(terms(b))
    dot = sum(v * cb[k] for k, v in ca.items())
    na = math.sqrt(sum(v * v for v in ca.values()))
    nb = math.sqrt(sum(v * v for v in cb.values()))
    return dot / (na * nb) if na and nb else 0.0
