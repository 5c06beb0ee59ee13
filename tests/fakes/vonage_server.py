"""A Vonage Numbers API stand-in: /number/search, /number/buy, /number/cancel, /account/numbers.

Speaks Vonage's REST formats: `api_key`/`api_secret` as query or form parameters or HTTP basic
auth; form-encoded POST bodies; `{"count": n, "numbers": [...]}` listings; and
`{"error-code": "...", "error-code-label": "..."}` answers (200 success, 401, 420). Operations
recorded: "search", "buy", "cancel", "owned".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import BasicAuth, web

from tests.fakes.background import RecordingServer

logger = logging.getLogger(__name__)

TEST_API_KEY = "vonagekey"
TEST_API_SECRET = "vonage-test-secret"

#: (msisdn, country, type, monthly cost, features) the stand-in starts with.
INVENTORY = [
    ("447700900001", "GB", "mobile-lvn", "1.25", ["VOICE", "SMS"]),
    ("447700900123", "GB", "mobile-lvn", "1.25", ["VOICE", "SMS"]),
    ("442079460000", "GB", "landline", "0.90", ["VOICE"]),
    ("442079461234", "GB", "landline", "0.90", ["VOICE"]),
    ("447700900999", "GB", "mobile-lvn", "1.25", ["SMS"]),
    ("12015550123", "US", "mobile-lvn", "0.98", ["VOICE", "SMS"]),
]

SUCCESS = {"error-code": "200", "error-code-label": "success"}
UNAUTHORIZED = {"error-code": "401", "error-code-label": "authentication failed"}


def _matches(msisdn: str, pattern: str | None, search_pattern: str | None) -> bool:
    if not pattern:
        return True
    if search_pattern == "1":
        return pattern in msisdn
    if search_pattern == "2":
        return msisdn.endswith(pattern)
    return msisdn.startswith(pattern)


class FakeVonage(RecordingServer):
    """Vonage's numbers, in memory."""

    def __init__(self, api_key: str = TEST_API_KEY, api_secret: str = TEST_API_SECRET) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        super().__init__()

    def reset_state(self) -> None:
        self.available: dict[str, dict[str, Any]] = {
            msisdn: {
                "country": country,
                "msisdn": msisdn,
                "type": kind,
                "cost": cost,
                "features": features,
            }
            for msisdn, country, kind, cost, features in INVENTORY
        }
        self.owned: dict[str, dict[str, Any]] = {}

    def owned_numbers(self) -> list[str]:
        """The owned msisdns (no "+")."""
        return sorted(self.owned)

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/number/search", self._search)
        app.router.add_post("/number/buy", self._buy)
        app.router.add_post("/number/cancel", self._cancel)
        app.router.add_get("/account/numbers", self._owned)
        return app

    async def _begin(self, request: web.Request, operation: str) -> web.Response | None:
        form = await request.post() if request.method == "POST" else {}
        params = {**request.query, **form}
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""))
            credentials = (auth.login, auth.password)
        except ValueError:
            credentials = (params.get("api_key"), params.get("api_secret"))
        authorized = credentials == (self.api_key, self.api_secret)
        _, failure = await self.record(request, operation, authorized)
        if not authorized:
            return web.json_response(UNAUTHORIZED, status=401)
        return failure

    async def _search(self, request: web.Request) -> web.Response:
        if (refused := await self._begin(request, "search")) is not None:
            return refused
        query = request.query
        wanted = {f for f in query.get("features", "").upper().split(",") if f}
        found = [
            item
            for item in self.available.values()
            if item["country"] == query.get("country")
            and wanted <= set(item["features"])
            and _matches(item["msisdn"], query.get("pattern"), query.get("search_pattern"))
        ]
        size = min(int(query.get("size", 10)), 100)
        index = max(int(query.get("index", 1)), 1)
        page = found[(index - 1) * size : index * size]
        body: dict[str, Any] = {"count": len(found)}
        if page:
            body["numbers"] = page
        return web.json_response(body)

    async def _buy(self, request: web.Request) -> web.Response:
        if (refused := await self._begin(request, "buy")) is not None:
            return refused
        form = await request.post()
        offer = self.available.get(form.get("msisdn", ""))
        if offer is None or offer["country"] != form.get("country"):
            return web.json_response(
                {"error-code": "420", "error-code-label": "method failed"}, status=420
            )
        del self.available[offer["msisdn"]]
        self.owned[offer["msisdn"]] = {
            key: offer[key] for key in ("country", "msisdn", "type", "features")
        }
        return web.json_response(SUCCESS)

    async def _cancel(self, request: web.Request) -> web.Response:
        if (refused := await self._begin(request, "cancel")) is not None:
            return refused
        form = await request.post()
        owned = self.owned.get(form.get("msisdn", ""))
        if owned is None or owned["country"] != form.get("country"):
            return web.json_response(
                {"error-code": "420", "error-code-label": "method failed"}, status=420
            )
        del self.owned[owned["msisdn"]]
        return web.json_response(SUCCESS)

    async def _owned(self, request: web.Request) -> web.Response:
        if (refused := await self._begin(request, "owned")) is not None:
            return refused
        query = request.query
        found = [
            item
            for item in self.owned.values()
            if (not query.get("country") or item["country"] == query.get("country"))
            and _matches(item["msisdn"], query.get("pattern"), query.get("search_pattern"))
        ]
        body: dict[str, Any] = {"count": len(found)}
        if found:
            body["numbers"] = found
        return web.json_response(body)


@pytest.fixture(scope="session")
def vonage_server() -> Iterator[FakeVonage]:
    """One Vonage stand-in for the test session."""
    server = FakeVonage().start()
    yield server
    server.stop()


@pytest.fixture
def vonage(vonage_server: FakeVonage) -> FakeVonage:
    """The session's Vonage stand-in, back to its initial inventory for this test."""
    vonage_server.reset()
    return vonage_server
