"""A local git repository as a review source: the diff of ``--head`` against its merge base with
``--base``, as a pull request would show it. Uses the ``git`` command, which every user of this
mode already has; a Python git library would add a dependency for no gain here.

File modes come from ``git diff --raw`` (the patch text does not carry them reliably): a path
whose mode is 120000 on either side is a symbolic link, and its targets are the blobs' text.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from review_agent.errors import BadInput
from review_agent.sources.base import ChangedFile, ResolvedTarget

MAX_CONTENT_BYTES = 2_000_000
SYMLINK_MODE = "120000"
NO_FILE = "000000"


@dataclass(frozen=True)
class _RawEntry:
    """One line of ``git diff --raw``: the modes and blobs on both sides, and git's status."""

    old_mode: str
    new_mode: str
    old_sha: str
    new_sha: str
    status: str  # A, D, M, R, C, T (type change)


_C_ESCAPES = {"n": 10, "t": 9, '"': 34, "\\": 92, "a": 7, "b": 8, "f": 12, "r": 13, "v": 11}


def unquote_git_path(name: str) -> str:
    """Undo git's C-style quoting of a path (``"b/na\\303\\257ve.py"``, ``"a\\tb"``): names with
    control characters, quotes or (without core.quotepath=off) non-ASCII bytes come quoted."""
    if len(name) < 2 or not (name.startswith('"') and name.endswith('"')):
        return name
    body = name[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if (
                nxt in "01234567"
                and i + 3 < len(body) + 0
                and all(c in "01234567" for c in body[i + 1 : i + 4])
            ):
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            if nxt in _C_ESCAPES:
                out.append(_C_ESCAPES[nxt])
                i += 2
                continue
        out.extend(ch.encode("utf-8", "surrogateescape"))
        i += 1
    return out.decode("utf-8", "replace")


_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:]{2,}):(?P<path>.*)$")


def remote_uri(url: str, root: Path) -> str:
    """A git remote's URL as a URI fit for a report: user name and password (a token often sits
    there), query and fragment dropped; ``git@host:owner/repo.git`` as ``ssh://host/owner/repo.git``;
    a path (relative ones from the repository root) as a file:// URI. Empty for an empty URL."""
    url = url.strip()
    if not url:
        return ""
    if "://" in url:
        try:
            parts = urlsplit(url)
        except ValueError:
            return ""
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    m = _SCP_LIKE.match(url)
    if m:
        return f"ssh://{m['host']}/{m['path'].lstrip('/')}"
    return (root / url).resolve().as_uri()


class LocalGitSource:
    def __init__(self, path: str | Path, base: str | None = None, head: str | None = None) -> None:
        self.requested_path = Path(path)
        self.base = base
        self.head = head or "HEAD"

    # -- git plumbing --------------------------------------------------------------------------
    def _git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        try:
            proc = subprocess.run(["git", "-C", str(self.root), *args], capture_output=True, timeout=120)
        except FileNotFoundError as exc:
            raise BadInput("git is not installed: install git to review a local repository") from exc
        if check and proc.returncode != 0:
            msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise BadInput(f"git {' '.join(args[:2])} failed: {msg[-1] if msg else proc.returncode}")
        return proc

    @cached_property
    def root(self) -> Path:
        p = self.requested_path.expanduser()
        if not p.exists():
            raise BadInput(f"{p}: no such directory (TARGET is a PR URL or a local git repository)")
        if not p.is_dir():
            raise BadInput(f"{p}: not a directory (TARGET is a PR URL or a local git repository)")
        proc = subprocess.run(
            ["git", "-C", str(p), "rev-parse", "--show-toplevel"], capture_output=True, timeout=60
        )
        if proc.returncode != 0:
            raise BadInput(f"{p}: not a git repository (run `git init`, or pass a PR URL)")
        return Path(proc.stdout.decode().strip()).resolve()

    def _rev(self, ref: str, what: str) -> str:
        proc = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if proc.returncode != 0:
            raise BadInput(f"{what} {ref!r} is not a commit in {self.root}")
        return proc.stdout.decode().strip()

    def _default_base(self) -> str:
        upstream = self._git("rev-parse", "--abbrev-ref", "@{upstream}", check=False)
        if upstream.returncode == 0 and upstream.stdout.strip():
            return upstream.stdout.decode().strip()
        for candidate in ("main", "master"):
            if self._git("rev-parse", "--verify", "--quiet", candidate, check=False).returncode == 0:
                return candidate
        raise BadInput(f"{self.root}: no upstream, no main or master branch: pass --base REF")

    @cached_property
    def _shas(self) -> tuple[str, str, str]:
        base_ref = self.base or self._default_base()
        head_sha = self._rev(self.head, "--head")
        base_sha = self._rev(base_ref, "--base")
        return base_ref, base_sha, head_sha

    # -- the Source port -----------------------------------------------------------------------
    def resolve(self) -> ResolvedTarget:
        base_ref, _, head_sha = self._shas
        # the head commit's subject is the title, its body the description (a pull request's)
        title = self._git("log", "-1", "--format=%s", head_sha).stdout.decode("utf-8", "replace")
        body = self._git("log", "-1", "--format=%b", head_sha).stdout.decode("utf-8", "replace")
        return ResolvedTarget(
            kind="local",
            display=str(self.root),
            head_sha=head_sha,
            base_sha=self._merge_base,
            title=title.strip(),
            description=body.strip(),
            path=str(self.root),
            base_ref=base_ref,
            head_ref=self.head,
        )

    @cached_property
    def _merge_base(self) -> str:
        _, base_sha, head_sha = self._shas
        mb = self._git("merge-base", base_sha, head_sha, check=False)
        return mb.stdout.decode().strip() if mb.returncode == 0 and mb.stdout.strip() else base_sha

    @cached_property
    def _files(self) -> dict[str, ChangedFile]:
        _, _, head_sha = self._shas
        raw = self._git(
            "-c",
            "core.quotepath=off",
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--find-renames",
            "-U3",
            self._merge_base,
            head_sha,
        ).stdout.decode("utf-8", "replace")
        blobs = self._blob_shas(head_sha)
        modes = self._raw_entries(head_sha)
        files: dict[str, ChangedFile] = {}
        try:
            patch_set = PatchSet(raw)
        except UnidiffParseError as exc:
            raise BadInput(f"could not parse the diff of {self.root}: {exc}") from exc
        for pf in patch_set:
            source_name = unquote_git_path(pf.source_file)
            target_name = unquote_git_path(pf.target_file)
            if pf.is_removed_file:
                status, path = "removed", source_name.removeprefix("a/")
            else:
                path = target_name.removeprefix("b/")
                if pf.is_added_file:
                    status = "added"
                elif pf.is_rename:
                    status = "renamed"
                else:
                    status = "modified"
            hunks = "".join(str(h) for h in pf)
            binary = bool(pf.is_binary_file)
            entry = modes.get(path)
            if entry is not None and entry.status == "T":
                # git shows a type change as a removal and an addition of the same path: the
                # addition is the file at head
                if pf.is_removed_file:
                    continue
                status = "changed"
            changed = ChangedFile(
                path=path,
                status=status,
                patch=None if binary or not hunks else hunks,
                blob_sha=blobs.get(path),
                additions=pf.added,
                deletions=pf.removed,
                is_binary=binary,
                previous_path=source_name.removeprefix("a/") if pf.is_rename else None,
                no_diff_reason=None if binary or hunks else _no_diff_reason(status, entry),
            )
            files[path] = self._with_symlink(changed, entry)
        return dict(sorted(files.items()))

    def _raw_entries(self, head_sha: str) -> dict[str, _RawEntry]:
        """Path at head (or the removed path) -> its ``git diff --raw`` entry."""
        out = self._git(
            "diff", "--raw", "-z", "--no-abbrev", "--find-renames", self._merge_base, head_sha
        ).stdout.split(b"\0")
        entries: dict[str, _RawEntry] = {}
        i = 0
        while i < len(out) and out[i].startswith(b":"):
            meta = out[i][1:].decode().split()
            renamed = meta[4][:1] in ("R", "C")
            path = out[i + (2 if renamed else 1)].decode("utf-8", "replace")
            entries[path] = _RawEntry(meta[0], meta[1], meta[2], meta[3], meta[4][:1])
            i += 3 if renamed else 2
        return entries

    def _with_symlink(self, changed: ChangedFile, raw: _RawEntry | None) -> ChangedFile:
        if raw is None or SYMLINK_MODE not in (raw.old_mode, raw.new_mode):
            return changed
        return dataclasses.replace(
            changed,
            is_symlink=True,
            symlink_target=self._blob_text(raw.new_sha) if raw.new_mode == SYMLINK_MODE else None,
            previous_symlink_target=self._blob_text(raw.old_sha) if raw.old_mode == SYMLINK_MODE else None,
        )

    def _blob_text(self, sha: str) -> str:
        return self._git("cat-file", "blob", sha).stdout.decode("utf-8", "replace")

    def _blob_shas(self, head_sha: str) -> dict[str, str]:
        out = self._git("ls-tree", "-r", "-z", "--full-tree", head_sha).stdout
        shas: dict[str, str] = {}
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, _, name = entry.partition(b"\t")
            parts = meta.split()
            if len(parts) >= 3:
                shas[name.decode("utf-8", "replace")] = parts[2].decode()
        return shas

    def list_files(self) -> list[ChangedFile]:
        return list(self._files.values())

    def get_file(self, path: str) -> ChangedFile | None:
        return self._files.get(path)

    def get_content(self, path: str) -> str | None:
        """The file's text at head; None for a symlink (its content is a path, not source),
        binary, missing or too large files."""
        changed = self.get_file(path)
        if changed is not None and changed.is_symlink:
            return None
        _, _, head_sha = self._shas
        return self._text_at(head_sha, path)

    def get_base_content(self, path: str) -> str | None:
        """The file's text at the tip of the base branch (what a pull request's base is)."""
        _, base_sha, _ = self._shas
        return self._text_at(base_sha, path)

    def _text_at(self, sha: str, path: str) -> str | None:
        proc = self._git("cat-file", "-s", f"{sha}:{path}", check=False)
        if proc.returncode != 0 or int(proc.stdout or 0) > MAX_CONTENT_BYTES:
            return None
        data = self._git("show", f"{sha}:{path}", check=False).stdout
        if b"\0" in data[:8192]:
            return None
        return data.decode("utf-8", "replace")

    def repository_uri(self) -> str:
        """The repository as a URI (SARIF's repositoryUri): the URL of its ``origin`` remote, else
        of its first remote, without credentials; with no remote, its own file:// URI."""
        names = self._git("remote", check=False).stdout.decode("utf-8", "replace").split()
        for name in sorted(names, key=lambda n: n != "origin"):
            url = self._git("remote", "get-url", name, check=False).stdout.decode("utf-8", "replace")
            uri = remote_uri(url, self.root)
            if uri:
                return uri
        return self.root.as_uri()


def _no_diff_reason(status: str, raw: _RawEntry | None) -> str:
    """Why a file that is not binary has no hunks, in the report's words."""
    if status == "renamed":
        return "renamed without changes"
    if raw is not None and NO_FILE not in (raw.old_mode, raw.new_mode) and raw.old_mode != raw.new_mode:
        return f"mode change only ({raw.old_mode} to {raw.new_mode})"
    if status == "added":
        return "empty file"
    return "no textual change"
