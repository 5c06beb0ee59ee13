"""How many real-time calls this machine holds: simulated callers through the worker's code path.

Each simulated call is what the worker runs for a phone call (`create_session` with the call's
agent, recorder and guard, Silero VAD and the shared end-of-turn model from the provider
registry, the process's warm-up), with a caller speaking a WAV at 16 kHz in real time and
instant stand-ins for STT, LLM and TTS, so that every millisecond measured is the runtime's
own. Calls run the way the worker runs them (`JOB_EXECUTOR`): each on its own event loop in
its own thread, all sharing the process's models.

A step of N calls measures, from the end of each caller utterance to the agent's first audio,
p50 and p95 reply latency, missed turns (no reply within `MISSED_AFTER` seconds), the CPU and
private memory each call adds, and the CPU it took to set each call up. N "holds" when its p95
is within the 1-call p95 + `HOLD_MARGIN_MS` with no missed turn. `voxline capacity` prints one
row per step and, last, `capacity calls_per_core=<x> p95_ms=<y> rss_mb_per_call=<z>`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import sys
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import psutil
from livekit import rtc
from livekit.agents import APIConnectOptions, LanguageCode, llm, stt, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from livekit.agents.voice.events import AgentStateChangedEvent

from runtime.agent import CallGuard, CallRecorder, CallState, VoxlineAgent, create_session
from runtime.audio_io import CaptureAudioOutput, PacedAudioInput, to_frames
from runtime.providers import Pipeline, build_turn_detector, build_vad
from runtime.spec import AgentSpec, CallSpec

logger = logging.getLogger(__name__)

#: What the simulated callers say (Piper's voice, as `voxline simulate`'s caller): lines the
#: end-of-turn model hears as finished, so a turn is answered after `min_endpointing_delay`.
CALLER_LINES = ("What are your opening hours?", "Thank you, goodbye.")
DEFAULT_STEPS = (1, 10, 20, 30, 40)
HOLD_MARGIN_MS = 50.0
#: A reply later than this after the caller stopped talking is a missed turn (the caller has
#: started again by then); the framework's own maximum endpointing delay is 3 s.
MISSED_AFTER = 2.5
SAMPLE_RATE = 16000
TTS_RATE = 24000
#: Silence after each utterance before the caller may speak again, on top of the reply.
CALLER_PAUSE = (1.0, 3.0)
TRANSCRIPT = "book a table for two"
REPLY = "Sure, for what time?"
#: Frames louder than this (mean absolute sample) count as speech for the STT stand-in, which
#: finalises after this much quiet: longer than a comma's pause, shorter than Silero's 550 ms.
SPEECH_LEVEL = 300.0
STT_QUIET = 0.35


# --------------------------------------------------------------------------------------------
# Instant stand-ins: what the runtime costs, without any provider's time
# --------------------------------------------------------------------------------------------


class InstantSTT(stt.STT):
    """A streaming STT that finalises `TRANSCRIPT` once the caller's audio has been quiet
    `STT_QUIET` seconds (one final per utterance, before VAD ends the speech)."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=False))

    async def _recognize_impl(self, buffer, *, language=NOT_GIVEN, conn_options=None):
        raise NotImplementedError("the capacity bench streams")

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        return _InstantSTTStream(stt=self, conn_options=conn_options)


class _InstantSTTStream(stt.RecognizeStream):
    async def _run(self) -> None:
        voiced = quiet = 0.0
        async for frame in self._input_ch:
            if isinstance(frame, self._FlushSentinel):
                continue
            level = float(np.abs(np.frombuffer(frame.data, dtype=np.int16)).mean())
            if level > SPEECH_LEVEL:
                voiced += frame.duration
                quiet = 0.0
                continue
            quiet += frame.duration
            if voiced >= 0.1 and quiet >= STT_QUIET:
                voiced = 0.0
                alternative = stt.SpeechData(
                    language=LanguageCode("en"), text=TRANSCRIPT, confidence=1.0
                )
                self._event_ch.send_nowait(
                    stt.SpeechEvent(
                        type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[alternative]
                    )
                )


class InstantLLM(llm.LLM):
    """Streams `REPLY` at once."""

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
        return _InstantLLMStream(
            self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )


class _InstantLLMStream(llm.LLMStream):
    async def _run(self) -> None:
        for word in REPLY.split(" "):
            delta = llm.ChoiceDelta(role="assistant", content=word + " ")
            self._event_ch.send_nowait(llm.ChatChunk(id="instant", delta=delta))
        usage = llm.CompletionUsage(completion_tokens=5, prompt_tokens=20, total_tokens=25)
        self._event_ch.send_nowait(llm.ChatChunk(id="instant", usage=usage))


class InstantTTS(tts.TTS):
    """A streaming TTS answering each text piece with 100 ms of audio at once."""

    def __init__(self) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True), sample_rate=TTS_RATE, num_channels=1
        )

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ):
        raise NotImplementedError("the capacity bench streams")

    def stream(self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS):
        return _InstantTTSStream(tts=self, conn_options=conn_options)


class _InstantTTSStream(tts.SynthesizeStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(
            request_id=utils.shortuuid(),
            sample_rate=TTS_RATE,
            num_channels=1,
            mime_type="audio/pcm",
            stream=True,
        )
        chunk = bytes(TTS_RATE // 10 * 2)
        segment_open = False
        async for data in self._input_ch:
            if isinstance(data, str):
                if not segment_open:
                    output_emitter.start_segment(segment_id=utils.shortuuid())
                    segment_open = True
                self._mark_started()
                output_emitter.push(chunk)
            elif segment_open:
                output_emitter.end_segment()
                segment_open = False
        if segment_open:
            output_emitter.end_segment()


class _ReplyOutput(CaptureAudioOutput):
    """The caller's loudspeaker: notes the first agent frame after the caller stopped talking."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting_since: float | None = None
        self.replied_at: float | None = None
        self.replied = asyncio.Event()

    def expect_reply(self, since: float) -> None:
        self.waiting_since = since
        self.replied_at = None
        self.replied.clear()

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        if self.waiting_since is not None and self.replied_at is None:
            self.replied_at = time.perf_counter()
            self.replied.set()
        await super().capture_frame(frame)
        if len(self.segments) > 2:  # keep memory flat over many turns
            del self.segments[:-1]


# --------------------------------------------------------------------------------------------
# One simulated call
# --------------------------------------------------------------------------------------------


def bench_call(index: int) -> CallSpec:
    """A call like the worker's: an agent with a prompt and variables (its providers unused)."""
    agent = AgentSpec(
        agent_id="capacity",
        name="Capacity",
        system_prompt="You take table bookings for {{first_name}}.",
        llm_provider="openai",
        llm_base_url="http://127.0.0.1:9/v1",
    )
    return CallSpec(
        call_id=f"capacity-{index}",
        workspace_id="capacity",
        agent=agent,
        dynamic_variables={"first_name": "Ana"},
    )


@dataclass
class CallResult:
    latencies: list[float] = field(default_factory=list)
    missed: int = 0
    error: str | None = None


class _Step:
    """What the calls of one step share: the start signal, the end time, the results."""

    def __init__(self, calls: int, duration: float, speech: list[list[rtc.AudioFrame]]) -> None:
        self.calls = calls
        self.duration = duration
        self.speech = speech
        self.ready = threading.Barrier(calls + 1)
        self.go = threading.Event()
        self.done = threading.Barrier(calls + 1)
        self.results: list[CallResult] = []
        self.lock = threading.Lock()
        self.turns = 0

    def count_turn(self) -> None:
        with self.lock:
            self.turns += 1


async def _run_call(index: int, step: _Step) -> CallResult:
    result = CallResult()
    call = bench_call(index)
    state = CallState(call=call)
    pipeline = Pipeline(
        llm=InstantLLM(),
        stt=InstantSTT(),
        tts=InstantTTS(),
        vad=build_vad(),
        turn_detection=build_turn_detector(),
    )
    session = create_session(call, pipeline, state)
    CallRecorder(session, state)
    guard = CallGuard(session, state)
    audio_in = PacedAudioInput(sample_rate=SAMPLE_RATE)
    audio_out = _ReplyOutput()
    session.input.audio = audio_in
    session.output.audio = audio_out
    listening = asyncio.Event()
    listening.set()

    def on_state(event: AgentStateChangedEvent) -> None:
        if event.new_state == "listening":
            listening.set()
        else:
            listening.clear()

    session.on("agent_state_changed", on_state)
    loop = asyncio.get_running_loop()
    await session.start(VoxlineAgent(call, state=state, greet_on_enter=False))
    guard.start()
    await loop.run_in_executor(None, step.ready.wait)
    await loop.run_in_executor(None, step.go.wait)
    rng = random.Random(index)
    ends_at = time.perf_counter() + step.duration
    # callers do not all speak at once; each speaks at least once
    await asyncio.sleep(rng.uniform(0, min(CALLER_PAUSE[1], step.duration / 4)))
    try:
        turn = 0
        while turn == 0 or time.perf_counter() + 3.0 < ends_at:
            audio_in.push(step.speech[(index + turn) % len(step.speech)])
            turn += 1
            await audio_in.drained()
            ended = time.perf_counter()
            audio_out.expect_reply(ended)
            try:
                await asyncio.wait_for(audio_out.replied.wait(), MISSED_AFTER)
                replied_at = audio_out.replied_at
                if replied_at is None:  # `capture_frame` sets it before `replied`
                    raise RuntimeError("the reply was signalled without its time")
                result.latencies.append(replied_at - ended)
            except TimeoutError:
                result.missed += 1
            step.count_turn()
            await _wait(listening, 5.0)  # the reply played out
            await asyncio.sleep(rng.uniform(*CALLER_PAUSE))
    except Exception as error:  # a broken call is reported, the step goes on
        result.error = f"{type(error).__name__}: {error}"
    await loop.run_in_executor(None, step.done.wait)
    audio_in.close()
    await session.aclose()
    return result


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        pass


def _call_thread(index: int, step: _Step) -> None:
    """A call on its own event loop in its own thread, as the worker's thread executor runs it."""
    try:
        result = asyncio.run(_call_main(index, step))
    except Exception as error:
        result = CallResult(error=f"{type(error).__name__}: {error}")
        step.ready.abort()
    with step.lock:
        step.results.append(result)


async def _call_main(index: int, step: _Step) -> CallResult:
    async with utils.http_context.open():
        return await _run_call(index, step)


# --------------------------------------------------------------------------------------------
# Steps and the report
# --------------------------------------------------------------------------------------------


@dataclass
class StepResult:
    calls: int
    turns: int
    missed: int
    p50_ms: float
    p95_ms: float
    cpu_per_call: float  # share of one core
    cores_used: float
    #: private memory (USS) each call adds: over the memory before the step for one call, and
    #: for N calls over the 1-call step's, per additional call (`per_additional_call`)
    rss_mb_per_call: float
    setup_cpu_ms: float
    private_mb: float = 0.0  # the process's private memory at the step's peak
    errors: list[str] = field(default_factory=list)

    def per_additional_call(self, one_call: StepResult) -> None:
        """Private memory per call as the slope from the 1-call step (arenas and caches the
        first call grew are the process's, not each call's)."""
        if self.calls > one_call.calls:
            added = self.private_mb - one_call.private_mb
            self.rss_mb_per_call = max(added, 0.0) / (self.calls - one_call.calls)

    def holds(self, baseline_p95_ms: float, margin_ms: float = HOLD_MARGIN_MS) -> bool:
        return (
            self.turns > 0
            and self.missed == 0
            and not self.errors
            and self.p95_ms <= baseline_p95_ms + margin_ms
        )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


def load_speech(path: Path | None = None) -> list[list[rtc.AudioFrame]]:
    """The callers' utterances as 20 ms frames at 16 kHz: `CALLER_LINES` spoken by Piper, or
    the speech in the WAV at `path`."""
    if path is not None:
        with wave.open(str(path)) as wav:
            pcm = wav.readframes(wav.getnframes())
            rate = wav.getframerate()
        return [to_frames(pcm, rate, SAMPLE_RATE)]
    from runtime.simulate import piper_caller

    speak = piper_caller()
    return [to_frames(*speak(line), SAMPLE_RATE) for line in CALLER_LINES]


def run_step(
    calls: int,
    duration: float,
    speech: list[list[rtc.AudioFrame]],
    *,
    progress: Callable[[str], None] | None = None,
) -> StepResult:
    """Run `calls` simulated calls for `duration` seconds in this process."""
    import gc

    process = psutil.Process()
    gc.collect()
    memory_before = process.memory_full_info().uss
    step = _Step(calls, duration, speech)
    setup_started = process.cpu_times()
    threads = [
        threading.Thread(target=_call_thread, args=(i, step), name=f"capacity-call-{i}")
        for i in range(calls)
    ]
    for thread in threads:
        thread.start()
    try:
        step.ready.wait(timeout=60 + calls)
    except threading.BrokenBarrierError:
        pass
    setup_done = process.cpu_times()
    memory_ready = process.memory_full_info().uss
    started = time.perf_counter()
    step.go.set()
    next_progress = started + 5.0
    peak_memory = memory_ready
    while time.perf_counter() - started < duration:
        time.sleep(min(2.5, duration / 4))
        peak_memory = max(peak_memory, process.memory_full_info().uss)
        if progress is not None and time.perf_counter() >= next_progress:
            done = time.perf_counter() - started
            progress(f"  {calls} calls: {done:.0f}/{duration:.0f} s, {step.turns} turns")
            next_progress += 5.0
    run_cpu = process.cpu_times()
    elapsed = time.perf_counter() - started
    peak_memory = max(peak_memory, process.memory_full_info().uss)
    try:
        step.done.wait(timeout=30)
    except threading.BrokenBarrierError:
        pass
    for thread in threads:
        thread.join(timeout=30)

    latencies = [value for result in step.results for value in result.latencies]
    cpu_run = (run_cpu.user + run_cpu.system) - (setup_done.user + setup_done.system)
    cpu_setup = (setup_done.user + setup_done.system) - (setup_started.user + setup_started.system)
    return StepResult(
        calls=calls,
        turns=len(latencies) + sum(result.missed for result in step.results),
        missed=sum(result.missed for result in step.results),
        p50_ms=_percentile(latencies, 0.5),
        p95_ms=_percentile(latencies, 0.95),
        cpu_per_call=cpu_run / elapsed / calls,
        cores_used=cpu_run / elapsed,
        rss_mb_per_call=max(peak_memory - memory_before, 0) / calls / 2**20,
        private_mb=peak_memory / 2**20,
        setup_cpu_ms=cpu_setup / calls * 1000,
        errors=[result.error for result in step.results if result.error],
    )


HEADER = (
    "calls | turns | missed | p50 ms | p95 ms | CPU/call % core | cores used | "
    "MB/call (private) | setup CPU ms/call | holds"
)


def _ms(value: float) -> str:
    """A latency column: "-" when the step answered no turn (never "nan")."""
    return "-" if math.isnan(value) else f"{value:.0f}"


def format_row(result: StepResult, holds: bool) -> str:
    return (
        f"{result.calls:>5} | {result.turns:>5} | {result.missed:>6} | {_ms(result.p50_ms):>6} | "
        f"{_ms(result.p95_ms):>6} | {result.cpu_per_call * 100:>15.1f} | "
        f"{result.cores_used:>10.2f} | {result.rss_mb_per_call:>17.1f} | "
        f"{result.setup_cpu_ms:>17.1f} | {'yes' if holds else 'no'}"
    )


def summary_line(results: list[StepResult]) -> str:
    """`capacity calls_per_core=<x> p95_ms=<y> rss_mb_per_call=<z>` for the largest N that held.

    Calls per core: that N over the cores it used (at least one: a worker is one process, one
    event loop per call under one GIL, and runs once per core).
    """
    baseline = results[0].p95_ms
    if math.isnan(baseline):
        return "capacity: nothing measured (one call answered no turn)"
    held = [result for result in results if result.holds(baseline)]
    best = max(held, key=lambda result: result.calls) if held else results[0]
    calls_per_core = (best.calls / max(best.cores_used, 1.0)) if held else 0.0
    return (
        f"capacity calls_per_core={calls_per_core:.1f} p95_ms={best.p95_ms:.0f} "
        f"rss_mb_per_call={best.rss_mb_per_call:.1f}"
    )


def measure(
    steps: list[int],
    duration: float,
    *,
    wav: Path | None = None,
    out: TextIO = sys.stdout,
    progress: TextIO = sys.stderr,
) -> list[StepResult]:
    """Warm the process up as the worker does, then run each step and print its row."""
    from runtime.worker import JOB_EXECUTOR, warm_up

    if not steps or steps[0] != 1:
        steps = [1, *(n for n in steps if n != 1)]  # every step is judged against one call

    def say(text: str) -> None:
        print(text, file=progress, flush=True)

    speech = load_speech(wav)
    say(f"warming up (models and plugins, once per process; calls run as {JOB_EXECUTOR.name})")
    warm_up()
    run_step(1, min(duration, 6.0), speech)  # first-use costs out of the figures
    print(
        f"{psutil.cpu_count()} cores, load average "
        f"{' '.join(f'{value:.2f}' for value in psutil.getloadavg())}; "
        f"{duration:.0f} s per step; holds = p95 within the 1-call p95 + {HOLD_MARGIN_MS:.0f} ms",
        file=out,
        flush=True,
    )
    print(HEADER, file=out, flush=True)
    results: list[StepResult] = []
    for calls in steps:
        say(f"running {calls} calls for {duration:.0f} s ...")
        result = run_step(calls, duration, speech, progress=say)
        if results:
            result.per_additional_call(results[0])
        results.append(result)
        print(format_row(result, result.holds(results[0].p95_ms)), file=out, flush=True)
        for error in sorted(set(result.errors))[:3]:
            print(f"  error in a call: {error}", file=out, flush=True)
    print(summary_line(results), file=out, flush=True)
    return results


def main(steps: list[int], duration: float, wav: Path | None = None) -> int:
    """`voxline capacity`: returns the exit code."""
    logging.getLogger("livekit").setLevel(logging.ERROR)
    if wav is not None and not wav.is_file():
        print(f"error: no caller audio at {wav} (a 16-bit mono WAV)", file=sys.stderr)
        return 2
    results = measure(steps, duration, wav=wav)
    if math.isnan(results[0].p95_ms):
        print(
            "nothing measured: one call answered no turn, so there is no capacity figure; "
            "check the agent's providers (the errors above) or give it a longer --duration",
            file=sys.stderr,
        )
        return 1
    return 0
