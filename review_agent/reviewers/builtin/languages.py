"""Which language a file is written in: a family name for our own checks, and the Pygments lexer
that tells its code from its strings and comments."""

from __future__ import annotations

from pathlib import PurePosixPath

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.util import ClassNotFound

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
    ".adoc": "text", ".json": "json",
}  # fmt: skip
_NAME_LANG: dict[str, str] = {
    "Gemfile": "ruby", "Rakefile": "ruby", "Dockerfile": "dockerfile", "Containerfile": "dockerfile",
    "Makefile": "make", "makefile": "make", "GNUmakefile": "make",
}  # fmt: skip
_LANG_ALIASES: dict[str, str] = {
    "py": "python", "python3": "python", "js": "javascript", "typescript": "javascript",
    "ts": "javascript", "tsx": "javascript", "jsx": "javascript", "node": "javascript",
    "rb": "ruby", "golang": "go", "rs": "rust", "c#": "csharp", "cs": "csharp",
    "c++": "c", "cpp": "c", "sh": "shell", "bash": "shell", "zsh": "shell",
    "yml": "yaml", "md": "markdown", "docker": "dockerfile",
}  # fmt: skip
# Our family name -> a Pygments lexer alias, for files whose name Pygments does not know.
_PYGMENTS_ALIAS: dict[str, str] = {
    "python": "python", "javascript": "javascript", "ruby": "ruby", "php": "php", "go": "go",
    "java": "java", "kotlin": "kotlin", "rust": "rust", "csharp": "csharp", "swift": "swift",
    "c": "c", "elixir": "elixir", "shell": "bash", "yaml": "yaml", "toml": "toml", "ini": "ini",
    "env": "bash", "dockerfile": "docker", "make": "make", "sql": "sql", "perl": "perl",
    "json": "json",
}  # fmt: skip
PROSE_LANGS = frozenset({"markdown", "text"})
BRACE_LANGS = frozenset({"javascript", "java", "kotlin", "csharp", "go", "rust", "php", "c", "swift"})


def detect_language(path: str, declared: str | None = None) -> str | None:
    """The family of syntax a file is written in, from its name first (the most reliable
    evidence we have), else from the language the source declared."""
    p = PurePosixPath(path)
    name = p.name
    if name in _NAME_LANG:
        return _NAME_LANG[name]
    if name.startswith(("Dockerfile.", "Containerfile.")) or name.endswith(".dockerfile"):
        return "dockerfile"
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


def lexer_for(path: str, lang: str | None) -> Lexer | None:
    """A Pygments lexer for a code file, or None for prose and unknown files (whose text is not
    split into code, strings and comments). Options keep every newline, so rows stay exact."""
    if lang is None or lang in PROSE_LANGS:
        return None
    options = {"stripnl": False, "stripall": False, "ensurenl": True}
    name = PurePosixPath(path).name
    try:
        return get_lexer_for_filename(name, **options)
    except (ClassNotFound, ValueError):
        pass
    alias = _PYGMENTS_ALIAS.get(lang)
    if alias is None:
        return None
    try:
        return get_lexer_by_name(alias, **options)
    except ClassNotFound:
        return None
