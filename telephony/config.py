"""Telephony settings: LiveKit's server API, the worker's agent name, number-provider accounts."""

from __future__ import annotations

import logging
from functools import lru_cache

from pydantic import Field, model_validator

from telephony.errors import NotConfigured
from voxline.common.settings import VoxlineSettings, is_placeholder

logger = logging.getLogger(__name__)


class TelephonySettings(VoxlineSettings):
    """Telephony settings, read from the environment under each service's own names.

    LiveKit, Twilio and Vonage variables keep the names their own tools use
    (`LIVEKIT_URL`, `TWILIO_ACCOUNT_SID`, `VONAGE_API_KEY`, ...). Every field can also be passed
    by its Python name, e.g. `TelephonySettings(livekit_url="http://127.0.0.1:7880")`.
    """

    livekit_url: str | None = Field(default=None, validation_alias="LIVEKIT_URL")
    livekit_api_key: str | None = Field(default=None, validation_alias="LIVEKIT_API_KEY")
    livekit_api_secret: str | None = Field(default=None, validation_alias="LIVEKIT_API_SECRET")
    #: The name the agent worker registers with; explicit dispatches and dispatch rules use it.
    agent_name: str = Field(default="voxline-agent", validation_alias="VOXLINE_AGENT_NAME")

    twilio_account_sid: str | None = Field(default=None, validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str | None = Field(default=None, validation_alias="TWILIO_AUTH_TOKEN")
    twilio_api_base: str = Field(
        default="https://api.twilio.com", validation_alias="TWILIO_API_BASE"
    )
    #: Where Twilio's Pricing API lives (monthly prices of numbers, per country).
    twilio_pricing_api_base: str = Field(
        default="https://pricing.twilio.com", validation_alias="TWILIO_PRICING_API_BASE"
    )

    vonage_api_key: str | None = Field(default=None, validation_alias="VONAGE_API_KEY")
    vonage_api_secret: str | None = Field(default=None, validation_alias="VONAGE_API_SECRET")
    vonage_api_base: str = Field(
        default="https://rest.nexmo.com", validation_alias="VONAGE_API_BASE"
    )

    #: Timeout of one request to a number provider.
    provider_timeout_seconds: float = Field(
        default=15.0, validation_alias="VOXLINE_PROVIDER_TIMEOUT_SECONDS"
    )

    @model_validator(mode="after")
    def _refuse_placeholder_secrets_in_production(self) -> TelephonySettings:
        if self.env == "production" and self.livekit_api_secret is not None:
            if is_placeholder(self.livekit_api_secret):
                raise ValueError(
                    "VOXLINE_ENV=production needs a real LIVEKIT_API_SECRET "
                    "(the one your LiveKit server is configured with), not a placeholder."
                )
        return self

    def livekit_credentials(self) -> tuple[str, str, str]:
        """The LiveKit server API's URL, key and secret.

        Raises:
            NotConfigured: when any of the three is missing, naming the variables to set.
        """
        missing = [
            env
            for env, value in (
                ("LIVEKIT_URL", self.livekit_url),
                ("LIVEKIT_API_KEY", self.livekit_api_key),
                ("LIVEKIT_API_SECRET", self.livekit_api_secret),
            )
            if not value
        ]
        if missing:
            raise NotConfigured(
                "LiveKit is not configured: set " + ", ".join(missing) + " (the URL, API key "
                "and API secret of your LiveKit server, e.g. in .env)."
            )
        return self.livekit_url, self.livekit_api_key, self.livekit_api_secret  # type: ignore[return-value]


@lru_cache
def get_settings() -> TelephonySettings:
    """The process-wide settings, read once from the environment."""
    return TelephonySettings()
