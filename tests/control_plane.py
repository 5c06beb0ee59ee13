"""The real control-plane app as the runtime reaches it in tests: in process (ASGI), recorded.

Fixtures, registered by tests/runtime/conftest.py: `control_plane` (the transport, on this
test's database) and `new_runner` (call runners whose control-plane client uses it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane
from runtime.worker import CallRunner


class ControlPlaneTransport(httpx.AsyncBaseTransport):
    """The real control-plane app behind httpx (ASGI), keeping the requests the runtime sent:
    `requests` as (method, path), and `headers` of each."""

    def __init__(self, app: Any) -> None:
        self._app = httpx.ASGITransport(app=app)
        self.requests: list[tuple[str, str]] = []
        self.headers: list[httpx.Headers] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        self.headers.append(request.headers)
        return await self._app.handle_async_request(request)

    def reports(self) -> list[tuple[str, str]]:
        return [entry for entry in self.requests if entry[1].endswith("/report")]


@pytest.fixture
def control_plane(app: Any, db: None) -> ControlPlaneTransport:
    return ControlPlaneTransport(app.app)


@pytest.fixture
async def new_runner(
    control_plane: ControlPlaneTransport, settings: Any
) -> AsyncIterator[Callable[..., CallRunner]]:
    """Makes call runners that talk to the app with the service token; closes their sessions.

    `new_runner()` runs the agent on text; `new_runner(audio=True, **fields)` with speech, and
    `fields` as more runtime settings (e.g. `deepgram_url`).
    """
    runners: list[CallRunner] = []

    def make(*, audio: bool = False, **fields: Any) -> CallRunner:
        runtime_settings = RuntimeSettings(
            api_url="http://control-plane.test",
            service_token=settings.service_token,
            allow_private_urls=True,  # the scripted LLM listens on loopback
            **fields,
        )
        control = ControlPlane(runtime_settings, transport=control_plane)
        runners.append(CallRunner(control, audio=audio))
        return runners[-1]

    yield make
    for runner in runners:
        if runner.session is not None:
            await runner.session.aclose()
        await runner.control.aclose()
