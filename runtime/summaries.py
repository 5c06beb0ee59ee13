"""Short summaries of a call so far, written by the agent's LLM: a warm transfer's briefing for
the human who takes the call, and the context an agent hands on with `carry: "summary"`."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from livekit.agents import AgentSession, llm

logger = logging.getLogger(__name__)

#: The summary request's user message opens with this (a scripted LLM matches on it).
SUMMARY_PROMPT = "Conversation so far:"
SUMMARY_SECONDS = 15.0
SUMMARY_SYSTEM = (
    "You summarise a phone conversation between a caller and an assistant in two or three "
    "short, plain sentences: who the caller is, what they want, and what has been done. No "
    "markdown, no lists."
)


def conversation_text(chat_ctx: llm.ChatContext, *, max_items: int = 60) -> str:
    """The spoken turns of a chat context as `Caller: ...` / `Assistant: ...` lines."""
    lines = []
    for item in chat_ctx.items[-max_items:]:
        if isinstance(item, llm.ChatMessage) and item.role in ("user", "assistant"):
            text = (item.text_content or "").strip()
            if text:
                lines.append(f"{'Caller' if item.role == 'user' else 'Assistant'}: {text}")
    return "\n".join(lines)


async def summarise(
    model: llm.LLM | None,
    chat_ctx: llm.ChatContext,
    *,
    instructions: str = "",
) -> str:
    """A few sentences on the conversation so far, written by `model`.

    Never raises: without a model, or when it fails or takes too long, the last turns as they
    were said stand in for the summary.
    """
    transcript = conversation_text(chat_ctx)
    fallback = "\n".join(transcript.splitlines()[-4:])
    if model is None or not transcript:
        return fallback
    system = SUMMARY_SYSTEM + (f"\n{instructions.strip()}" if instructions.strip() else "")
    request = llm.ChatContext.empty()
    request.add_message(role="system", content=system)
    request.add_message(role="user", content=f"{SUMMARY_PROMPT}\n{transcript}\n\nSummarise it.")

    async def collect() -> str:
        parts = []
        async with model.chat(chat_ctx=request) as stream:
            async for chunk in stream:
                if chunk.delta and chunk.delta.content:
                    parts.append(chunk.delta.content)
        return "".join(parts).strip()

    try:
        return await asyncio.wait_for(collect(), SUMMARY_SECONDS) or fallback
    except Exception as error:  # the LLM is down or slow: the last turns will do
        logger.warning("no summary from the LLM: %s", error)
        return fallback


def current_llm(session: AgentSession) -> llm.LLM | None:
    """The LLM the session's current agent talks with (its own, else the session's)."""
    with contextlib.suppress(RuntimeError):
        own = session.current_agent.llm
        if isinstance(own, llm.LLM):
            return own
    return session.llm if isinstance(session.llm, llm.LLM) else None
