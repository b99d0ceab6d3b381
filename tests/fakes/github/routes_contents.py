"""Routes of the fake GitHub for a repository's files: the contents API (with GitHub's 1 MB
cut-over and its handling of symbolic links), git blobs and commits."""

from __future__ import annotations

import base64
import hashlib
import posixpath
import urllib.parse
from typing import Any

from tests.fakes.github.base import FakeBase
from tests.fakes.github.builders import git_blob_sha
from tests.fakes.github.state import CONTENTS_API_LIMIT, FakeRepo, _Context, _HTTPError, _Response


class ContentRoutes(FakeBase):
    def _resolve_ref(self, r: FakeRepo, ref: str | None) -> str:
        ref = ref or r.default_branch
        if ref not in r.contents and ref not in r.commits:
            raise _HTTPError(404, f"No commit found for the ref {ref}")
        return ref

    def _get_contents(self, ctx: _Context, owner: str, repo: str, path: str) -> _Response:
        r = self._find_repo(ctx, owner, repo)
        with self._lock:
            ref = self._resolve_ref(r, ctx.query.get("ref"))
            data = r.contents.get(ref, {}).get(path)
            target = r.symlinks.get(ref, {}).get(path)
            if target is not None:
                # GitHub: a link to a file of the repository is answered with that file;
                # any other link with an object describing the link itself
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
                followed = r.contents.get(ref, {}).get(resolved)
                if followed is None or resolved.startswith("../") or target.startswith("/"):
                    return self._symlink_json(r, ref, path, target)
                path, data = resolved, followed
        if data is None:
            raise _HTTPError(404, "Not Found")
        sha = git_blob_sha(data)
        quoted = urllib.parse.quote(path)
        api = f"{self.url}/repos/{r.full_name}"
        body: dict[str, Any] = {
            "type": "file",
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "url": f"{api}/contents/{quoted}?ref={ref}",
            "git_url": f"{api}/git/blobs/{sha}",
            "html_url": f"{self.root}/{r.full_name}/blob/{ref}/{quoted}",
            "download_url": f"{self.root}/{r.full_name}/raw/{ref}/{quoted}",
        }
        if len(data) > CONTENTS_API_LIMIT:
            # GitHub (since 2022): between 1 MB and 100 MB the object comes without its content
            body.update(content="", encoding="none")
        else:
            body.update(content=_b64_lines(data), encoding="base64")
        body["_links"] = {"self": body["url"], "git": body["git_url"], "html": body["html_url"]}
        return _Response(200, body)

    def _symlink_json(self, r: FakeRepo, ref: str, path: str, target: str) -> _Response:
        sha = git_blob_sha(target.encode())
        quoted = urllib.parse.quote(path)
        api = f"{self.url}/repos/{r.full_name}"
        body = {
            "type": "symlink",
            "target": target,
            "size": len(target.encode()),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "url": f"{api}/contents/{quoted}?ref={ref}",
            "git_url": f"{api}/git/blobs/{sha}",
            "html_url": f"{self.root}/{r.full_name}/blob/{ref}/{quoted}",
            "download_url": f"{self.root}/{r.full_name}/raw/{ref}/{quoted}",
        }
        body["_links"] = {"self": body["url"], "git": body["git_url"], "html": body["html_url"]}
        return _Response(200, body)

    def _get_blob(self, ctx: _Context, owner: str, repo: str, sha: str) -> _Response:
        r = self._find_repo(ctx, owner, repo)
        with self._lock:
            data = r.blobs.get(sha.lower())
        if data is None:
            raise _HTTPError(404, "Not Found")
        return _Response(
            200,
            {
                "sha": sha.lower(),
                "node_id": f"B_{sha[:12]}",
                "size": len(data),
                "url": f"{self.url}/repos/{r.full_name}/git/blobs/{sha.lower()}",
                "content": _b64_lines(data),
                "encoding": "base64",
            },
        )

    def _get_commit(self, ctx: _Context, owner: str, repo: str, ref: str) -> _Response:
        r = self._find_repo(ctx, owner, repo)
        with self._lock:
            info = r.commits.get(ref)
        if info is None:
            raise _HTTPError(422, f"No commit found for SHA: {ref}")
        api = f"{self.url}/repos/{r.full_name}"
        person = {"name": "Octo Cat", "email": "octo@example.com", "date": "2024-01-01T00:00:00Z"}
        return _Response(
            200,
            {
                "sha": ref,
                "node_id": f"C_{ref[:12]}",
                "url": f"{api}/commits/{ref}",
                "html_url": f"{self.root}/{r.full_name}/commit/{ref}",
                "commit": {
                    "message": info["message"],
                    "author": person,
                    "committer": person,
                    "tree": {"sha": hashlib.sha1(ref.encode()).hexdigest(), "url": f"{api}/git/trees/x"},
                    "url": f"{api}/git/commits/{ref}",
                },
                "author": self._user_json("octocat"),
                "committer": self._user_json("octocat"),
                "parents": [{"sha": p, "url": f"{api}/commits/{p}"} for p in info["parents"]],
                "files": [],
            },
        )


def _b64_lines(data: bytes) -> str:
    """Base64 wrapped at 60 characters, as GitHub sends it (clients must cope with newlines)."""
    text = base64.b64encode(data).decode("ascii")
    return "\n".join(text[i : i + 60] for i in range(0, len(text), 60)) + ("\n" if text else "")
