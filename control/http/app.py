"""The app factory: extensions, blueprints, error handlers, start-up and shut-down hooks."""

from __future__ import annotations

from typing import cast

from quart import Quart
from quart_schema import QuartSchema
from quart_schema.typing import PydanticDumpOptions
from redis.asyncio import Redis

from control.config import Settings, get_settings
from control.db import close_db, init_db
from control.http.errors import register_error_handlers
from control.http.metrics import instrument
from control.http.openapi import VoxlineOpenAPIProvider
from control.http.ratelimit import init_rate_limiter
from control.http.request import VoxlineRequest, bound_request
from control.http.routes import (
    agent_tests,
    agent_versions,
    agents,
    auth,
    batch,
    calls,
    campaigns,
    chats,
    dashboard,
    health,
    internal,
    metrics,
    phonenumbers,
    providers,
    reports,
    webhooks,
    workspaces,
)
from control.http.schemas import pass_responses_through
from control.jobs.background import BackgroundWork
from control.services.health import DependencyWatch
from control.services.livekit_events import LiveKitEvents
from telephony import sip
from telephony.config import TelephonySettings
from telephony.config import get_settings as get_telephony_settings

BLUEPRINTS = (
    health.blueprint,
    auth.blueprint,
    workspaces.blueprint,
    providers.blueprint,
    agents.blueprint,
    agent_tests.blueprint,
    agent_versions.blueprint,
    calls.blueprint,
    batch.blueprint,
    campaigns.blueprint,
    chats.blueprint,
    phonenumbers.blueprint,
    internal.blueprint,
    webhooks.blueprint,
    reports.blueprint,
    metrics.blueprint,
    dashboard.blueprint,
)

# /docs loads Swagger UI from the dashboard's vendored copy, never from a CDN.
SWAGGER_UI_ASSETS = "/app/static/vendor/swagger-ui"


def create_app(
    settings: Settings | None = None, telephony: TelephonySettings | None = None
) -> Quart:
    settings = settings or get_settings()
    app = Quart("voxline", static_folder=None)
    app.request_class = VoxlineRequest
    app.config["SETTINGS"] = settings
    app.config["TELEPHONY"] = telephony or get_telephony_settings()
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_request_bytes
    app.config["QUART_SCHEMA_SWAGGER_JS_URL"] = f"{SWAGGER_UI_ASSETS}/swagger-ui-bundle.js"
    app.config["QUART_SCHEMA_SWAGGER_CSS_URL"] = f"{SWAGGER_UI_ASSETS}/swagger-ui.css"

    QuartSchema(
        app,
        info={"title": "Voxline API", "version": "0.1.0"},
        security_schemes={
            "cookie": {"type": "apiKey", "in_": "cookie", "name": "access_token"},
            "bearer": {"type": "http", "scheme": "bearer", "bearer_format": "JWT"},
            "apiKey": {"type": "apiKey", "in_": "header", "name": "X-API-Key"},
        },
        security=[{"cookie": []}, {"bearer": []}, {"apiKey": []}],
        # Response models are written as JSON types: ISO timestamps, UUIDs and enums as strings
        # (Quart's own encoder would write datetimes as HTTP dates). The cast: quart-schema passes
        # these to `model_dump`, but its TypedDict of them leaves out `mode`.
        pydantic_dump_options=cast(PydanticDumpOptions, {"mode": "json"}),
        # ReDoc and Scalar exist only as CDN scripts; /docs (Swagger UI) is served offline.
        redoc_ui_path=None,
        scalar_ui_path=None,
        # Operation ids, tags, shared schemas and error responses, each by one rule.
        openapi_provider_class=VoxlineOpenAPIProvider,
    )
    pass_responses_through(app)
    redis = Redis.from_url(
        settings.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0, decode_responses=True
    )
    app.extensions["redis"] = redis
    app.extensions["livekit_events"] = LiveKitEvents(redis)
    init_rate_limiter(app, redis)
    register_error_handlers(app)
    instrument(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)

    # Every body is bounded by its route's limit (a JSON route's unless it takes uploads), and
    # no query parameter holds what no column can.
    app.before_request(bound_request)

    background = BackgroundWork()
    # Neither start-up hook connects: the app serves while the database or Redis is down.
    dependencies = DependencyWatch(redis)

    @app.before_serving
    async def start() -> None:
        await init_db(settings)
        dependencies.start()
        if settings.background_workers:
            background.start(settings, redis)

    @app.after_serving
    async def stop() -> None:
        await background.stop()
        await dependencies.stop()
        await close_db()
        await redis.aclose()
        await sip.close_shared_clients()

    return app
