"""Workspaces, memberships, invitations and API keys."""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from control.config import Settings
from control.errors import APIError
from control.mail import MailError, send_email
from control.models import Agent, ApiKey, Invitation, Membership, Role, User, Workspace
from control.principal import API_KEY_PREFIX, workspace_role
from control.security import hash_secret, new_secret, utcnow
from control.services import knowledge_files

logger = logging.getLogger(__name__)

API_KEY_ROLES = (Role.MEMBER, Role.DEVELOPER)


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:60] or "workspace"


async def create_workspace(owner: User, name: str) -> Workspace:
    """Create a workspace with a unique slug and make `owner` its admin."""
    base = slugify(name)
    for attempt in range(8):
        slug = base if attempt == 0 else f"{base}-{secrets.token_hex(3)}"
        if await Workspace.exists(slug=slug):
            continue
        try:
            async with in_transaction():
                workspace = await Workspace.create(name=name, slug=slug)
                await Membership.create(workspace=workspace, user=owner, role=Role.ADMIN)
            return workspace
        except IntegrityError:
            continue  # another request took the slug between the check and the insert
    raise APIError(409, "SLUG_TAKEN", "Could not find a free slug for that name; try another name.")


def workspaces_visible_to(user: User) -> QuerySet[Workspace]:
    if user.is_superuser:
        return Workspace.all().order_by("created_at")
    return Workspace.filter(memberships__user_id=user.id).order_by("created_at")


async def get_workspace(workspace_id: uuid.UUID) -> Workspace:
    workspace = await Workspace.get_or_none(id=workspace_id)
    if workspace is None:
        raise APIError(404, "WORKSPACE_NOT_FOUND", "No workspace with that id.")
    return workspace


async def update_workspace(workspace_id: uuid.UUID, changes: dict) -> Workspace:
    """Apply `changes` (name, max_concurrent_calls; None clears the call limit)."""
    workspace = await get_workspace(workspace_id)
    if changes:
        workspace.update_from_dict(changes)
        await workspace.save(update_fields=list(changes))
    return workspace


async def delete_workspace(settings: Settings, workspace_id: uuid.UUID) -> None:
    """Delete the workspace and, through the cascades, everything it owns."""
    workspace = await get_workspace(workspace_id)
    # Outside the database: each agent's knowledge index and stored files.
    for agent_id in await Agent.filter(workspace_id=workspace_id).values_list("id", flat=True):
        await knowledge_files.forget_agent(settings, agent_id)
    await workspace.delete()


async def switch_workspace(user: User, workspace_id: uuid.UUID) -> Workspace:
    workspace, _ = await workspace_role(user, workspace_id)
    user.current_workspace_id = workspace.id
    await user.save(update_fields=["current_workspace_id"])
    return workspace


def members_of(workspace_id: uuid.UUID) -> QuerySet[Membership]:
    return (
        Membership.filter(workspace_id=workspace_id).order_by("created_at").prefetch_related("user")
    )


@dataclass(frozen=True)
class InviteOutcome:
    membership: Membership | None
    invitation: Invitation | None
    email_sent: bool


async def invite(
    settings: Settings, workspace_id: uuid.UUID, inviter: User, email: str, role: Role
) -> InviteOutcome:
    """Add an existing user with `role`, or record (and email) an invitation for a new one."""
    workspace = await get_workspace(workspace_id)
    email = email.strip().lower()
    invitee = await User.get_or_none(email=email)
    if invitee is not None:
        membership = await Membership.get_or_none(workspace_id=workspace_id, user_id=invitee.id)
        if membership is not None:
            raise APIError(409, "ALREADY_MEMBER", f"{email} is already a member of this workspace.")
        membership = await Membership.create(workspace=workspace, user=invitee, role=role)
        await membership.fetch_related("user")
        return InviteOutcome(membership=membership, invitation=None, email_sent=False)
    invitation, created = await Invitation.get_or_create(
        workspace_id=workspace_id,
        email=email,
        accepted_at=None,
        defaults={"role": role, "invited_by": inviter},
    )
    if not created:
        invitation.role = role
        await invitation.save(update_fields=["role"])
    email_sent = True
    try:
        await send_email(
            settings,
            email,
            f"You are invited to {workspace.name} on Voxline",
            f'{inviter.email} invited you to the workspace "{workspace.name}" as {role.value}.\n'
            f"Sign up with this email address at {settings.public_url} to join.\n",
        )
    except MailError as error:
        logger.warning("invitation recorded but not emailed: %s", error)
        email_sent = False
    return InviteOutcome(membership=None, invitation=invitation, email_sent=email_sent)


async def accept_pending_invitations(user: User) -> int:
    """Turn the invitations addressed to the user's email into memberships."""
    invitations = await Invitation.filter(email=user.email, accepted_at=None)
    for invitation in invitations:
        await Membership.get_or_create(
            workspace_id=invitation.workspace_id,
            user_id=user.id,
            defaults={"role": invitation.role},
        )
        invitation.accepted_at = utcnow()
        await invitation.save(update_fields=["accepted_at"])
    return len(invitations)


async def remove_member(workspace_id: uuid.UUID, user_id: uuid.UUID) -> None:
    async with in_transaction():
        membership = await Membership.get_or_none(
            workspace_id=workspace_id, user_id=user_id
        ).select_for_update()
        if membership is None:
            raise APIError(404, "MEMBER_NOT_FOUND", "That user is not a member of this workspace.")
        if membership.role == Role.ADMIN:
            admins = (
                await Membership.filter(workspace_id=workspace_id, role=Role.ADMIN)
                .select_for_update()
                .count()
            )
            if admins <= 1:
                raise APIError(
                    409,
                    "LAST_ADMIN",
                    "A workspace keeps at least one admin; make someone else admin first.",
                )
        await membership.delete()


def api_keys_of(workspace_id: uuid.UUID) -> QuerySet[ApiKey]:
    return ApiKey.filter(workspace_id=workspace_id).order_by("created_at")


async def create_api_key(
    workspace_id: uuid.UUID, creator: User | None, name: str, role: Role
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is never retrievable again."""
    if role not in API_KEY_ROLES:
        raise APIError(400, "INVALID_ROLE", "An API key's role is member or developer.")
    await get_workspace(workspace_id)
    secret = new_secret(API_KEY_PREFIX)
    api_key = await ApiKey.create(
        workspace_id=workspace_id,
        name=name,
        role=role,
        prefix=secret[: len(API_KEY_PREFIX) + 6],
        key_hash=hash_secret(secret),
        created_by=creator,
    )
    return api_key, secret


async def delete_api_key(workspace_id: uuid.UUID, key_id: uuid.UUID) -> None:
    deleted = await ApiKey.filter(workspace_id=workspace_id, id=key_id).delete()
    if not deleted:
        raise APIError(404, "API_KEY_NOT_FOUND", "No API key with that id in this workspace.")
