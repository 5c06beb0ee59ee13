"""The worker records a call when its agent says so: both sides, uploaded when the call ends.

An outbound call runs through `CallRunner` with audio (Deepgram and OpenAI TTS stand-ins, the
scripted LLM) against the real control-plane app (ASGI) and the LiveKit stand-in. Without a
LiveKit server there is no room to carry audio, so the stand-in's line does what LiveKit's room
I/O does on a real call: once the callee answers, the session hears the callee's microphone
(`PacedAudioInput`, real time) and plays to the callee's loudspeaker (`CaptureAudioOutput`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from livekit import api as lk
from livekit import rtc

from control.models import Call
from runtime.audio_io import CaptureAudioOutput, PacedAudioInput, silence, to_frames
from runtime.worker import CallRunner
from tests.fakes.deepgram_server import FakeDeepgram
from tests.fakes.livekit_server import FakeLiveKit, no_caller
from tests.fakes.openai_server import FakeOpenAI
from tests.recordings import decode_stereo, loud_spans, rms
from tests.runtime.test_worker import (
    AGENT_NUMBER,
    CALLEE,
    said_by_agent,
    scripted_line,
)

RATE = 16000
GREETING = "Hello, this is Acme. This call is recorded for quality and training purposes."
#: The callee's tone stays under the Deepgram stand-in's speech threshold (500): it is heard on
#: the recording, but nothing is transcribed, so the agent says only its greeting.
CALLEE_AMPLITUDE = 400
CALLEE_SECONDS = 1.0
AGENT_LOUD = 0.01  # RMS of the TTS stand-in's tone (amplitude 1000): about 0.02
CALLEE_LOUD = 0.004  # RMS of the callee's tone: about 0.009
QUIET = 0.002
#: How far the recording's length may be from the call's, answered to ended (seconds).
DURATION_TOLERANCE = 1.5


def tone(hz: float, seconds: float, amplitude: int) -> list[rtc.AudioFrame]:
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = (np.sin(2 * np.pi * hz * t) * amplitude).astype(np.int16).tobytes()
    return to_frames(pcm, RATE, RATE)


class AnsweringSIP:
    """The stand-in's SIP service; when a dial is answered, `on_answer` runs."""

    def __init__(self, sip: Any, on_answer: Callable[[], None]) -> None:
        self._sip = sip
        self._on_answer = on_answer

    async def create_sip_participant(self, request: lk.CreateSIPParticipantRequest):
        participant = await self._sip.create_sip_participant(request)
        self._on_answer()
        return participant

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sip, name)


class CalleeLine:
    """The LiveKit API (the stand-in) plus the callee's end of the room, as room I/O gives it."""

    def __init__(self, api: lk.LiveKitAPI) -> None:
        self._api = api
        self.microphone = PacedAudioInput(sample_rate=RATE)
        self.loudspeaker = CaptureAudioOutput()
        self.runner: CallRunner | None = None
        self.sip = AnsweringSIP(api.sip, self._connect)

    def _connect(self) -> None:
        session = self.runner.session
        session.input.audio = self.microphone
        session.output.audio = self.loudspeaker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


@pytest.fixture
def callee_line(livekit_api: lk.LiveKitAPI) -> Iterator[CalleeLine]:
    line = CalleeLine(livekit_api)
    yield line
    line.microphone.close()


@pytest.fixture
def speech_providers(monkeypatch, scripted_llm: FakeOpenAI, fake_deepgram: FakeDeepgram) -> None:
    """The platform's default providers (Deepgram STT, OpenAI TTS) on their stand-ins."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", scripted_llm.base_url)  # TTS
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-test-key")


@pytest.fixture
def make_runner(
    new_runner: Callable[..., CallRunner],
    fake_deepgram: FakeDeepgram,
    tmp_path,
) -> Callable[[], CallRunner]:
    """Makes runners with speech (STT on the Deepgram stand-in), keeping recordings in tmp_path."""
    return functools.partial(
        new_runner, audio=True, deepgram_url=fake_deepgram.listen_url, data_dir=tmp_path
    )


async def outbound_call(client: Any, settings: Any, scripted_llm: FakeOpenAI, *, recorded: bool):
    """An outbound call on a line whose agent records calls (or not): (call id, headers)."""
    line = await scripted_line(
        client, settings, scripted_llm, first_message=GREETING, recording_enabled=recorded
    )
    headers = line["headers"]
    body = {"agent_phone_number": AGENT_NUMBER, "phone_number_to_dial": CALLEE}
    response = await client.post("/calls/outbound_call", json=body, headers=headers)
    assert response.status_code == 201, await response.get_json()
    return (await response.get_json())["call_id"], headers


async def run_call(runner: CallRunner, line: CalleeLine, livekit: FakeLiveKit, call_id: str):
    """Dial, greet, then the callee answers with a tone; the call ends after it."""
    [dispatch] = [d for d in livekit.dispatches.values() if call_id in d.metadata]
    line.runner = runner
    ended = await runner.run(dispatch.metadata, dispatch.room, line, no_caller, None)
    assert ended is None
    await runner.agent.greeting.wait_for_playout()
    line.microphone.push(
        silence(0.3, RATE) + tone(300, CALLEE_SECONDS, CALLEE_AMPLITUDE) + silence(0.3, RATE)
    )
    await line.microphone.drained()
    await runner.session.aclose()  # the callee hangs up
    await runner.finish("room closed")


async def test_a_recorded_call_is_uploaded_with_each_side_on_its_channel(
    client, settings, livekit, scripted_llm, speech_providers, callee_line, make_runner, tmp_path
):
    call_id, headers = await outbound_call(client, settings, scripted_llm, recorded=True)
    runner = make_runner()

    await run_call(runner, callee_line, livekit, call_id)

    call = await Call.get(id=call_id)
    assert call.status == "completed" and said_by_agent(call) == [GREETING]
    assert call.recording_url == f"/calls/{call_id}/recording"
    assert not list((tmp_path / "recordings").glob("*"))  # uploaded, then deleted
    served = await client.get(call.recording_url, headers=headers)
    assert served.status_code == 200
    samples, rate = decode_stereo(await served.get_data())
    callee, agent = samples[0], samples[1]  # caller (here the callee) left, agent right

    # as long as the call, answered to hung up (the recorder starts at the answer)
    call_seconds = (call.ended_at - call.answered_at).total_seconds()
    assert abs(samples.shape[1] / rate - call_seconds) < DURATION_TOLERANCE
    # the agent's greeting is on the right, and only there
    [greeting] = loud_spans(agent, rate, AGENT_LOUD)
    assert greeting[1] - greeting[0] > 0.3
    assert rms(callee, rate, greeting) < QUIET
    # the callee's tone is on the left, after the greeting, and the agent is silent then
    [answer] = loud_spans(callee, rate, CALLEE_LOUD)
    assert answer[0] >= greeting[1]
    assert abs((answer[1] - answer[0]) - CALLEE_SECONDS) < 0.3
    assert rms(agent, rate, answer) < QUIET


async def test_a_call_not_recorded_has_no_recording(
    client, settings, livekit, scripted_llm, speech_providers, callee_line, make_runner, tmp_path
):
    call_id, headers = await outbound_call(client, settings, scripted_llm, recorded=False)
    runner = make_runner()

    await run_call(runner, callee_line, livekit, call_id)

    call = await Call.get(id=call_id)
    assert call.status == "completed" and said_by_agent(call) == [GREETING]
    assert callee_line.loudspeaker.audio_seconds > 0.3  # the call had audio, just no recorder
    assert call.recording_url is None
    assert not (tmp_path / "recordings").exists()
    served = await client.get(f"/calls/{call_id}/recording", headers=headers)
    assert served.status_code == 404
