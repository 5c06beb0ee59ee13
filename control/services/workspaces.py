"""Workspaces, memberships, invitations and API keys."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from control.config import Settings
from control.dialing import campaigns
from control.errors import Conflict, Forbidden, Invalid, NotFound
from control.mail import MailError, send_email
from control.models import (
    Agent,
    ApiKey,
    Campaign,
    Invitation,
    Membership,
    Role,
    User,
    Workspace,
)
from control.security import hash_secret, new_secret, utcnow
from control.services import knowledge_files, phone_numbers, recordings
from control.text import slugify
from telephony.config import TelephonySettings

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "vxk_"
API_KEY_ROLES = (Role.MEMBER, Role.DEVELOPER)
INVITATION_TTL = timedelta(days=7)


async def create_workspace(owner: User, name: str) -> Workspace:
    """Create a workspace with a unique slug and make `owner` its admin."""
    base = slugify(name, fallback="workspace")
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
    raise Conflict("SLUG_TAKEN", "Could not find a free slug for that name; try another name.")


def workspaces_visible_to(user: User) -> QuerySet[Workspace]:
    if user.is_superuser:
        return Workspace.all().order_by("created_at")
    return Workspace.filter(memberships__user_id=user.id).order_by("created_at")


async def get_workspace(workspace_id: uuid.UUID) -> Workspace:
    workspace = await Workspace.get_or_none(id=workspace_id)
    if workspace is None:
        raise NotFound("WORKSPACE_NOT_FOUND", "No workspace with that id.")
    return workspace


async def update_workspace(workspace_id: uuid.UUID, changes: dict) -> Workspace:
    """Apply `changes` (name, max_concurrent_calls, recording_retention_days; None clears the
    call limit, or keeps recordings forever)."""
    workspace = await get_workspace(workspace_id)
    if changes:
        workspace.update_from_dict(changes)
        await workspace.save(update_fields=list(changes))
    return workspace


async def delete_workspace(
    settings: Settings, telephony: TelephonySettings, workspace_id: uuid.UUID
) -> None:
    """Delete the workspace and, through the cascades, everything it owns.

    Its numbers go first, outside the database too: LiveKit's trunks and dispatch rules, and
    the numbers bought through Voxline. If any cannot be released the workspace stays (502).
    """
    workspace = await get_workspace(workspace_id)
    await phone_numbers.release_all(telephony, workspace_id)
    # Outside the database: each agent's knowledge index and stored files. (The casts: tortoise
    # types `values_list` as tuples even with `flat=True`.)
    agent_ids = await Agent.filter(workspace_id=workspace_id).values_list("id", flat=True)
    for agent_id in cast(list[uuid.UUID], agent_ids):
        await knowledge_files.forget_agent(settings, agent_id)
    await recordings.forget_workspace(settings, workspace_id)
    campaign_ids = await Campaign.filter(workspace_id=workspace_id).values_list("id", flat=True)
    await campaigns.forget_files(settings, cast(list[uuid.UUID], campaign_ids))
    await workspace.delete()


async def workspace_role(user: User, workspace_id: uuid.UUID) -> tuple[Workspace, Role | None]:
    """The workspace and the user's role in it; NotFound if it doesn't exist or the user can't
    see it."""
    membership = await Membership.get_or_none(
        user_id=user.id, workspace_id=workspace_id
    ).prefetch_related("workspace")
    if membership is not None:
        return membership.workspace, membership.role
    if user.is_superuser:
        workspace = await Workspace.get_or_none(id=workspace_id)
        if workspace is not None:
            return workspace, None
    raise NotFound("WORKSPACE_NOT_FOUND", "No workspace with that id.")


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
            raise Conflict("ALREADY_MEMBER", f"{email} is already a member of this workspace.")
        membership = await Membership.create(workspace=workspace, user=invitee, role=role)
        await membership.fetch_related("user")
        return InviteOutcome(membership=membership, invitation=None, email_sent=False)
    token = new_secret()
    # One row per workspace and email: inviting again renews it with a new token (the older
    # email's link stops working), a new role and a new week.
    renewal: dict[str, Any] = {
        "role": role,
        "invited_by": inviter,
        "token_hash": hash_secret(token),
        "expires_at": utcnow() + INVITATION_TTL,
        "accepted_at": None,
    }
    try:
        async with in_transaction():
            invitation = (
                await Invitation.filter(workspace_id=workspace_id, email=email)
                .select_for_update()
                .first()
            )
            if invitation is None:
                invitation = await Invitation.create(
                    workspace_id=workspace_id, email=email, **renewal
                )
            else:
                invitation.update_from_dict(renewal)
                await invitation.save()
    except IntegrityError as error:  # the same email invited by two requests at once
        raise Conflict(
            "INVITATION_CONFLICT", f"{email} is being invited already; try again."
        ) from error
    days = INVITATION_TTL.days
    email_sent = True
    try:
        await send_email(
            settings,
            email,
            f"You are invited to {workspace.name} on Voxline",
            f'{inviter.email} invited you to the workspace "{workspace.name}" as {role.value}.\n\n'
            f"Accept it here, logged in as {email} (the link works once, for {days} days):\n"
            f"{settings.public_url}/accept-invite#token={token}\n\n"
            f"No account yet? Sign up with this email address first, then open the link.\n"
            f"Or POST the token to /auth/accept-invite while logged in.\n",
        )
    except MailError as error:
        logger.warning("invitation recorded but not emailed: %s", error)
        email_sent = False
    return InviteOutcome(membership=None, invitation=invitation, email_sent=email_sent)


async def accept_invitation(user: User, token: str) -> Membership:
    """Join the workspace of the invitation whose emailed token this is.

    Only the invited address may accept, once, within the week; the role is the invitation's
    unless the user is a member already (then their role stays as it is).
    """
    async with in_transaction():
        invitation = (
            await Invitation.filter(token_hash=hash_secret(token)).select_for_update().first()
        )
        if (
            invitation is None
            or invitation.accepted_at is not None
            or invitation.expires_at is None
            or invitation.expires_at < utcnow()
        ):
            raise Invalid(
                "INVALID_INVITATION",
                "The invitation is invalid, used, revoked or expired; ask for a new one.",
            )
        if invitation.email != user.email:
            raise Forbidden(
                "INVITATION_FOR_ANOTHER_EMAIL",
                "This invitation is for another email address; log in as that address.",
            )
        membership, _ = await Membership.get_or_create(
            workspace_id=invitation.workspace_id,
            user_id=user.id,
            defaults={"role": invitation.role},
        )
        invitation.accepted_at = utcnow()
        await invitation.save(update_fields=["accepted_at"])
    await membership.fetch_related("workspace")
    return membership


def pending_invitations(workspace_id: uuid.UUID) -> QuerySet[Invitation]:
    """The workspace's invitations nobody has accepted yet, expired ones included."""
    return (
        Invitation.filter(workspace_id=workspace_id, accepted_at=None)
        .order_by("created_at")
        .prefetch_related("invited_by")
    )


async def revoke_invitation(workspace_id: uuid.UUID, invitation_id: uuid.UUID) -> None:
    revoked = await Invitation.filter(
        workspace_id=workspace_id, id=invitation_id, accepted_at=None
    ).delete()
    if not revoked:
        raise NotFound(
            "INVITATION_NOT_FOUND", "No pending invitation with that id in this workspace."
        )


async def remove_member(workspace_id: uuid.UUID, user_id: uuid.UUID) -> None:
    async with in_transaction():
        membership = (
            await Membership.filter(workspace_id=workspace_id, user_id=user_id)
            .select_for_update()
            .get_or_none()
        )
        if membership is None:
            raise NotFound("MEMBER_NOT_FOUND", "That user is not a member of this workspace.")
        if membership.role == Role.ADMIN:
            admins = (
                await Membership.filter(workspace_id=workspace_id, role=Role.ADMIN)
                .select_for_update()
                .count()
            )
            if admins <= 1:
                raise Conflict(
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
        raise Invalid("INVALID_ROLE", "An API key's role is member or developer.")
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
        raise NotFound("API_KEY_NOT_FOUND", "No API key with that id in this workspace.")


async def default_workspace(user: User) -> tuple[Workspace | None, Role | None]:
    """The workspace a user works in when a request names none, and their role there: the one
    they switched to last, else the first they joined; (None, None) for a user with none."""
    if user.current_workspace_id is not None:
        membership = await Membership.get_or_none(
            user_id=user.id, workspace_id=user.current_workspace_id
        ).prefetch_related("workspace")
        if membership is not None:
            return membership.workspace, membership.role
    membership = (
        await Membership.filter(user_id=user.id)
        .order_by("created_at")
        .prefetch_related("workspace")
        .first()
    )
    if membership is not None:
        return membership.workspace, membership.role
    return None, None
