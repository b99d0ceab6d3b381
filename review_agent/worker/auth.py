"""Which GitHub credentials a job runs with.

Single-token mode (``GITHUB_TOKEN``): one organisation served without an App; every job uses
that token. App mode (``GITHUB_APP_ID`` with a private key) mints an installation token in the
worker for the job's installation, when the job starts (or resumes), and keeps it in memory only:
it never reaches a job's arguments, a checkpoint, a row or a log line.
"""

from __future__ import annotations

from pydantic import SecretStr

from review_agent.config import Settings
from review_agent.errors import BadInput


def app_mode(settings: Settings) -> bool:
    return bool(
        settings.github_app_id and (settings.github_app_private_key or settings.github_app_private_key_path)
    )


def check_credentials(settings: Settings) -> str:
    """Refuse to start a worker that could not read a single pull request; say which mode runs."""
    if app_mode(settings):
        raise BadInput(
            "GitHub App mode (GITHUB_APP_ID + private key) is not available in this build yet: "
            "use GITHUB_TOKEN (single-token mode) for now"
        )
    if settings.github_token is None or not settings.github_token.get_secret_value():
        raise BadInput(
            "a worker needs GitHub credentials: GITHUB_TOKEN (single-token mode), or GITHUB_APP_ID "
            "with GITHUB_APP_PRIVATE_KEY_PATH or GITHUB_APP_PRIVATE_KEY (App mode)"
        )
    return "single-token"


def settings_for_installation(settings: Settings, installation_id: int | None) -> Settings:
    """The settings a job of this installation runs with (its token in ``github_token``)."""
    if not app_mode(settings):
        return settings
    raise BadInput(f"no credentials for installation {installation_id}")  # pragma: no cover


def token_of(settings: Settings) -> str | None:
    token: SecretStr | None = settings.github_token
    return token.get_secret_value() if token else None
