"""Accounts and sessions: signup, login, refresh-token rotation, Google login, password reset."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from control.config import Settings
from control.errors import Conflict, Invalid, Unauthenticated
from control.mail import MailError, send_email
from control.models import ApiKey, PasswordResetToken, RefreshToken, User
from control.security import (
    decode_token,
    encode_token,
    hash_password,
    hash_secret,
    new_secret,
    utcnow,
    verify_password,
)
from control.services import workspaces

logger = logging.getLogger(__name__)

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def _create_user(email: str, password: str | None, full_name: str, **extra) -> User:
    """A user with a personal workspace in which they are admin.

    Invitations to the email are not joined here: only their emailed token accepts them.
    """
    async with in_transaction():
        try:
            user = await User.create(
                email=email,
                password_hash=hash_password(password) if password else None,
                full_name=full_name,
                **extra,
            )
        except IntegrityError as error:
            raise Conflict("EMAIL_TAKEN", "An account with that email already exists.") from error
        workspace = await workspaces.create_workspace(
            user, f"{full_name or email.split('@')[0]}'s workspace"
        )
        user.current_workspace_id = workspace.id
        await user.save(update_fields=["current_workspace_id"])
    return user


async def signup(email: str, password: str, full_name: str) -> User:
    email = normalise_email(email)
    if await User.exists(email=email):
        raise Conflict("EMAIL_TAKEN", "An account with that email already exists; log in instead.")
    return await _create_user(email, password, full_name)


async def authenticate(email: str, password: str) -> User:
    user = await User.get_or_none(email=normalise_email(email))
    password_ok = await asyncio.to_thread(
        verify_password, user.password_hash if user else None, password
    )
    if user is None or not password_ok or not user.is_active:
        raise Unauthenticated("INVALID_CREDENTIALS", "Wrong email or password.")
    return user


async def issue_tokens(
    settings: Settings, user: User, family_id: uuid.UUID | None = None
) -> TokenPair:
    """A fresh access token and a refresh token in `family_id` (a new family at login)."""
    refresh_row = await RefreshToken.create(
        user=user,
        family_id=family_id or uuid.uuid4(),
        expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_seconds),
    )
    access = encode_token(
        settings, {"sub": str(user.id), "typ": "access"}, settings.access_token_ttl_seconds
    )
    refresh = encode_token(
        settings,
        {
            "sub": str(user.id),
            "typ": "refresh",
            "jti": str(refresh_row.id),
            "fam": str(refresh_row.family_id),
        },
        settings.refresh_token_ttl_seconds,
    )
    return TokenPair(
        access, refresh, settings.access_token_ttl_seconds, settings.refresh_token_ttl_seconds
    )


async def _refresh_row(settings: Settings, refresh_token: str) -> RefreshToken:
    claims = decode_token(settings, refresh_token, "refresh")
    try:
        token_id = uuid.UUID(str(claims.get("jti")))
    except ValueError as error:
        raise Unauthenticated("INVALID_TOKEN", "The refresh token is invalid.") from error
    row = await RefreshToken.get_or_none(id=token_id, user_id=claims["sub"])
    if row is None:
        raise Unauthenticated("INVALID_TOKEN", "The refresh token is invalid.")
    return row


async def rotate_refresh_token(settings: Settings, refresh_token: str) -> tuple[User, TokenPair]:
    """Exchange a refresh token for a new pair; reuse of a spent token revokes its whole family."""
    row = await _refresh_row(settings, refresh_token)
    async with in_transaction():
        row = await RefreshToken.filter(id=row.id).select_for_update().get()
        reused = row.used_at is not None and row.revoked_at is None
        if reused:
            # Committed before answering: the revocation must survive the error response.
            await RefreshToken.filter(family_id=row.family_id, revoked_at=None).update(
                revoked_at=utcnow()
            )
        elif row.revoked_at is None:
            row.used_at = utcnow()
            await row.save(update_fields=["used_at"])
    if reused:
        logger.warning("refresh token reuse detected; revoked family %s", row.family_id)
        raise Unauthenticated(
            "TOKEN_REUSED", "This refresh token was already used; the session was revoked."
        )
    if row.revoked_at is not None:
        raise Unauthenticated("TOKEN_REVOKED", "This session has ended; log in again.")
    user = await User.get(id=row.user_id)
    if not user.is_active:
        raise Unauthenticated("INVALID_TOKEN", "The account is disabled.")
    return user, await issue_tokens(settings, user, family_id=row.family_id)


async def revoke_refresh_token(settings: Settings, refresh_token: str, user: User) -> None:
    """Logout: end the refresh token's family. A token that doesn't verify is ignored."""
    try:
        row = await _refresh_row(settings, refresh_token)
    except Unauthenticated:
        return
    if row.user_id == user.id:
        await RefreshToken.filter(family_id=row.family_id, revoked_at=None).update(
            revoked_at=utcnow()
        )


def _verify_google_id_token(settings: Settings, token: str) -> Mapping[str, Any]:
    import google.auth.transport.requests
    from google.auth import exceptions as google_exceptions
    from google.oauth2 import id_token

    try:
        claims = id_token.verify_token(
            token,
            google.auth.transport.requests.Request(),
            audience=settings.google_client_id,
            certs_url=settings.google_certs_url,
        )
    except (ValueError, google_exceptions.GoogleAuthError) as error:
        raise Unauthenticated(
            "INVALID_GOOGLE_TOKEN", f"The Google ID token was refused: {error}"
        ) from error
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise Unauthenticated("INVALID_GOOGLE_TOKEN", "The Google ID token has the wrong issuer.")
    if not claims.get("email") or not claims.get("email_verified"):
        raise Unauthenticated("INVALID_GOOGLE_TOKEN", "The Google account has no verified email.")
    return claims


async def google_login(settings: Settings, token: str) -> User:
    """Verify a Google ID token and find or create its user."""
    if not settings.google_client_id:
        raise Invalid(
            "GOOGLE_LOGIN_DISABLED",
            "Google login is not configured (VOXLINE_GOOGLE_CLIENT_ID).",
        )
    claims = await asyncio.to_thread(_verify_google_id_token, settings, token)
    email = normalise_email(claims["email"])
    user = await User.get_or_none(google_sub=claims["sub"]) or await User.get_or_none(email=email)
    if user is None:
        return await _create_user(email, None, claims.get("name", ""), google_sub=claims["sub"])
    if not user.is_active:
        raise Unauthenticated("INVALID_CREDENTIALS", "The account is disabled.")
    if user.google_sub is None:
        user.google_sub = claims["sub"]
        await user.save(update_fields=["google_sub"])
    return user


async def send_password_reset(settings: Settings, email: str) -> None:
    """Email a single-use reset link if the account exists; silent otherwise."""
    user = await User.get_or_none(email=normalise_email(email), is_active=True)
    if user is None:
        return
    token = new_secret()
    await PasswordResetToken.create(
        user=user,
        token_hash=hash_secret(token),
        expires_at=utcnow() + timedelta(seconds=settings.reset_token_ttl_seconds),
    )
    minutes = settings.reset_token_ttl_seconds // 60
    try:
        await send_email(
            settings,
            user.email,
            "Reset your Voxline password",
            "Someone asked to reset the password of this Voxline account.\n\n"
            f"Reset it here (the link works once, for {minutes} minutes):\n"
            f"{settings.public_url}/reset-password#token={token}\n\n"
            "Or POST the token to /auth/reset-password. If it wasn't you, ignore this email.\n",
        )
    except MailError as error:
        logger.error("password reset email not sent: %s", error)


async def reset_password(token: str, new_password: str) -> None:
    """Set a new password from a reset token and end every session of the user."""
    async with in_transaction():
        row = (
            await PasswordResetToken.filter(token_hash=hash_secret(token))
            .select_for_update()
            .first()
        )
        if row is None or row.used_at is not None or row.expires_at < utcnow():
            raise Invalid(
                "INVALID_RESET_TOKEN",
                "The reset link is invalid, used or expired; ask for a new one.",
            )
        row.used_at = utcnow()
        await row.save(update_fields=["used_at"])
        password_hash = await asyncio.to_thread(hash_password, new_password)
        await User.filter(id=row.user_id).update(password_hash=password_hash)
        await RefreshToken.filter(user_id=row.user_id, revoked_at=None).update(revoked_at=utcnow())


#: A write per request would put the database on every API call's path; a minute's precision
#: is enough for an API key's "last used".
LAST_USED_PRECISION = timedelta(minutes=1)


async def user_of_access_token(settings: Settings, token: str) -> User:
    """The active user an access token was issued to.

    Raises:
        Unauthenticated: the token is invalid or expired, or its account is gone or disabled.
    """
    claims = decode_token(settings, token, "access")
    user = await User.get_or_none(id=claims["sub"])
    if user is None or not user.is_active:
        raise Unauthenticated("INVALID_TOKEN", "The account for this token no longer exists.")
    return user


async def api_key_of_secret(secret: str) -> ApiKey:
    """The API key (with its workspace) whose secret this is, marked as used now.

    Raises:
        Unauthenticated: no key has that secret (never had, or revoked).
    """
    api_key = await ApiKey.get_or_none(key_hash=hash_secret(secret)).prefetch_related("workspace")
    if api_key is None:
        raise Unauthenticated("INVALID_API_KEY", "The API key is invalid or has been revoked.")
    now = utcnow()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_PRECISION:
        await ApiKey.filter(id=api_key.id).update(last_used_at=now)
    return api_key
