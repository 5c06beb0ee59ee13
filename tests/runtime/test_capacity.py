"""A call the platform has no capacity for: the worker turns it away and reports nothing.

The control plane is a small real HTTP server answering the spec endpoints with 429
`AT_CAPACITY` (what the control plane answers when a call cannot get a capacity slot; it ends
the call log itself); LiveKit is the Twirp stand-in.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from livekit import api as lk

from runtime.audio_io import CaptureAudioOutput
from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane, ControlPlaneError
from runtime.worker import AT_CAPACITY, BUSY_MESSAGE, CallRunner, say_busy
from tests.fakes.background import BackgroundServer
from tests.fakes.livekit_server import SipCaller, no_caller

SERVICE_TOKEN = "capacity-test-token"
CALL_ID = "5d6e7f80-1a2b-4c3d-9e4f-5a6b7c8d9e0f"
AGENT_NUMBER = "+16505551234"


class FullControlPlane(BackgroundServer):
    """Answers every spec request with 429; records what the worker asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str]] = []
        self.code = "AT_CAPACITY"

    async def _full(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        call_id = request.match_info.get("call_id")
        body = {"detail": "No capacity for this call.", "code": self.code, "call_id": call_id}
        return web.json_response(body, status=429)

    async def _report(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        return web.json_response({"applied": True})

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/internal/calls/{call_id}/spec", self._full)
        app.router.add_post("/internal/numbers/{number}/calls", self._full)
        app.router.add_post("/internal/agents/{agent_id}/calls", self._full)
        app.router.add_post("/internal/calls/{call_id}/report", self._report)
        return app


@pytest.fixture(scope="module")
def full_control_plane() -> AsyncIterator[FullControlPlane]:
    server = FullControlPlane().start()
    yield server
    server.stop()


@pytest.fixture
def control_plane(full_control_plane: FullControlPlane) -> FullControlPlane:
    full_control_plane.requests.clear()
    full_control_plane.code = "AT_CAPACITY"
    return full_control_plane


@pytest.fixture
async def runner(control_plane: FullControlPlane, tmp_path: Path) -> AsyncIterator[CallRunner]:
    settings = RuntimeSettings(
        api_url=control_plane.url, service_token=SERVICE_TOKEN, outbox_dir=tmp_path / "outbox"
    )
    call_runner = CallRunner(ControlPlane(settings), audio=False)
    yield call_runner
    await call_runner.control.aclose()


async def open_room(api: lk.LiveKitAPI, name: str) -> str:
    await api.room.create_room(lk.CreateRoomRequest(name=name))
    return name


@pytest.mark.parametrize("direction", ["web", "outbound"])
async def test_a_dispatched_call_at_capacity_is_turned_away_without_a_report(
    runner, control_plane, livekit, livekit_api, tmp_path, direction
):
    room = await open_room(livekit_api, f"{direction}-{CALL_ID}")
    metadata = json.dumps({"call_id": CALL_ID, "direction": direction})

    ended = await runner.run(metadata, room, livekit_api, no_caller, None)
    await runner.finish(ended)

    assert ended == AT_CAPACITY
    assert control_plane.requests == [("GET", f"/internal/calls/{CALL_ID}/spec")]  # no report
    assert livekit.calls("CreateSIPParticipant") == []  # an outbound call is not dialled
    assert [call.request["room"] for call in livekit.calls("DeleteRoom")] == [room]
    assert room not in livekit.rooms
    assert runner.session is None
    assert not (tmp_path / "outbox").exists() or list((tmp_path / "outbox").iterdir()) == []


async def test_an_inbound_call_at_capacity_is_hung_up_without_a_report(
    runner, control_plane, livekit, livekit_api
):
    room = await open_room(livekit_api, "inbound-room-9")
    caller = SipCaller({"sip.trunkPhoneNumber": AGENT_NUMBER, "sip.phoneNumber": "+14155550000"})

    ended = await runner.run("", room, livekit_api, caller.join, None)
    await runner.finish(ended)

    assert ended == AT_CAPACITY
    assert control_plane.requests == [("POST", f"/internal/numbers/{AGENT_NUMBER}/calls")]
    assert [call.request["room"] for call in livekit.calls("DeleteRoom")] == [room]
    assert room not in livekit.rooms


async def test_another_429_is_an_error_not_a_busy_line(runner, control_plane, livekit, livekit_api):
    control_plane.code = "RATE_LIMITED"
    metadata = json.dumps({"call_id": CALL_ID, "direction": "web"})

    with pytest.raises(ControlPlaneError) as raised:
        await runner.run(metadata, "web-room", livekit_api, no_caller, None)

    assert (raised.value.status, raised.value.code, raised.value.retryable) == (
        429,
        "RATE_LIMITED",
        True,
    )
    assert livekit.calls("DeleteRoom") == []


async def test_the_busy_message_is_said_with_the_platforms_default_voice(
    scripted_llm, monkeypatch, tmp_path
):
    monkeypatch.setenv("OPENAI_BASE_URL", scripted_llm.base_url)  # the default TTS is OpenAI's
    caller = SipCaller({})
    speaker = CaptureAudioOutput(speed=20.0)

    said = await say_busy(
        None, RuntimeSettings(), caller.join, direction="inbound", audio_output=speaker
    )

    assert said is True
    # synthesised sentence by sentence
    assert " ".join(request["input"] for request in scripted_llm.speech_requests) == BUSY_MESSAGE
    assert speaker.audio_seconds > 0.5  # the tone for every word reached the caller
