"""Shared fixtures: a real database (PostgreSQL or SQLite) and Redis per run, an app, users, SMTP,
and the stand-ins every package's tests share (LiveKit, Twilio, Vonage, the scripted OpenAI).

`--database=sqlite` (or `VOXLINE_TEST_DATABASE=sqlite`) runs the tests on a fresh SQLite file,
the embedded default of `make run`; PostgreSQL is the default. The option wins over the variable.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from redis.asyncio import Redis
from tortoise import Tortoise, connections

from control.config import Settings
from control.db import apply_migrations
from control.http.app import create_app
from control.models import Agent, Membership, Role, User, Workspace
from control.security import encode_token, hash_password
from control.services.agents import create_agent
from telephony.config import TelephonySettings
from tests.fakes.anthropic_server import anthropic_server, scripted_anthropic  # noqa: F401
from tests.fakes.livekit_server import (  # noqa: F401 (fixtures)
    FakeLiveKit,
    livekit,
    livekit_api,
    livekit_server,
)
from tests.fakes.openai_server import FakeOpenAI, openai_server, scripted_llm  # noqa: F401
from tests.fakes.twilio_server import FakeTwilio, twilio, twilio_server  # noqa: F401
from tests.fakes.vonage_server import FakeVonage, vonage, vonage_server  # noqa: F401

# The knowledge package reads its settings from the environment: one data dir for the run.
TEST_DATA_DIR = os.environ.setdefault("VOXLINE_DATA_DIR", tempfile.mkdtemp(prefix="voxline-test-"))

DATABASES = ("postgres", "sqlite")
# One database per test run (dropped at the end), so two runs on one machine never collide.
TEST_DATABASE_URL = os.environ.get(
    "VOXLINE_TEST_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/voxline_test_{os.getpid()}"
)
TEST_REDIS_URL = os.environ.get("VOXLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "correct-horse-9"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database",
        choices=DATABASES,
        default=None,
        help="the database the tests run on (default: $VOXLINE_TEST_DATABASE, else postgres)",
    )


def selected_database(config: pytest.Config) -> str:
    """`--database`, else `VOXLINE_TEST_DATABASE`, else PostgreSQL."""
    chosen = config.getoption("--database") or os.environ.get("VOXLINE_TEST_DATABASE", "postgres")
    if chosen not in DATABASES:
        raise pytest.UsageError(f"VOXLINE_TEST_DATABASE={chosen!r}: use one of {DATABASES}")
    return chosen


def pytest_report_header(config: pytest.Config) -> str:
    return f"database: {selected_database(config)}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if selected_database(config) == "postgres":
        return
    for item in items:
        marker = item.get_closest_marker("postgres_only")
        if marker is not None:
            why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"PostgreSQL only: {why}".rstrip(": ")))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Mailbox:
    """What a real local SMTP server (aiosmtpd) received."""

    port: int = 0
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's API)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    async def wait_for(self, to: str, seconds: float = 30.0) -> Message:
        for _ in range(int(seconds / 0.05)):
            for message in self.messages:
                if message["To"] == to:
                    return message
            await asyncio.sleep(0.05)
        raise AssertionError(f"no email reached {to}")


@pytest.fixture(scope="session")
def mailbox() -> Mailbox:
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


async def _recreate_database(url: str, *, create: bool = True) -> None:
    base, name = url.rsplit("/", 1)
    admin = await asyncpg.connect(base.replace("postgres://", "postgresql://") + "/postgres")
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if create:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def database(request: pytest.FixtureRequest) -> str:
    """The dialect this run tests on: "postgres" or "sqlite"."""
    return selected_database(request.config)


@pytest.fixture(scope="session")
def database_url(database: str) -> Iterator[str]:
    if database == "postgres":
        yield TEST_DATABASE_URL
        return
    directory = tempfile.mkdtemp(prefix="voxline-test-sqlite-")
    yield f"sqlite://{directory}/voxline.db"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(mailbox, database_url) -> Settings:
    return Settings(
        env="test",
        data_dir=Path(TEST_DATA_DIR),
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        smtp_port=mailbox.port,
        jwt_secret="test-jwt-secret-" + "x" * 32,
        encryption_key="test-encryption-key",
        service_token="test-service-token",
        google_client_id="voxline-test.apps.googleusercontent.com",
        # Tests drive the webhook dispatcher themselves, with their own settings.
        background_workers=False,
    )


TEST_AGENT_NAME = "voxline-test-agent"


@pytest.fixture(scope="session")
def telephony_settings(
    livekit_server: FakeLiveKit,  # noqa: F811
    twilio_server: FakeTwilio,  # noqa: F811
    vonage_server: FakeVonage,  # noqa: F811
) -> TelephonySettings:
    """Telephony settings pointing every client at the stand-ins in tests/fakes."""
    return TelephonySettings(
        env="test",
        livekit_url=livekit_server.url,
        livekit_api_key=livekit_server.api_key,
        livekit_api_secret=livekit_server.api_secret,
        agent_name=TEST_AGENT_NAME,
        twilio_account_sid=twilio_server.account_sid,
        twilio_auth_token=twilio_server.auth_token,
        twilio_api_base=twilio_server.url,
        twilio_pricing_api_base=twilio_server.url,
        vonage_api_key=vonage_server.api_key,
        vonage_api_secret=vonage_server.api_secret,
        vonage_api_base=vonage_server.url,
        provider_timeout_seconds=5.0,
    )


@pytest.fixture(scope="session")
async def app(settings, telephony_settings, database):
    # SQLite: the file is new (a fresh temporary directory), so every migration runs on it too.
    if database == "postgres":
        await _recreate_database(settings.database_url)
    await apply_migrations(settings)
    application = create_app(settings, telephony_settings)
    async with application.test_app() as test_app:
        yield test_app
    await Tortoise.close_connections()
    if database == "postgres":
        await _recreate_database(settings.database_url, create=False)


@pytest.fixture(scope="session")
async def redis(settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    await client.aclose()


def _empty_tables_sql(database: str, tables: list[str]) -> str:
    if database == "postgres":
        return "TRUNCATE " + ", ".join(f'"{table}"' for table in tables) + " CASCADE"
    # SQLite has no TRUNCATE; with foreign keys off, the order of the deletes does not matter
    # (the pragma is ignored inside a transaction). One transaction: one sync to disk, not one each.
    deletes = " ".join(f'DELETE FROM "{table}";' for table in tables)
    return f"PRAGMA foreign_keys = OFF; BEGIN; {deletes} COMMIT; PRAGMA foreign_keys = ON;"


@pytest.fixture
async def db(app, redis, mailbox, database):
    """Empty tables, an empty Redis database and an empty mailbox for this test."""
    mailbox.messages.clear()
    tables = [model._meta.db_table for model in Tortoise.apps["models"].values()]
    await connections.get("default").execute_script(_empty_tables_sql(database, tables))
    await redis.flushdb()


@pytest.fixture
def client(app, db):
    return app.test_client()


async def make_user(
    email: str = "owner@example.com",
    *,
    role: Role = Role.ADMIN,
    workspace: Workspace | None = None,
    superuser: bool = False,
) -> tuple[User, Workspace]:
    """A user with `role` in `workspace` (a new workspace when none is given)."""
    user = await User.create(
        email=email, password_hash=hash_password(PASSWORD), is_superuser=superuser
    )
    if workspace is None:
        slug = email.replace("@", "-").replace(".", "-")
        workspace = await Workspace.create(name=f"{email}'s workspace", slug=slug)
    await Membership.create(user=user, workspace=workspace, role=role)
    user.current_workspace_id = workspace.id
    await user.save()
    return user, workspace


def auth_headers(settings: Settings, user: User, workspace: Workspace | None = None) -> dict:
    token = encode_token(settings, {"sub": str(user.id), "typ": "access"}, 600)
    headers = {"Authorization": f"Bearer {token}"}
    if workspace is not None:
        headers["X-Workspace-Id"] = str(workspace.id)
    return headers


def scripted_agent_config(llm: FakeOpenAI, **fields: Any) -> dict[str, Any]:
    """An agent's configuration whose LLM is the scripted one, `llm`, plus `fields`."""
    return {
        "LLM_provider": "openai",
        "LLM_base_url": llm.base_url,
        "LLM_model": "scripted",
        **fields,
    }


async def offline_spoken_agent(
    settings: Settings, llm: FakeOpenAI, **fields: Any
) -> tuple[User, Agent]:
    """A developer and their agent on the scripted LLM, hearing and speaking offline (local STT
    and TTS) as `voxline simulate` runs it, with `fields` added to its configuration."""
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    agent = await create_agent(
        settings.model_copy(update={"allow_private_urls": True}),  # the LLM is on loopback
        workspace.id,
        scripted_agent_config(llm, STT_provider="local", TTS_provider="local", **fields),
    )
    return user, agent
