"""Vonage phone numbers through Vonage's Numbers REST API (/number/search, /number/buy, ...)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from runtime.spec import mask_phone
from telephony.config import TelephonySettings
from telephony.errors import NumberVendorError
from telephony.numbers.base import (
    MAX_SEARCH_LIMIT,
    AvailableNumber,
    NumberProvider,
    PurchasedNumber,
    check_country,
    check_e164,
    check_search,
    credential,
)
from voxline.common.retry import retryable_status

logger = logging.getLogger(__name__)

#: Country calling codes, needed because Vonage matches patterns against the whole number
#: (country code included) and an area code follows the country code.
CALLING_CODES = {
    "AE": "971", "AR": "54", "AT": "43", "AU": "61", "BE": "32", "BR": "55", "CA": "1",
    "CH": "41", "CL": "56", "CO": "57", "CZ": "420", "DE": "49", "DK": "45", "EE": "372",
    "ES": "34", "FI": "358", "FR": "33", "GB": "44", "GR": "30", "HK": "852", "HU": "36",
    "IE": "353", "IL": "972", "IN": "91", "IT": "39", "JP": "81", "LT": "370", "LU": "352",
    "LV": "371", "MX": "52", "MY": "60", "NL": "31", "NO": "47", "NZ": "64", "PE": "51",
    "PH": "63", "PL": "48", "PR": "1", "PT": "351", "RO": "40", "SE": "46", "SG": "65",
    "SK": "421", "US": "1", "ZA": "27",
}  # fmt: skip

#: Vonage quotes monthly costs in euros.
CURRENCY = "EUR"


class VonageNumbers(NumberProvider):
    """Vonage's Numbers API, authenticated with the account's API key and secret.

    The key and secret travel as HTTP basic auth (which Vonage accepts besides query
    parameters), so they never appear in URLs or request logs.
    """

    name = "vonage"
    label = "Vonage"
    required_credentials = {"api_key": "vonage_api_key", "api_secret": "vonage_api_secret"}

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        api_base: str = "https://rest.nexmo.com",
        timeout: float = 15.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(timeout=timeout, http_client=http_client)
        self._auth = httpx.BasicAuth(api_key, api_secret)
        self._api_base = api_base.rstrip("/")

    @classmethod
    def options(
        cls, settings: TelephonySettings, credentials: Mapping[str, str] | None
    ) -> dict[str, Any]:
        """`api_base`; credentials may override it."""
        return {"api_base": credential(credentials, "api_base", settings.vonage_api_base)}

    async def search(
        self,
        country_code: str,
        area_code: str | None = None,
        contains: str | None = None,
        limit: int = 20,
    ) -> list[AvailableNumber]:
        """Voice-capable numbers (see `NumberProvider.search`).

        Vonage takes one pattern: an area code becomes "starts with <calling code><area code>"
        and `contains` is then applied to the results here.
        """
        country = check_search(country_code, area_code, contains, limit)
        params: dict[str, Any] = {"country": country, "features": "VOICE", "size": limit}
        prefix = None
        if area_code:
            if country not in CALLING_CODES:
                raise ValueError(
                    f"area_code search in {country} is not supported for Vonage; use contains"
                )
            prefix = CALLING_CODES[country] + area_code
            params.update(pattern=prefix, search_pattern=0)
            if contains:
                params["size"] = MAX_SEARCH_LIMIT  # filtered below, so ask for more
        elif contains:
            params.update(pattern=contains, search_pattern=1)
        body = await self._call("GET", "/number/search", params=params)
        found = []
        for item in body.get("numbers") or []:
            msisdn = str(item.get("msisdn", ""))
            if prefix and contains and contains not in msisdn[len(prefix) :]:
                continue
            features = {str(feature).upper() for feature in item.get("features") or []}
            cost = item.get("cost")
            found.append(
                AvailableNumber(
                    phone_number="+" + msisdn,
                    country_code=(item.get("country") or country).upper(),
                    capabilities={"voice": "VOICE" in features, "sms": "SMS" in features},
                    monthly_price=str(cost) if cost is not None else None,
                    currency=CURRENCY if cost is not None else None,
                    provider=self.name,
                )
            )
        return found[:limit]

    async def purchase(
        self, phone_number: str, *, country_code: str | None = None
    ) -> PurchasedNumber:
        """Buys the number with POST /number/buy; Vonage needs its `country_code` too."""
        check_e164(phone_number)
        if not country_code:
            raise ValueError("Vonage needs the number's two-letter country_code to buy it")
        country = check_country(country_code)
        msisdn = phone_number.removeprefix("+")
        await self._call("POST", "/number/buy", data={"country": country, "msisdn": msisdn})
        logger.info("vonage: bought %s", mask_phone(phone_number))
        return PurchasedNumber(
            phone_number=phone_number, provider=self.name, provider_id=f"{country}:{msisdn}"
        )

    async def release(self, number_or_id: str) -> None:
        """Cancels the number ("GB:447700900000" or E.164) if the account still owns it."""
        msisdn = number_or_id.rpartition(":")[2].removeprefix("+")
        if not (msisdn.isascii() and msisdn.isdigit()):
            raise ValueError(f"not a Vonage number id or E.164 number: {number_or_id!r}")
        owned = await self._call(
            "GET", "/account/numbers", params={"pattern": msisdn, "search_pattern": 0}
        )
        match = next(
            (item for item in owned.get("numbers") or [] if str(item.get("msisdn")) == msisdn),
            None,
        )
        if match is None:
            logger.info("vonage: %s is not on the account", mask_phone("+" + msisdn))
            return
        await self._call(
            "POST", "/number/cancel", data={"country": match["country"], "msisdn": msisdn}
        )
        logger.info("vonage: released %s", mask_phone("+" + msisdn))

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._send(method, self._api_base + path, auth=self._auth, **kwargs)
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        # Failures answer 401/420/5xx, and /number/buy and /number/cancel also say so in the
        # body: {"error-code": "200", "error-code-label": "success"} is the only success.
        code = str(body.get("error-code", "200"))
        if response.status_code >= 400 or code != "200":
            label = body.get("error-code-label") or f"HTTP {response.status_code}"
            raise NumberVendorError(
                self.name,
                label,
                http_status=response.status_code,
                provider_code=code if "error-code" in body else None,
                retryable=retryable_status(response.status_code),
            )
        return body
