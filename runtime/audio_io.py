"""Audio I/O without a room: a paced input fed from PCM and an output that captures speech.

Used by simulated calls (`voxline simulate`), audio tests and benchmarks: they run the very
pipeline of a phone call (VAD, STT, turn detection, LLM, TTS) with no LiveKit server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from livekit import rtc
from livekit.agents.voice import io

logger = logging.getLogger(__name__)

FRAME_MS = 20


def to_frames(pcm: bytes, sample_rate: int, target_rate: int = 16000) -> list[rtc.AudioFrame]:
    """16-bit mono PCM as 20 ms frames at `target_rate` (resampled when needed)."""
    frame = rtc.AudioFrame(pcm, sample_rate, 1, len(pcm) // 2)
    if sample_rate != target_rate:
        resampler = rtc.AudioResampler(sample_rate, target_rate)
        chunks = [*resampler.push(frame), *resampler.flush()]
        pcm = b"".join(bytes(chunk.data) for chunk in chunks)
    step = target_rate * FRAME_MS // 1000
    samples = np.frombuffer(pcm, dtype=np.int16)
    frames = []
    for start in range(0, len(samples), step):
        piece = samples[start : start + step]
        if len(piece) < step:
            piece = np.pad(piece, (0, step - len(piece)))
        frames.append(rtc.AudioFrame(piece.tobytes(), target_rate, 1, step))
    return frames


def silence(seconds: float, sample_rate: int = 16000) -> list[rtc.AudioFrame]:
    """`seconds` of digital silence as 20 ms frames."""
    step = sample_rate * FRAME_MS // 1000
    count = max(int(seconds * 1000 / FRAME_MS), 1)
    return [rtc.AudioFrame(bytes(step * 2), sample_rate, 1, step) for _ in range(count)]


class PacedAudioInput(io.AudioInput):
    """The caller's microphone: plays queued frames at real time, silence in between.

    A steady stream matters: VAD and endpointing need to hear the silence after speech.
    `speed` > 1 feeds faster than real time (simulations with `--fast`).
    """

    def __init__(self, *, sample_rate: int = 16000, speed: float = 1.0) -> None:
        super().__init__(label="voxline.PacedAudioInput")
        self.sample_rate = sample_rate
        self.speed = speed
        self._queue: asyncio.Queue[rtc.AudioFrame] = asyncio.Queue()
        self._silence = silence(FRAME_MS / 1000, sample_rate)[0]
        self._next_at: float | None = None
        self._closed = False
        self.recorded: list[rtc.AudioFrame] = []

    def push(self, frames: list[rtc.AudioFrame]) -> None:
        """Queue speech (frames at this input's sample rate)."""
        for frame in frames:
            self._queue.put_nowait(frame)

    async def drained(self) -> None:
        """Wait until every queued frame was played."""
        await self._queue.join()

    def close(self) -> None:
        self._closed = True

    async def __anext__(self) -> rtc.AudioFrame:
        if self._closed:
            raise StopAsyncIteration
        now = time.perf_counter()
        if self._next_at is None:
            self._next_at = now
        elif self._next_at > now:
            await asyncio.sleep(self._next_at - now)
        self._next_at = max(self._next_at, time.perf_counter() - 0.2) + (
            FRAME_MS / 1000 / self.speed
        )
        try:
            frame = self._queue.get_nowait()
            self._queue.task_done()
        except asyncio.QueueEmpty:
            frame = self._silence
        self.recorded.append(frame)
        return frame


@dataclass
class Segment:
    """One played agent utterance."""

    frames: list[rtc.AudioFrame] = field(default_factory=list)
    started_at: float = 0.0
    interrupted: bool = False

    @property
    def duration(self) -> float:
        return sum(frame.duration for frame in self.frames)


class CaptureAudioOutput(io.AudioOutput):
    """The caller's loudspeaker: keeps the agent's audio and reports playback like a room does.

    Playback takes the audio's duration (divided by `speed`), so interruptions and timings behave
    as on a call; `playback_started`/`playback_finished` are reported as the session expects.
    """

    def __init__(self, *, sample_rate: int | None = None, speed: float = 1.0) -> None:
        super().__init__(
            label="voxline.CaptureAudioOutput",
            capabilities=io.AudioOutputCapabilities(pause=False),
            sample_rate=sample_rate,
        )
        self.speed = speed
        self.segments: list[Segment] = []
        self._current: Segment | None = None
        self._playout: asyncio.Task | None = None
        self._playout_started = 0.0

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._current is None:
            self._current = Segment(started_at=time.time())
            self.segments.append(self._current)
            self._playout_started = time.perf_counter()
            self.on_playback_started(created_at=self._current.started_at)
        self._current.frames.append(frame)

    def flush(self) -> None:
        super().flush()
        segment, self._current = self._current, None
        if segment is None:
            return
        remaining = segment.duration / self.speed - (time.perf_counter() - self._playout_started)
        self._playout = asyncio.create_task(self._finish(segment, max(remaining, 0.0)))

    async def _finish(self, segment: Segment, delay: float) -> None:
        await asyncio.sleep(delay)
        self.on_playback_finished(playback_position=segment.duration, interrupted=False)

    def clear_buffer(self) -> None:
        segment = self._current or (self.segments[-1] if self.segments else None)
        pending = self._playout is not None and not self._playout.done()
        if self._playout is not None:
            self._playout.cancel()
            self._playout = None
        if segment is None or (self._current is None and not pending):
            return
        played = min((time.perf_counter() - self._playout_started) * self.speed, segment.duration)
        segment.interrupted = True
        if self._current is not None:  # still capturing: close the segment first
            super().flush()
            self._current = None
        self.on_playback_finished(playback_position=played, interrupted=True)

    @property
    def audio_seconds(self) -> float:
        return sum(segment.duration for segment in self.segments)
