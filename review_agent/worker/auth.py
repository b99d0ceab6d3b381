"""Which GitHub credentials a job runs with.

* App mode (``GITHUB_APP_ID`` with ``GITHUB_APP_PRIVATE_KEY_PATH`` or ``GITHUB_APP_PRIVATE_KEY``):
  each job runs as the installation its webhook named (``review_agent.github``'s
  ``InstallationCredentials``). Its token is minted in the worker when the job's first GitHub
  request needs it, so a resumed or retried job gets a fresh one; it lives in memory only and
  never reaches a job's arguments, a checkpoint, a row or a log line. A token of one
  installation is only used on the repository of the job that named it; nothing calls
  ``GET /user`` with it.
* Single-token mode (``GITHUB_TOKEN``): one organisation served without an App; every job uses
  that token.

The key is checked once when the worker starts (a wrong file is a one-line error then, not a
failure in every job).
"""

from __future__ import annotations

from dataclasses import dataclass

from review_agent.config import Settings
from review_agent.errors import BadInput
from review_agent.github import (
    AppCredentials,
    GitHubCredentials,
    InstallationCredentials,
    TokenCredentials,
    app_credentials,
    installation_id_for,
)
from review_agent.github.refs import api_url_for, parse_pr_url


def app_of(settings: Settings) -> AppCredentials | None:
    """The App of the settings, its key checked; None in single-token mode."""
    if not (settings.github_app_id or "").strip():
        return None
    key = settings.github_app_private_key.get_secret_value() if settings.github_app_private_key else None
    return app_credentials(
        settings.github_app_id or "",
        private_key=key,
        private_key_path=settings.github_app_private_key_path,
    )


@dataclass(frozen=True)
class JobCredentials:
    """The worker's way to GitHub, built once per process."""

    settings: Settings
    app: AppCredentials | None

    @property
    def mode(self) -> str:
        return f"GitHub App {self.app.app_id}" if self.app else "single-token (GITHUB_TOKEN)"

    def for_repository(
        self, host: str, scheme: str, repository: str, installation_id: int | None
    ) -> GitHubCredentials | None:
        """Credentials for one job on ``repository``; None means GITHUB_TOKEN (the service's
        default). A job without an installation id (a reconcile of a repository known before
        its installation) asks GitHub which installation covers the repository."""
        if self.app is None:
            return None
        if installation_id is None:
            owner, repo = repository.split("/", 1)
            ref = parse_pr_url(f"{scheme}://{host}/{repository}/pull/1")
            installation_id = installation_id_for(
                self.app, api_url_for(ref, self.settings.github_api_url), owner, repo
            )
        return InstallationCredentials(self.app, int(installation_id))


def job_credentials(settings: Settings) -> JobCredentials:
    """Refuse to start a worker that could not read a single pull request."""
    app = app_of(settings)
    if app is None and (settings.github_token is None or not settings.github_token.get_secret_value()):
        raise BadInput(
            "a worker needs GitHub credentials: GITHUB_APP_ID with GITHUB_APP_PRIVATE_KEY_PATH or "
            "GITHUB_APP_PRIVATE_KEY (App mode), or GITHUB_TOKEN (single-token mode)"
        )
    return JobCredentials(settings, app)


def token_credentials(settings: Settings) -> TokenCredentials | None:
    token = settings.github_token.get_secret_value() if settings.github_token else ""
    return TokenCredentials(token) if token else None
