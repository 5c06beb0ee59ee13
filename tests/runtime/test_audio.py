"""Whole voice calls with no room: caller audio in, agent audio out, through the real pipeline.

The local test runs faster-whisper and Piper (the `local` extra); the cloud test runs livekit's
Deepgram and OpenAI plugins against the stand-ins in tests/fakes. Both use the scripted LLM.
"""

import av
import numpy as np
import pytest

from runtime.simulate import simulate_call
from runtime.spec import CallStatus, CustomFunctionSpec, EndReason
from tests.fakes.openai_server import tool_call
from tests.runtime.conftest import make_call
from tests.speech import word_error_rate


def _needs_local_extra() -> None:
    pytest.importorskip("faster_whisper", reason="the 'local' extra is not installed")
    pytest.importorskip("piper", reason="the 'local' extra is not installed")


def _tone_caller(text: str) -> tuple[bytes, int]:
    """A caller voice for the Deepgram stand-in, which hears loudness, not words."""
    seconds = 0.25 * len(text.split())
    t = np.arange(int(seconds * 16000)) / 16000
    return (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16).tobytes(), 16000


def _script(scripted_llm) -> None:
    # Chosen by turn, not by exact words: whisper may mishear a word on a loaded machine.
    scripted_llm.on("bye|thank|good", tool_call("end_call"), times=1)
    scripted_llm.on(".", tool_call("get_weather", city="Paris"), times=1)
    scripted_llm.on_tool("get_weather", "It is {tool_output} in Paris.")
    scripted_llm.on_tool("end_call", "Goodbye!")


def _weather(backend) -> CustomFunctionSpec:
    return CustomFunctionSpec(
        name="get_weather",
        url=backend.url + "/weather",
        method="GET",
        parameters={"city": {"type": "string"}},
    )


async def test_local_voice_call_end_to_end(scripted_llm, backend, tmp_path):
    _needs_local_extra()
    _script(scripted_llm)
    call = make_call(
        scripted_llm.base_url,
        functions=(_weather(backend),),
        stt_provider="local",
        tts_provider="local",
        first_message="Hello, this is Sunny.",
    )
    lines = ["What is the weather in Paris?", "Thank you, goodbye."]
    result = await simulate_call(call, lines, recording_path=tmp_path / "call.ogg")
    report = result.report

    roles = [e["role"] for e in report.transcript]
    assert roles[0] == "assistant" and "user" in roles
    assert roles.index("user") < roles.index("tool_call")  # heard, then acted on
    heard = " ".join(e["text"] for e in report.transcript if e["role"] == "user")
    assert word_error_rate(" ".join(lines), heard) <= 0.5, heard
    tool_calls = [e for e in report.transcript if e["role"] == "tool_call"]
    assert [t["tool_name"] for t in tool_calls] == ["get_weather", "end_call"]
    agent_lines = [e["text"] for e in report.transcript if e["role"] == "assistant"]
    assert agent_lines[0] == "Hello, this is Sunny."
    assert any("sunny" in line for line in agent_lines[1:])
    assert backend.requests[0]["query"] == {"city": ["Paris"]}

    assert report.end_reason == EndReason.AGENT_HANGUP
    assert report.status == CallStatus.COMPLETED
    first = report.latencies[0]
    assert first["turn"] == 1
    for key in ("end_of_utterance_ms", "llm_ttft_ms", "tts_ttfb_ms", "end_to_end_ms"):
        assert first[key] is not None and first[key] >= 0, key
    assert report.usage["stt_seconds"] > 1.0
    assert report.usage["tts_characters"] >= len("Hello, this is Sunny.")

    assert result.agent_audio_seconds > 1.0
    with av.open(str(result.recording_path)) as recording:  # stereo Ogg/Opus, both sides
        seconds = float(recording.duration or 0) / av.time_base
    assert seconds >= result.caller_audio_seconds - 0.1
    assert report.recording_path == str(result.recording_path)


async def test_cloud_plugins_against_stand_ins(scripted_llm, fake_deepgram, monkeypatch):
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-test")
    monkeypatch.setenv("VOXLINE_DEEPGRAM_URL", fake_deepgram.listen_url)
    monkeypatch.setenv("OPENAI_BASE_URL", scripted_llm.base_url)  # OpenAI TTS reads it
    fake_deepgram.script("What is the weather in Paris?")
    scripted_llm.on("weather", "It is sunny in Paris.")
    call = make_call(
        scripted_llm.base_url,
        stt_provider="deepgram",
        tts_provider="openai",
        tts_voice="nova",
        first_message="Hi!",
    )
    result = await simulate_call(call, ["What is the weather in Paris?"], speak=_tone_caller)
    report = result.report

    assert [e["text"] for e in report.transcript if e["role"] == "user"] == [
        "What is the weather in Paris?"
    ]
    assert [e["text"] for e in report.transcript if e["role"] == "assistant"] == [
        "Hi!",
        "It is sunny in Paris.",
    ]
    assert [r["voice"] for r in scripted_llm.speech_requests] == ["nova", "nova"]
    assert fake_deepgram.connections[0].params["model"] == "nova-3"
    assert result.agent_audio_seconds > 0.3
    assert report.end_reason == EndReason.USER_HANGUP
