"""Calls, the phone numbers they use, and idempotent call requests."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:  # relations name their models by string; these are for type hints
    from control.models.accounts import Workspace
    from control.models.agents import Agent


class Call(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="calls", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    agent: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="calls", null=True, on_delete=fields.SET_NULL
    )
    agent_id: uuid.UUID | None
    agent_version = fields.IntField(null=True)  # the agent version the call ran
    call_type = fields.CharField(max_length=8)
    call_direction = fields.CharField(max_length=10)
    from_number = fields.CharField(max_length=64, null=True)
    to_number = fields.CharField(max_length=64, null=True)
    status = fields.CharField(max_length=16, default="queued")
    end_reason = fields.CharField(max_length=32, null=True)
    sip_status = fields.IntField(null=True)
    room_name = fields.CharField(max_length=128, null=True, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    started_at = fields.DatetimeField(null=True)
    answered_at = fields.DatetimeField(null=True)
    ended_at = fields.DatetimeField(null=True)
    duration_seconds = fields.FloatField(null=True)
    transcript: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    usage: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    latencies: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    # Each transfer attempt: destination name, destination (masked), when, and its outcome.
    transfers: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    # Each hand-off between agents: from and to agent ids, the destination's name, when, why.
    handoffs: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    # The agent speaking when the call ended (`agent_id` answered); null until it is reported.
    final_agent_id = fields.UUIDField(null=True)
    recording_url = fields.CharField(max_length=1024, null=True)
    # Where the recording is in the recordings store (`services.recordings`); its extension
    # says its format. Never from the client: made from the call's workspace and id.
    recording_key = fields.CharField(max_length=255, null=True)
    summary: str | None = fields.TextField(null=True)
    disposition = fields.CharField(max_length=64, null=True)
    sentiment = fields.CharField(max_length=16, null=True)
    extracted_data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    dynamic_variables: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    batch_id = fields.UUIDField(null=True)
    campaign = fields.CharField(max_length=100, null=True)  # a label; the dialer writes the slug
    campaign_id = fields.UUIDField(null=True)
    error: str | None = fields.TextField(null=True)
    # Liveness, for the reaper: when a worker took the call, when it last said the call was
    # alive, and when the call must be over whatever happens (max duration plus a grace).
    joined_at = fields.DatetimeField(null=True)
    heartbeat_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(null=True)

    class Meta:
        table = "calls"
        indexes = (
            ("workspace_id", "created_at"),
            ("workspace_id", "agent_id", "created_at"),
            ("workspace_id", "disposition", "created_at"),
            ("workspace_id", "batch_id", "created_at"),
            ("workspace_id", "campaign_id", "created_at"),
            ("workspace_id", "call_type", "created_at"),
            ("workspace_id", "call_direction", "created_at"),
            ("status", "created_at"),  # the reaper's scan of live calls
        )


# A workspace's customer webhook: where events go, and the secret that signs them.


class PhoneNumber(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="phone_numbers", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    phone_number = fields.CharField(max_length=20, unique=True)
    source = fields.CharField(max_length=16)  # purchased | sip_trunk
    provider = fields.CharField(max_length=32)
    provider_id = fields.CharField(max_length=128, null=True)
    label = fields.CharField(max_length=200, null=True)
    email = fields.CharField(max_length=320, null=True)
    sip_address = fields.CharField(max_length=255, null=True)
    auth_username = fields.CharField(max_length=255, null=True)
    auth_password_encrypted: str | None = fields.TextField(null=True)
    krisp_enabled = fields.BooleanField(default=False)
    inbound_trunk_id = fields.CharField(max_length=64)
    outbound_trunk_id = fields.CharField(max_length=64, null=True)
    dispatch_rule_id = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "phone_numbers"


# The first answer to a request sent with a key, kept 24 hours: one table per key space, so the
# keys of one (a client's `Idempotency-Key`) can never name a request of another (a dialer's).


class KeptAnswer(Model):
    id = fields.UUIDField(primary_key=True)
    workspace_id: uuid.UUID  # each key space's table has its workspace foreign key
    key = fields.CharField(max_length=255)
    fingerprint = fields.CharField(max_length=64)
    response: fields.JSONField[Any] = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        abstract = True


# Clients' keys: the `Idempotency-Key` header of `POST /calls/outbound_call`.


class IdempotencyKey(KeptAnswer):
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="idempotency_keys", on_delete=fields.CASCADE
    )

    class Meta:
        table = "idempotency_keys"
        unique_together = (("workspace", "key"),)
        indexes = (("created_at",),)  # pruned a day after (idempotency.prune_expired)
