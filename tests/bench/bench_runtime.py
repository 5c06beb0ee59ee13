"""Latency Voxline adds to a turn, with instant stand-in providers (printed, never asserted).

Each session runs a VoxlineAgent (built from a call spec, with its tools, recorder and guard)
on an in-process LLM and streaming TTS that answer at once, and a captured audio output.
Three stages are timed per turn:

- input -> LLM request: from the committed user turn to the LLM's `chat()` call;
- first LLM token -> TTS request: from the first token out of the LLM to the first text the
  TTS receives;
- first TTS audio -> output: from the TTS's first frame to the audio output's first frame.

It prints p50 and p95 of each, and of their sum, for 1, 10, 50 and 100 concurrent sessions
in one process, and the resident memory each session adds. Sessions take turns `--gap`
seconds apart on average, as callers do (`--gap 0` makes every session speak at once, which
measures the process's throughput rather than a call's latency). A step in which no turn
completed says so and the bench exits 1.

    python -m tests.bench.bench_runtime [--turns 10] [--gap 3] [--sessions 1,10,50,100]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
from livekit import rtc
from livekit.agents import APIConnectOptions, llm, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr

from runtime.agent import CallGuard, CallRecorder, CallState, VoxlineAgent, create_session
from runtime.audio_io import CaptureAudioOutput
from runtime.capacity import bench_call
from runtime.providers import Pipeline
from tests.bench.samples import positive, require

logger = logging.getLogger(__name__)

REPLY = "Sure, I can help with that right away."
SAMPLE_RATE = 24000


@dataclass
class Marks:
    """Timestamps of one session's current turn (perf_counter seconds)."""

    turn_start: float = 0.0
    llm_request: float | None = None
    llm_first_token: float | None = None
    tts_request: float | None = None
    tts_first_audio: float | None = None
    output_first_frame: float | None = None
    samples: list[tuple[float, float, float]] = field(default_factory=list)

    def new_turn(self) -> None:
        self.turn_start = time.perf_counter()
        self.llm_request = self.llm_first_token = None
        self.tts_request = self.tts_first_audio = self.output_first_frame = None

    def close_turn(self) -> None:
        if None in (self.llm_request, self.tts_request, self.output_first_frame):
            return
        self.samples.append(
            (
                self.llm_request - self.turn_start,
                self.tts_request - self.llm_first_token,
                self.output_first_frame - self.tts_first_audio,
            )
        )


class InstantLLM(llm.LLM):
    """Streams a fixed reply at once."""

    def __init__(self, marks: Marks) -> None:
        super().__init__()
        self.marks = marks

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        self.marks.llm_request = time.perf_counter()
        return _InstantLLMStream(
            self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )


class _InstantLLMStream(llm.LLMStream):
    async def _run(self) -> None:
        marks: Marks = self._llm.marks  # type: ignore[attr-defined]
        for index, word in enumerate(REPLY.split(" ")):
            if index == 0:
                marks.llm_first_token = time.perf_counter()
            delta = llm.ChoiceDelta(role="assistant", content=word + " ")
            self._event_ch.send_nowait(llm.ChatChunk(id="instant", delta=delta))
        usage = llm.CompletionUsage(completion_tokens=8, prompt_tokens=20, total_tokens=28)
        self._event_ch.send_nowait(llm.ChatChunk(id="instant", usage=usage))


class InstantTTS(tts.TTS):
    """A streaming TTS that answers each text piece with 20 ms of audio at once."""

    def __init__(self, marks: Marks) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True),
            sample_rate=SAMPLE_RATE,
            num_channels=1,
        )
        self.marks = marks

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ):
        raise NotImplementedError("the benchmark streams")

    def stream(self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS):
        return _InstantTTSStream(tts=self, conn_options=conn_options)


class _InstantTTSStream(tts.SynthesizeStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        marks: Marks = self._tts.marks  # type: ignore[attr-defined]
        output_emitter.initialize(
            request_id=utils.shortuuid(),
            sample_rate=SAMPLE_RATE,
            num_channels=1,
            mime_type="audio/pcm",
            stream=True,
        )
        chunk = bytes(SAMPLE_RATE // 50 * 2)
        segment_open = False
        async for data in self._input_ch:
            if isinstance(data, str):
                if not segment_open:
                    output_emitter.start_segment(segment_id=utils.shortuuid())
                    segment_open = True
                if marks.tts_request is None:
                    marks.tts_request = time.perf_counter()
                self._mark_started()
                if marks.tts_first_audio is None:
                    marks.tts_first_audio = time.perf_counter()
                output_emitter.push(chunk)
            elif segment_open:
                output_emitter.end_segment()
                segment_open = False
        if segment_open:
            output_emitter.end_segment()


class TimedOutput(CaptureAudioOutput):
    def __init__(self, marks: Marks) -> None:
        super().__init__(speed=1000.0)  # playback "finishes" almost at once
        self.marks = marks

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        if self.marks.output_first_frame is None:
            self.marks.output_first_frame = time.perf_counter()
        await super().capture_frame(frame)
        if len(self.segments) > 4:  # keep memory flat over many turns
            del self.segments[:-1]


async def _session(
    index: int, turns: int, gap: float, ready: asyncio.Barrier, go: asyncio.Event
) -> Marks:
    marks = Marks()
    call = bench_call(index)
    state = CallState(call=call)
    pipeline = Pipeline(llm=InstantLLM(marks), tts=InstantTTS(marks))
    session = create_session(call, None, state, llm=pipeline.llm, tts=pipeline.tts)
    CallRecorder(session, state)
    CallGuard(session, state)
    session.output.audio = TimedOutput(marks)
    await session.start(VoxlineAgent(call, state=state))
    await ready.wait()
    await go.wait()
    rng = random.Random(index)
    await asyncio.sleep(rng.uniform(0, gap))  # sessions do not all speak at once
    for turn in range(turns):
        if turn:
            await asyncio.sleep(rng.uniform(0.5 * gap, 1.5 * gap))  # the caller talks
        marks.new_turn()
        await session.run(user_input=f"question number {turn}")
        marks.close_turn()
    await ready.wait()  # stay alive until every session measured its RSS share
    await session.aclose()
    return marks


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


async def run(concurrency: int, turns: int, gap: float, *, quiet: bool = False) -> None:
    gc.collect()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    ready = asyncio.Barrier(concurrency + 1)
    go = asyncio.Event()
    tasks = [asyncio.create_task(_session(i, turns, gap, ready, go)) for i in range(concurrency)]
    await ready.wait()
    rss_sessions = process.memory_info().rss
    started = time.perf_counter()
    go.set()
    await ready.wait()
    elapsed = time.perf_counter() - started
    rss_used = max(rss_sessions, process.memory_info().rss) - rss_before  # sessions still open
    results = await asyncio.gather(*tasks)

    samples = [sample for marks in results for sample in marks.samples]
    if quiet:
        return
    require(samples, f"{concurrency} sessions", "no turn completed")
    stages = list(zip(*samples, strict=True))
    total = [sum(sample) for sample in samples]
    row = [f"{concurrency:>4}", f"{len(samples):>6}"]
    for values in [*stages, total]:
        row.append(f"{_pct(list(values), 0.5):7.2f} {_pct(list(values), 0.95):7.2f}")
    row.append(f"{rss_used / concurrency / 2**10:9.0f}")
    row.append(f"{len(samples) / elapsed:8.1f}")
    print(" | ".join(row), flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=positive, default=10)
    parser.add_argument(
        "--gap", type=float, default=3.0, help="mean seconds between a session's turns (0: none)"
    )
    parser.add_argument("--sessions", default="1,10,50,100")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(
        "sessions | turns | input->LLM p50/p95 ms | LLM->TTS p50/p95 ms | "
        "TTS->output p50/p95 ms | total p50/p95 ms | RSS/session KiB | turns/s"
    )
    await run(1, 3, 0.0, quiet=True)  # warm up imports and first-use caches
    for concurrency in (int(n) for n in args.sessions.split(",")):
        await run(concurrency, args.turns, args.gap)


if __name__ == "__main__":
    asyncio.run(main())
