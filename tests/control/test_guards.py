"""Every route is role-guarded or public by design, and public routes are rate-limited."""

from quart_rate_limiter import QUART_RATE_LIMITER_LIMITS_ATTRIBUTE

from control.http.app import create_app
from control.http.principal import GUARD_ATTRIBUTE, PUBLIC
from control.models import Role

# quart-schema's own documentation routes: static, read-only descriptions of the API.
DOCUMENTATION_ENDPOINTS = {"openapi", "redoc_ui", "scalar_ui", "swagger_ui"}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Members read (PARITY.md). These two take a body but change nothing a workspace configures:
# a knowledge-base query and a text chat with an agent only read it.
MEMBER_POSTS_THAT_READ = {("POST", "/agents/<uuid:agent_id>/query"), ("POST", "/chats")}


def _views(settings):
    app = create_app(settings)
    for rule in app.url_map.iter_rules():
        if rule.endpoint in DOCUMENTATION_ENDPOINTS:
            continue
        yield rule, app.view_functions[rule.endpoint]


def test_every_route_is_guarded_or_public(settings):
    unguarded = [
        rule.rule for rule, view in _views(settings) if not getattr(view, GUARD_ATTRIBUTE, None)
    ]
    assert unguarded == [], f"routes with neither a role guard nor @public: {unguarded}"


def test_every_public_route_is_rate_limited(settings):
    public_routes = [
        (rule, view)
        for rule, view in _views(settings)
        if getattr(view, GUARD_ATTRIBUTE, None) == PUBLIC
    ]
    assert {rule.rule for rule, _ in public_routes} >= {
        "/auth/login",
        "/auth/signup",
        "/auth/forgot-password",
    }
    unlimited = [
        rule.rule
        for rule, view in public_routes
        if not getattr(view, QUART_RATE_LIMITER_LIMITS_ATTRIBUTE, None)
    ]
    assert unlimited == [], f"public routes without a rate limit: {unlimited}"


def test_members_only_read(settings):
    """PARITY.md's roles: members read; developers and admins write (calls, numbers, ...)."""
    member_writes = sorted(
        (method, rule.rule)
        for rule, view in _views(settings)
        if getattr(view, GUARD_ATTRIBUTE, None) == Role.MEMBER.value
        for method in (rule.methods or set()) & WRITE_METHODS
        if (method, rule.rule) not in MEMBER_POSTS_THAT_READ
    )
    assert member_writes == [], f"write routes open to members: {member_writes}"
