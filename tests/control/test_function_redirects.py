"""A custom function's stored headers (its secrets) go to the function's own origin only: a
redirect to another origin is followed without them, in calls, chats and the test route alike
(they share `runtime.tools.call_custom_function`), and cookies are not carried between hops."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from control.models import Role
from tests.conftest import auth_headers, make_user
from tests.fakes.background import BackgroundServer

STORED_HEADERS = {
    "Authorization": "Bearer fn-secret-123",
    "Cookie": "session=fn-cookie-456",
    "X-Api-Token": "tok-789",
}


class HeaderRecorder(BackgroundServer):
    """A local HTTP server recording each request's path and headers.

    `/hop?to=URL` redirects there (setting a cookie on the way); `/answer` answers JSON.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, dict[str, str]]] = []

    async def _hop(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, dict(request.headers)))
        response = web.HTTPFound(request.query["to"])
        response.set_cookie("hop_session", "set-by-the-first-hop")
        raise response

    async def _answer(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, dict(request.headers)))
        return web.json_response({"in_stock": 3})

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/hop", self._hop)
        app.router.add_get("/answer", self._answer)
        return app


@pytest.fixture(scope="module")
def two_origins() -> Iterator[tuple[HeaderRecorder, HeaderRecorder]]:
    """Two servers on one host, on two ports: two origins."""
    first, second = HeaderRecorder().start(), HeaderRecorder().start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture
def loopback_allowed(client, settings) -> Iterator[None]:
    """The servers listen on loopback, which the SSRF check refuses unless allowed."""
    client.app.config["SETTINGS"] = settings.model_copy(update={"allow_private_urls": True})
    yield
    client.app.config["SETTINGS"] = settings


async def _try_function(client, settings, url: str) -> dict[str, Any]:
    """Save an agent whose GET function calls `url` with the stored headers, then try it through
    `POST /agents/{id}/functions/{name}/test`, as a developer would."""
    user, _ = await make_user("dev@example.com", role=Role.DEVELOPER)
    headers = auth_headers(settings, user)
    function = {
        "name": "check_stock",
        "description": "Check stock",
        "url": url,
        "method": "GET",
        "parameters": {"sku": {"type": "string", "description": "product code"}},
        "headers": STORED_HEADERS,
    }
    body = {"agent_name": "Redirects", "custom_functions": [function]}
    created = await client.post("/agents", json=body, headers=headers)
    assert created.status_code == 201, await created.get_json()
    agent_id = (await created.get_json())["id"]
    tried = await client.post(
        f"/agents/{agent_id}/functions/check_stock/test",
        json={"arguments": {"sku": "B-7"}},
        headers=headers,
    )
    assert tried.status_code == 200
    return await tried.get_json()


def _stored(headers: dict[str, str]) -> dict[str, str]:
    """The stored headers among `headers` (and any cookie, whoever set it)."""
    wanted = {name.lower() for name in STORED_HEADERS}
    return {name: value for name, value in headers.items() if name.lower() in wanted}


async def test_a_redirect_to_another_origin_leaves_the_stored_headers_behind(
    client, settings, two_origins, loopback_allowed
):
    own, other = two_origins
    own.seen.clear()
    other.seen.clear()
    tried = await _try_function(client, settings, f"{own.url}/hop?to={other.url}/answer")
    assert tried["ok"] is True, tried
    ((_, first),) = own.seen
    assert _stored(first) == STORED_HEADERS  # the function's own origin gets its headers
    ((path, second),) = other.seen
    assert path == "/answer"
    assert _stored(second) == {}, "secrets followed the redirect to another origin"


async def test_a_redirect_within_the_origin_keeps_the_stored_headers(
    client, settings, two_origins, loopback_allowed
):
    own, _ = two_origins
    own.seen.clear()
    tried = await _try_function(client, settings, f"{own.url}/hop?to={own.url}/answer")
    assert tried["ok"] is True, tried
    assert [path for path, _ in own.seen] == ["/hop", "/answer"]
    # the stored headers, and no cookie but the stored one: the hop's cookie is not kept
    assert all(_stored(headers) == STORED_HEADERS for _, headers in own.seen)
