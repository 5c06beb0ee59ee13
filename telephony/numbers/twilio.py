"""Twilio phone numbers through Twilio's REST API (2010-04-01) and its Pricing API (v1)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from runtime.spec import mask_phone
from telephony.config import TelephonySettings
from telephony.errors import NumberVendorError
from telephony.numbers.base import (
    AvailableNumber,
    NumberProvider,
    PurchasedNumber,
    check_e164,
    check_search,
    credential,
)
from voxline.common.retry import retryable_status

logger = logging.getLogger(__name__)


class TwilioNumbers(NumberProvider):
    """Twilio's AvailablePhoneNumbers and IncomingPhoneNumbers resources.

    Requests use HTTP basic auth with the account SID and auth token, and form-encoded bodies.
    Monthly prices come from the Pricing API; when it fails, numbers are still returned, with
    `monthly_price=None`.
    """

    name = "twilio"
    label = "Twilio"
    required_credentials = {"account_sid": "twilio_account_sid", "auth_token": "twilio_auth_token"}

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_base: str = "https://api.twilio.com",
        pricing_api_base: str = "https://pricing.twilio.com",
        timeout: float = 15.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(timeout=timeout, http_client=http_client)
        self._account_sid = account_sid
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._account_url = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account_sid}"
        self._pricing_url = f"{pricing_api_base.rstrip('/')}/v1/PhoneNumbers/Countries"

    @classmethod
    def options(
        cls, settings: TelephonySettings, credentials: Mapping[str, str] | None
    ) -> dict[str, Any]:
        """`api_base` (credentials may override it) and `pricing_api_base`."""
        return {
            "api_base": credential(credentials, "api_base", settings.twilio_api_base),
            "pricing_api_base": settings.twilio_pricing_api_base,
        }

    async def search(
        self,
        country_code: str,
        area_code: str | None = None,
        contains: str | None = None,
        limit: int = 20,
    ) -> list[AvailableNumber]:
        """Local, voice-enabled numbers (see `NumberProvider.search`)."""
        country = check_search(country_code, area_code, contains, limit)
        params: dict[str, Any] = {"VoiceEnabled": "true", "PageSize": limit}
        if area_code:
            params["AreaCode"] = area_code
        if contains:
            params["Contains"] = contains
        listing, price = await asyncio.gather(
            self._call("GET", f"/AvailablePhoneNumbers/{country}/Local.json", params=params),
            self._local_price(country),
        )
        monthly_price, currency = price
        return [
            AvailableNumber(
                phone_number=item["phone_number"],
                country_code=item.get("iso_country") or country,
                region=item.get("region") or None,
                locality=item.get("locality") or None,
                capabilities=_capabilities(item.get("capabilities") or {}),
                monthly_price=monthly_price,
                currency=currency,
                provider=self.name,
            )
            for item in listing.get("available_phone_numbers", [])[:limit]
        ]

    async def purchase(
        self, phone_number: str, *, country_code: str | None = None
    ) -> PurchasedNumber:
        """Buys the number with a POST to IncomingPhoneNumbers (see `NumberProvider.purchase`)."""
        check_e164(phone_number)
        body = await self._call(
            "POST", "/IncomingPhoneNumbers.json", data={"PhoneNumber": phone_number}
        )
        logger.info("twilio: bought %s (%s)", mask_phone(phone_number), body.get("sid"))
        return PurchasedNumber(
            phone_number=body.get("phone_number") or phone_number,
            provider=self.name,
            provider_id=body["sid"],
        )

    async def release(self, number_or_id: str) -> None:
        """Deletes the IncomingPhoneNumber (by "PN..." SID, or found by its E.164 number)."""
        sid = number_or_id
        if number_or_id.startswith("+"):
            check_e164(number_or_id)
            found = await self._call(
                "GET", "/IncomingPhoneNumbers.json", params={"PhoneNumber": number_or_id}
            )
            owned = found.get("incoming_phone_numbers") or []
            if not owned:
                logger.info("twilio: %s is not on the account", mask_phone(number_or_id))
                return
            sid = owned[0]["sid"]
        try:
            await self._call("DELETE", f"/IncomingPhoneNumbers/{sid}.json")
        except NumberVendorError as e:
            if e.http_status != 404:
                raise
            logger.info("twilio: %s was already released", sid)
            return
        logger.info("twilio: released %s", sid)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._send(method, self._account_url + path, auth=self._auth, **kwargs)
        if response.status_code >= 400:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return {}
        return response.json()

    async def _local_price(self, country: str) -> tuple[str | None, str | None]:
        """The monthly price of a local number in `country`, or (None, None) if unknown."""
        try:
            response = await self._send("GET", f"{self._pricing_url}/{country}", auth=self._auth)
        except NumberVendorError:
            return None, None
        if response.status_code != 200:
            logger.info("twilio: no pricing for %s (HTTP %s)", country, response.status_code)
            return None, None
        try:
            body = response.json()
        except ValueError:
            return None, None
        currency = (body.get("price_unit") or "").upper() or None
        for price in body.get("phone_number_prices") or []:
            if price.get("number_type") == "local":
                value = price.get("current_price") or price.get("base_price")
                return (str(value) if value is not None else None), currency
        return None, currency


def _capabilities(raw: Mapping[str, Any]) -> dict[str, bool]:
    # Twilio spells them "voice", "SMS", "MMS", "fax"; read them case-insensitively.
    lowered = {str(key).lower(): bool(value) for key, value in raw.items()}
    return {"voice": lowered.get("voice", False), "sms": lowered.get("sms", False)}


def _error(response: httpx.Response) -> NumberVendorError:
    """Twilio's error body: {"code": 21452, "message": "...", "more_info": "...", "status": 400}."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("message") or f"HTTP {response.status_code}"
    code = body.get("code")
    return NumberVendorError(
        "twilio",
        message,
        http_status=response.status_code,
        provider_code=str(code) if code is not None else None,
        retryable=retryable_status(response.status_code),
    )
