"""Chat messages in the shape small local chat templates expect (no llama.cpp import here)."""

from __future__ import annotations

import re

from livekit.agents.llm import ChatContext

#: A spoken reply's length; left alone, small models ramble and repeat themselves.
MAX_SENTENCES = 2
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)|(?<![.!?\"')\]])\n\s*\n")


def cut_after_sentences(text: str, limit: int | None) -> int | None:
    """Where `text` should end to keep `limit` sentences, or None to keep all of it so far."""
    if not limit or text.lstrip().startswith("{"):
        return None
    ends = list(_SENTENCE_END.finditer(text))
    if len(ends) < limit:
        return None
    end = ends[limit - 1]
    return end.end() if end.group(0)[0] in ".!?" else end.start()


def to_llama_messages(chat_ctx: ChatContext) -> list[dict[str, str]]:
    """Plain system/user/assistant messages for a chat template.

    The system messages before the conversation become one system message. A system note
    later on (the knowledge put into a turn, a tool result) goes at the head of the next user
    message: small models read it there, and templates such as Gemma's take only one system
    message and strictly alternating turns.
    """
    messages: list[dict[str, str]] = []
    system: list[str] = []
    notes: list[str] = []
    for item in chat_ctx.items:
        if item.type == "message":
            text = (item.text_content or "").strip()
            if not text:
                continue
            if item.role in ("system", "developer"):
                (notes if messages else system).append(text)
            elif item.role == "user":
                messages.append({"role": "user", "content": "\n\n".join([*notes, text])})
                notes = []
            else:
                messages.append({"role": "assistant", "content": text})
        elif item.type == "function_call_output":
            notes.append(f"Result of {item.name}: {item.output}")
    if notes:
        messages.append({"role": "user", "content": "\n\n".join(notes)})
    if system:
        messages.insert(0, {"role": "system", "content": "\n\n".join(system)})
    return messages
