"""Settings from flags > environment > a ``.env`` file of the user's, with pydantic-settings.

The ``.env`` is never the working directory's: ``review-agent review .`` runs inside the
repository under review, and a ``.env`` there is the repository's, written by whoever wrote the
change — it could point ``OPENAI_BASE_URL`` at a server of theirs and receive the user's own API
key. So a ``.env`` is read only from ``REVIEW_AGENT_HOME``, the platform's config directory for
review-agent, or an explicit ``--env-file``.

Secrets are ``SecretStr`` so that printing a settings object, logging it or putting it in an
exception never shows them; they are unwrapped only where a client is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "gpt-4o-mini"


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("review-agent", appauthor=False))


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir("review-agent", appauthor=False))


def user_env_file(explicit: Path | None = None) -> Path | None:
    """The ``.env`` to read: ``explicit`` (``--env-file``), else ``$REVIEW_AGENT_HOME/.env``,
    else the config directory's, whichever exists first; never one in the working directory."""
    if explicit is not None:
        return explicit
    home = Path(os.environ["REVIEW_AGENT_HOME"]) if os.environ.get("REVIEW_AGENT_HOME") else default_home()
    for candidate in (home / ".env", config_dir() / ".env"):
        if candidate.is_file():
            return candidate
    return None


class Settings(BaseSettings):
    # no env_file here: which .env is read is decided by user_env_file(), passed as _env_file
    model_config = SettingsConfigDict(env_file=None, env_file_encoding="utf-8", extra="ignore")

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    redis_ttl_seconds: int = Field(default=7 * 24 * 3600, alias="REVIEW_AGENT_REDIS_TTL")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    model: str = Field(default=DEFAULT_MODEL, alias="REVIEW_AGENT_MODEL")
    model_timeout: float = Field(default=120.0, alias="REVIEW_AGENT_MODEL_TIMEOUT")
    model_max_retries: int = Field(default=4, alias="REVIEW_AGENT_MODEL_RETRIES")
    price: str | None = Field(default=None, alias="REVIEW_AGENT_PRICE")
    retry_interval: float = Field(default=5.0, alias="REVIEW_AGENT_RETRY_INTERVAL")
    github_token: SecretStr | None = Field(default=None, alias="GITHUB_TOKEN")
    github_api_url: str | None = Field(default=None, alias="GITHUB_API_URL")
    github_retries: int = Field(default=5, alias="REVIEW_AGENT_GITHUB_RETRIES")
    home: Path = Field(default_factory=default_home, alias="REVIEW_AGENT_HOME")
    embeddings: Literal["auto", "openai", "local"] = Field(default="auto", alias="REVIEW_AGENT_EMBEDDINGS")
    embedding_model: str = Field(default="text-embedding-3-small", alias="REVIEW_AGENT_EMBEDDING_MODEL")
    embedding_dims: int = Field(default=1536, alias="REVIEW_AGENT_EMBEDDING_DIMS")
    # --- the GitHub App: `serve` (webhooks) and `worker` (queue) -----------------------------
    github_webhook_secret: SecretStr | None = Field(default=None, alias="GITHUB_WEBHOOK_SECRET")
    github_app_id: str | None = Field(default=None, alias="GITHUB_APP_ID")
    github_app_private_key_path: Path | None = Field(default=None, alias="GITHUB_APP_PRIVATE_KEY_PATH")
    github_app_private_key: SecretStr | None = Field(default=None, alias="GITHUB_APP_PRIVATE_KEY")
    command_associations: str = Field(
        default="OWNER,MEMBER,COLLABORATOR", alias="REVIEW_AGENT_COMMAND_ASSOCIATIONS"
    )
    stalled_after: float = Field(default=60.0, gt=0, alias="REVIEW_AGENT_STALLED_AFTER")
    job_retries: int = Field(default=5, ge=0, alias="REVIEW_AGENT_JOB_RETRIES")
    job_retry_wait: float = Field(default=10.0, ge=0, alias="REVIEW_AGENT_JOB_RETRY_WAIT")
    reconcile_interval: int = Field(default=900, ge=0, alias="REVIEW_AGENT_RECONCILE_INTERVAL")
    reconcile_limit: int = Field(default=50, ge=1, alias="REVIEW_AGENT_RECONCILE_LIMIT")
    db_pool_size: int = Field(default=4, ge=1, alias="REVIEW_AGENT_DB_POOL_SIZE")
    webhook_synchronous_commit: bool = Field(default=True, alias="REVIEW_AGENT_WEBHOOK_SYNC_COMMIT")

    @property
    def model_configured(self) -> bool:
        """A model is used when the user gave a key or a server; otherwise we review offline."""
        return bool(self.openai_api_key or self.openai_base_url)

    @property
    def sqlite_path(self) -> Path:
        return self.home / "review-agent.sqlite"

    def secrets(self) -> list[str]:
        """Every secret value, so that tests and redaction can look for them."""
        out: list[str] = []
        for s in (
            self.openai_api_key,
            self.github_token,
            self.github_webhook_secret,
            self.github_app_private_key,
        ):
            if s is not None and s.get_secret_value():
                out.append(s.get_secret_value())
        return out


def load_settings(env_file: Path | None = None, **overrides: object) -> Settings:
    """Settings for a command: flags (``overrides``) over the environment over the user's
    ``.env`` (see ``user_env_file``)."""
    chosen = user_env_file(env_file)
    return Settings(_env_file=chosen, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[call-arg]
