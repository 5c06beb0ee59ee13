"""Webhook endpoints, the deliveries of events to them and each delivery's attempts."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:  # relations name their models by string; these are for type hints
    from control.models.accounts import Workspace


class WebhookEndpoint(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.OneToOneRelation[Workspace] = fields.OneToOneField(
        "models.Workspace", related_name="webhook", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    url = fields.CharField(max_length=2048)
    secret_encrypted = fields.TextField()
    secret_hint = fields.CharField(max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "webhook_endpoints"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# One event to deliver (its id is the event id receivers de-duplicate on): the durable queue.


class WebhookDelivery(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="webhook_deliveries", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    event_type = fields.CharField(max_length=64)
    payload: fields.JSONField[Any] = fields.JSONField()
    url = fields.CharField(max_length=2048)
    status = fields.CharEnumField(DeliveryStatus, max_length=16, default=DeliveryStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    last_status_code = fields.IntField(null=True)
    last_error: str | None = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    delivered_at = fields.DatetimeField(null=True)
    # The call an event is about (its `data.call_id`), so a call lists the events it caused.
    call_id = fields.UUIDField(null=True)
    attempt_log: fields.ReverseRelation[WebhookAttempt]

    class Meta:
        table = "webhook_deliveries"
        indexes = (
            ("status", "next_attempt_at"),
            ("workspace_id", "created_at"),
            ("workspace_id", "call_id"),
        )


# Every attempt at a delivery, listable by the workspace's admins.


class WebhookAttempt(Model):
    id = fields.UUIDField(primary_key=True)
    delivery: fields.ForeignKeyRelation[WebhookDelivery] = fields.ForeignKeyField(
        "models.WebhookDelivery", related_name="attempt_log", on_delete=fields.CASCADE
    )
    delivery_id: uuid.UUID
    number = fields.IntField()
    attempted_at = fields.DatetimeField(auto_now_add=True)
    status_code = fields.IntField(null=True)
    error: str | None = fields.TextField(null=True)
    duration_ms = fields.FloatField()

    class Meta:
        table = "webhook_attempts"


# A phone number of a workspace and the LiveKit objects that route it (trunks, dispatch rule).
# Which agent answers it is the agent's `phone_number` (one source of truth for routing).
