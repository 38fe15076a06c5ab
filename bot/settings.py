"""Configuration from the environment and ``.env`` (pydantic-settings).

Credentials people already have keep their conventional names (``DISCORD_TOKEN``,
``RUNWARE_API_KEY``, ...); every outbound endpoint has an overridable base URL; bananabot's
own settings start with ``BANANABOT_``. ``.env.example`` lists them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.models import SafetyTolerance

__all__ = ["Settings"]


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    """Every setting, with its environment variable name as the alias."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    # --- credentials (conventional names, no prefix) ---
    discord_token: SecretStr | None = Field(None, validation_alias=_env("DISCORD_TOKEN"))
    slack_bot_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_app_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(
        None, validation_alias=_env("SLACK_SIGNING_SECRET")
    )
    runware_api_key: SecretStr | None = Field(None, validation_alias=_env("RUNWARE_API_KEY"))
    runflow_api_key: SecretStr | None = Field(None, validation_alias=_env("RUNFLOW_API_KEY"))
    runflow_callback_secret: SecretStr | None = Field(
        None, validation_alias=_env("RUNFLOW_CALLBACK_SECRET")
    )
    runbase_api_key: SecretStr | None = Field(None, validation_alias=_env("RUNBASE_API_KEY"))
    gemini_api_key: SecretStr | None = Field(None, validation_alias=_env("GEMINI_API_KEY"))
    database_url: str = Field("sqlite:///bananabot.db", validation_alias=_env("DATABASE_URL"))

    # --- endpoints ---
    runware_api_url: str = Field(
        "https://api.runware.ai/v1", validation_alias=_env("RUNWARE_API_URL")
    )
    runflow_api_url: str = Field(
        "https://api.runflow.io/v1", validation_alias=_env("RUNFLOW_API_URL")
    )
    runbase_api_url: str = Field(
        "https://runbase.net/api/v1", validation_alias=_env("RUNBASE_API_URL")
    )
    gemini_api_url: str | None = Field(None, validation_alias=_env("GEMINI_API_URL"))
    discord_api_url: str = Field(
        "https://discord.com/api/v10", validation_alias=_env("DISCORD_API_URL")
    )
    discord_gateway_url: str | None = Field(None, validation_alias=_env("DISCORD_GATEWAY_URL"))
    slack_api_url: str = Field("https://slack.com/api/", validation_alias=_env("SLACK_API_URL"))
    slack_host: str = Field("127.0.0.1", validation_alias=_env("BANANABOT_SLACK_HOST"))
    slack_port: int = Field(3000, ge=0, le=65535, validation_alias=_env("BANANABOT_SLACK_PORT"))
    slack_admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("BANANABOT_SLACK_ADMINS")
    )
    discord_guild_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, validation_alias=_env("DISCORD_GUILD_IDS")
    )

    # --- bananabot ---
    providers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("BANANABOT_PROVIDERS")
    )
    data_dir: Path = Field(Path("data"), validation_alias=_env("BANANABOT_DATA_DIR"))
    web_host: str = Field("127.0.0.1", validation_alias=_env("BANANABOT_WEB_HOST"))
    web_port: int = Field(8080, ge=0, le=65535, validation_alias=_env("BANANABOT_WEB_PORT"))
    public_url: str | None = Field(None, validation_alias=_env("BANANABOT_PUBLIC_URL"))
    media_link_ttl: int = Field(
        3600, ge=60, le=7 * 86_400, validation_alias=_env("BANANABOT_MEDIA_LINK_TTL")
    )
    media_link_secret: SecretStr | None = Field(
        None, validation_alias=_env("BANANABOT_MEDIA_LINK_SECRET")
    )
    safety_max_default: SafetyTolerance = Field(
        "none", validation_alias=_env("BANANABOT_SAFETY_MAX_DEFAULT")
    )
    force_check_content: bool = Field(False, validation_alias=_env("BANANABOT_FORCE_CHECK_CONTENT"))
    concurrency: int = Field(4, ge=1, le=64, validation_alias=_env("BANANABOT_CONCURRENCY"))
    worker_lease: float = Field(
        60.0, ge=5, le=3600, validation_alias=_env("BANANABOT_WORKER_LEASE")
    )
    shutdown_grace: float = Field(
        8.0, ge=0, le=3600, validation_alias=_env("BANANABOT_SHUTDOWN_GRACE")
    )
    sandbox_delay: float = Field(0.5, ge=0, le=60, validation_alias=_env("BANANABOT_SANDBOX_DELAY"))
    provider_deadline: float = Field(
        600.0, gt=0, validation_alias=_env("BANANABOT_PROVIDER_DEADLINE")
    )
    poll_initial: float = Field(1.0, gt=0, validation_alias=_env("BANANABOT_POLL_INITIAL"))
    poll_max: float = Field(10.0, gt=0, validation_alias=_env("BANANABOT_POLL_MAX"))
    http_timeout: float = Field(60.0, gt=0, validation_alias=_env("BANANABOT_HTTP_TIMEOUT"))
    runware_model_pro: str = Field(
        "google:4@2", validation_alias=_env("BANANABOT_RUNWARE_MODEL_PRO")
    )
    runware_model_nb2: str = Field(
        "google:4@3", validation_alias=_env("BANANABOT_RUNWARE_MODEL_NB2")
    )
    runflow_model_pro: str = Field(
        "google/nano-banana-pro", validation_alias=_env("BANANABOT_RUNFLOW_MODEL_PRO")
    )
    runflow_model_nb2: str = Field(
        "google/nano-banana-2", validation_alias=_env("BANANABOT_RUNFLOW_MODEL_NB2")
    )
    runbase_model_pro: str = Field(
        "google/nano-banana-pro", validation_alias=_env("BANANABOT_RUNBASE_MODEL_PRO")
    )
    runbase_model_nb2: str = Field(
        "google/nano-banana-2", validation_alias=_env("BANANABOT_RUNBASE_MODEL_NB2")
    )
    runbase_rate_limit: int = Field(20, ge=2, validation_alias=_env("BANANABOT_RUNBASE_RATE_LIMIT"))
    runbase_rate_window: float = Field(
        10.0, gt=0, validation_alias=_env("BANANABOT_RUNBASE_RATE_WINDOW")
    )
    catalog_file: Path | None = Field(None, validation_alias=_env("BANANABOT_CATALOG_FILE"))
    discord_message_content: bool = Field(
        False, validation_alias=_env("BANANABOT_DISCORD_MESSAGE_CONTENT")
    )
    discord_token_lifetime: float = Field(
        900.0, gt=0, validation_alias=_env("BANANABOT_DISCORD_TOKEN_LIFETIME")
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=_env("BANANABOT_LOG_LEVEL")
    )
    log_format: Literal["text", "json"] = Field(
        "text", validation_alias=_env("BANANABOT_LOG_FORMAT")
    )

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) address such as https://bot.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return value.rstrip("/")

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("slack_admins", mode="before")
    @classmethod
    def _split_admins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value

    @field_validator("discord_guild_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace(" ", "").split(",") if part]
        return value

    def configured_providers(self) -> list[str]:
        """Provider names in routing order: ``BANANABOT_PROVIDERS`` if set, else every
        provider that has a key, else the sandbox."""
        if self.providers:
            return list(self.providers)
        keyed = [
            name
            for name, key in (
                ("runware", self.runware_api_key),
                ("runflow", self.runflow_api_key),
                ("runbase", self.runbase_api_key),
                ("gemini", self.gemini_api_key),
            )
            if key is not None
        ]
        return keyed or ["sandbox"]

    def secret_fields(self) -> tuple[str, ...]:
        return tuple(
            name
            for name, field in type(self).model_fields.items()
            if field.annotation in (SecretStr, SecretStr | None)
        )
