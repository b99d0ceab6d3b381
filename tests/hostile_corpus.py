"""The hostile pull request of ``tests/data/hostile/`` (issue 11, item 8), read from its manifest and
built as a local git repository or as a pull request on the fake GitHub.

The corpus is data so that a new hostile case is one more ``[[file]]`` entry, not more test code.
Names that no work tree or git index can hold portably (an ESC byte, a newline, ``..``, an
absolute path) live only in the manifest, as TOML escapes; this module makes the files.
"""

from __future__ import annotations

import base64
import difflib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes.github_server import FakeGitHub, added_file_patch, make_file, symlink_patch
from tests.gitrepo import git

CORPUS = Path(__file__).parent / "data" / "hostile"

# Credential-shaped values, joined here so that no secret scanner flags the repository itself.
GITHUB_TOKEN_IN_CODE = "ghp_" + "HostileCorpus0123456789abcdefghijklmn"
AWS_KEY_IN_CODE = "AKIA" + "HOSTILE2CORPUS7Q"


def three_megabytes() -> str:
    return "".join(f"value_{i} = {i}  # padding padding padding\n" for i in range(70_000))


def megabyte_line() -> str:
    return "x = '" + "y" * 1_000_000 + "'\n"


GENERATORS = {"three_megabytes": three_megabytes, "megabyte_line": megabyte_line}


@dataclass(frozen=True)
class Side:
    """A file's content on one side of the change: bytes, or a symbolic link's target."""

    data: bytes | None = None
    symlink: str | None = None

    @property
    def text(self) -> str:
        """As GitHub shows it in a patch: a link is its target, bytes that are not UTF-8 are
        replacement characters."""
        if self.symlink is not None:
            return self.symlink
        assert self.data is not None
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True)
class CorpusFile:
    path: str
    head: Side
    base: Side | None
    only: str | None
    expect: str  # "reviewed", "symlink" or "skipped"
    reason: str | None

    @property
    def status(self) -> str:
        return "modified" if self.base is not None else "added"

    def github_patch(self) -> str:
        """The hunks GitHub lists for this file (no ---/+++ headers)."""
        if self.head.symlink is not None:
            return symlink_patch(self.base.symlink if self.base else None, self.head.symlink)
        if self.base is None:
            return added_file_patch(self.head.text.splitlines())
        diff = difflib.unified_diff(
            self.base.text.splitlines(), self.head.text.splitlines(), lineterm="", n=3
        )
        return "\n".join(line for line in diff if not line.startswith(("---", "+++")))


@dataclass(frozen=True)
class Corpus:
    files: list[CorpusFile]
    pull_request: dict[str, Any]
    obeying_answer: dict[str, Any]  # what the model says about ``obeying_path``
    obeying_path: str

    def where(self, place: str) -> list[CorpusFile]:
        """The files of the pull request as built ``place`` ("local" or "github")."""
        return [f for f in self.files if f.only in (None, place)]


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _side(spec: dict[str, Any], values: dict[str, str]) -> Side:
    if "symlink" in spec:
        return Side(symlink=spec["symlink"])
    if "text" in spec:
        data = _fill(spec["text"], values).encode()
    elif "file" in spec:
        data = _fill((CORPUS / "files" / spec["file"]).read_text(encoding="utf-8"), values).encode()
    elif "base64" in spec:
        data = base64.b64decode(spec["base64"])
    else:
        text = GENERATORS[spec["generate"]]()
        if "edit" in spec:
            old, new = spec["edit"]
            assert old in text, spec
            text = text.replace(old, new, 1)
        data = text.encode()
    return Side(data=data)


def load_corpus(values: dict[str, str]) -> Corpus:
    """The manifest with its placeholders filled in from ``values`` (``attacker_base_url`` …)."""
    values = {"github_token": GITHUB_TOKEN_IN_CODE, "aws_key": AWS_KEY_IN_CODE, **values}
    manifest = tomllib.loads((CORPUS / "manifest.toml").read_text(encoding="utf-8"))
    files = [
        CorpusFile(
            path=entry["path"],
            head=_side(entry["head"], values),
            base=_side(entry["base"], values) if "base" in entry else None,
            only=entry.get("only"),
            expect=entry["expect"],
            reason=entry.get("reason"),
        )
        for entry in manifest["file"]
    ]
    pr = {k: _fill(v, values) if isinstance(v, str) else v for k, v in manifest["pull_request"].items()}
    obeys = dict(manifest["model"]["obeys"])
    path = obeys.pop("path")
    answer = {
        "summary": _fill(obeys["summary"], values),
        "event": obeys["event"],
        "comments": [{**c, "body": _fill(c["body"], values)} for c in obeys["comments"]],
    }
    return Corpus(files=files, pull_request=pr, obeying_answer=answer, obeying_path=path)


def _write(root: Path, path: str, side: Side) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    if side.symlink is not None:
        os.symlink(side.symlink, target)
    else:
        assert side.data is not None
        target.write_bytes(side.data)


def build_local(corpus: Corpus, root: Path) -> Path:
    """A git repository at ``root/repo``: ``main`` with the files' base versions, ``feature``
    (checked out) with the change, as one commit."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for key, value in (("user.email", "mallory@example.com"), ("user.name", "Mallory")):
        git(repo, "config", key, value)
    git(repo, "config", "commit.gpgsign", "false")
    (repo / "README.md").write_text("# shop\n")
    for f in corpus.where("local"):
        if f.base is not None:
            _write(repo, f.path, f.base)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "feature")
    for f in corpus.where("local"):
        _write(repo, f.path, f.head)
    git(repo, "add", "-A")
    title = corpus.pull_request["title"]
    git(repo, "commit", "-q", "-m", f"{title}\n\n{corpus.pull_request['body']}")
    return repo


HEAD_SHA, BASE_SHA = "c" * 40, "d" * 40


def build_github(corpus: Corpus, gh: FakeGitHub, owner: str, repo: str) -> int:
    """The pull request on the fake GitHub; returns its number."""
    pr = corpus.pull_request
    entries = []
    base_contents: dict[str, bytes] = {}
    for f in corpus.where("github"):
        if f.base is not None and f.base.data is not None:
            base_contents[f.path] = f.base.data
        kwargs: dict[str, Any] = {"status": f.status}
        if f.head.symlink is not None:
            kwargs["symlink"] = f.head.symlink
        else:
            kwargs["content"] = f.head.data
        entries.append(make_file(f.path, f.github_patch(), **kwargs))
    gh.add_pr(
        owner,
        repo,
        pr["number"],
        entries,
        title=pr["title"],
        body=pr["body"],
        author=pr["author"],
        head_sha=HEAD_SHA,
        base_sha=BASE_SHA,
        base_contents=base_contents,
    )
    return int(pr["number"])
