"""The durable background-job queue's rows."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


# A unit of background work (ingestion, analysis, the reaper, dialer ticks): the durable queue.


class Job(Model):
    id = fields.UUIDField(primary_key=True)
    kind = fields.CharField(max_length=64)
    # At most one job per key, ever: what makes enqueueing idempotent across replicas.
    key = fields.CharField(max_length=255, unique=True, null=True)
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    status = fields.CharEnumField(JobStatus, max_length=16, default=JobStatus.PENDING)
    attempts = fields.IntField(default=0)
    max_attempts = fields.IntField(default=5)
    # When a pending job is due; for a running job, when its lease runs out.
    run_at = fields.DatetimeField()
    last_error: str | None = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "jobs"
        indexes = (("status", "run_at"),)


# The first answer to a request sent with an `Idempotency-Key`, kept 24 hours.
