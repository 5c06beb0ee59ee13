"""Typed settings of the control plane, read from `VOXLINE_*` environment variables."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "dev-secret", "placeholder"}
)
DEVELOPMENT_SECRET = "change-me"


class Settings(BaseSettings):
    """Every knob of the control plane; defaults run the embedded, single-machine setup."""

    model_config = SettingsConfigDict(env_prefix="VOXLINE_", extra="ignore", env_file=".env")

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path(".voxline")
    database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    public_url: str = "http://127.0.0.1:8000"

    jwt_secret: str = DEVELOPMENT_SECRET
    encryption_key: str = DEVELOPMENT_SECRET
    service_token: str = DEVELOPMENT_SECRET
    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    reset_token_ttl_seconds: int = 3600

    max_json_bytes: int = 1024 * 1024
    max_upload_request_bytes: int = 50 * 1024 * 1024

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "Voxline <no-reply@voxline.local>"

    google_client_id: str | None = None
    google_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"

    allow_private_urls: bool = False

    # Customer webhooks: the delay before each attempt (PARITY.md), then the delivery fails.
    webhook_retry_delays: tuple[float, ...] = (0, 5, 25, 125, 625)
    webhook_timeout_seconds: float = 10.0
    webhook_poll_seconds: float = 1.0
    # Run the background jobs (ingestion, analysis, webhooks, the reaper) inside `serve`.
    background_workers: bool = True
    jobs_poll_seconds: float = 1.0
    # The call lifecycle: a dispatched call no worker took within the join timeout, a call whose
    # worker stopped its heartbeat, or a closed room with no report, is finished as `lost`.
    join_timeout_seconds: float = Field(
        default=120.0,
        validation_alias=AliasChoices("VOXLINE_JOIN_TIMEOUT", "VOXLINE_JOIN_TIMEOUT_SECONDS"),
    )
    heartbeat_timeout_seconds: float = 60.0
    reaper_period_seconds: float = 15.0
    reaper_grace_seconds: float = 60.0
    max_agent_sessions: int = Field(
        default=10,
        validation_alias=AliasChoices("VOXLINE_MAX_AGENT_SESSIONS", "MAX_AGENT_SESSIONS"),
    )

    # The LiveKit address browsers use for web calls (LIVEKIT_URL is often internal).
    livekit_public_url: str | None = None

    @model_validator(mode="after")
    def _refuse_placeholder_secrets_in_production(self) -> Settings:
        if self.env != "production":
            return self
        weak = [
            f"VOXLINE_{name.upper()}"
            for name in ("jwt_secret", "encryption_key", "service_token")
            if getattr(self, name).strip().lower() in PLACEHOLDER_SECRETS
            or len(getattr(self, name)) < 32
        ]
        if weak:
            raise ValueError(
                "VOXLINE_ENV=production needs real secrets: set "
                + ", ".join(weak)
                + " to random values of at least 32 characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)."
            )
        if not self.database_url:
            raise ValueError("VOXLINE_ENV=production needs VOXLINE_DATABASE_URL (PostgreSQL).")
        return self

    @property
    def cookie_secure(self) -> bool:
        return self.env == "production"

    @property
    def resolved_database_url(self) -> str:
        """The tortoise connection URL: the configured one, or a SQLite file in the data dir."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgres://" + url.removeprefix("postgresql://")
            return url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite://{(self.data_dir / 'voxline.db').resolve()}"

    @property
    def fernet_key(self) -> bytes:
        """A Fernet key derived from `encryption_key`, so any strong string works as a key."""
        digest = hashlib.sha256(self.encryption_key.encode()).digest()
        return base64.urlsafe_b64encode(digest)


@lru_cache
def get_settings() -> Settings:
    return Settings()
