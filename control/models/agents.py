"""Agents, their knowledge files and their chat history."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:  # relations name their models by string; these are for type hints
    from control.models.accounts import Workspace


class Agent(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="agents", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    agent_name = fields.CharField(max_length=200)
    phone_number = fields.CharField(max_length=20, null=True, unique=True)
    config: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # Version settings (`services.agent_versions`): the agent's, not any version's.
    auto_publish = fields.BooleanField(default=True, db_default=True)
    require_passing_tests = fields.BooleanField(default=False, db_default=False)
    # [{"version": n, "weight": w}, ...] (weights sum to 100), or null: the published one only
    traffic_split: fields.JSONField[list[dict[str, int]] | None] = fields.JSONField(null=True)
    published_version = fields.IntField(null=True)
    latest_version = fields.IntField(null=True)  # null: saved before versions existed
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "agents"
        indexes = (("workspace_id", "created_at"),)


class AgentVersion(Model):
    """An immutable snapshot of what an agent's calls do: its versioned settings as stored
    (secrets encrypted), numbered 1, 2, 3 ... per agent."""

    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="agent_versions", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    agent: fields.ForeignKeyRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="versions", on_delete=fields.CASCADE
    )
    agent_id: uuid.UUID
    number = fields.IntField()
    config: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    version_note: str | None = fields.TextField(null=True)
    created_by = fields.CharField(max_length=255, null=True)  # who saved it, as a label
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "agent_versions"
        unique_together = (("agent", "number"),)


class FileStatus(StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


# An uploaded knowledge file; its bytes sit in the data dir under the row's id.


class KnowledgeFile(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="knowledge_files", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    agent: fields.ForeignKeyRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="files", on_delete=fields.CASCADE
    )
    agent_id: uuid.UUID
    filename = fields.CharField(max_length=255)
    kind = fields.CharField(max_length=8)
    size_bytes = fields.BigIntField()
    status = fields.CharEnumField(FileStatus, max_length=16, default=FileStatus.PROCESSING)
    error: str | None = fields.TextField(null=True)
    chunk_count = fields.IntField(default=0)
    page_count = fields.IntField(null=True)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "knowledge_files"
        unique_together = (("agent", "filename"),)


# A call log: one phone or web call of an agent, from queueing to post-call analysis.


class ChatMessage(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="chat_messages", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    agent: fields.ForeignKeyRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="chat_messages", on_delete=fields.CASCADE
    )
    agent_id: uuid.UUID
    session_id = fields.CharField(max_length=64)
    role = fields.CharField(max_length=16)
    text = fields.TextField()
    tool_calls: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    sources: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    usage: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "chat_messages"
        indexes = (
            ("workspace_id", "agent_id", "session_id", "created_at"),
            ("workspace_id", "created_at"),
        )
