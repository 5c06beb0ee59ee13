"""The agent a call runs (built from its CallSpec), its per-call state, limits and recorder.

`VoxlineAgent` is the one `Agent` subclass: prompt and first message come from the call spec
with `{{variables}}` rendered, and its tools from `runtime.tools` (and, on calls, the transfer,
keypad and voicemail tools of `runtime.call_control`). `CallGuard` enforces the
call's limits (maximum duration, idle nudge and hang-up, end-call phrases). `CallRecorder`
turns session events into the `CallReport` posted when the call ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from livekit import rtc
from livekit.agents import Agent, AgentSession, FlushSentinel, StopResponse, llm, stt
from livekit.agents.metrics import LLMModelUsage, STTModelUsage, TTSModelUsage
from livekit.agents.voice import SpeechHandle
from livekit.agents.voice.events import (
    CloseEvent,
    CloseReason,
    ConversationItemAddedEvent,
    FunctionToolsExecutedEvent,
    SessionUsageUpdatedEvent,
    UserStateChangedEvent,
)

from runtime.call_control import CallControl
from runtime.grounding import ANSWER_SCORE, best_fact
from runtime.handoffs import build_handoff_tool
from runtime.latency import flush_after_first_clause, spoken_in_clauses
from runtime.moves import ConversationMoves
from runtime.providers import Pipeline, build_pipeline, served_by
from runtime.spec import (
    CallReport,
    CallSpec,
    CallStatus,
    EndReason,
    HandoffDestinationSpec,
    call_variables,
    mask_phone,
    provider_info,
    render_template,
)
from runtime.tools import Retrieve, build_tools, lookup_passages

logger = logging.getLogger(__name__)

DEFAULT_INSTRUCTIONS = "You are a helpful, concise voice assistant. Keep answers short."
VOICE_STYLE = (
    "You are speaking on a live call: answer in short, plain sentences without markdown, "
    "lists or emoji."
)
#: How many knowledge passages are looked up per turn for an LLM that cannot call tools.
GROUNDING_TOP_K = 3
NO_FACTS_NOTE = (
    "Nothing in the knowledge base answers the caller's next message. If they ask for a fact, "
    "say that you don't know it. If they say goodbye, thank them and say goodbye. Never make up "
    "a price, time or product."
)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _ms(seconds: Any) -> float | None:
    return round(float(seconds) * 1000, 1) if isinstance(seconds, int | float) else None


@dataclass
class CallState:
    """Per-call state, the session's typed `userdata` (tools read it through `RunContext`)."""

    call: CallSpec
    end_reason: EndReason | None = None
    #: knowledge passages the agent looked up (chats return them as `sources`)
    sources: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    #: each transfer attempt (see `CallReport.transfers`)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    #: each hand-off between agents (see `CallReport.handoffs`)
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    #: the agent speaking now (the answering one until a hand-off)
    agent_id: str = ""

    def __post_init__(self) -> None:
        self.agent_id = self.agent_id or self.call.agent.agent_id

    def end(self, reason: EndReason) -> None:
        """Record why the call ends; the first reason wins."""
        if self.end_reason is None:
            logger.info("call %s ends: %s", self.call.call_id, reason.value)
            self.end_reason = reason


class VoxlineAgent(Agent):
    """One agent, configured by a frozen call spec; greets in `on_enter`."""

    def __init__(
        self,
        call: CallSpec,
        *,
        state: CallState | None = None,
        now: datetime | None = None,
        retrieve: Retrieve | None = None,
        greet_on_enter: bool = True,
        voice: bool = True,
        chat_ctx: llm.ChatContext | None = None,
        ground: bool | None = None,
        control: CallControl | None = None,
        end_call: bool | None = None,
        pipeline: Pipeline | None = None,
        continue_on_enter: bool = False,
        small_talk: bool | None = None,
    ) -> None:
        """`ground`: put the knowledge passages for the caller's message into every turn
        (default: when the agent has knowledge and its LLM cannot call the lookup tool).
        `end_call`: whether the agent may end the conversation (default: in voice only).
        `control`: the call's transfers, keypad and voicemail handling (phone and simulated
        calls); its tools join the agent's.
        `pipeline`: this agent's own models (an agent handed the call); else the session's.
        `continue_on_enter`: answer at once on entering (an agent handed the call, not
        greeting).
        `small_talk`: answer the conversation's common moves from the settings
        (`runtime.moves`; default: when the LLM cannot call tools, too small for them)."""
        self.call = call
        self.control = control
        self.state = state or CallState(call=call)
        self.variables = call_variables(call, now)
        spec = call.agent
        prompt = render_template(spec.system_prompt, self.variables).strip()
        instructions = prompt or DEFAULT_INSTRUCTIONS
        if voice:
            instructions = f"{instructions}\n\n{VOICE_STYLE}"
        if control is not None and control.instructions():
            instructions = f"{instructions}\n\n{control.instructions()}"
        self.first_message = render_template(spec.first_message, self.variables).strip()
        self._greet_on_enter = greet_on_enter
        self._continue_on_enter = continue_on_enter
        self._voice = voice
        self._end_call = end_call
        self._retrieve = retrieve
        calls_tools = provider_info("llm", spec.llm_provider).calls_tools
        if ground is None:
            ground = spec.knowledge_ready and not calls_tools
        self._ground = ground
        # an LLM too small for the conversation's common moves: they come from the settings
        # (not for a JSON reply: post-call analysis, judges)
        if small_talk is None:
            small_talk = not calls_tools and spec.reply_schema is None
        self._moves = (
            None
            if not small_talk
            else ConversationMoves(
                spec,
                prompt=prompt,
                state=self.state,
                may_end=voice if end_call is None else end_call,
                control=control,
                retrieve=retrieve,
            )
        )
        self.greeting: SpeechHandle | None = None
        tools: list[llm.Tool | llm.Toolset] = [
            *build_tools(
                call,
                on_end=self.state.end,
                retrieve=retrieve,
                end_call=voice if end_call is None else end_call,
            ),
            *(control.tools() if control is not None else []),
        ]
        handoff = build_handoff_tool(call, self.state, self.handed_to)
        if handoff is not None:
            tools.append(handoff)
        models: dict[str, Any] = {}
        if pipeline is not None:  # its own voice and models; the session's VAD and turns
            models = {"llm": pipeline.llm}
            models.update({"stt": pipeline.stt, "tts": pipeline.tts} if pipeline.tts else {})
        super().__init__(instructions=instructions, tools=tools, chat_ctx=chat_ctx, **models)

    async def on_enter(self) -> None:
        if self._greet_on_enter:
            self.greet()
        elif self._continue_on_enter:
            self.session.generate_reply()

    def handed_to(
        self, call: CallSpec, destination: HandoffDestinationSpec, chat_ctx: llm.ChatContext
    ) -> VoxlineAgent:
        """The agent that takes the call over from this one (`runtime.handoffs`)."""
        if self.control is not None:
            self.control.hand_to(call.agent)
        pipeline = build_pipeline(
            call.agent,
            audio=self.session.tts is not None,
            allow_private_urls=call.allow_private_urls or None,
        )
        return VoxlineAgent(
            call,
            state=self.state,
            retrieve=self._retrieve,
            greet_on_enter=destination.greet_on_handoff,
            continue_on_enter=not destination.greet_on_handoff,
            voice=self._voice,
            chat_ctx=chat_ctx,
            control=self.control,
            end_call=self._end_call,
            pipeline=pipeline,
        )

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        if self.control is not None and self.control.briefing_human:
            raise StopResponse()  # a warm transfer's human: their answer decides, not the LLM

    async def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: Any
    ) -> AsyncIterator[llm.ChatChunk | str | FlushSentinel]:
        if self.control is not None and self.control.at_voicemail:
            return  # an answering machine: nothing to answer, the message follows the beep
        if self._moves is not None:
            said = await self._moves.reply(chat_ctx, self.session)
            if said is not None:
                for piece in spoken_in_clauses(said) if said else ():
                    yield piece
                return
        if self._ground:
            answer, chat_ctx = await self._grounded(chat_ctx)
            if answer is None and self._moves is not None:
                answer = await self._moves.unknown(chat_ctx)  # a question nothing answers
            if answer:
                for piece in spoken_in_clauses(answer):
                    yield piece
                return
        reply: AsyncIterator[llm.ChatChunk | str | FlushSentinel]
        reply = Agent.default.llm_node(self, chat_ctx, tools, model_settings)
        if self._moves is not None:  # a local model: its first clause is spoken at once
            reply = flush_after_first_clause(reply)
        async for chunk in reply:
            yield chunk

    async def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: Any
    ) -> AsyncIterator[stt.SpeechEvent | str]:
        if self.control is not None and self.control.detects_voicemail:
            audio = self.control.listen(audio)  # the beep of an answering machine
        async for event in Agent.default.stt_node(self, audio, model_settings):
            yield event

    async def _grounded(self, chat_ctx: llm.ChatContext) -> tuple[str | None, llm.ChatContext]:
        """The answer from the knowledge for the last user message, or the context for the LLM.

        See `runtime.grounding`: a sentence of the retrieved passages that matches the message
        closely is the answer (and its passages the turn's `sources`); otherwise the LLM answers,
        told that the knowledge has nothing on it.
        """
        items = chat_ctx.items
        for last in range(len(items) - 1, -1, -1):
            message = items[last]
            if isinstance(message, llm.ChatMessage) and message.role == "user":
                break
        else:
            return None, chat_ctx
        question = (message.text_content or "").strip()
        if not question:
            return None, chat_ctx
        try:
            passages = await lookup_passages(
                self.call.agent.agent_id, question, GROUNDING_TOP_K, self._retrieve
            )
            found = await best_fact(question, passages)
        except Exception:  # the knowledge is unavailable: the LLM answers on its own
            logger.exception("grounding failed for agent %s", self.call.agent.agent_id)
            return None, chat_ctx
        if found is not None and found[1] >= ANSWER_SCORE:
            self.state.sources.extend(passages)
            return found[0].sentence, chat_ctx
        grounded = chat_ctx.copy()
        grounded.items.insert(last, llm.ChatMessage(role="system", content=[NO_FACTS_NOTE]))
        return None, grounded

    def greet(self) -> SpeechHandle | None:
        """Say the first message (on outbound calls, once the callee answered)."""
        if not self.first_message:
            return None
        self.greeting = self.session.say(
            self.first_message, allow_interruptions=self.call.agent.interruptible
        )
        return self.greeting


def session_options(call: CallSpec, pipeline: Pipeline | None, state: CallState) -> dict:
    """Keyword arguments for `AgentSession(...)` from the call spec and its pipeline.

    Without a pipeline's audio models (text chats), VAD and turn detection are off.
    """
    spec = call.agent
    audio = pipeline is not None and pipeline.stt is not None
    turn_handling: dict[str, Any] = {
        "turn_detection": pipeline.turn_detection if audio and pipeline is not None else None,
        "endpointing": {
            "min_delay": spec.min_endpointing_delay,
            "max_delay": spec.max_endpointing_delay,
        },
        "interruption": {"enabled": spec.interruptible},
        # the reply is prepared from the final transcript before the turn ends; its audio too
        # when the TTS is local (`runtime.latency`: nothing is billed for a discarded reply)
        "preemptive_generation": {"enabled": True, "preemptive_tts": spec.tts_provider == "local"},
    }
    options: dict[str, Any] = {
        "userdata": state,
        "turn_handling": turn_handling,
        "user_away_timeout": spec.idle_warning_after or spec.idle_hangup_after,
        "max_tool_steps": 4,
    }
    if pipeline is not None:
        options.update(pipeline.session_kwargs())
    if not audio:
        options.update(vad=None, stt=None, tts=None)
    return options


def create_session(
    call: CallSpec, pipeline: Pipeline | None, state: CallState, **overrides: Any
) -> AgentSession[CallState]:
    """An `AgentSession` configured for the call (start it with a `VoxlineAgent`).

    `overrides` go to `AgentSession` as they are (for example `conn_options`).
    """
    return AgentSession[CallState](**{**session_options(call, pipeline, state), **overrides})


# --------------------------------------------------------------------------------------------
# Limits: maximum duration, idle handling, end-call phrases
# --------------------------------------------------------------------------------------------


class CallGuard:
    """Ends the call on its limits: maximum duration (with a goodbye), silence, end phrases."""

    GOODBYE_TIMEOUT = 20.0

    def __init__(self, session: AgentSession, state: CallState) -> None:
        self.session = session
        self.state = state
        self.spec = state.call.agent
        self._tasks: set[asyncio.Task] = set()
        self._hangup_task: asyncio.Task | None = None
        self._warned = False
        self._phrases = [
            re.sub(r"\s+", " ", phrase.strip().lower())
            for phrase in self.spec.end_call_phrases
            if phrase.strip()
        ]
        session.on("user_state_changed", self._on_user_state)
        session.on("conversation_item_added", self._on_item)
        session.on("close", self._on_close)

    def start(self) -> None:
        """Start the duration clock (call it when the call is answered)."""
        self._spawn(self._max_duration())

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def end_with(self, reason: EndReason, message: str | None) -> None:
        """Say a last line (not interruptible), then close the session."""
        self.state.end(reason)
        if message:
            with contextlib.suppress(RuntimeError):
                self.session.interrupt(force=True)
            try:
                handle = self.session.say(message, allow_interruptions=False)
                await asyncio.wait_for(handle.wait_for_playout(), self.GOODBYE_TIMEOUT)
            except (RuntimeError, TimeoutError):
                logger.warning("could not say the last line of call %s", self.state.call.call_id)
        self.session.shutdown(drain=True)

    async def _max_duration(self) -> None:
        await asyncio.sleep(self.spec.max_call_duration)
        logger.info("call %s reached its maximum duration", self.state.call.call_id)
        await self.end_with(EndReason.MAX_DURATION_REACHED, self.spec.max_duration_message)

    def _on_user_state(self, event: UserStateChangedEvent) -> None:
        if event.new_state != "away":
            if event.new_state == "speaking" or event.old_state == "away":
                self._warned = False
                if self._hangup_task is not None:
                    self._hangup_task.cancel()
                    self._hangup_task = None
            return
        if self._hangup_task is not None:
            return
        warning_after = self.spec.idle_warning_after
        hangup_after = self.spec.idle_hangup_after
        if warning_after and not self._warned:
            self._warned = True
            with contextlib.suppress(RuntimeError):
                self.session.say(self.spec.idle_warning_message)
            if hangup_after:
                self._hangup_task = self._spawn(
                    self._hang_up_after(max(hangup_after - warning_after, 0.0))
                )
        elif hangup_after:
            self._hangup_task = self._spawn(self._hang_up_after(0.0))

    async def _hang_up_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        logger.info("call %s: the caller stayed silent, hanging up", self.state.call.call_id)
        await self.end_with(EndReason.INACTIVITY, None)

    def _on_item(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if not self._phrases or not isinstance(item, llm.ChatMessage) or item.role != "assistant":
            return
        text = re.sub(r"\s+", " ", (item.text_content or "").lower())
        if any(phrase in text for phrase in self._phrases):
            self.state.end(EndReason.AGENT_HANGUP)
            self.session.shutdown(drain=True)

    def _on_close(self, _: CloseEvent) -> None:
        for task in list(self._tasks):
            task.cancel()


# --------------------------------------------------------------------------------------------
# Recording: transcript, usage, latencies -> CallReport
# --------------------------------------------------------------------------------------------


class CallRecorder:
    """Collects a call's transcript, usage and per-turn latencies from session events."""

    def __init__(self, session: AgentSession, state: CallState) -> None:
        self.session = session
        self.state = state
        self.transcript: list[dict[str, Any]] = []
        # metrics land on messages after they are added, so latencies are read at report time
        self._messages: list[llm.ChatMessage] = []
        self.close_reason: CloseReason | None = None
        self.close_error: str | None = None
        self.closed = asyncio.Event()
        self.ended_at: float | None = None
        self._usage: Any = None
        # Where the framework's turn timing is missing (a turn it could not anchor), the
        # caller's own clock (a simulated caller knows when it stopped talking) fills it in.
        self._caller_stopped_at: float | None = None
        self._turn_clock: dict[str, tuple[float, float]] = {}  # user item id -> (stopped, added)
        session.on("conversation_item_added", self._on_item)
        session.on("function_tools_executed", self._on_tools)
        session.on("session_usage_updated", self._on_usage)
        session.on("close", self._on_close)

    # -- events ---------------------------------------------------------------------------

    def _on_item(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if not isinstance(item, llm.ChatMessage) or item.role not in ("user", "assistant"):
            return
        text = item.text_content or ""
        started = (item.metrics or {}).get("started_speaking_at") or item.created_at
        entry: dict[str, Any] = {"role": item.role, "text": text, "started_at": _iso(started)}
        if item.interrupted:
            entry["interrupted"] = True
        if self.state.call.agent.handoff_destinations:  # a call agents may pass on
            entry["agent_id"] = self.state.agent_id
        self.transcript.append(entry)
        self._messages.append(item)
        if item.role == "user" and self._caller_stopped_at is not None:
            self._turn_clock[item.id] = (self._caller_stopped_at, time.time())

    def caller_stopped_speaking(self, at: float) -> None:
        """The caller's own mark of the end of its speech (`time.time()`), for the next turn."""
        self._caller_stopped_at = at

    @property
    def latencies(self) -> list[dict[str, Any]]:
        """Per answered turn: end of utterance, LLM TTFT, TTS TTFB and end to end, in ms."""
        latencies = []
        turn = 0
        agent = self.state.call.agent
        for index, user in enumerate(self._messages):
            if user.role != "user":
                continue
            turn += 1
            replies = list(
                itertools.takewhile(lambda m: m.role != "user", self._messages[index + 1 :])
            )
            # the LLM's answer, not a filler line said while a tool ran; else what was said
            answer = next((m for m in replies if "llm_node_ttft" in (m.metrics or {})), None)
            answer = answer or next(
                (m for m in replies if "started_speaking_at" in (m.metrics or {})), None
            )
            if answer is None:
                continue
            user_metrics, metrics = user.metrics or {}, answer.metrics or {}
            end_of_turn, end_to_end = (
                user_metrics.get("end_of_turn_delay"),
                metrics.get("e2e_latency"),
            )
            if user.id in self._turn_clock:
                stopped, added = self._turn_clock[user.id]
                spoke = metrics.get("started_speaking_at")
                end_of_turn = end_of_turn if end_of_turn is not None else max(added - stopped, 0)
                if end_to_end is None and isinstance(spoke, int | float):
                    end_to_end = max(spoke - stopped, 0)
            latencies.append(
                {
                    "turn": turn,
                    "end_of_utterance_ms": _ms(end_of_turn),
                    "llm_ttft_ms": _ms(metrics.get("llm_node_ttft")),
                    "tts_ttfb_ms": _ms(metrics.get("tts_node_ttfb")),
                    "end_to_end_ms": _ms(end_to_end),
                    # who answered and spoke: a fallback, when the primary had failed
                    "llm_provider": served_by(agent, "llm", metrics.get("llm_metadata")),
                    "tts_provider": served_by(agent, "tts", metrics.get("tts_metadata")),
                }
            )
        return latencies

    def _on_tools(self, event: FunctionToolsExecutedEvent) -> None:
        for call, output in zip(event.function_calls, event.function_call_outputs, strict=False):
            try:
                arguments = json.loads(call.arguments or "{}")
            except ValueError:
                arguments = call.arguments
            self.transcript.append(
                {
                    "role": "tool_call",
                    "text": "",
                    "started_at": _iso(call.created_at),
                    "tool_name": call.name,
                    "arguments": arguments,
                }
            )
            if output is not None:
                self.transcript.append(
                    {
                        "role": "tool_result",
                        "text": "",
                        "started_at": _iso(output.created_at),
                        "tool_name": call.name,
                        "result": output.output,
                        "is_error": output.is_error,
                    }
                )

    def _on_usage(self, event: SessionUsageUpdatedEvent) -> None:
        self._usage = event.usage

    def _on_close(self, event: CloseEvent) -> None:
        self.close_reason = event.reason
        if event.error is not None:
            self.close_error = str(getattr(event.error, "error", event.error))
        self.ended_at = time.time()
        with contextlib.suppress(Exception):
            self._usage = self.session.usage
        self.closed.set()

    # -- report ---------------------------------------------------------------------------

    def usage(self) -> dict[str, int | float]:
        """LLM tokens, STT seconds and TTS characters so far."""
        totals: dict[str, int | float] = {
            "llm_prompt_tokens": 0,
            "llm_completion_tokens": 0,
            "stt_seconds": 0.0,
            "tts_characters": 0,
        }
        usage = self._usage
        if usage is None:
            with contextlib.suppress(Exception):
                usage = self.session.usage
        for model_usage in getattr(usage, "model_usage", None) or []:
            if isinstance(model_usage, LLMModelUsage):
                totals["llm_prompt_tokens"] += model_usage.input_tokens
                totals["llm_completion_tokens"] += model_usage.output_tokens
            elif isinstance(model_usage, STTModelUsage):
                totals["stt_seconds"] += model_usage.audio_duration
            elif isinstance(model_usage, TTSModelUsage):
                totals["tts_characters"] += model_usage.characters_count
        totals["stt_seconds"] = round(float(totals["stt_seconds"]), 3)
        return totals

    def end_reason(self) -> EndReason:
        """Why the call ended: what the call recorded, else what closed the session."""
        if self.state.end_reason is not None:
            return self.state.end_reason
        return {
            CloseReason.PARTICIPANT_DISCONNECTED: EndReason.USER_HANGUP,
            CloseReason.ERROR: EndReason.ERROR,
            CloseReason.USER_INITIATED: EndReason.AGENT_HANGUP,
            CloseReason.TASK_COMPLETED: EndReason.AGENT_HANGUP,
            CloseReason.JOB_SHUTDOWN: EndReason.ERROR,
            None: EndReason.ERROR,
        }[self.close_reason]

    def report(
        self,
        *,
        status: CallStatus | None = None,
        end_reason: EndReason | None = None,
        error: str | None = None,
        sip_status: int | None = None,
        recording_path: str | None = None,
    ) -> CallReport:
        """The call's report. Works at any point: after a crash it reports what it has."""
        reason = end_reason or self.end_reason()
        error = error or self.close_error
        if (
            error is None
            and self.close_reason == CloseReason.JOB_SHUTDOWN
            and (self.state.end_reason is None)
        ):
            error = "the worker shut down during the call"
        if status is None:
            status = CallStatus.FAILED if reason == EndReason.ERROR else CallStatus.COMPLETED
        return CallReport(
            call_id=self.state.call.call_id,
            status=status,
            end_reason=reason,
            started_at=_iso(self.state.started_at),
            answered_at=_iso(self.state.answered_at),
            ended_at=_iso(self.ended_at or time.time()),
            sip_status=sip_status,
            transcript=sorted(self.transcript, key=lambda entry: entry["started_at"] or ""),
            usage=self.usage(),
            latencies=self.latencies,
            recording_path=recording_path,
            error=error,
            transfers=[dict(transfer) for transfer in self.state.transfers],
            handoffs=[dict(handoff) for handoff in self.state.handoffs],
            final_agent_id=self.state.agent_id or None,
        )


def describe_call(call: CallSpec) -> str:
    """A log-safe one-line description of a call (numbers masked)."""
    return (
        f"call {call.call_id} ({call.direction}, agent {call.agent.agent_id}, "
        f"from {mask_phone(call.from_number) or '-'} to {mask_phone(call.to_number) or '-'})"
    )
