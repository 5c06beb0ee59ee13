"""Simulated voice calls: a scripted caller speaks to an agent through the real audio pipeline.

No LiveKit server is needed. The caller's lines are synthesised to audio (Piper, offline), fed in
real time (or faster) through VAD, STT, turn detection, LLM and TTS, and the agent's speech is
captured. The result is the call's report and a recording of both sides (`runtime.recording`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents.utils import http_context
from livekit.agents.voice.events import AgentStateChangedEvent

from runtime.agent import CallGuard, CallRecorder, CallState, VoxlineAgent, create_session
from runtime.audio_io import CaptureAudioOutput, PacedAudioInput, silence, to_frames
from runtime.call_control import CallControl
from runtime.chat import ChatReply, conversation_call
from runtime.latency import warm_models
from runtime.providers import Pipeline, build_pipeline
from runtime.recording import CallRecording
from runtime.spec import AgentSpec, CallReport, CallSpec, EndReason

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DEFAULT_CALLER_LINES = (
    "Hi, what can you help me with?",
    "What are your opening hours?",
    "Thank you, goodbye.",
)

Speak = Callable[[str], tuple[bytes, int]]

#: The answering machine's beep after a simulated voicemail greeting.
BEEP_HZ = 1000.0
BEEP_SECONDS = 0.5


def tone(hz: float, seconds: float, sample_rate: int = SAMPLE_RATE) -> list[rtc.AudioFrame]:
    """A sine tone (an answering machine's beep) as 20 ms frames."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pcm = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16).tobytes()
    return to_frames(pcm, sample_rate, sample_rate)


def trailing_silence(frames: list[rtc.AudioFrame], threshold: int = 500) -> float:
    """Seconds of near-silence at the end of `frames` (a synthesised line's tail)."""
    quiet = 0.0
    for frame in reversed(frames):
        if np.abs(np.frombuffer(frame.data, dtype=np.int16)).max(initial=0) >= threshold:
            break
        quiet += frame.duration
    return quiet


def piper_caller() -> Speak:
    """The simulated caller's voice: Piper, offline (needs the `local` extra)."""
    from runtime.local.tts import PiperTTS

    voice = PiperTTS()._voice

    def speak(text: str) -> tuple[bytes, int]:
        pcm = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text))
        return pcm, voice.config.sample_rate

    return speak


class _ReplyWatcher:
    """Tells when the agent has answered: it spoke, then stayed quiet for a while."""

    def __init__(self, quiet_for: float) -> None:
        self.quiet_for = quiet_for
        self.spoke = False
        self.done = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self.state = "initializing"

    def reset(self) -> None:
        self.spoke = False
        self.done.clear()

    def on_state(self, event: AgentStateChangedEvent) -> None:
        self.state = event.new_state
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if event.new_state == "speaking":
            self.spoke = True
        elif event.new_state == "listening" and self.spoke:
            self._timer = asyncio.get_running_loop().call_later(self.quiet_for, self.done.set)


@dataclass
class SimulationResult:
    report: CallReport
    recording_path: Path | None
    caller_audio_seconds: float
    agent_audio_seconds: float


async def simulate_call(
    call: CallSpec,
    lines: list[str] | tuple[str, ...] = DEFAULT_CALLER_LINES,
    *,
    pipeline: Pipeline | None = None,
    speak: Speak | None = None,
    speed: float = 1.0,
    recording_path: str | Path | None = None,
    reply_timeout: float = 30.0,
    on_line: Callable[[str], Any] | None = None,
    on_agent_text: Callable[[str], Any] | None = None,
    session_overrides: dict[str, Any] | None = None,
    voicemail_greeting: str | None = None,
    livekit_api: Any = None,
    caller_identity: str | None = None,
) -> SimulationResult:
    """Run one simulated call and return its report (and the recording, when asked).

    Args:
        call: the call spec (its agent's providers are built from the registry unless
            `pipeline` is given).
        lines: what the caller says, one line per turn; each waits for the agent's answer.
        speak: text -> (16-bit mono PCM, sample rate) for the caller; Piper by default.
        speed: 1.0 is real time; higher feeds and plays audio faster.
        recording_path: where to write the call's recording: Ogg/Opus, stereo, the caller on
            the left and the agent on the right (`runtime.recording`; needs `speed` 1).
        on_line: called with each caller line as it is spoken (for live output).
        on_agent_text: called with each thing the agent says, as it is added to the history.
        voicemail_greeting: an answering machine picks up instead: this greeting, then a beep
            and silence, until the agent hangs up or leaves its message (`lines` are not said).
        livekit_api, caller_identity: a LiveKit server API and the caller's SIP participant
            there, so that transfers go out as on a phone call (`transfer_call`).
    """
    speak = speak or piper_caller()
    if pipeline is None:
        pipeline = build_pipeline(call.agent, allow_private_urls=call.allow_private_urls)
        await warm_models(pipeline)  # the caller's first turn does not pay for setting models up
    state = CallState(call=call)
    async with http_context.open():
        session = create_session(call, pipeline, state, **(session_overrides or {}))
        recorder = CallRecorder(session, state)
        guard = CallGuard(session, state)
        audio_in = PacedAudioInput(sample_rate=SAMPLE_RATE, speed=speed)
        audio_out = CaptureAudioOutput(speed=speed)
        session.input.audio = audio_in
        session.output.audio = audio_out
        recording = None
        if recording_path is not None:
            if speed != 1.0:
                raise ValueError("a recording is made in real time: simulate it at speed 1")
            # the same recorder as a worker's call, attached before the greeting
            recording = await CallRecording.start(session, recording_path)
        watcher = _ReplyWatcher(quiet_for=1.0 / speed)
        session.on("agent_state_changed", watcher.on_state)
        if on_agent_text is not None:
            session.on(
                "conversation_item_added",
                lambda event: (
                    on_agent_text(event.item.text_content)
                    if getattr(event.item, "role", None) == "assistant" and event.item.text_content
                    else None
                ),
            )

        control = CallControl(
            call,
            state,
            session,
            api=livekit_api,
            room_name=call.room_name,
            caller_identity=caller_identity,
        )
        agent = VoxlineAgent(call, state=state, control=control)
        await session.start(agent)
        state.answered_at = time.time()
        control.answered()
        guard.start()
        try:
            if voicemail_greeting is not None:
                lines = ()
                await _answering_machine(voicemail_greeting, speak, audio_in, on_line)
                await _wait(recorder.closed, reply_timeout)
            elif agent.first_message:
                await _wait(watcher.done, reply_timeout)
            for line in lines:
                if recorder.closed.is_set():
                    break
                watcher.reset()
                if on_line is not None:
                    on_line(line)
                pcm, rate = await asyncio.to_thread(speak, line)
                frames = to_frames(pcm, rate, SAMPLE_RATE)
                audio_in.push(frames)
                await audio_in.drained()
                recorder.caller_stopped_speaking(time.time() - trailing_silence(frames) / speed)
                # the agent answers, or ends the call (a hang-up, a transfer)
                await _wait_any((watcher.done, recorder.closed), reply_timeout)
        finally:
            if not recorder.closed.is_set():
                state.end(EndReason.USER_HANGUP)  # the simulated caller hangs up
                await session.aclose()
            audio_in.close()

    path = await recording.stop() if recording is not None else None
    report = recorder.report(recording_path=str(path) if path else None)
    return SimulationResult(
        report=report,
        recording_path=path,
        caller_audio_seconds=sum(f.duration for f in audio_in.recorded),
        agent_audio_seconds=audio_out.audio_seconds,
    )


async def _answering_machine(
    greeting: str, speak: Speak, audio_in: PacedAudioInput, on_line: Callable[[str], Any] | None
) -> None:
    if on_line is not None:
        on_line(f"{greeting} <beep>")
    pcm, rate = await asyncio.to_thread(speak, greeting)
    audio_in.push(to_frames(pcm, rate, SAMPLE_RATE) + silence(0.4) + tone(BEEP_HZ, BEEP_SECONDS))


async def _wait_any(events: tuple[asyncio.Event, ...], seconds: float) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


class SpokenConversation:
    """A spoken conversation kept open across caller lines: each line is synthesised (Piper)
    and fed through the agent's real VAD → STT → LLM → TTS pipeline, as in `simulate_call`.

    The same interface as `runtime.chat.ChatConversation` (agent tests run either): `send`
    returns a `ChatReply` whose `heard` is what the agent's STT made of the line and whose
    `first_audio_ms` is end of speech → first audio of the reply. The agent greets first, as
    on a call (`greeting`).

        async with SpokenConversation(agent, session_id=..., workspace_id=...) as conversation:
            reply = await conversation.send("What are your opening hours?")

    Raises (on entering):
        UnknownProviderError, ModelProviderError, MissingExtraError: a provider of the agent
            cannot be built.
    """

    def __init__(
        self,
        agent: AgentSpec,
        *,
        session_id: str,
        workspace_id: str,
        variables: dict[str, str] | None = None,
        allow_private_urls: bool = False,
        function_mocks: dict[str, dict[str, Any]] | None = None,
        speak: Speak | None = None,
        speed: float = 1.0,
        reply_timeout: float = 30.0,
    ) -> None:
        self.call = conversation_call(
            agent,
            session_id=session_id,
            workspace_id=workspace_id,
            variables=variables,
            allow_private_urls=allow_private_urls,
            function_mocks=function_mocks,
        )
        self.speed = speed
        self.reply_timeout = reply_timeout
        self.greeting: str | None = None
        self._speak = speak
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> SpokenConversation:
        call = self.call
        self._speak = self._speak or piper_caller()
        pipeline = build_pipeline(call.agent, allow_private_urls=call.allow_private_urls)
        await self._stack.enter_async_context(http_context.open())
        self.state = CallState(call=call)
        self.session = create_session(call, pipeline, self.state)
        self.recorder = CallRecorder(self.session, self.state)
        guard = CallGuard(self.session, self.state)
        self.audio_in = PacedAudioInput(sample_rate=SAMPLE_RATE, speed=self.speed)
        self.session.input.audio = self.audio_in
        self.session.output.audio = CaptureAudioOutput(speed=self.speed)
        self._watcher = _ReplyWatcher(quiet_for=1.0 / self.speed)
        self.session.on("agent_state_changed", self._watcher.on_state)
        control = CallControl(call, self.state, self.session, room_name=call.room_name)
        agent = VoxlineAgent(call, state=self.state, control=control)
        self._stack.push_async_callback(self._hang_up)
        await self.session.start(agent)
        self.state.answered_at = time.time()
        control.answered()
        guard.start()
        if agent.first_message:
            await _wait_any((self._watcher.done, self.recorder.closed), self.reply_timeout)
            said = [e["text"] for e in self.recorder.transcript if e["role"] == "assistant"]
            self.greeting = " ".join(said) or None
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._stack.aclose()

    async def _hang_up(self) -> None:
        if not self.recorder.closed.is_set():
            self.state.end(EndReason.USER_HANGUP)  # the test's caller hangs up
            await self.session.aclose()
        self.audio_in.close()

    async def send(self, line: str) -> ChatReply:
        """Say `line`; the agent's answer once it has spoken and gone quiet (or ended the call).

        Raises:
            TimeoutError: the agent said nothing within `reply_timeout`.
        """
        assert self._speak is not None  # set on entering
        start = len(self.recorder.transcript)
        self._watcher.reset()
        pcm, rate = await asyncio.to_thread(self._speak, line)
        frames = to_frames(pcm, rate, SAMPLE_RATE)
        self.audio_in.push(frames)
        await self.audio_in.drained()
        self.recorder.caller_stopped_speaking(time.time() - trailing_silence(frames) / self.speed)
        await _wait_any((self._watcher.done, self.recorder.closed), self.reply_timeout)
        ended = self.recorder.closed.is_set() or self.state.end_reason is not None
        entries = self.recorder.transcript[start:]
        said = [e["text"] for e in entries if e["role"] == "assistant" and e["text"]]
        if not said and not ended:
            raise TimeoutError(f"the agent said nothing within {self.reply_timeout:g} s")
        heard = " ".join(e["text"] for e in entries if e["role"] == "user" and e["text"])
        calls: list[dict[str, Any]] = []
        for entry in entries:
            if entry["role"] == "tool_call":
                calls.append({"name": entry["tool_name"], "arguments": entry["arguments"]})
            elif entry["role"] == "tool_result" and calls:
                calls[-1].update(result=entry["result"], is_error=entry["is_error"])
        latency = self.recorder.latencies[-1:] if heard else []
        reply = " ".join(said)
        return ChatReply(
            reply=reply,
            tool_calls=calls,
            messages=[{"role": "user", "text": heard}, {"role": "assistant", "text": reply}],
            ended=ended,
            llm_ttft_ms=latency[0]["llm_ttft_ms"] if latency else None,
            heard=heard,
            first_audio_ms=latency[0]["end_to_end_ms"] if latency else None,
        )
