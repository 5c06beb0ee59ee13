"""`/auth`: login, signup, token refresh, logout, Google login, password reset, invitations."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field
from quart import Blueprint, after_this_request, current_app, request
from quart.typing import ResponseTypes
from quart_schema import validate_request, validate_response

from control.http.errors import APIError
from control.http.principal import (
    ACCESS_COOKIE,
    REFRESH_COOKIE,
    SESSION_COOKIE,
    current_principal,
    public,
    refuse_cross_site_cookie,
    require_user,
)
from control.http.ratelimit import AccountLimit, fail_open, per_minute
from control.models import Role, User
from control.security import check_password_policy
from control.services import auth as auth_service
from control.services import workspaces as workspace_service

blueprint = Blueprint("auth", __name__, url_prefix="/auth")

Password = Annotated[str, AfterValidator(check_password_policy)]
REFRESH_COOKIE_PATH = "/auth"
# Per account, whatever the address: 10 failed logins, or 10 reset emails, per 15 minutes.
LOGIN_ATTEMPTS = AccountLimit("login")
RESET_REQUESTS = AccountLimit("password-reset")


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class LoginIn(StrictBody):
    email: EmailStr
    password: str = Field(min_length=1, max_length=256)


class SignupIn(StrictBody):
    email: EmailStr
    password: Password
    full_name: str = Field(default="", max_length=200)


class GoogleIn(StrictBody):
    id_token: str = Field(min_length=1, max_length=8192)


class ForgotPasswordIn(StrictBody):
    email: EmailStr


class ResetPasswordIn(StrictBody):
    token: str = Field(min_length=1, max_length=512)
    new_password: Password


class UserOut(BaseModel):
    id: str
    email: str
    full_name: str
    is_superuser: bool
    current_workspace_id: str | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=str(user.id),
            email=user.email,
            full_name=user.full_name,
            is_superuser=user.is_superuser,
            current_workspace_id=str(user.current_workspace_id)
            if user.current_workspace_id
            else None,
        )


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserOut


class MessageOut(BaseModel):
    detail: str


def _settings():
    return current_app.config["SETTINGS"]


async def _presented_refresh_token() -> str | None:
    """The refresh token named in a JSON body `{"refresh_token": ...}`, else its cookie (which
    only this site's own pages may send: see `refuse_cross_site_cookie`)."""
    payload = await request.get_json(silent=True)
    if isinstance(payload, dict) and isinstance(payload.get("refresh_token"), str):
        return payload["refresh_token"][:4096]
    token = request.cookies.get(REFRESH_COOKIE)
    if token:
        refuse_cross_site_cookie()
    return token


def _session_response(
    user: User, tokens: auth_service.TokenPair, status: int = 200
) -> tuple[TokensOut, int]:
    """The tokens in the body for API clients, and as HttpOnly cookies for browsers."""

    @after_this_request
    async def set_cookies(response: ResponseTypes) -> ResponseTypes:
        return _set_session_cookies(response, tokens)

    body = TokensOut(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
        user=UserOut.of(user),
    )
    return body, status


def _set_session_cookies(response: ResponseTypes, tokens: auth_service.TokenPair) -> ResponseTypes:
    secure = _settings().cookie_secure
    response.set_cookie(
        ACCESS_COOKIE,
        tokens.access_token,
        max_age=tokens.expires_in,
        httponly=True,
        samesite="Lax",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        REFRESH_COOKIE,
        tokens.refresh_token,
        max_age=tokens.refresh_expires_in,
        httponly=True,
        samesite="Lax",
        secure=secure,
        path=REFRESH_COOKIE_PATH,
    )
    response.set_cookie(
        SESSION_COOKIE,
        "1",
        max_age=tokens.refresh_expires_in,
        httponly=True,
        samesite="Lax",
        secure=secure,
        path="/",
    )
    return response


async def _clear_session_cookies(response: ResponseTypes) -> ResponseTypes:
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@blueprint.post("/login")
@per_minute(10)
@public
@validate_request(LoginIn)
@validate_response(TokensOut)
async def login(data: LoginIn) -> tuple[TokensOut, int]:
    """Log in with email and password.

    Sets the `access_token` and `refresh_token` cookies (and `signed_in`, which holds no
    secret, for the dashboard's pages) and returns both tokens. After 10 failed
    attempts on one account in 15 minutes, every attempt on it is refused (429) until then.
    """
    async with LOGIN_ATTEMPTS.attempt(auth_service.normalise_email(data.email)):
        user = await auth_service.authenticate(data.email, data.password)
    return _session_response(user, await auth_service.issue_tokens(_settings(), user))


@blueprint.post("/signup")
@per_minute(5)
@public
@validate_request(SignupIn)
@validate_response(TokensOut, 201)
async def signup(data: SignupIn) -> tuple[TokensOut, int]:
    """Register a new user.

    Creates the user's personal workspace (as admin) and logs them in.
    """
    user = await auth_service.signup(data.email, data.password, data.full_name)
    return _session_response(user, await auth_service.issue_tokens(_settings(), user), status=201)


@blueprint.post("/refresh")
@per_minute(30)
@public
@fail_open  # a refresh token is single-use and unguessable: nothing to brute-force
@validate_response(TokensOut)
async def refresh() -> tuple[TokensOut, int]:
    """Exchange the refresh token (cookie or body) for new tokens.

    Each refresh token works once; presenting a spent one ends the whole session.
    """
    token = await _presented_refresh_token()
    if not token:
        raise APIError(
            401, "NOT_AUTHENTICATED", "No refresh token: send the refresh_token cookie or field."
        )
    user, tokens = await auth_service.rotate_refresh_token(_settings(), token)
    return _session_response(user, tokens)


@blueprint.post("/logout")
@require_user
@validate_response(MessageOut)
async def logout() -> MessageOut:
    """Log out.

    Revokes the refresh token and clears both cookies.
    """
    token = await _presented_refresh_token()
    if token:
        await auth_service.revoke_refresh_token(
            _settings(), token, current_principal().require_user()
        )
    after_this_request(_clear_session_cookies)
    return MessageOut(detail="Logged out.")


@blueprint.post("/google")
@per_minute(10)
@public
@validate_request(GoogleIn)
@validate_response(TokensOut)
async def login_with_google(data: GoogleIn) -> tuple[TokensOut, int]:
    """Log in with a Google ID token.

    The token is verified against Google's keys, the configured client id, issuer and expiry.
    """
    user = await auth_service.google_login(_settings(), data.id_token)
    return _session_response(user, await auth_service.issue_tokens(_settings(), user))


@blueprint.post("/forgot-password")
@per_minute(5)
@public
@validate_request(ForgotPasswordIn)
@validate_response(MessageOut)
async def request_password_reset(data: ForgotPasswordIn) -> tuple[dict, int]:
    """Email a password reset link.

    Always answers 200, whether or not the email has an account; at most 10 requests per email
    in 15 minutes (429 after that).
    """
    # Every request counts, account or not: a 429 must not tell which emails have accounts.
    async with RESET_REQUESTS.attempt(auth_service.normalise_email(data.email), always_counts=True):
        # Sent in the background so the response time does not reveal whether the account exists.
        current_app.add_background_task(auth_service.send_password_reset, _settings(), data.email)
    detail = "If an account exists for that email, a reset link is on its way."
    return MessageOut(detail=detail).model_dump(), 200


@blueprint.post("/reset-password")
@per_minute(10)
@public
@validate_request(ResetPasswordIn)
@validate_response(MessageOut)
async def reset_password(data: ResetPasswordIn) -> tuple[dict, int]:
    """Set a new password with the emailed token.

    Every existing session of the account is ended.
    """
    await auth_service.reset_password(data.token, data.new_password)
    return MessageOut(detail="Password changed; log in with the new password.").model_dump(), 200


class AcceptInviteIn(StrictBody):
    token: str = Field(min_length=1, max_length=512)


class AcceptedOut(BaseModel):
    workspace_id: str
    workspace_name: str
    role: Role


@blueprint.post("/accept-invite")
@per_minute(10)
@require_user
@validate_request(AcceptInviteIn)
@validate_response(AcceptedOut)
async def accept_invite(data: AcceptInviteIn) -> tuple[dict, int]:
    """Accept a workspace invitation with the token from its email.

    Logged in as the invited address; signing up or logging in alone never joins a workspace.
    """
    membership = await workspace_service.accept_invitation(
        current_principal().require_user(), data.token
    )
    body = AcceptedOut(
        workspace_id=str(membership.workspace.id),
        workspace_name=membership.workspace.name,
        role=membership.role,
    )
    return body.model_dump(mode="json"), 200
