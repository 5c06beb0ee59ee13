"""`/chats`: text conversations with an agent (same prompt, tools and knowledge as its calls)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, current_app
from quart_schema import validate_querystring, validate_request, validate_response

from control.http.pagination import Page, PageQuery, paginate
from control.http.principal import current_principal, require_role
from control.http.schemas import IsoTime
from control.models import ChatMessage, Role
from control.services import chats as chat_service

blueprint = Blueprint("chats", __name__, url_prefix="/chats")

SessionId = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: uuid.UUID
    message: str = Field(min_length=1, max_length=4000)
    session_id: str | None = SessionId
    dynamic_variables: dict[str, str] = Field(default_factory=dict, max_length=50)
    version: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="the agent version to chat with (latest)"
    )


class ChatListQuery(PageQuery):
    agent_id: uuid.UUID | None = None
    session_id: str | None = SessionId


class ChatOut(BaseModel):
    session_id: str
    reply: str
    agent_version: int | None = Field(description="the agent version that answered")
    tool_calls: Any
    sources: Any


class ChatMessageOut(BaseModel):
    id: str
    session_id: str
    agent_id: str
    role: str
    text: str
    tool_calls: Any
    sources: Any
    created_at: IsoTime


def message_out(message: ChatMessage) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "session_id": message.session_id,
        "agent_id": str(message.agent_id),
        "role": message.role,
        "text": message.text,
        "tool_calls": message.tool_calls,
        "sources": message.sources,
        "created_at": message.created_at.isoformat(),
    }


@blueprint.post("")
@require_role(Role.MEMBER)
@validate_request(ChatIn)
@validate_response(ChatOut)
async def send_chat_message(data: ChatIn) -> dict:
    """Send a message to an agent and get its reply.

    Pass the returned `session_id` back to continue the conversation.
    """
    session_id, reply, version = await chat_service.send(
        current_app.config["SETTINGS"],
        current_principal().workspace_id,
        data.agent_id,
        data.message,
        data.session_id,
        data.dynamic_variables,
        version=data.version,
    )
    return {
        "session_id": session_id,
        "reply": reply.reply,
        "agent_version": version,
        "tool_calls": reply.tool_calls,
        "sources": reply.sources,
    }


@blueprint.get("")
@require_role(Role.MEMBER)
@validate_querystring(ChatListQuery)
@validate_response(Page[ChatMessageOut])
async def list_chats(query_args: ChatListQuery) -> dict:
    """List chat messages, newest first.

    Filter by `agent_id` and `session_id`.
    """
    messages = chat_service.messages_of(
        current_principal().workspace_id, query_args.agent_id, query_args.session_id
    )
    return (await paginate(messages, query_args, message_out)).model_dump(mode="json")
