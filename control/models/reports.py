"""Report rollups: the calls table summed per workspace, UTC hour and dimension, latency bins per
UTC hour and day and agent, and the hours whose calls changed since (`services.report_rollups`).

Hours and days are whole numbers since the Unix epoch (`hour = floor(epoch seconds / 3600)`), so
both databases compute and compare them the same way. A trigger on `calls` (migration 0020)
marks the hour of every inserted, changed or deleted call as stale, in the same transaction as
the change; readers take a stale hour from the calls table until the rollup job recomputes it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from control.models.accounts import Workspace


class ReportRollup(Model):
    """The calls of one workspace and UTC hour sharing every dimension: counts and exact sums."""

    id = fields.BigIntField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="report_rollups", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    hour = fields.BigIntField()
    # The dimensions, named as the calls' columns (reports group either table by one expression).
    agent_id = fields.UUIDField(null=True)
    agent_version = fields.IntField(null=True)
    call_type = fields.CharField(max_length=8)
    call_direction = fields.CharField(max_length=10)
    status = fields.CharField(max_length=16)
    end_reason = fields.CharField(max_length=32, null=True)
    disposition = fields.CharField(max_length=64, null=True)
    batch_id = fields.UUIDField(null=True)
    campaign = fields.CharField(max_length=100, null=True)
    campaign_id = fields.UUIDField(null=True)
    # Sums as integers (talk time in microseconds, cost in billionths), so any order of
    # addition gives the same total as the calls table's own aggregate.
    calls = fields.IntField()
    answered = fields.IntField()
    talked = fields.IntField()  # answered calls with a duration
    talk_micros = fields.BigIntField(null=True)
    costed = fields.IntField()
    cost_nanos = fields.BigIntField(null=True)

    class Meta:
        table = "report_rollups"
        indexes = (("workspace_id", "hour"),)


class ReportLatencyBin(Model):
    """How many latency figures of one kind fell into one DDSketch bin, per agent and UTC hour
    (`span` 1) or UTC day (`span` 24, starting at `hour`): days for the whole days of a range,
    hours for the hours at its ends."""

    id = fields.BigIntField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="report_latency_bins", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    span = fields.SmallIntField()
    hour = fields.BigIntField()
    agent_id = fields.UUIDField(null=True)
    agent_version = fields.IntField(null=True)
    kind = fields.CharField(max_length=16)  # first_response | turn
    bin = fields.IntField()
    count = fields.IntField()

    class Meta:
        table = "report_latency_bins"
        indexes = (("workspace_id", "span", "hour"),)


class ReportStaleHour(Model):
    """An hour of a workspace whose calls changed after its rollup was computed.

    No foreign key: the trigger writes it while a workspace's calls are deleted with it.
    """

    id = fields.BigIntField(primary_key=True)
    workspace_id = fields.UUIDField()
    hour = fields.BigIntField()

    class Meta:
        table = "report_stale_hours"
        unique_together = (("workspace_id", "hour"),)
