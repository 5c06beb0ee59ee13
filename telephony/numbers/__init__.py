"""Phone-number providers behind one interface, and the registry that builds them by name.

Adding a provider (Telnyx, Plivo, ...) means one module with a `NumberProvider` subclass and one
line in `NUMBER_PROVIDERS`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping

from telephony.config import TelephonySettings, get_settings
from telephony.numbers.base import AvailableNumber, NumberProvider, PurchasedNumber

logger = logging.getLogger(__name__)

__all__ = [
    "NUMBER_PROVIDERS",
    "AvailableNumber",
    "NumberProvider",
    "PurchasedNumber",
    "get_number_provider",
]

#: Provider name -> "module:class" of its `NumberProvider`, imported when first asked for.
NUMBER_PROVIDERS: dict[str, str] = {
    "twilio": "telephony.numbers.twilio:TwilioNumbers",
    "vonage": "telephony.numbers.vonage:VonageNumbers",
}


def get_number_provider(
    name: str,
    credentials: Mapping[str, str] | None = None,
    *,
    settings: TelephonySettings | None = None,
) -> NumberProvider:
    """Builds the named number provider.

    Args:
        name: a key of `NUMBER_PROVIDERS` ("twilio", "vonage"), case-insensitive.
        credentials: the workspace's own credentials for that provider (Twilio: account_sid,
            auth_token; Vonage: api_key, api_secret; either: api_base). Missing keys fall back
            to the settings.
        settings: telephony settings; the environment's by default.

    Returns:
        A ready provider.

    Raises:
        ValueError: for an unknown provider, listing the allowed names.
        NotConfigured: when the provider's credentials are missing.
    """
    key = (name or "").strip().lower()
    if key not in NUMBER_PROVIDERS:
        allowed = ", ".join(sorted(NUMBER_PROVIDERS))
        raise ValueError(f"unknown number provider {name!r}; allowed: {allowed}")
    module_name, _, class_name = NUMBER_PROVIDERS[key].partition(":")
    provider_class: type[NumberProvider] = getattr(importlib.import_module(module_name), class_name)
    return provider_class.from_settings(settings or get_settings(), credentials)
