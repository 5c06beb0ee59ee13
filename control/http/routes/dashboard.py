"""`/app`: the web dashboard's pages and assets (`/` redirects there); the pages call the API.

Each page is a server-rendered shell (`control/web/templates`) with a small script
(`control/web/static/pages`) that reads and writes through the public JSON API with the session
cookie. The pages themselves hold no data, so they are public; every asset, including the
vendored libraries, is served from the package: nothing is loaded from a CDN.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from quart import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    send_from_directory,
)
from quart_schema import hide
from werkzeug.wrappers.response import Response as WerkzeugResponse

from control.http.principal import ACCESS_COOKIE, SESSION_COOKIE, public
from control.http.ratelimit import fail_open, per_minute
from runtime.spec import PROVIDERS

WEB_DIRECTORY = Path(__file__).resolve().parents[2] / "web"  # control/web
STATIC_DIRECTORY = WEB_DIRECTORY / "static"
# Browsers revalidate assets on each use (a 304 by ETag when unchanged), so an upgrade's pages
# never run the previous release's scripts.
STATIC_MAX_AGE_SECONDS = 0

blueprint = Blueprint(
    "dashboard", __name__, template_folder=str(WEB_DIRECTORY / "templates"), static_folder=None
)

# Page name -> (title, needs a logged-in user). The name is the URL (`/app/<name>`), the
# template (`<name>.html`) and the script (`static/pages/<name>.js`).
PAGES: dict[str, tuple[str, bool]] = {
    "login": ("Log in", False),
    "signup": ("Sign up", False),
    "forgot-password": ("Forgot password", False),
    "reset-password": ("Reset password", False),
    "accept-invite": ("Accept invitation", True),
    "agents": ("Agents", True),
    "chat": ("Talk to an agent", True),
    "calls": ("Calls", True),
    "batches": ("Batches", True),
    "reports": ("Reports", True),
    "numbers": ("Phone numbers", True),
    "workspace": ("Workspace and members", True),
    "api-keys": ("API keys", True),
    "webhooks": ("Webhooks", True),
    "campaigns": ("Campaigns", True),
    "campaign": ("Campaign", True),
}
# Pages shown only when their API is part of the app.
PAGE_BLUEPRINTS = {"campaigns": "campaigns", "campaign": "campaigns"}
# The navigation entry a page belongs to, when it is not its own.
PAGE_SECTIONS = {"campaign": "campaigns", "test-runs": "agents"}
# Pages of one item: `/app/<name>/<id>` renders `<name>-detail.html`.
DETAIL_PAGES: dict[str, str] = {
    "agents": "Agent",
    "calls": "Call",
    "batches": "Batch",
    "test-runs": "Test run",
}


def _provider_catalogue() -> dict:
    """The runtime's providers as the agent form offers them: models and voices per provider."""
    return {
        kind: {
            name: {
                "label": info.label,
                "models": list(info.models),
                "voices": list(info.voices),
                "accepts_base_url": info.accepts_base_url,
            }
            for name, info in providers.items()
        }
        for kind, providers in PROVIDERS.items()
    }


def _livekit_sources() -> str:
    """Where the browser's voice calls connect: LiveKit's public address (http(s) or ws(s))."""
    url = (
        current_app.config["SETTINGS"].livekit_public_url
        or current_app.config["TELEPHONY"].livekit_url
    )
    if not url:
        return ""
    parts = urlsplit(url)
    secure = parts.scheme in ("https", "wss")
    schemes = ("https", "wss") if secure else ("http", "ws")
    return " ".join(f"{scheme}://{parts.netloc}" for scheme in schemes)


def _has_session() -> bool:
    """Whether this browser has logged in and not out (its session may still have ended)."""
    return SESSION_COOKIE in request.cookies or ACCESS_COOKIE in request.cookies


def _to_login(next_page: str | None = None) -> WerkzeugResponse:
    """The login page, coming back to `next_page` after (a fragment rides along the redirect)."""
    return redirect("/app/login" + (f"?{urlencode({'next': next_page})}" if next_page else ""))


@blueprint.after_request
async def _content_security_policy(response: Response) -> Response:
    # Scripts, styles and media only from Voxline itself, and no framing (clickjacking).
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        f"connect-src 'self' {_livekit_sources()}; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )
    return response


@blueprint.context_processor
def _navigation() -> dict:
    # The campaigns pages appear once the campaigns API is part of the app.
    return {"campaigns_enabled": "campaigns" in current_app.blueprints}


@blueprint.get("/")
@per_minute(600)
@public
@fail_open
@hide
async def root() -> WerkzeugResponse:
    """The dashboard is the front page; a visitor with no session logs in first."""
    return redirect("/app/") if _has_session() else _to_login()


@blueprint.get("/app/")
@per_minute(600)
@public
@fail_open
@hide
async def home() -> WerkzeugResponse:
    """The first page of the dashboard: the agents."""
    return redirect("/app/agents") if _has_session() else _to_login()


@blueprint.get("/reset-password")
@blueprint.get("/accept-invite")
@per_minute(600)
@public
@fail_open
@hide
async def emailed_link() -> WerkzeugResponse:
    """The links in password-reset and invitation emails open the dashboard's form.

    The token is in the link's fragment (`#token=`), which browsers keep across the redirect
    and never send, so it reaches no server's log. A link with `?token=` (sent by an earlier
    release) has its token moved into the fragment.
    """
    token = request.args.get("token", "")
    target = "/app" + request.path
    return redirect(f"{target}#{urlencode({'token': token})}" if token else target)


@blueprint.get("/app/<name>")
@per_minute(600)
@public
@fail_open
@hide
async def page(name: str) -> str | WerkzeugResponse:
    """One page of the dashboard."""
    if name not in PAGES or PAGE_BLUEPRINTS.get(name, "dashboard") not in current_app.blueprints:
        abort(404)
    title, signed_in = PAGES[name]
    if signed_in and not _has_session():
        return _to_login(request.full_path.rstrip("?"))
    return await render_template(
        f"{name}.html",
        page=name,
        section=PAGE_SECTIONS.get(name, name),
        title=title,
        signed_in=signed_in,
        item_id=None,
        catalogue=_provider_catalogue(),
    )


@blueprint.get("/app/<name>/<uuid:item_id>")
@per_minute(600)
@public
@fail_open
@hide
async def detail_page(name: str, item_id: uuid.UUID) -> str | WerkzeugResponse:
    """The page of one agent, call or batch."""
    if name not in DETAIL_PAGES:
        abort(404)
    if not _has_session():
        return _to_login(request.full_path.rstrip("?"))
    return await render_template(
        f"{name}-detail.html",
        page=f"{name}-detail",
        section=PAGE_SECTIONS.get(name, name),
        title=DETAIL_PAGES[name],
        signed_in=True,
        item_id=str(item_id),
        catalogue=_provider_catalogue(),
    )


@blueprint.get("/app/static/<path:filename>")
@per_minute(1200)
@public
@fail_open
@hide
async def static(filename: str) -> Response:
    """The dashboard's scripts, styles and vendored libraries."""
    return await send_from_directory(
        STATIC_DIRECTORY, filename, cache_timeout=STATIC_MAX_AGE_SECONDS
    )
