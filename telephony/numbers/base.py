"""The one interface every phone-number provider implements, and the helpers they share."""

from __future__ import annotations

import abc
import logging
import re
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

import certifi
import httpx

from runtime.spec import is_e164
from telephony.config import TelephonySettings
from telephony.errors import NotConfigured, NumberVendorError

logger = logging.getLogger(__name__)

_COUNTRY = re.compile(r"[A-Za-z]{2}")
_AREA_CODE = re.compile(r"[0-9]{1,6}")
_CONTAINS = re.compile(r"[0-9A-Za-z*]{1,16}")
MAX_SEARCH_LIMIT = 100


@dataclass(frozen=True, kw_only=True)
class AvailableNumber:
    """A number a provider offers for purchase.

    Attributes:
        phone_number: E.164, e.g. "+16505551234".
        country_code: ISO 3166-1 alpha-2, upper case.
        region: state or province abbreviation, when the provider says.
        locality: city, when the provider says.
        capabilities: {"voice": bool, "sms": bool}.
        monthly_price: the monthly price as the provider prints it ("1.15"), or None if unknown.
        currency: ISO 4217 code of `monthly_price` ("USD"), or None if unknown.
        provider: the registry name of the provider ("twilio").
    """

    phone_number: str
    country_code: str
    region: str | None = None
    locality: str | None = None
    capabilities: dict[str, bool] = field(default_factory=lambda: {"voice": False, "sms": False})
    monthly_price: str | None = None
    currency: str | None = None
    provider: str


@dataclass(frozen=True, kw_only=True)
class PurchasedNumber:
    """A number now owned by the account.

    Attributes:
        phone_number: E.164.
        provider: the registry name of the provider.
        provider_id: the provider's handle for the number, which `release` takes (Twilio's
            "PN..." SID; Vonage's "GB:447700900000", since Vonage needs the country too).
    """

    phone_number: str
    provider: str
    provider_id: str


class NumberProvider(abc.ABC):
    """Searches, buys and releases phone numbers at one provider.

    A provider is built by `get_number_provider(name, credentials)`. Subclasses set `name`,
    `label` and `required_credentials`, may add `options`, implement the three operations, and
    raise `NumberVendorError` with the provider's own message when it refuses; bad arguments raise
    `ValueError`.
    """

    #: The registry name ("twilio").
    name: ClassVar[str]
    #: The provider's name for people ("Twilio").
    label: ClassVar[str]
    #: Constructor argument -> the settings field it falls back to; the field's upper-case name
    #: is its environment variable (account_sid -> twilio_account_sid, TWILIO_ACCOUNT_SID).
    required_credentials: ClassVar[dict[str, str]]

    def __init__(self, *, timeout: float = 15.0, http_client: httpx.AsyncClient | None = None):
        self._timeout = timeout
        self._http_client = http_client

    @classmethod
    def from_settings(
        cls, settings: TelephonySettings, credentials: Mapping[str, str] | None = None
    ) -> NumberProvider:
        """Builds the provider from settings, with per-workspace `credentials` taking precedence.

        Raises:
            NotConfigured: when neither gives the credentials; the message names the variables.
        """
        # the subclass's constructor takes its credentials by name
        values: dict[str, Any] = {
            argument: credential(credentials, argument, getattr(settings, field))
            for argument, field in cls.required_credentials.items()
        }
        missing = [argument for argument, value in values.items() if not value]
        if missing:
            variables = " and ".join(cls.required_credentials[arg].upper() for arg in missing)
            raise NotConfigured(
                f"{cls.label} is not configured: set {variables}, or give the workspace its "
                f"own {cls.label} {' and '.join(missing)}."
            )
        return cls(
            **values,
            **cls.options(settings, credentials),
            timeout=settings.provider_timeout_seconds,
        )

    @classmethod
    def options(
        cls, settings: TelephonySettings, credentials: Mapping[str, str] | None
    ) -> dict[str, Any]:
        """Optional constructor arguments (API base URLs) from credentials or settings."""
        return {}

    @abc.abstractmethod
    async def search(
        self,
        country_code: str,
        area_code: str | None = None,
        contains: str | None = None,
        limit: int = 20,
    ) -> list[AvailableNumber]:
        """Numbers available for purchase.

        Args:
            country_code: ISO 3166-1 alpha-2 ("US").
            area_code: digits the national number starts with ("650").
            contains: digits (or letters) the number must contain.
            limit: at most this many results (1 to 100).

        Returns:
            Voice-capable numbers, as the provider ranks them.

        Raises:
            ValueError: on malformed arguments.
            NumberVendorError: when the provider refuses or fails.
        """

    @abc.abstractmethod
    async def purchase(
        self, phone_number: str, *, country_code: str | None = None
    ) -> PurchasedNumber:
        """Buys `phone_number` (E.164) for the account.

        Raises:
            ValueError: on a malformed number.
            NumberVendorError: when the provider refuses (number gone, no funds, address needed).
        """

    @abc.abstractmethod
    async def release(self, number_or_id: str) -> None:
        """Gives a number back to the provider; releasing one already gone is not an error.

        Args:
            number_or_id: the `PurchasedNumber.provider_id`, or the E.164 number.

        Raises:
            NumberVendorError: when the provider refuses or fails.
        """

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._http_client is not None:
            yield self._http_client
            return
        async with httpx.AsyncClient(timeout=self._timeout, verify=_ssl_context()) as client:
            yield client

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Sends one request, turning transport failures into a retryable `NumberVendorError`."""
        async with self._client() as client:
            try:
                return await client.request(method, url, **kwargs)
            except httpx.HTTPError as e:
                logger.warning("%s request failed: %s", self.name, type(e).__name__)
                raise NumberVendorError(
                    self.name, f"could not reach the API ({type(e).__name__})", retryable=True
                ) from e


@cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every request (building one per client costs ~100 ms)."""
    return ssl.create_default_context(cafile=certifi.where())


def check_e164(phone_number: str) -> str:
    """Returns `phone_number` if it is E.164, else raises ValueError."""
    if not is_e164(phone_number):
        raise ValueError(f"phone number must be E.164, like +16505551234 (got {phone_number!r})")
    return phone_number


def check_country(country_code: str) -> str:
    """Returns the ISO 3166-1 alpha-2 code upper-cased, or raises ValueError."""
    if not isinstance(country_code, str) or not _COUNTRY.fullmatch(country_code):
        raise ValueError(f"country_code must be two letters, like US (got {country_code!r})")
    return country_code.upper()


def check_search(country_code: str, area_code: str | None, contains: str | None, limit: int) -> str:
    """Validates search arguments shared by every provider; returns the upper-case country."""
    country = check_country(country_code)
    if area_code is not None and not _AREA_CODE.fullmatch(area_code):
        raise ValueError(f"area_code must be 1 to 6 digits (got {area_code!r})")
    if contains is not None and not _CONTAINS.fullmatch(contains):
        raise ValueError(f"contains must be 1 to 16 digits, letters or * (got {contains!r})")
    if not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_SEARCH_LIMIT} (got {limit})")
    return country


def credential(credentials: Mapping[str, str] | None, key: str, fallback: str | None) -> str | None:
    """A per-workspace credential if given (and not blank), else the settings' value."""
    if credentials and credentials.get(key):
        return credentials[key]
    return fallback or None
