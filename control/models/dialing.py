"""What the dialers work through: batches and their items, campaigns, prospects, do-not-call."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from control.models.calls import KeptAnswer

if TYPE_CHECKING:  # relations name their models by string; these are for type hints
    from control.models.accounts import Workspace
    from control.models.agents import Agent


class BatchStatus(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ItemStatus(StrEnum):
    PENDING = "pending"
    CALLING = "calling"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"
    CANCELLED = "cancelled"


# A batch of outbound calls from an uploaded CSV: its schedule, pace, window and retry policy.


class Batch(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="batches", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    agent: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="batches", null=True, on_delete=fields.SET_NULL
    )
    agent_id: uuid.UUID | None
    name = fields.CharField(max_length=200)
    agent_phone_number = fields.CharField(max_length=20)
    status = fields.CharEnumField(BatchStatus, max_length=16, default=BatchStatus.SCHEDULED)
    scheduled_time = fields.DatetimeField(null=True)
    timezone = fields.CharField(max_length=64, default="UTC")
    earliest_time = fields.CharField(max_length=5, null=True)  # HH:MM in `timezone`
    latest_time = fields.CharField(max_length=5, null=True)
    calls_per_minute = fields.IntField(default=60)
    max_attempts = fields.IntField(default=1)
    retry_delay_minutes = fields.IntField(default=30)
    retry_on: fields.JSONField[list[Any]] = fields.JSONField(
        default=list
    )  # outcomes that retry: busy, no_answer, failed
    total_items = fields.IntField(default=0)
    rejected_count = fields.IntField(default=0)
    rejects: fields.JSONField[list[Any]] = fields.JSONField(
        default=list
    )  # the first rejected rows: line and reason
    # Pacing: no dial before this time; each dial pushes it on by 60 / calls_per_minute seconds.
    next_dial_at = fields.DatetimeField(null=True)
    progress_seq = fields.IntField(default=0)
    progress_sent_at = fields.DatetimeField(null=True)
    progress_digest = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "batches"
        indexes = (("workspace_id", "created_at"), ("status",))


# One row of a batch: the number to call, its variables, and each attempt's call.


class BatchItem(Model):
    id = fields.UUIDField(primary_key=True)
    batch: fields.ForeignKeyRelation[Batch] = fields.ForeignKeyField(
        "models.Batch", related_name="items", on_delete=fields.CASCADE
    )
    batch_id: uuid.UUID
    workspace_id = fields.UUIDField()
    line = fields.IntField()  # its line in the uploaded file (the header is line 1)
    phone_number = fields.CharField(max_length=20)
    variables: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    status = fields.CharEnumField(ItemStatus, max_length=16, default=ItemStatus.PENDING)
    attempts = fields.IntField(default=0)
    # When a pending or retrying item is due; for a calling item being dialed, when its claim
    # runs out (null once its call is dispatched).
    next_attempt_at = fields.DatetimeField(null=True)
    call_id = fields.UUIDField(null=True)  # the current (or last) attempt's call
    outcome = fields.CharField(max_length=16, null=True)
    error: str | None = fields.TextField(null=True)
    attempt_log: fields.JSONField[list[Any]] = fields.JSONField(
        default=list
    )  # [{attempt, call_id, room_name, outcome, ...}]
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "batch_items"
        indexes = (
            ("batch_id", "status", "next_attempt_at"),
            ("batch_id", "line"),
            ("batch_id", "phone_number"),  # duplicates within an upload
            ("call_id",),
        )


# The dialers' own attempt keys (`batch-item:<item>:<attempt>`, `campaign-prospect:<id>:<n>`):
# a key space apart from the clients' `Idempotency-Key`s, which cannot reach it.


class DialerAttemptKey(KeptAnswer):
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="dialer_attempt_keys", on_delete=fields.CASCADE
    )

    class Meta:
        table = "dialer_attempt_keys"
        unique_together = (("workspace", "key"),)
        indexes = (("created_at",),)  # pruned a day after (idempotency.prune_expired)


class Locale(StrEnum):
    """Where a campaign's prospects are: the country code numbers without a `+` are read in."""

    USCA = "USCA"
    IN = "IN"
    UK = "UK"


# A campaign: a long-running, paced dialer over prospect lists, with its rules and dispositions.


class Campaign(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="campaigns", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    agent: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="campaigns", null=True, on_delete=fields.SET_NULL
    )
    agent_id: uuid.UUID | None
    created_by_id = fields.UUIDField(null=True)
    created_by_email = fields.CharField(max_length=320, null=True)
    name = fields.CharField(max_length=200)
    # Unique platform-wide: the public `status/` route finds a campaign by its slug alone.
    slug = fields.CharField(max_length=80, unique=True)
    locale_name = fields.CharEnumField(Locale, max_length=8, default=Locale.USCA)
    active = fields.BooleanField(default=True)
    # Whether anyone may read the aggregate `status/` counts; else only the workspace's members.
    public_status = fields.BooleanField(default=False, db_default=False)
    agent_phone_number = fields.CharField(max_length=20)
    call_ratio = fields.FloatField(default=1.0)
    dialer_interval = fields.IntField(default=10)  # seconds between ticks, 2..15
    max_active_calls = fields.IntField(default=0)  # 0: only the platform's capacity
    max_number_calls = fields.IntField(default=10)
    min_time_between_calls = fields.IntField(default=30)  # minutes
    dupe_days = fields.IntField(default=90)  # -1: off
    expire_days = fields.IntField(default=90)
    earliest_prospect_time = fields.CharField(max_length=5, default="09:00")  # prospect's zone
    latest_prospect_time = fields.CharField(max_length=5, default="21:00")
    dispositions: fields.JSONField[list[Any]] = fields.JSONField(
        default=list
    )  # [{name, description, callback, dnc}]
    next_dial_at = fields.DatetimeField(null=True)  # the dialer's tick compare-and-set
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "campaigns"
        unique_together = (("workspace", "name"),)
        indexes = (("workspace_id", "created_at"),)


class ProspectUploadStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


# A prospect list: one uploaded CSV (or the home of prospects added one by one), with its priority.


class ProspectUpload(Model):
    id = fields.UUIDField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", related_name="uploads", on_delete=fields.CASCADE
    )
    campaign_id: uuid.UUID
    workspace_id = fields.UUIDField()
    list_name = fields.CharField(max_length=200)
    priority = fields.IntField(default=0)  # higher dials first
    status = fields.CharEnumField(
        ProspectUploadStatus, max_length=16, default=ProspectUploadStatus.PENDING
    )
    file_path = fields.CharField(max_length=1024, null=True)  # the kept CSV, for a retry
    attempts = fields.IntField(default=0)
    total_rows = fields.IntField(default=0)
    added_count = fields.IntField(default=0)
    rejected_count = fields.IntField(default=0)
    rejects: fields.JSONField[list[Any]] = fields.JSONField(
        default=list
    )  # the first rejected rows: line and reason
    error: str | None = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "prospect_uploads"
        indexes = (("campaign_id", "created_at"),)


class ProspectStatus(StrEnum):
    PENDING = "pending"
    CALLING = "calling"
    RETRYING = "retrying"
    CALLBACK = "callback"
    COMPLETED = "completed"
    FAILED = "failed"
    DNC = "dnc"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# One person a campaign may call: their number, zones, variables, and every attempt.


class Prospect(Model):
    id = fields.UUIDField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", related_name="prospects", on_delete=fields.CASCADE
    )
    campaign_id: uuid.UUID
    upload: fields.ForeignKeyNullableRelation[ProspectUpload] = fields.ForeignKeyField(
        "models.ProspectUpload", related_name="prospects", null=True, on_delete=fields.CASCADE
    )
    upload_id: uuid.UUID | None
    workspace_id = fields.UUIDField()
    line = fields.IntField(null=True)  # its row in the upload (the header is line 1)
    phone_number = fields.CharField(max_length=20)
    name = fields.CharField(max_length=200, null=True)
    timezones: fields.JSONField[list[Any]] = fields.JSONField(
        default=list
    )  # IANA zones: the given one, else the number's
    variables: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    priority = fields.IntField(default=0)  # copied from its list
    status = fields.CharEnumField(ProspectStatus, max_length=16, default=ProspectStatus.PENDING)
    attempts = fields.IntField(default=0)
    # When the dialer may look at it again; while `calling`, the claim's lease (as BatchItem).
    next_attempt_at = fields.DatetimeField(null=True)
    call_id = fields.UUIDField(null=True)
    outcome = fields.CharField(max_length=16, null=True)
    disposition = fields.CharField(max_length=64, null=True)
    error: str | None = fields.TextField(null=True)
    attempt_log: fields.JSONField[list[Any]] = fields.JSONField(
        default=list
    )  # [{attempt, call_id, started_at, outcome, ...}]
    skip_reason = fields.CharField(max_length=64, null=True)  # why it was not dialed last time
    last_called_at = fields.DatetimeField(null=True)
    callback_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "prospects"
        unique_together = (("upload", "line"),)
        # The dialer's due-prospect index, (campaign_id, status, priority DESC, next_attempt_at),
        # is created by migration 0011 in SQL: tortoise's indexes are ascending only, and the
        # dialer reads "higher priority first, then the longest waiting" in index order.
        indexes = (
            ("workspace_id", "phone_number"),
            ("call_id",),
        )


class DncSource(StrEnum):
    API = "api"
    DISPOSITION = "disposition"
    WEBHOOK = "webhook"


# A number a workspace must never call (checked by the dialer before every dial).


class DncNumber(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="dnc_numbers", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    phone_number = fields.CharField(max_length=20)
    reason = fields.CharField(max_length=200, null=True)
    source = fields.CharEnumField(DncSource, max_length=16, default=DncSource.API)
    created_by_email = fields.CharField(max_length=320, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "dnc_numbers"
        unique_together = (("workspace", "phone_number"),)
