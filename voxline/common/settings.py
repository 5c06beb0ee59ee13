"""The settings base every package's settings extend: env, data dir, `.env`, placeholder secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

#: Secrets that only ever appear in examples and development setups (LiveKit's dev mode runs
#: with key "devkey" and secret "secret"); production refuses them.
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "devkey", "dev-secret", "placeholder"}
)
#: The development default of the secrets Voxline generates nothing for (JWT, service token).
DEVELOPMENT_SECRET = "change-me"

Environment = Literal["development", "production", "test"]


def is_placeholder(secret: str) -> bool:
    """Whether `secret` is one of the example values no real deployment may run with."""
    return secret.strip().lower() in PLACEHOLDER_SECRETS


class VoxlineSettings(BaseSettings):
    """`VOXLINE_*` variables (and a `.env` file): the deployment's environment and data dir.

    Subclasses add their own fields; a field read under another service's name (LIVEKIT_URL,
    OPENAI_API_KEY) says so with `validation_alias`.
    """

    model_config = SettingsConfigDict(
        env_prefix="VOXLINE_", extra="ignore", env_file=".env", populate_by_name=True
    )

    env: Environment = "development"
    data_dir: Path = Path(".voxline")

    def refuse_development_service_token(self, token: str) -> None:
        """The service token shared by the control plane and the workers: outside development,
        a placeholder would let anyone call the internal endpoints."""
        if self.env != "development" and is_placeholder(token):
            raise ValueError(
                f"VOXLINE_SERVICE_TOKEN is the placeholder {token!r}, which only "
                "VOXLINE_ENV=development accepts: set it to the control plane's service token"
            )
