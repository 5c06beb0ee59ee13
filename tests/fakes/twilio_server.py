"""A Twilio REST API stand-in: available numbers, incoming numbers and number pricing.

Speaks Twilio's 2010-04-01 API (`/2010-04-01/Accounts/{AccountSid}/...`, JSON answers, form
bodies, HTTP basic auth with the account SID and auth token, Twilio-style error bodies) and the
Pricing API v1 (`/v1/PhoneNumbers/Countries/{Iso}`) on the same port, so both base URLs can
point at `server.url`. Operations recorded: "search", "purchase", "lookup", "release",
"pricing".
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import BasicAuth, web

from tests.fakes.background import RecordingServer

logger = logging.getLogger(__name__)

TEST_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TEST_AUTH_TOKEN = "twilio-test-auth-token"

#: (E.164, region, locality, sms) of the numbers the stand-in starts with.
INVENTORY = [
    ("+16505551234", "CA", "Palo Alto", True),
    ("+16505559876", "CA", "Palo Alto", False),
    ("+14155550123", "CA", "San Francisco", True),
    ("+12125550111", "NY", "New York", True),
    ("+442071838750", None, "London", True),
]
PRICES = {"US": ("1.15", "USD"), "GB": ("1.00", "USD")}


def _country(number: str) -> str:
    return "GB" if number.startswith("+44") else "US"


def _friendly(number: str) -> str:
    digits = number.removeprefix("+1")
    if number.startswith("+1") and len(digits) == 10:
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return number


def _not_found(path: str) -> dict[str, Any]:
    return {
        "code": 20404,
        "message": f"The requested resource {path} was not found",
        "more_info": "https://www.twilio.com/docs/errors/20404",
        "status": 404,
    }


class FakeTwilio(RecordingServer):
    """Twilio's number resources, in memory."""

    def __init__(
        self, account_sid: str = TEST_ACCOUNT_SID, auth_token: str = TEST_AUTH_TOKEN
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        super().__init__()

    def reset_state(self) -> None:
        self.available: dict[str, dict[str, Any]] = {}
        for number, region, locality, sms in INVENTORY:
            self.add_available(number, region=region, locality=locality, sms=sms)
        self.owned: dict[str, dict[str, Any]] = {}  # sid -> IncomingPhoneNumber
        self.prices = dict(PRICES)

    def add_available(
        self,
        number: str,
        *,
        region: str | None = None,
        locality: str | None = None,
        voice: bool = True,
        sms: bool = True,
    ) -> None:
        """Puts a number up for sale."""
        self.available[number] = {
            "friendly_name": _friendly(number),
            "phone_number": number,
            "lata": None,
            "rate_center": (locality or "").upper().replace(" ", "") or None,
            "latitude": None,
            "longitude": None,
            "locality": locality,
            "region": region,
            "postal_code": None,
            "iso_country": _country(number),
            "address_requirements": "none",
            "beta": False,
            "capabilities": {"voice": voice, "SMS": sms, "MMS": sms, "fax": False},
        }

    def owned_numbers(self) -> list[str]:
        """The E.164 numbers the account owns."""
        return sorted(item["phone_number"] for item in self.owned.values())

    def make_app(self) -> web.Application:
        app = web.Application()
        account = "/2010-04-01/Accounts/{sid}"
        app.router.add_get(account + "/AvailablePhoneNumbers/{country}/Local.json", self._search)
        app.router.add_post(account + "/IncomingPhoneNumbers.json", self._purchase)
        app.router.add_get(account + "/IncomingPhoneNumbers.json", self._lookup)
        app.router.add_delete(account + "/IncomingPhoneNumbers/{pn}.json", self._release)
        app.router.add_get("/v1/PhoneNumbers/Countries/{country}", self._pricing)
        return app

    def _authorized(self, request: web.Request) -> bool:
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            return False
        sid = request.match_info.get("sid", auth.login)
        return (auth.login, auth.password, sid) == (
            self.account_sid,
            self.auth_token,
            self.account_sid,
        )

    async def _begin(self, request: web.Request, operation: str) -> web.Response | None:
        authorized = self._authorized(request)
        _, failure = await self.record(request, operation, authorized)
        if not authorized:
            return web.json_response(
                {
                    "code": 20003,
                    "message": "Authenticate",
                    "more_info": "https://www.twilio.com/docs/errors/20003",
                    "status": 401,
                },
                status=401,
            )
        return failure

    async def _search(self, request: web.Request) -> web.Response:
        if (refused := await self._begin(request, "search")) is not None:
            return refused
        country = request.match_info["country"]
        area_code = request.query.get("AreaCode")
        contains = request.query.get("Contains")
        voice_only = request.query.get("VoiceEnabled") == "true"
        page_size = int(request.query.get("PageSize", 50))
        pattern = re.compile(re.escape(contains).replace(r"\*", ".")) if contains else None
        found = [
            item
            for number, item in self.available.items()
            if item["iso_country"] == country
            and (not area_code or number[2:5] == area_code)
            and (pattern is None or pattern.search(number[1:]))
            and (not voice_only or item["capabilities"]["voice"])
        ]
        return web.json_response(
            {"available_phone_numbers": found[:page_size], "uri": request.path_qs}
        )

    async def _purchase(self, request: web.Request) -> web.Response:
        if (refused := await self._begin(request, "purchase")) is not None:
            return refused
        number = (await request.post()).get("PhoneNumber", "")
        if number not in self.available:
            return web.json_response(
                {
                    "code": 21422,
                    "message": "PhoneNumber requested is not available",
                    "more_info": "https://www.twilio.com/docs/errors/21422",
                    "status": 400,
                },
                status=400,
            )
        offer = self.available.pop(number)
        sid = "PN" + secrets.token_hex(16)
        resource = {
            "sid": sid,
            "account_sid": self.account_sid,
            "friendly_name": offer["friendly_name"],
            "phone_number": number,
            "capabilities": offer["capabilities"],
            "status": "in-use",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/IncomingPhoneNumbers/{sid}.json",
        }
        self.owned[sid] = resource
        return web.json_response(resource, status=201)

    async def _lookup(self, request: web.Request) -> web.Response:
        if (refused := await self._begin(request, "lookup")) is not None:
            return refused
        wanted = request.query.get("PhoneNumber")
        found = [r for r in self.owned.values() if not wanted or r["phone_number"] == wanted]
        return web.json_response({"incoming_phone_numbers": found, "uri": request.path_qs})

    async def _release(self, request: web.Request) -> web.Response:
        if (refused := await self._begin(request, "release")) is not None:
            return refused
        if self.owned.pop(request.match_info["pn"], None) is None:
            return web.json_response(_not_found(request.path), status=404)
        return web.Response(status=204)

    async def _pricing(self, request: web.Request) -> web.Response:
        if (refused := await self._begin(request, "pricing")) is not None:
            return refused
        country = request.match_info["country"]
        if country not in self.prices:
            return web.json_response(_not_found(request.path), status=404)
        price, unit = self.prices[country]
        return web.json_response(
            {
                "country": country,
                "iso_country": country,
                "phone_number_prices": [
                    {"number_type": "local", "base_price": price, "current_price": price},
                    {"number_type": "toll free", "base_price": "2.15", "current_price": "2.15"},
                ],
                "price_unit": unit,
                "url": f"https://pricing.twilio.com/v1/PhoneNumbers/Countries/{country}",
            }
        )


@pytest.fixture(scope="session")
def twilio_server() -> Iterator[FakeTwilio]:
    """One Twilio stand-in for the test session."""
    server = FakeTwilio().start()
    yield server
    server.stop()


@pytest.fixture
def twilio(twilio_server: FakeTwilio) -> FakeTwilio:
    """The session's Twilio stand-in, back to its initial inventory for this test."""
    twilio_server.reset()
    return twilio_server
