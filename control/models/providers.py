"""A workspace's credentials for a model provider (encrypted at rest)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:  # relations name their models by string; these are for type hints
    from control.models.accounts import Workspace


class WorkspaceProvider(Model):
    """One vendor's key (and region or endpoint) for one workspace; the catalogue names the
    vendors (`runtime.spec.credential_providers`)."""

    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="providers", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    provider = fields.CharField(max_length=40)
    api_key_encrypted: str | None = fields.TextField(null=True)
    region = fields.CharField(max_length=64, null=True)
    base_url = fields.CharField(max_length=2048, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "workspace_providers"
        unique_together = (("workspace", "provider"),)
