"""The one way to resolve a caller into user-or-key, workspace and role, and the route guards."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from quart import current_app, g, request

from control.errors import NotFound
from control.http.errors import APIError
from control.models import ApiKey, Role, User, Workspace
from control.services.auth import api_key_of_secret, user_of_access_token
from control.services.workspaces import API_KEY_PREFIX, default_workspace, workspace_role

ACCESS_COOKIE = "access_token"
REFRESH_COOKIE = "refresh_token"
# No secret: it tells the dashboard's pages (which never see the refresh cookie, kept to `/auth`)
# that this browser has a session, so a first visit goes straight to the login page.
SESSION_COOKIE = "signed_in"
WORKSPACE_HEADER = "X-Workspace-Id"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Set on every view function by the guards below; the route-guard test reads it.
GUARD_ATTRIBUTE = "_voxline_guard"
PUBLIC = "public"
ANY_USER = "user"


@dataclass(frozen=True)
class Principal:
    """Who is calling, in which workspace, with which role."""

    user: User | None
    api_key: ApiKey | None
    workspace: Workspace | None
    role: Role | None

    @property
    def is_superuser(self) -> bool:
        return bool(self.user and self.user.is_superuser)

    @property
    def workspace_id(self) -> uuid.UUID:
        if self.workspace is None:
            raise APIError(
                403,
                "NO_WORKSPACE",
                "You are not a member of any workspace; create one with POST /workspaces.",
            )
        return self.workspace.id

    @property
    def label(self) -> str | None:
        """Who this is, as records of who did something name them (a user's email, a key's
        name)."""
        if self.user is not None:
            return self.user.email
        return f"API key {self.api_key.name}" if self.api_key is not None else None

    def require_user(self) -> User:
        if self.user is None:
            raise APIError(
                403, "USER_REQUIRED", "This action needs a logged-in user, not an API key."
            )
        return self.user


def _settings():
    return current_app.config["SETTINGS"]


def _parse_workspace_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as error:
        raise APIError(
            400, "INVALID_WORKSPACE_ID", f"{WORKSPACE_HEADER} must be a UUID."
        ) from error


async def _current_workspace(user: User) -> tuple[Workspace | None, Role | None]:
    header = request.headers.get(WORKSPACE_HEADER)
    if header:
        workspace_id = _parse_workspace_id(header)
        try:
            return await workspace_role(user, workspace_id)
        except NotFound as error:
            raise APIError(
                403, "NOT_A_MEMBER", f"You are not a member of the workspace in {WORKSPACE_HEADER}."
            ) from error
    return await default_workspace(user)


def refuse_cross_site_cookie() -> None:
    """A change sent with the session cookie must come from this site's own pages.

    `SameSite=Lax` keeps the cookie off other sites' requests; this also stops a page on
    another origin of the same site (a sibling subdomain) from acting as the logged-in user.
    Browsers send `Origin` with every such request; clients without one (curl, SDKs) are not
    browsers acting on someone's behalf. The site is the host the request names, or
    `VOXLINE_PUBLIC_URL`'s (a reverse proxy may rewrite the Host header).
    """
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("Origin")
    if origin is None:
        return
    public_host = urlsplit(current_app.config["SETTINGS"].public_url).netloc
    if urlsplit(origin).netloc not in (request.host, public_host):
        raise APIError(
            403,
            "CROSS_ORIGIN",
            "Changes made with the session cookie must come from this site's own pages: "
            "call the API with an Authorization header or an X-API-Key instead.",
        )


async def resolve_principal() -> Principal:
    """Resolve the caller from `X-API-Key`, `Authorization: Bearer`, or the access cookie."""
    api_key_secret = request.headers.get("X-API-Key")
    bearer = None
    authorization = request.headers.get("Authorization", "")
    if authorization.lower().startswith("bearer "):
        bearer = authorization[7:].strip()
    if bearer and bearer.startswith(API_KEY_PREFIX) and not api_key_secret:
        api_key_secret = bearer
        bearer = None
    if api_key_secret:
        api_key = await api_key_of_secret(api_key_secret)
        return Principal(user=None, api_key=api_key, workspace=api_key.workspace, role=api_key.role)
    token = bearer
    if not token:
        token = request.cookies.get(ACCESS_COOKIE)
        if token:
            refuse_cross_site_cookie()
    if not token:
        raise APIError(
            401,
            "NOT_AUTHENTICATED",
            "Log in (POST /auth/login) or send an X-API-Key header.",
        )
    user = await user_of_access_token(_settings(), token)
    workspace, role = await _current_workspace(user)
    return Principal(user=user, api_key=None, workspace=workspace, role=role)


async def optional_principal() -> Principal | None:
    """The caller of a public route that shows more to some callers: None when the request
    carries no credential at all; a credential sent is resolved as on any route (401 if wrong)."""
    if not (
        request.headers.get("X-API-Key")
        or request.headers.get("Authorization")
        or request.cookies.get(ACCESS_COOKIE)
    ):
        return None
    return await resolve_principal()


async def sees_workspace(principal: Principal, workspace_id: uuid.UUID) -> bool:
    """Whether the caller belongs to the workspace (whatever its current one): its API key's
    workspace, a membership, or a superuser."""
    if principal.api_key is not None:
        return principal.api_key.workspace_id == workspace_id
    if principal.user is None:
        return False
    try:
        await workspace_role(principal.user, workspace_id)
    except NotFound:
        return False
    return True


def current_principal() -> Principal:
    return g.principal


def _has_role(principal: Principal, minimum: Role) -> bool:
    return principal.is_superuser or (
        principal.role is not None and principal.role.at_least(minimum)
    )


def require_role(minimum: Role, *, users_only: bool = False) -> Callable:
    """Guard a route: the caller needs at least `minimum` in the workspace it acts in.

    Routes with a `workspace_id` path argument act in that workspace (a workspace the
    caller cannot see answers 404); others act in the caller's current workspace.
    """

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = await resolve_principal()
            if users_only:
                principal.require_user()
            path_workspace = kwargs.get("workspace_id")
            if path_workspace is not None:
                principal = await _principal_in_workspace(principal, path_workspace)
            elif principal.workspace is None and not principal.is_superuser:
                principal.workspace_id  # raises the "no workspace" error  # noqa: B018
            if not _has_role(principal, minimum):
                raise APIError(
                    403,
                    "INSUFFICIENT_ROLE",
                    f"This action needs the {minimum.value} role or higher in this workspace.",
                )
            g.principal = principal
            return await view(*args, **kwargs)

        setattr(wrapper, GUARD_ATTRIBUTE, minimum.value)
        return wrapper

    return decorator


async def _principal_in_workspace(principal: Principal, workspace_id: uuid.UUID) -> Principal:
    if principal.api_key is not None:
        if principal.api_key.workspace_id != workspace_id:
            raise APIError(404, "WORKSPACE_NOT_FOUND", "No workspace with that id.")
        return principal
    user = principal.require_user()  # without an API key, the principal is a user
    workspace, role = await workspace_role(user, workspace_id)
    return Principal(user=user, api_key=None, workspace=workspace, role=role)


def require_user(view: Callable) -> Callable:
    """Guard a route that any logged-in user may call ("JWT" in the API table)."""

    @wraps(view)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal = await resolve_principal()
        principal.require_user()
        g.principal = principal
        return await view(*args, **kwargs)

    setattr(wrapper, GUARD_ATTRIBUTE, ANY_USER)
    return wrapper


def public(view: Callable) -> Callable:
    """Mark a route as public by design; the route-guard test then requires a rate limit."""
    setattr(view, GUARD_ATTRIBUTE, PUBLIC)
    return view
