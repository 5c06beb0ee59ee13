"""`/workspaces`: workspaces, switching, members, invitations and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator
from quart import Blueprint, current_app
from quart_schema import validate_querystring, validate_request, validate_response

from control.http.pagination import Page, PageQuery, paginate
from control.http.principal import current_principal, require_role, require_user
from control.models import ApiKey, Invitation, Membership, Role, Workspace
from control.security import utcnow
from control.services import workspaces as workspace_service

blueprint = Blueprint("workspaces", __name__, url_prefix="/workspaces")

Name = Field(min_length=1, max_length=200)


class WorkspaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Name


class WorkspaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    max_concurrent_calls: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Calls this workspace may hold at once; null leaves only platform capacity.",
    )
    recording_retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="Days call recordings are kept, then deleted; null keeps them forever.",
    )

    @field_validator("name")
    @classmethod
    def _name_is_not_null(cls, name: str | None) -> str:
        if name is None:
            raise ValueError("name cannot be null")
        return name


class WorkspaceOut(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    max_concurrent_calls: int | None
    recording_retention_days: int | None
    created_at: datetime

    @classmethod
    def of(cls, workspace: Workspace) -> WorkspaceOut:
        return cls(
            id=workspace.id,
            name=workspace.name,
            slug=workspace.slug,
            max_concurrent_calls=workspace.max_concurrent_calls,
            recording_retention_days=workspace.recording_retention_days,
            created_at=workspace.created_at,
        )


class SwitchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workspace_id: uuid.UUID


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    full_name: str
    role: Role
    joined_at: datetime

    @classmethod
    def of(cls, membership: Membership) -> MemberOut:
        return cls(
            user_id=membership.user.id,
            email=membership.user.email,
            full_name=membership.user.full_name,
            role=membership.role,
            joined_at=membership.created_at,
        )


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    role: Role = Role.MEMBER


class InviteOut(BaseModel):
    status: str = Field(description="`added` for an existing user, `invited` for a new one")
    email: str
    role: Role
    email_sent: bool
    member: MemberOut | None = None


class InvitationOut(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    invited_by: str | None = Field(description="The inviting admin's email")
    created_at: datetime
    expires_at: datetime | None
    expired: bool = Field(description="Its link no longer works; invite again to renew it")

    @classmethod
    def of(cls, invitation: Invitation) -> InvitationOut:
        return cls(
            id=invitation.id,
            email=invitation.email,
            role=invitation.role,
            invited_by=invitation.invited_by.email if invitation.invited_by else None,
            created_at=invitation.created_at,
            expires_at=invitation.expires_at,
            expired=invitation.expires_at is None or invitation.expires_at < utcnow(),
        )


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    role: Role = Role.MEMBER


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, api_key: ApiKey) -> ApiKeyOut:
        return cls(
            id=api_key.id,
            name=api_key.name,
            role=api_key.role,
            prefix=api_key.prefix,
            created_at=api_key.created_at,
            last_used_at=api_key.last_used_at,
        )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret; shown this once and never again")


@blueprint.post("")
@require_user
@validate_request(WorkspaceCreate)
@validate_response(WorkspaceOut, 201)
async def create_workspace(data: WorkspaceCreate) -> tuple[dict, int]:
    """Create a workspace.

    The creator becomes its admin; the slug is generated from the name and unique.
    """
    workspace = await workspace_service.create_workspace(
        current_principal().require_user(), data.name
    )
    return WorkspaceOut.of(workspace).model_dump(mode="json"), 201


@blueprint.get("")
@require_user
@validate_querystring(PageQuery)
@validate_response(Page[WorkspaceOut])
async def list_workspaces(query_args: PageQuery) -> dict:
    """List the caller's workspaces.

    A superuser sees every workspace.
    """
    user = current_principal().require_user()
    page = await paginate(
        workspace_service.workspaces_visible_to(user), query_args, WorkspaceOut.of
    )
    return page.model_dump(mode="json")


@blueprint.post("/switch")
@require_user
@validate_request(SwitchIn)
@validate_response(WorkspaceOut)
async def switch_workspace(data: SwitchIn) -> dict:
    """Switch the caller's current workspace.

    Later requests without `X-Workspace-Id` act in it.
    """
    workspace = await workspace_service.switch_workspace(
        current_principal().require_user(), data.workspace_id
    )
    return WorkspaceOut.of(workspace).model_dump(mode="json")


@blueprint.get("/<uuid:workspace_id>")
@require_role(Role.MEMBER)
@validate_response(WorkspaceOut)
async def get_workspace(workspace_id: uuid.UUID) -> dict:
    """Get a workspace.

    Any member may read it.
    """
    return WorkspaceOut.of(await workspace_service.get_workspace(workspace_id)).model_dump(
        mode="json"
    )


@blueprint.patch("/<uuid:workspace_id>")
@require_role(Role.ADMIN)
@validate_request(WorkspaceUpdate)
@validate_response(WorkspaceOut)
async def update_workspace(workspace_id: uuid.UUID, data: WorkspaceUpdate) -> dict:
    """Update a workspace: its name, its limit of concurrent calls, its recordings' retention.

    Admins only; the slug stays stable.
    """
    workspace = await workspace_service.update_workspace(
        workspace_id, data.model_dump(exclude_unset=True)
    )
    return WorkspaceOut.of(workspace).model_dump(mode="json")


@blueprint.delete("/<uuid:workspace_id>")
@require_role(Role.ADMIN)
async def delete_workspace(workspace_id: uuid.UUID) -> tuple[str, int]:
    """Delete a workspace.

    Its numbers are released first (LiveKit trunks and rules, bought numbers); then everything
    the workspace owns is deleted with it.
    """
    await workspace_service.delete_workspace(
        current_app.config["SETTINGS"], current_app.config["TELEPHONY"], workspace_id
    )
    return "", 204


@blueprint.get("/<uuid:workspace_id>/members")
@require_role(Role.MEMBER)
@validate_querystring(PageQuery)
@validate_response(Page[MemberOut])
async def list_members(workspace_id: uuid.UUID, query_args: PageQuery) -> dict:
    """List the workspace's members.

    Each with their role.
    """
    page = await paginate(workspace_service.members_of(workspace_id), query_args, MemberOut.of)
    return page.model_dump(mode="json")


@blueprint.post("/<uuid:workspace_id>/invite")
@require_role(Role.ADMIN)
@validate_request(InviteIn)
@validate_response(InviteOut, 201)
async def invite_member(workspace_id: uuid.UUID, data: InviteIn) -> tuple[dict, int]:
    """Invite someone by email.

    An existing user is added at once; otherwise the invitation's link is emailed (valid 7 days).
    """
    outcome = await workspace_service.invite(
        current_app.config["SETTINGS"],
        workspace_id,
        current_principal().require_user(),
        data.email,
        data.role,
    )
    body = InviteOut(
        status="added" if outcome.membership else "invited",
        email=data.email.lower(),
        role=data.role,
        email_sent=outcome.email_sent,
        member=MemberOut.of(outcome.membership) if outcome.membership else None,
    )
    return body.model_dump(mode="json"), 201


@blueprint.get("/<uuid:workspace_id>/invitations")
@require_role(Role.ADMIN)
@validate_querystring(PageQuery)
@validate_response(Page[InvitationOut])
async def list_invitations(workspace_id: uuid.UUID, query_args: PageQuery) -> dict:
    """List the workspace's pending invitations.

    Expired ones are listed (flagged) until revoked or renewed by inviting again.
    """
    page = await paginate(
        workspace_service.pending_invitations(workspace_id), query_args, InvitationOut.of
    )
    return page.model_dump(mode="json")


@blueprint.delete("/<uuid:workspace_id>/invitations/<uuid:invitation_id>")
@require_role(Role.ADMIN)
async def revoke_invitation(workspace_id: uuid.UUID, invitation_id: uuid.UUID) -> tuple[str, int]:
    """Revoke a pending invitation.

    Its emailed link stops working at once.
    """
    await workspace_service.revoke_invitation(workspace_id, invitation_id)
    return "", 204


@blueprint.delete("/<uuid:workspace_id>/members/<uuid:user_id>")
@require_role(Role.ADMIN)
async def remove_member(workspace_id: uuid.UUID, user_id: uuid.UUID) -> tuple[str, int]:
    """Remove a member.

    The last admin cannot be removed.
    """
    await workspace_service.remove_member(workspace_id, user_id)
    return "", 204


@blueprint.get("/<uuid:workspace_id>/api-keys")
@require_role(Role.ADMIN)
@validate_querystring(PageQuery)
@validate_response(Page[ApiKeyOut])
async def list_api_keys(workspace_id: uuid.UUID, query_args: PageQuery) -> dict:
    """List the workspace's API keys.

    Secrets are never shown again; only their prefix.
    """
    page = await paginate(workspace_service.api_keys_of(workspace_id), query_args, ApiKeyOut.of)
    return page.model_dump(mode="json")


@blueprint.post("/<uuid:workspace_id>/api-keys")
@require_role(Role.ADMIN)
@validate_request(ApiKeyCreate)
@validate_response(ApiKeyCreated, 201)
async def create_api_key(workspace_id: uuid.UUID, data: ApiKeyCreate) -> tuple[dict, int]:
    """Create an API key with the member or developer role.

    The secret is in this response only; store it now.
    """
    api_key, secret = await workspace_service.create_api_key(
        workspace_id, current_principal().user, data.name, data.role
    )
    return ApiKeyCreated(**ApiKeyOut.of(api_key).model_dump(), key=secret).model_dump(
        mode="json"
    ), 201


@blueprint.delete("/<uuid:workspace_id>/api-keys/<uuid:key_id>")
@require_role(Role.ADMIN)
async def delete_api_key(workspace_id: uuid.UUID, key_id: uuid.UUID) -> tuple[str, int]:
    """Delete (revoke) an API key.

    It stops working at once.
    """
    await workspace_service.delete_api_key(workspace_id, key_id)
    return "", 204


__all__ = ["blueprint", "Page"]
