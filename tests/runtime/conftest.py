"""Fixtures for runtime tests: the app in process, a real HTTP backend, call specs, Deepgram."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from runtime.agent import CallGuard, CallRecorder, CallState, VoxlineAgent, create_session
from runtime.providers import build_pipeline
from runtime.spec import AgentSpec, CallSpec, CustomFunctionSpec
from tests.control_plane import control_plane, new_runner  # noqa: F401 (fixtures)
from tests.fakes.background import BackgroundServer
from tests.fakes.deepgram_server import FakeDeepgram


class Backend(BackgroundServer):
    """A real local HTTP server standing behind custom functions; records what it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []

    async def _record(self, request: web.Request) -> dict[str, Any]:
        entry = {
            "method": request.method,
            "path": request.path,
            "query": {key: request.query.getall(key) for key in request.query},
            "body": await request.text(),
            "headers": dict(request.headers),
        }
        self.requests.append(entry)
        return entry

    async def _weather(self, request: web.Request) -> web.Response:
        entry = await self._record(request)
        city = entry["query"].get("city", ["?"])[0]
        return web.json_response({"city": city, "forecast": "sunny", "celsius": 21})

    async def _book(self, request: web.Request) -> web.Response:
        entry = await self._record(request)
        return web.json_response({"booked": True, "received": entry["body"]}, status=201)

    async def _slow(self, request: web.Request) -> web.Response:
        await self._record(request)
        await asyncio.sleep(float(request.query.get("delay", "5")))
        return web.json_response({"late": True})

    async def _fail(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"error": "database down"}, status=503)

    async def _big(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(text="x" * 50_000)

    async def _redirect(self, request: web.Request) -> web.Response:
        await self._record(request)
        raise web.HTTPFound(request.query.get("to", "/weather"))

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/weather", self._weather)
        app.router.add_route("*", "/book", self._book)
        app.router.add_route("*", "/slow", self._slow)
        app.router.add_route("*", "/fail", self._fail)
        app.router.add_get("/big", self._big)
        app.router.add_get("/redirect", self._redirect)
        return app


@pytest.fixture(scope="session")
def http_backend() -> Iterator[Backend]:
    backend = Backend().start()
    yield backend
    backend.stop()


@pytest.fixture
def backend(http_backend: Backend) -> Backend:
    http_backend.requests.clear()
    return http_backend


def make_call(
    base_url: str,
    *,
    functions: tuple[CustomFunctionSpec, ...] = (),
    allow_private_urls: bool = True,
    dynamic_variables: dict[str, str] | None = None,
    **agent_fields: Any,
) -> CallSpec:
    """A web call whose agent talks to the scripted OpenAI server."""
    fields: dict[str, Any] = {
        "agent_id": "agent-1",
        "name": "Sunny",
        "llm_provider": "openai",
        "llm_model": "gpt-4o-mini",
        "llm_base_url": base_url,
        "system_prompt": "You are Sunny, the assistant of Acme.",
        "custom_functions": functions,
    }
    fields.update(agent_fields)
    return CallSpec(
        call_id="call-1",
        workspace_id="ws-1",
        direction="inbound",
        call_type="phone",
        from_number="+16505551234",
        to_number="+14155550000",
        dynamic_variables=dynamic_variables or {},
        agent=AgentSpec(**fields),
        allow_private_urls=allow_private_urls,
    )


@dataclass
class TextCall:
    session: Any
    agent: VoxlineAgent
    state: CallState
    recorder: CallRecorder
    guard: CallGuard


@contextlib.asynccontextmanager
async def text_call(
    call: CallSpec, session_overrides: dict[str, Any] | None = None, **agent_kwargs: Any
) -> AsyncIterator[TextCall]:
    """A room-less session running the call's agent on text (LLM from the provider registry)."""
    state = CallState(call=call)
    # the scripted LLM listens on loopback
    pipeline = build_pipeline(call.agent, audio=False, allow_private_urls=True)
    session = create_session(call, pipeline, state, **(session_overrides or {}))
    recorder = CallRecorder(session, state)
    guard = CallGuard(session, state)
    agent = VoxlineAgent(call, state=state, **{"voice": True, **agent_kwargs})
    await session.start(agent)
    if agent.greeting is not None:
        await agent.greeting
    guard.start()
    try:
        yield TextCall(session, agent, state, recorder, guard)
    finally:
        await session.aclose()


@pytest.fixture(scope="session")
def deepgram_server() -> Iterator[FakeDeepgram]:
    server = FakeDeepgram().start()
    yield server
    server.stop()


@pytest.fixture
def fake_deepgram(deepgram_server: FakeDeepgram) -> FakeDeepgram:
    deepgram_server.reset()
    return deepgram_server
