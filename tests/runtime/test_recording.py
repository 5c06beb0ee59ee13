"""The worker's call recorder: both sides on their own channels, in time; streamed up at the end.

The recording test needs no speech models: the agent says a tone (`session.say` with audio), the
caller answers with another through the paced microphone. The upload test streams a file to the
real control-plane app (over ASGI) and reads it back through the API.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import numpy as np
from livekit import rtc
from livekit.agents import Agent, AgentSession
from livekit.agents.voice.recorder_io import RecorderIO

from control.models import Call, Role
from control.services.agents import create_agent
from runtime.audio_io import CaptureAudioOutput, PacedAudioInput, silence, to_frames
from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane
from runtime.recording import CONTENT_TYPE, FILE_SUFFIX, CallRecording, upload_left_behind
from tests.conftest import auth_headers, make_user
from tests.control_plane import ControlPlaneTransport
from tests.recordings import decode_stereo, loud_spans

RATE = 16000
LOUD = 0.02


def _tone(hz: float, seconds: float) -> list[rtc.AudioFrame]:
    t = np.arange(int(seconds * RATE)) / RATE
    return to_frames((np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16).tobytes(), RATE, RATE)


async def _frames(frames: list[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
    for frame in frames:
        yield frame


async def test_each_side_is_on_its_own_channel_with_the_silence_between(tmp_path):
    session = AgentSession(turn_handling={"turn_detection": None})  # no models at all
    microphone = PacedAudioInput(sample_rate=RATE)
    session.input.audio = microphone
    session.output.audio = CaptureAudioOutput()
    recording = await CallRecording.start(session, tmp_path / "call.ogg")
    assert recording is not None
    await session.start(Agent(instructions=""))
    try:
        # the agent speaks for a second; half a second after it stops, the caller for a second
        spoken = session.say("(tone)", audio=_frames(_tone(440, 1.0)), add_to_chat_ctx=False)
        await spoken.wait_for_playout()
        microphone.push(silence(0.5, RATE) + _tone(300, 1.0) + silence(0.3, RATE))
        await microphone.drained()
        path = await recording.stop()
    finally:
        await session.aclose()
        microphone.close()

    assert path is not None and path.read_bytes()[:4] == b"OggS"
    samples, rate = decode_stereo(path)
    caller, agent = loud_spans(samples[0], rate, LOUD), loud_spans(samples[1], rate, LOUD)
    assert len(agent) == 1 and len(caller) == 1, (agent, caller)
    (agent_start, agent_end), (caller_start, caller_end) = agent[0], caller[0]
    # Each side keeps its length (nothing squeezed or doubled) and its place: the caller after
    # the agent, the gap kept as silence on both channels. The recorder places audio by the wall
    # clock, so the upper bounds leave room for a busy machine's stalls; squeezing, doubling or
    # overlapping the sides still fails.
    assert 0.8 < agent_end - agent_start < 1.6 and 0.8 < caller_end - caller_start < 1.6
    assert 0.3 < caller_start - agent_end < 3.0, (agent, caller)
    gap = samples[:, int(agent_end * rate) + rate // 20 : int(caller_start * rate) - rate // 20]
    assert np.abs(gap).max() < LOUD


async def test_the_recording_is_streamed_up_then_deleted_and_kept_when_refused(
    app, db, client, settings, tmp_path
):
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    agent = await create_agent(settings, workspace.id, {"agent_name": "Sales"})
    call = await Call.create(
        workspace_id=workspace.id,
        agent=agent,
        call_type="web",
        call_direction="inbound",
        status="completed",
    )
    path = tmp_path / "call.ogg"
    data = b"OggS" + bytes(range(256)) * 4000  # about 1 MB: several chunks
    path.write_bytes(data)
    recording = CallRecording(RecorderIO(agent_session=AgentSession()), path)
    transport = ControlPlaneTransport(app.app)
    runtime_settings = RuntimeSettings(
        api_url="http://control-plane.test", service_token=settings.service_token
    )
    async with ControlPlane(runtime_settings, transport=transport) as control:
        # refused (no such call): nothing raised, the file is kept for another try
        assert await recording.upload(control, str(uuid.uuid4())) is None
        assert path.exists()
        url = await recording.upload(control, str(call.id))

    assert url == f"/calls/{call.id}/recording"
    assert not path.exists()
    sent = transport.headers[-1]
    assert sent["Content-Type"] == CONTENT_TYPE
    # streamed: chunked transfer, not a body read whole to learn its length
    assert sent.get("Transfer-Encoding") == "chunked" and "Content-Length" not in sent
    served = await client.get(url, headers=auth_headers(settings, user))
    assert served.status_code == 200 and await served.get_data() == data


async def test_recordings_left_behind_are_uploaded_later_and_a_live_one_is_left_alone(
    app, db, client, settings, tmp_path
):
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    agent = await create_agent(settings, workspace.id, {"agent_name": "Sales"})
    ended, live = [
        await Call.create(
            workspace_id=workspace.id, agent=agent, call_type="web",
            call_direction="inbound", status=status,
        )
        for status in ("completed", "in_progress")
    ]  # fmt: skip
    directory = tmp_path / "recordings"
    directory.mkdir()
    data = b"OggS" + bytes(range(256)) * 40
    left, writing, orphan = (
        directory / f"{call_id}{FILE_SUFFIX}" for call_id in (ended.id, live.id, uuid.uuid4())
    )
    for path in (left, writing, orphan):
        path.write_bytes(data)
    an_hour_ago = time.time() - 3600
    for path in (left, orphan):  # the upload at the call's end failed an hour ago
        os.utime(path, (an_hour_ago, an_hour_ago))
    runtime_settings = RuntimeSettings(
        api_url="http://control-plane.test", service_token=settings.service_token
    )
    async with ControlPlane(
        runtime_settings, transport=httpx.ASGITransport(app=app.app)
    ) as control:
        sweeping = asyncio.create_task(upload_left_behind(control, directory, sweep_seconds=0.05))
        try:
            for _ in range(200):
                if not left.exists() and not orphan.exists():
                    break
                await asyncio.sleep(0.05)
        finally:
            sweeping.cancel()
            await asyncio.gather(sweeping, return_exceptions=True)

    # Uploaded to its call, then deleted; a call the control plane does not know: deleted.
    assert not left.exists() and not orphan.exists()
    assert (await Call.get(id=ended.id)).recording_url == f"/calls/{ended.id}/recording"
    served = await client.get(f"/calls/{ended.id}/recording", headers=auth_headers(settings, user))
    assert served.status_code == 200 and await served.get_data() == data
    # A file written just now belongs to a live call's recorder: untouched.
    assert writing.exists() and (await Call.get(id=live.id)).recording_url is None
