"""Naming a pull request: its web URL parsed into host, owner, repository and number, and the REST
API base that serves it (github.com, GHE.com data residency, or GitHub Enterprise Server)."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from review_agent.errors import BadInput

PUBLIC_HOST = "github.com"
PUBLIC_API_URL = "https://api.github.com"
USAGE = "expected a pull request URL like https://github.com/OWNER/REPO/pull/123"

_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_REPO = r"[A-Za-z0-9._-]{1,100}"
# https://HOST/OWNER/REPO/pull/N, with anything after it (/files, /commits/SHA, ...)
_WEB_PATH = re.compile(rf"^/(?P<owner>{_OWNER})/(?P<repo>{_REPO})/pulls?/(?P<number>\d+)(?:/.*)?$")
# the API form people paste from CI logs: https://api.github.com/repos/OWNER/REPO/pulls/N
_API_PATH = re.compile(
    rf"^(?:/api/v3)?/repos/(?P<owner>{_OWNER})/(?P<repo>{_REPO})/pulls/(?P<number>\d+)(?:/.*)?$"
)


@dataclass(frozen=True)
class PullRequestRef:
    """A pull request named by its web URL. ``host`` is lower-case and keeps a port if given."""

    host: str
    owner: str
    repo: str
    number: int
    scheme: str = "https"

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.repo}"

    @property
    def name(self) -> str:
        """``OWNER/REPO#N``, as messages name it."""
        return f"{self.slug}#{self.number}"

    @property
    def web_url(self) -> str:
        return f"{self.scheme}://{self.host}/{self.owner}/{self.repo}/pull/{self.number}"

    @property
    def default_api_url(self) -> str:
        """github.com → api.github.com; GHE.com (data residency) → api.SUBDOMAIN.ghe.com;
        any other host is GitHub Enterprise Server, whose REST API lives under /api/v3."""
        if self.host == PUBLIC_HOST:
            return PUBLIC_API_URL
        if self.host.endswith(".ghe.com"):
            return f"https://api.{self.host}"
        return f"{self.scheme}://{self.host}/api/v3"


def safe_text(text: str, limit: int = 120) -> str:
    """A target as it may be echoed in a message: no credentials, bounded length."""
    parts = urllib.parse.urlsplit(text) if "://" in text else None
    if parts is not None and ("@" in parts.netloc):
        text = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_pr_url(text: str) -> PullRequestRef:
    """Parse ``https://HOST/OWNER/REPO/pull/N`` (scheme optional, trailing ``/files`` etc.
    allowed, GitHub Enterprise hosts too). Raises BadInput with a one-line reason otherwise."""
    raw = text.strip()
    if not raw:
        raise BadInput(f"empty target: {USAGE}")
    candidate = raw if "://" in raw else f"https://{raw}"
    try:
        parts = urllib.parse.urlsplit(candidate)
        port = parts.port
    except ValueError as exc:
        raise BadInput(f"not a pull request URL: {safe_text(raw)!r} ({exc}); {USAGE}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadInput(f"not a pull request URL: {safe_text(raw)!r} (scheme {scheme!r}); {USAGE}")
    if parts.username or parts.password:
        # never echo the URL: the userinfo may be a token
        raise BadInput("a pull request URL must not contain credentials: set GITHUB_TOKEN instead")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host or ("." not in host and host != "localhost"):
        raise BadInput(f"not a pull request URL: {safe_text(raw)!r} (no host); {USAGE}")
    if host == "www.github.com":
        host = PUBLIC_HOST
    path = re.sub(r"/{2,}", "/", parts.path)
    m = _WEB_PATH.match(path)
    if m is None:
        m = _API_PATH.match(path)
        if m is not None and host == "api.github.com":
            host = PUBLIC_HOST
    if m is None:
        raise BadInput(f"not a pull request URL: {safe_text(raw)!r}; {USAGE}")
    number = int(m.group("number"))
    if number <= 0:
        raise BadInput(f"not a pull request URL: {safe_text(raw)!r} (pull request numbers start at 1)")
    repo = m.group("repo")
    if repo in (".", ".."):
        raise BadInput(f"not a pull request URL: {safe_text(raw)!r} (bad repository name); {USAGE}")
    netloc = host if port is None or (scheme, port) in (("https", 443), ("http", 80)) else f"{host}:{port}"
    return PullRequestRef(netloc, m.group("owner"), repo, number, scheme)


def api_url_for(ref: PullRequestRef, explicit: str | None) -> str:
    """``GITHUB_API_URL`` wins (Enterprise setups, tests); otherwise derived from the host."""
    if explicit is None or not explicit.strip():
        return ref.default_api_url
    url = explicit.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"GITHUB_API_URL must be an http(s) URL, not {safe_text(url)!r}")
    return url


def is_safe_repo_path(path: str) -> bool:
    """A path that names a file inside the repository and nothing else once put in a URL."""
    if not path or path.startswith("/") or "\\" in path:
        return False
    return all(seg not in ("", ".", "..") for seg in path.split("/"))
