"""Text chats with agents: history per session, and the runtime's agent brain for each turn."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tortoise.queryset import QuerySet

from control.config import Settings
from control.errors import NotFound, Unavailable
from control.models import ChatMessage
from control.services import agent_versions
from control.services import agents as agent_service
from control.services.calls import agent_spec

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 40


def messages_of(
    workspace_id: uuid.UUID, agent_id: uuid.UUID | None, session_id: str | None
) -> QuerySet[ChatMessage]:
    query = ChatMessage.filter(workspace_id=workspace_id)
    if agent_id is not None:
        query = query.filter(agent_id=agent_id)
    if session_id is not None:
        query = query.filter(session_id=session_id)
    return query.order_by("-created_at", "-id")


async def _history(workspace_id: uuid.UUID, agent_id: uuid.UUID, session_id: str) -> list[dict]:
    recent = await messages_of(workspace_id, agent_id, session_id).limit(HISTORY_LIMIT)
    return [{"role": message.role, "text": message.text} for message in reversed(recent)]


@asynccontextmanager
async def conversation(
    settings: Settings, *, spoken: bool = False, **kwargs: Any
) -> AsyncIterator[Any]:
    """A `runtime.chat.ChatConversation` (its keyword arguments), open for the block; with
    `spoken`, a `runtime.simulate.SpokenConversation`: the same brain behind the agent's real
    STT and TTS, the caller's lines spoken by the offline voice (agent tests' voice mode).

    Raises:
        Unavailable: the runtime or one of the agent's providers is not installed or configured.
    """
    # The chat brain is the runtime's (DESIGN.md flow 7); imported here, on first use, so the
    # control plane starts without loading livekit-agents.
    try:
        from runtime.chat import ChatConversation
        from runtime.providers import MissingExtraError, ModelProviderError
        from runtime.simulate import SpokenConversation
    except ImportError as error:
        raise Unavailable("RUNTIME_NOT_INSTALLED", f"Chats need the runtime: {error}") from error
    opening = SpokenConversation if spoken else ChatConversation
    try:
        async with opening(allow_private_urls=settings.allow_private_urls, **kwargs) as opened:
            yield opened
    except MissingExtraError as error:
        raise Unavailable("PROVIDER_NOT_INSTALLED", str(error)) from error
    except ModelProviderError as error:
        raise Unavailable("PROVIDER_NOT_CONFIGURED", str(error)) from error


async def run_turn(settings: Settings, message: str, **kwargs: Any):
    """One message through a new conversation (`conversation`'s arguments); its reply."""
    async with conversation(settings, **kwargs) as opened:
        return await opened.send(message)


async def send(
    settings: Settings,
    workspace_id: uuid.UUID,
    agent_id: uuid.UUID,
    message: str,
    session_id: str | None,
    variables: dict[str, str],
    *,
    version: int | None = None,
) -> tuple[str, Any, int | None]:
    """Run one chat turn and keep both messages in the session's history; the session id, the
    reply, and the agent version that gave it (`version`, or the latest by default)."""
    agent = await agent_service.get_agent(workspace_id, agent_id)
    chosen = await agent_versions.chosen(agent, version)
    session_id = session_id or uuid.uuid4().hex
    history = await _history(workspace_id, agent.id, session_id)
    spec = await agent_spec(settings, agent, chosen)
    reply = await run_turn(
        settings,
        agent=spec,
        message=message,
        session_id=session_id,
        workspace_id=str(workspace_id),
        history=history,
        variables=variables,
    )
    await ChatMessage.create(
        workspace_id=workspace_id,
        agent_id=agent.id,
        session_id=session_id,
        role="user",
        text=message,
    )
    await ChatMessage.create(
        workspace_id=workspace_id,
        agent_id=agent.id,
        session_id=session_id,
        role="assistant",
        text=reply.reply,
        tool_calls=reply.tool_calls,
        sources=reply.sources,
        usage=reply.usage,
    )
    return session_id, reply, spec.agent_version


async def try_function(
    settings: Settings,
    workspace_id: uuid.UUID,
    agent_id: uuid.UUID,
    name: str,
    arguments: dict[str, Any],
) -> dict[str, Any]:
    """Call one of the agent's custom functions once, as a call would (same SSRF checks, same
    secrets), and say what the LLM would have seen: the trimmed answer, or the error."""
    from runtime.tools import ToolError, call_custom_function  # the runtime's, on first use

    agent = await agent_service.get_agent(workspace_id, agent_id)
    spec = await agent_spec(settings, agent)
    function = next((f for f in spec.custom_functions if f.name == name), None)
    if function is None:
        raise NotFound("FUNCTION_NOT_FOUND", f"The agent has no custom function {name!r}.")
    started = time.perf_counter()
    try:
        answer = await call_custom_function(function, arguments, settings.allow_private_urls)
    except ToolError as error:
        outcome = {"ok": False, "response": None, "error": str(error)}
    else:
        outcome = {"ok": True, "response": answer, "error": None}
    return {**outcome, "elapsed_ms": round((time.perf_counter() - started) * 1000, 1)}
