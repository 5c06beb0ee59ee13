"""What the PostgreSQL benchmarks share: their own database, the app on it, an admin's headers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from control.config import Settings
from control.db import apply_migrations
from control.http.app import create_app
from control.models import Agent, Membership, PhoneNumber, Role, User, Workspace
from control.security import encode_token
from control.services.agents import create_agent
from telephony.config import TelephonySettings
from tests.fakes.livekit_server import FakeLiveKit

BASE_URL = os.environ.get("VOXLINE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


async def recreate_database(name: str) -> None:
    admin = await asyncpg.connect(f"{BASE_URL}/postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()


@asynccontextmanager
async def bench_app(
    database: str, redis_url: str, **settings_overrides: Any
) -> AsyncIterator[tuple[Settings, Any, FakeLiveKit]]:
    """A fresh, migrated `database`, and the app on it with the LiveKit stand-in.

    Yields the settings, the started test app and the stand-in.
    """
    await recreate_database(database)
    livekit = FakeLiveKit().start()
    settings = Settings(
        env="test",
        database_url=f"{BASE_URL.replace('postgresql://', 'postgres://')}/{database}",
        redis_url=redis_url,
        jwt_secret="bench-secret-" + "x" * 40,
        service_token="bench-service-token",
        background_workers=False,
        **settings_overrides,
    )
    telephony = TelephonySettings(
        env="test",
        livekit_url=livekit.url,
        livekit_api_key=livekit.api_key,
        livekit_api_secret=livekit.api_secret,
    )
    await apply_migrations(settings)
    try:
        async with create_app(settings, telephony).test_app() as test_app:
            yield settings, test_app, livekit
    finally:
        livekit.stop()


async def admin_headers(settings: Settings, workspace: Workspace) -> dict[str, str]:
    """The headers of a new admin of `workspace` (a bearer token valid for an hour)."""
    user = await User.create(email="bench@example.com")
    await Membership.create(user=user, workspace=workspace, role=Role.ADMIN)
    token = encode_token(settings, {"sub": str(user.id), "typ": "access"}, 3600)
    return {"Authorization": f"Bearer {token}", "X-Workspace-Id": str(workspace.id)}


AGENT_NUMBER = "+16505551234"


async def calling_line(settings: Settings) -> tuple[Workspace, Agent]:
    """A workspace with a number on an outbound trunk (the stand-in's) and the agent on it."""
    workspace = await Workspace.create(name="Bench", slug="bench")
    await PhoneNumber.create(
        workspace=workspace,
        phone_number=AGENT_NUMBER,
        source="sip_trunk",
        provider="vonage",
        inbound_trunk_id="ST_in",
        outbound_trunk_id="ST_out",
        dispatch_rule_id="SDR_1",
    )
    agent = await create_agent(
        settings, workspace.id, {"agent_name": "Bench", "phone_number": AGENT_NUMBER}
    )
    return workspace, agent
