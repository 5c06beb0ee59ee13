"""livekit's Deepgram plugin, built by our registry, streaming to the Deepgram stand-in."""

import asyncio

from livekit.agents import stt as lk_stt
from livekit.agents.utils import http_context

from runtime.audio_io import silence, to_frames
from runtime.config import RuntimeSettings
from runtime.providers import build_stt
from runtime.spec import AgentSpec


def _tone(seconds: float, sample_rate: int = 16000) -> bytes:
    import numpy as np

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16).tobytes()


async def test_streaming_transcripts_through_the_registry(fake_deepgram, monkeypatch):
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-test-key")
    fake_deepgram.script("Book a table for two.", "Thanks, bye.")
    settings = RuntimeSettings(deepgram_url=fake_deepgram.listen_url)
    stt = build_stt(AgentSpec(agent_id="a", stt_model="nova-2", language="en"), settings)
    async with http_context.open():  # a worker job provides this; a test opens its own
        finals, kinds = await _transcribe(stt)

    assert finals == ["Book a table for two.", "Thanks, bye."]
    speech = [k for k in kinds if k != lk_stt.SpeechEventType.RECOGNITION_USAGE]
    assert speech == [
        lk_stt.SpeechEventType.START_OF_SPEECH,
        lk_stt.SpeechEventType.FINAL_TRANSCRIPT,
        lk_stt.SpeechEventType.END_OF_SPEECH,
        lk_stt.SpeechEventType.START_OF_SPEECH,
        lk_stt.SpeechEventType.FINAL_TRANSCRIPT,
    ]
    (connection,) = fake_deepgram.connections
    assert connection.headers["Authorization"] == "Token dg-test-key"
    assert connection.params["model"] == "nova-2"
    assert connection.params["language"] == "en"
    assert connection.params["encoding"] == "linear16"
    assert 1.5 < connection.audio_seconds < 2.5


async def _transcribe(stt) -> tuple[list[str], list[lk_stt.SpeechEventType]]:
    stream = stt.stream()
    for frame in [*to_frames(_tone(0.6), 16000), *silence(0.5)]:
        stream.push_frame(frame)
    for frame in [*to_frames(_tone(0.4), 16000), *silence(0.5)]:
        stream.push_frame(frame)
    stream.end_input()

    finals: list[str] = []
    kinds: list[lk_stt.SpeechEventType] = []

    async def collect() -> None:
        async for event in stream:
            kinds.append(event.type)
            if event.type == lk_stt.SpeechEventType.FINAL_TRANSCRIPT:
                finals.append(event.alternatives[0].text)
                if len(finals) == 2:
                    return

    await asyncio.wait_for(collect(), 10)
    await stream.aclose()
    await stt.aclose()
    return finals, kinds
