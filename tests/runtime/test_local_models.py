"""The offline providers: Piper speaks, faster-whisper hears it, llama.cpp answers."""

import pytest
from livekit.agents import llm as lk_llm

from runtime.audio_io import to_frames

pytest.importorskip("faster_whisper", reason="the 'local' extra is not installed")
pytest.importorskip("piper", reason="the 'local' extra is not installed")

from runtime.local.stt import WhisperSTT  # noqa: E402
from runtime.local.tts import PiperTTS  # noqa: E402


async def test_piper_speech_is_transcribed_by_whisper():
    tts = PiperTTS()
    frames = [event.frame async for event in tts.synthesize("Please book a table for two.")]
    seconds = sum(frame.duration for frame in frames)
    assert 1.0 < seconds < 6.0
    assert frames[0].sample_rate == 22050

    pcm = b"".join(bytes(frame.data) for frame in frames)
    event = await WhisperSTT().recognize(to_frames(pcm, 22050, 16000))
    text = event.alternatives[0].text.lower()
    assert "book a table" in text
    assert "two" in text or "2" in text


async def test_llama_cpp_answers_offline():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra) is not installed")
    from runtime.local.llm import LlamaCppLLM

    model = LlamaCppLLM(max_tokens=16, temperature=0.0)
    chat = lk_llm.ChatContext.empty()
    chat.add_message(role="system", content="You are a helpful assistant.")
    chat.add_message(role="user", content="Say hello.")
    text = ""
    usage = None
    async with model.chat(chat_ctx=chat) as stream:
        async for chunk in stream:
            if chunk.delta and chunk.delta.content:
                text += chunk.delta.content
            if chunk.usage:
                usage = chunk.usage
    assert text.strip()
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0
