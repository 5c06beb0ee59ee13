"""The offline providers: Piper speaks, faster-whisper hears it, llama.cpp answers."""

import wave
from pathlib import Path

import numpy as np
import pytest
from livekit.agents import llm as lk_llm

from runtime.audio_io import to_frames
from tests.speech import word_error_rate

pytest.importorskip("faster_whisper", reason="the 'local' extra is not installed")
pytest.importorskip("piper", reason="the 'local' extra is not installed")

from runtime.local.stt import WhisperSTT  # noqa: E402
from runtime.local.tts import PiperTTS  # noqa: E402

FIXED_WAV = Path(__file__).parent / "data" / "book_a_table_for_two.wav"  # Piper, 16 kHz mono


def read_frames(path: Path) -> list:
    with wave.open(str(path)) as wav:
        return to_frames(wav.readframes(wav.getnframes()), wav.getframerate(), 16000)


async def test_whisper_hears_the_exact_words_of_a_fixed_recording():
    # The same audio through the same model decodes the same way: exact words are fair here.
    event = await WhisperSTT().recognize(read_frames(FIXED_WAV))
    text = event.alternatives[0].text.lower()
    assert "book a table" in text
    assert "two" in text or "2" in text


async def test_whisper_hears_nothing_in_a_second_of_noise():
    # Encoded in its short window, whisper makes "I'm not going to be able to do that." of this
    # noise, with a confident score: its no-speech probability is what tells.
    noise = np.random.default_rng(2).normal(0, 0.01 * 32768, 16000).astype(np.int16)
    event = await WhisperSTT().recognize(to_frames(noise.tobytes(), 16000, 16000))
    assert event.alternatives[0].text == ""


async def test_piper_speech_is_understood_by_whisper():
    said = "Please book a table for two."
    tts = PiperTTS()
    frames = [event.frame async for event in tts.synthesize(said)]
    seconds = sum(frame.duration for frame in frames)
    assert 1.0 < seconds < 6.0
    assert frames[0].sample_rate == 22050

    pcm = b"".join(bytes(frame.data) for frame in frames)
    event = await WhisperSTT().recognize(to_frames(pcm, 22050, 16000))
    # Piper's voice varies run to run: close, not exact ("2" for "two" is one miss of six).
    assert word_error_rate(said, event.alternatives[0].text) <= 0.4


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
