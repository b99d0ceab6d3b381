"""Who our GitHub clients are: a token (the CLI, the Action), or a GitHub App installation (the
App's workers), and the PyGithub ``Github`` built for either.

An installation never has a long-lived secret of ours: the App's private key signs a short JWT,
PyGithub trades it for an installation token (``POST /app/installations/{id}/access_tokens``)
when a request first needs one, and again shortly before it expires. The token lives in the
client's memory only: it is never written to a checkpoint, a store row, a log line or a
message, and ``repr`` of these objects never shows a key or a token. Nothing here calls
``GET /user``: GitHub answers it 403 for an installation token.

Credentials come from the caller (the CLI's ``GITHUB_TOKEN``; a worker's installation id from the
webhook), or from the environment with ``app_credentials_from_env``: ``GITHUB_APP_ID`` and the
private key as GitHub issues it, a PEM file (``GITHUB_APP_PRIVATE_KEY_PATH``) or its text
(``GITHUB_APP_PRIVATE_KEY``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from github import Auth, Github, GithubException, GithubIntegration
from github.InstallationAuthorization import InstallationAuthorization
from urllib3.util import Retry

from review_agent.errors import BadInput, ServiceUnavailable
from review_agent.github.errors import connection_reason, is_rate_limited, message_of, rate_limited_error

USER_AGENT = "review-agent"
MINT_ATTEMPTS = 3  # minting a token twice is harmless: a lost answer is simply asked again


@dataclass(frozen=True)
class TokenCredentials:
    """A personal, fine-grained or Actions token (``GITHUB_TOKEN``)."""

    token: str = field(repr=False)

    @property
    def described(self) -> str:
        return "GITHUB_TOKEN"

    @property
    def rejected(self) -> str:
        return "GitHub rejected the token (401): set a valid GITHUB_TOKEN"


@dataclass(frozen=True)
class AppCredentials:
    """A GitHub App: its id and a way to read its private key (PEM). The key is read when a JWT
    is signed, so a rotated key file is picked up without a restart."""

    app_id: str
    read_key: Callable[[], str] = field(repr=False)
    key_origin: str = "GITHUB_APP_PRIVATE_KEY"  # where the key comes from, for messages

    def app_auth(self) -> Auth.AppAuth:
        return Auth.AppAuth(self.app_id, self.read_key)


@dataclass(frozen=True)
class InstallationCredentials:
    """One installation of a GitHub App: its tokens are minted on demand from the App's key."""

    app: AppCredentials
    installation_id: int

    @property
    def described(self) -> str:
        return f"the GitHub App installation {self.installation_id}"

    @property
    def rejected(self) -> str:
        return (
            f"GitHub rejected the token of the GitHub App installation {self.installation_id} (401): "
            "check GITHUB_APP_ID and the App's private key"
        )


GitHubCredentials = TokenCredentials | InstallationCredentials


def load_private_key(text: str, origin: str) -> str:
    """The PEM text, checked to be an unencrypted private key (what GitHub issues), so that a
    wrong file is a one-line BadInput at start rather than a failure at the first request."""
    try:
        load_pem_private_key(text.encode("utf-8"), password=None)
    except (ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInput(f"{origin}: not a PEM private key as GitHub issues it ({first[:120]})") from None
    return text


def app_credentials(
    app_id: str | int,
    *,
    private_key: str | None = None,
    private_key_path: str | Path | None = None,
) -> AppCredentials:
    """An App from its id and its key (the PEM text, or the path of the PEM file). Raises
    BadInput naming the setting at fault, never the key."""
    app = str(app_id).strip()
    if not app.isdigit():
        raise BadInput(f"GITHUB_APP_ID must be the App's numeric id, not {app[:40]!r}")
    if private_key_path is not None and str(private_key_path).strip():
        path = Path(str(private_key_path).strip()).expanduser()
        origin = f"GITHUB_APP_PRIVATE_KEY_PATH ({path})"

        def read_file() -> str:
            try:
                return path.read_text(encoding="utf-8")
            except OSError as exc:
                raise BadInput(
                    f"{origin}: cannot read the App's private key: {exc.strerror or exc}"
                ) from None
            except UnicodeDecodeError:
                raise BadInput(f"{origin}: not a PEM private key as GitHub issues it") from None

        load_private_key(read_file(), origin)
        return AppCredentials(app, read_file, origin)
    if private_key is not None and private_key.strip():
        # a PEM pasted into a one-line variable often carries literal "\n"
        text = private_key.strip().replace("\\n", "\n") + "\n"
        load_private_key(text, "GITHUB_APP_PRIVATE_KEY")
        return AppCredentials(app, lambda: text, "GITHUB_APP_PRIVATE_KEY")
    raise BadInput("a GitHub App needs GITHUB_APP_PRIVATE_KEY_PATH (the PEM file) or GITHUB_APP_PRIVATE_KEY")


def app_credentials_from_env(env: Mapping[str, str] | None = None) -> AppCredentials | None:
    """The App of ``GITHUB_APP_ID`` + ``GITHUB_APP_PRIVATE_KEY_PATH`` / ``GITHUB_APP_PRIVATE_KEY``,
    or None when no App is configured."""
    env = os.environ if env is None else env
    app_id = (env.get("GITHUB_APP_ID") or "").strip()
    if not app_id:
        return None
    return app_credentials(
        app_id,
        private_key=env.get("GITHUB_APP_PRIVATE_KEY"),
        private_key_path=env.get("GITHUB_APP_PRIVATE_KEY_PATH"),
    )


class _InstallationAuth(Auth.AppInstallationAuth):
    """PyGithub's installation auth, with the token minted under a lock (the graph reads from
    several threads; one token serves them all) and a failure to mint said in our words: without
    this a 404 for an uninstalled App would read "pull request not found"."""

    def __init__(self, app: AppCredentials, installation_id: int, api_url: str) -> None:
        super().__init__(app.app_auth(), installation_id)
        self._mint_lock = threading.Lock()
        self._app = app
        self._api_url = api_url

    @property
    def token(self) -> str:
        with self._mint_lock:
            return super().token

    def _get_installation_authorization(self) -> InstallationAuthorization:
        for attempt in range(1, MINT_ATTEMPTS + 1):
            try:
                return super()._get_installation_authorization()
            except GithubException as exc:
                if exc.status >= 500 and not is_rate_limited(exc) and attempt < MINT_ATTEMPTS:
                    continue
                raise self._mint_error(exc) from exc
            except requests.exceptions.RequestException as exc:
                if attempt < MINT_ATTEMPTS:
                    continue
                raise ServiceUnavailable(
                    f"GitHub at {self._api_url} unreachable while minting an installation token: "
                    f"{connection_reason(exc)}"
                ) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    def _mint_error(self, exc: GithubException) -> Exception:
        who = f"the GitHub App {self._app.app_id}, installation {self.installation_id}"
        if is_rate_limited(exc):
            return rate_limited_error(exc, self._api_url)
        if exc.status == 401:
            return BadInput(
                f"GitHub rejected the JWT of the GitHub App {self._app.app_id} (401: {message_of(exc)}): "
                f"check GITHUB_APP_ID and the private key from {self._app.key_origin}"
            )
        if exc.status == 404:
            return BadInput(f"no installation {self.installation_id} of the GitHub App {self._app.app_id}")
        if exc.status == 403:
            return BadInput(f"GitHub refused a token for {who} (403: {message_of(exc)}): is it suspended?")
        if exc.status >= 500:
            return ServiceUnavailable(
                f"GitHub at {self._api_url} could not mint a token for {who}: HTTP {exc.status}"
            )
        return BadInput(f"GitHub refused a token for {who} ({exc.status}: {message_of(exc)})")


def pygithub_auth(credentials: GitHubCredentials | None, api_url: str) -> Auth.Auth | None:
    if credentials is None:
        return None
    if isinstance(credentials, TokenCredentials):
        return Auth.Token(credentials.token) if credentials.token else None
    return _InstallationAuth(credentials.app, credentials.installation_id, api_url)


def github_client(
    api_url: str,
    credentials: GitHubCredentials | None,
    *,
    retry: Retry,
    timeout: int,
    per_page: int = 100,
    seconds_between_requests: float | None = None,
) -> Github:
    """The PyGithub client of a source or publisher. Writes are not throttled by PyGithub (the
    publisher makes one POST per review) and reads not serially (it only slows big PRs down)."""
    return Github(
        auth=pygithub_auth(credentials, api_url),
        base_url=api_url,
        retry=retry,
        timeout=timeout,
        per_page=per_page,
        seconds_between_requests=seconds_between_requests,
        seconds_between_writes=None,
        user_agent=USER_AGENT,
        lazy=True,
    )


def app_integration(
    app: AppCredentials, api_url: str, *, retry: Retry | None = None, timeout: int = 30
) -> GithubIntegration:
    """The App itself (JWT auth): its installations, and which one covers a repository."""
    return GithubIntegration(
        auth=app.app_auth(),
        base_url=api_url,
        retry=retry,
        timeout=timeout,
        user_agent=USER_AGENT,
        seconds_between_requests=None,
        seconds_between_writes=None,
        lazy=True,
    )


def installation_id_for(
    app: AppCredentials,
    api_url: str,
    owner: str,
    repo: str,
    *,
    retry: Retry | None = None,
    timeout: int = 30,
) -> int:
    """The id of the App's installation on ``owner/repo`` (``GET /repos/{o}/{r}/installation``).
    Raises BadInput when the App is not installed there."""
    integration = app_integration(app, api_url, retry=retry, timeout=timeout)
    try:
        return int(integration.get_repo_installation(owner, repo).id)
    except GithubException as exc:
        if exc.status == 404:
            raise BadInput(f"the GitHub App {app.app_id} is not installed on {owner}/{repo}") from exc
        if exc.status == 401:
            raise BadInput(
                f"GitHub rejected the JWT of the GitHub App {app.app_id} (401): check GITHUB_APP_ID "
                f"and the private key from {app.key_origin}"
            ) from exc
        if is_rate_limited(exc):
            raise rate_limited_error(exc, api_url) from exc
        raise ServiceUnavailable(f"GitHub at {api_url} answered {exc.status}: {message_of(exc)}") from exc
    except requests.exceptions.RequestException as exc:
        raise ServiceUnavailable(f"GitHub at {api_url} unreachable: {connection_reason(exc)}") from exc
