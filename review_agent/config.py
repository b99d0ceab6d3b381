"""Settings from flags > environment > .env, with pydantic-settings.

Secrets are ``SecretStr`` so that printing a settings object, logging it or putting it in an
exception never shows them; they are unwrapped only where a client is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "gpt-4o-mini"


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("review-agent", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

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
        for s in (self.openai_api_key, self.github_token):
            if s is not None and s.get_secret_value():
                out.append(s.get_secret_value())
        return out
