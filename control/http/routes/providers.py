"""`/providers` and `/workspaces/{id}/providers`: the model-provider catalogue, and a
workspace's credentials for each vendor (write-only, masked)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field, field_validator
from quart import Blueprint, current_app
from quart_schema import validate_request, validate_response

from control.http.principal import current_principal, require_role, require_user
from control.http.schemas import IsoTime
from control.models import Role
from control.services import providers as provider_service

blueprint = Blueprint("providers", __name__)


class ModelProviderSettingOut(BaseModel):
    name: str
    type: str = Field(description="number, integer, boolean or choice")
    description: str
    minimum: float | None
    maximum: float | None
    choices: list[str]


class ModelProviderOut(BaseModel):
    name: str = Field(description="What an agent's `<KIND>_provider` names")
    label: str
    models: list[str] = Field(description="Known models; the first is the default")
    voices: list[str] = Field(description="Known voices (TTS); the first is the default")
    languages: list[str] = Field(description="Languages it speaks or hears; empty: any")
    settings: list[ModelProviderSettingOut] = Field(description="What `<KIND>_settings` may tune")
    calls_tools: bool
    extra: str | None = Field(description="The package extra that installs it (voxline[extra])")
    installed: bool = Field(description="Its plugin is installed here; else saving refuses it")
    install: str | None = Field(description="How to install it when it is not")
    takes_credentials: bool = Field(description="PUT /workspaces/{id}/providers/{name} applies")
    accepts_base_url: bool
    open_models: bool = Field(description="Any model name is accepted")
    configured: bool = Field(description="The workspace or the platform has its credentials")


class ModelProviderCatalogueOut(BaseModel):
    llm: list[ModelProviderOut]
    stt: list[ModelProviderOut]
    tts: list[ModelProviderOut]


class ModelProviderCredentialsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="The vendor's key; sending back the masked value keeps the stored one",
    )
    region: str | None = Field(default=None, min_length=1, max_length=64)
    base_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="A self-hosted or OpenAI-compatible server's address",
    )

    @field_validator("api_key", "region", "base_url")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and (value != value.strip() or any(c in value for c in "\r\n\x00")):
            raise ValueError("must be a single line without surrounding spaces")
        return value


class ModelProviderCredentialsOut(BaseModel):
    provider: str
    api_key: str | None = Field(description="Masked: at most the last four characters")
    api_key_unreadable: bool = Field(
        description="No configured encryption key reads the stored key: set it again"
    )
    region: str | None
    base_url: str | None
    updated_at: IsoTime


@blueprint.get("/providers")
@require_user
@validate_response(ModelProviderCatalogueOut)
async def list_providers() -> dict:
    """List the model providers (LLM, STT, TTS) with their models, voices and settings.

    `configured` says whether the current workspace, or the platform, has credentials for one.
    """
    workspace = current_principal().workspace
    return await provider_service.catalogue(workspace.id if workspace else None)


@blueprint.get("/workspaces/<uuid:workspace_id>/providers/<string:provider>")
@require_role(Role.ADMIN)
@validate_response(ModelProviderCredentialsOut)
async def get_provider_credentials(workspace_id: uuid.UUID, provider: str) -> dict:
    """Get the workspace's credentials for a provider.

    The key is masked; it is never shown in full again.
    """
    row = await provider_service.get_credentials(workspace_id, provider)
    return provider_service.shown(current_app.config["SETTINGS"], row)


@blueprint.put("/workspaces/<uuid:workspace_id>/providers/<string:provider>")
@require_role(Role.ADMIN)
@validate_request(ModelProviderCredentialsIn)
@validate_response(ModelProviderCredentialsOut)
async def put_provider_credentials(
    workspace_id: uuid.UUID, provider: str, data: ModelProviderCredentialsIn
) -> dict:
    """Set the workspace's credentials for a provider (encrypted at rest).

    Agents of the workspace use them unless they carry their own key.
    """
    settings = current_app.config["SETTINGS"]
    row = await provider_service.put_credentials(
        settings,
        workspace_id,
        provider,
        api_key=data.api_key,
        region=data.region,
        base_url=data.base_url,
    )
    return provider_service.shown(settings, row)


@blueprint.delete("/workspaces/<uuid:workspace_id>/providers/<string:provider>")
@require_role(Role.ADMIN)
async def delete_provider_credentials(workspace_id: uuid.UUID, provider: str) -> tuple[str, int]:
    """Delete the workspace's credentials for a provider.

    Its agents fall back on the platform's key, if there is one.
    """
    await provider_service.delete_credentials(workspace_id, provider)
    return "", 204
