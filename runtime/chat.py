"""Text chats with an agent: the same brain as a call (prompt, tools, knowledge), text in and out.

The control plane keeps each chat session's history and calls `chat_turn` per message; the turn
runs on a room-less `AgentSession` with only the agent's LLM.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from livekit.agents import llm
from livekit.agents.voice.run_result import (
    ChatMessageEvent,
    FunctionCallEvent,
    FunctionCallOutputEvent,
    RunResult,
)

from runtime.agent import CallRecorder, CallState, VoxlineAgent, create_session
from runtime.providers import build_pipeline
from runtime.spec import AgentSpec, CallSpec
from runtime.tools import Retrieve

logger = logging.getLogger(__name__)


@dataclass
class ChatReply:
    """One chat turn's answer.

    Attributes:
        reply: what the agent answered (its messages of the turn, joined).
        tool_calls: `{name, arguments, result, is_error}` for each tool the turn ran.
        sources: knowledge passages looked up (`{file_name, position, page, score, text}`).
        messages: the turn's new history items (`{role, text}`), to append to the session.
        usage: `{llm_prompt_tokens, llm_completion_tokens}`.
        ended: whether the agent ended the conversation this turn.
        llm_ttft_ms: the LLM's time to first token this turn.
        heard: in a spoken conversation (`runtime.simulate.SpokenConversation`), what the
            agent's STT made of the caller's line.
        first_audio_ms: in a spoken conversation, end of the caller's speech → the reply's
            first audio.
    """

    reply: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    usage: dict[str, int | float] = field(default_factory=dict)
    #: the agent ended the conversation this turn (only when it may: `ChatConversation`)
    ended: bool = False
    #: the LLM's time to its first token this turn, when measured
    llm_ttft_ms: float | None = None
    heard: str | None = None
    first_audio_ms: float | None = None


def history_context(history: list[dict[str, Any]] | None) -> llm.ChatContext:
    """A chat context from stored `{role, text}` messages (user and assistant only)."""
    chat_ctx = llm.ChatContext.empty()
    for message in history or []:
        role, text = message.get("role"), message.get("text") or message.get("content")
        if role in ("user", "assistant") and text:
            chat_ctx.add_message(role=role, content=str(text))
    return chat_ctx


def conversation_call(
    agent: AgentSpec,
    *,
    session_id: str,
    workspace_id: str,
    variables: dict[str, str] | None = None,
    allow_private_urls: bool = False,
    function_mocks: dict[str, dict[str, Any]] | None = None,
) -> CallSpec:
    """The call spec of a conversation that no phone or room carries (a chat, an agent test):
    a web call whose id is the session's."""
    return CallSpec(
        call_id=session_id,
        workspace_id=workspace_id,
        direction="web",
        call_type="web",
        dynamic_variables=variables or {},
        agent=agent,
        allow_private_urls=allow_private_urls,
        function_mocks=function_mocks or {},
    )


class ChatConversation:
    """A room-less text session kept open across messages: the agent's brain, one turn at a time.

    Chats open one per message (with the stored history); agent tests keep one per conversation,
    with `function_mocks` answering custom functions without a request and, with `end_call`, the
    agent able to end the conversation (`ChatReply.ended`).

        async with ChatConversation(agent, session_id=..., workspace_id=...) as conversation:
            reply = await conversation.send("What are your opening hours?")

    Raises (on entering):
        UnknownProviderError, ModelProviderError, MissingExtraError: the agent's LLM cannot be
            built.
    """

    def __init__(
        self,
        agent: AgentSpec,
        *,
        session_id: str,
        workspace_id: str,
        history: list[dict[str, Any]] | None = None,
        variables: dict[str, str] | None = None,
        allow_private_urls: bool = False,
        retrieve: Retrieve | None = None,
        now: datetime | None = None,
        function_mocks: dict[str, dict[str, Any]] | None = None,
        end_call: bool = False,
    ) -> None:
        call = conversation_call(
            agent,
            session_id=session_id,
            workspace_id=workspace_id,
            variables=variables,
            allow_private_urls=allow_private_urls,
            function_mocks=function_mocks,
        )
        self.state = CallState(call=call)
        pipeline = build_pipeline(agent, audio=False, allow_private_urls=allow_private_urls)
        self.session = create_session(call, pipeline, self.state, user_away_timeout=None)
        self.recorder = CallRecorder(self.session, self.state)
        self.agent = VoxlineAgent(
            call,
            state=self.state,
            now=now,
            retrieve=retrieve,
            greet_on_enter=False,
            voice=False,
            end_call=end_call,
            chat_ctx=history_context(history),
        )

    async def __aenter__(self) -> ChatConversation:
        await self.session.start(self.agent)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.session.aclose()

    async def send(self, message: str) -> ChatReply:
        """The agent's answer to one message (its tool calls, sources and first-token time)."""
        sources_before = len(self.state.sources)
        result: RunResult[None] = await self.session.run(user_input=message)  # no output_type
        texts: list[str] = []
        calls: dict[str, dict[str, Any]] = {}
        ttft: float | None = None
        for event in result.events:
            if isinstance(event, ChatMessageEvent) and event.item.role == "assistant":
                if event.item.text_content:
                    texts.append(event.item.text_content)
                if ttft is None:
                    ttft = (event.item.metrics or {}).get("llm_node_ttft")
            elif isinstance(event, FunctionCallEvent):
                try:
                    arguments = json.loads(event.item.arguments or "{}")
                except ValueError:
                    arguments = event.item.arguments
                calls[event.item.call_id] = {"name": event.item.name, "arguments": arguments}
            elif isinstance(event, FunctionCallOutputEvent) and event.item.call_id in calls:
                calls[event.item.call_id].update(
                    result=event.item.output, is_error=event.item.is_error
                )
        reply = "\n".join(texts)
        usage = self.recorder.usage()
        return ChatReply(
            reply=reply,
            tool_calls=list(calls.values()),
            sources=list(self.state.sources[sources_before:]),
            messages=[{"role": "user", "text": message}, {"role": "assistant", "text": reply}],
            usage={
                "llm_prompt_tokens": usage["llm_prompt_tokens"],
                "llm_completion_tokens": usage["llm_completion_tokens"],
            },
            ended=self.state.end_reason is not None,
            llm_ttft_ms=None if ttft is None else round(ttft * 1000, 1),
        )


async def chat_turn(
    agent: AgentSpec,
    message: str,
    *,
    session_id: str,
    workspace_id: str,
    history: list[dict[str, Any]] | None = None,
    variables: dict[str, str] | None = None,
    allow_private_urls: bool = False,
    retrieve: Retrieve | None = None,
    now: datetime | None = None,
) -> ChatReply:
    """Answer one chat message with the agent, given the session's history so far.

    Raises:
        UnknownProviderError, ModelProviderError, MissingExtraError: the agent's LLM cannot be
            built.
    """
    conversation = ChatConversation(
        agent,
        session_id=session_id,
        workspace_id=workspace_id,
        history=history,
        variables=variables,
        allow_private_urls=allow_private_urls,
        retrieve=retrieve,
        now=now,
    )
    async with conversation:
        return await conversation.send(message)
