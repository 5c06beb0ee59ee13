import functools
from json import dumps, loads
from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0002_agents")]

    initial = False

    operations = [
        ops.CreateModel(
            name="Call",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                (
                    "workspace",
                    fields.ForeignKeyField(
                        "models.Workspace",
                        source_field="workspace_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="calls",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "agent",
                    fields.ForeignKeyField(
                        "models.Agent",
                        source_field="agent_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="calls",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("call_type", fields.CharField(max_length=8)),
                ("call_direction", fields.CharField(max_length=10)),
                ("from_number", fields.CharField(null=True, max_length=64)),
                ("to_number", fields.CharField(null=True, max_length=64)),
                ("status", fields.CharField(default="queued", max_length=16)),
                ("end_reason", fields.CharField(null=True, max_length=32)),
                ("sip_status", fields.IntField(null=True)),
                ("room_name", fields.CharField(null=True, max_length=128)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("started_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "answered_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("ended_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("duration_seconds", fields.FloatField(null=True)),
                (
                    "transcript",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "usage",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "latencies",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("recording_url", fields.CharField(null=True, max_length=1024)),
                ("summary", fields.TextField(null=True, unique=False)),
                ("disposition", fields.CharField(null=True, max_length=64)),
                ("sentiment", fields.CharField(null=True, max_length=16)),
                (
                    "extracted_data",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "dynamic_variables",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("batch_id", fields.UUIDField(null=True)),
                ("campaign", fields.CharField(null=True, max_length=100)),
                ("error", fields.TextField(null=True, unique=False)),
            ],
            options={
                "table": "calls",
                "app": "models",
                "indexes": [
                    Index(fields=["workspace_id", "created_at"]),
                    Index(fields=["workspace_id", "agent_id", "created_at"]),
                    Index(fields=["workspace_id", "disposition", "created_at"]),
                    Index(fields=["workspace_id", "batch_id", "created_at"]),
                ],
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
    ]
