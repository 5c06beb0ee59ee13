"""Outages degrade cleanly: Redis or PostgreSQL down means 503 naming it, never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from quart_rate_limiter import QUART_RATE_LIMITER_LIMITS_ATTRIBUTE
from redis import exceptions as redis_errors
from tortoise.exceptions import OperationalError

from control.http.app import create_app
from control.http.ratelimit import FAIL_OPEN_ATTRIBUTE
from control.models import Role
from control.outages import DATABASE, REDIS, outage_of
from control.services.agents import create_agent
from control.services.livekit_events import ACTIVE_CALLS_KEY
from tests.conftest import PASSWORD, TEST_DATA_DIR, auth_headers, free_port, make_user

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server to run a private Redis"
)

AGENT_NUMBER = "+16505551234"
TRUNK_BODY = {"sip_address": "sip.example.com", "phone_number": AGENT_NUMBER, "provider": "vonage"}
OUTBOUND_BODY = {"agent_phone_number": AGENT_NUMBER, "phone_number_to_dial": "+14155559876"}
WALKED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# quart-schema's documentation routes serve static descriptions; they touch neither server.
DOCUMENTATION_ENDPOINTS = {"openapi", "redoc_ui", "scalar_ui", "swagger_ui"}
WORKSPACE_RULE = "/workspaces/<uuid:workspace_id>"


@dataclass
class PrivateRedis:
    """A `redis-server` of this test's own, on a free port, that the test may stop."""

    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _listening(self.port):
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("the private redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(port=free_port())
    yield server
    server.stop()


def _path_for(rule, values: dict[str, str]) -> str:
    """The rule's path with each `<converter:name>` replaced by a plausible value."""

    def value(match: re.Match) -> str:
        converter, name = match.group(1), match.group(2)
        if name in values:
            return values[name]
        if converter == "uuid":
            return str(uuid.uuid4())
        if converter == "path":
            return "notes.txt"
        return "+15550100000"

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", value, rule.rule)


def _uses_the_rate_limiter(view) -> bool:
    return bool(getattr(view, QUART_RATE_LIMITER_LIMITS_ATTRIBUTE, None))


async def test_redis_stopped_mid_run_gives_503s_never_500s(
    db, settings, telephony_settings, livekit, private_redis
):
    private_redis.start()
    app = create_app(
        settings.model_copy(update={"redis_url": private_redis.url}), telephony_settings
    )
    # No `test_app()`: the session app has initialised the database connections already.
    client = app.test_client()
    user, workspace = await make_user("admin@example.com", role=Role.ADMIN)
    headers = auth_headers(settings, user)
    try:
        assert (await client.get("/health")).status_code == 200
        login = {"email": user.email, "password": PASSWORD}
        assert (await client.post("/auth/login", json=login)).status_code == 200
        trunk = await client.post("/phonenumbers/sip_trunk", json=TRUNK_BODY, headers=headers)
        assert trunk.status_code == 201, await trunk.get_json()
        agent = await create_agent(
            settings, workspace.id, {"agent_name": "Caller", "phone_number": AGENT_NUMBER}
        )

        private_redis.stop()

        health = await _wait_for_health(client, 503, seconds=5)
        body = await health.get_json()
        assert (body["redis"], body["database"], body["code"]) == (
            "unavailable",
            "ok",
            "SERVICE_UNAVAILABLE",
        )
        assert "redis" in body["detail"]

        # Routes that need Redis: the rate limiter, the capacity count, LiveKit's event ids.
        webhook_body, signature = livekit.webhook("room_started", room_name="r1", event_id="EV_1")
        needing_redis = {
            "POST /auth/login": await client.post("/auth/login", json=login),
            "POST /calls/outbound_call": await client.post(
                "/calls/outbound_call", json=OUTBOUND_BODY, headers=headers
            ),
            "GET /calls/generate-token": await client.get(
                f"/calls/generate-token?phone={AGENT_NUMBER.replace('+', '%2B')}"
            ),
            "POST /webhook/livekit": await client.post(
                "/webhook/livekit", data=webhook_body, headers={"Authorization": signature}
            ),
        }
        for route, response in needing_redis.items():
            assert response.status_code == 503, (route, await response.get_json())
            error = await response.get_json()
            assert error["code"] == "SERVICE_UNAVAILABLE", (route, error)
            assert error["detail"].startswith("Redis is unavailable"), (route, error)
            assert response.headers["Retry-After"].isdigit(), route

        # Every route, every method: nothing answers 500; rate-limited routes fail closed
        # (503 naming Redis) unless marked fail-open.
        values = {
            "workspace_id": str(workspace.id),
            "agent_id": str(agent.id),
            "number": AGENT_NUMBER,
        }
        service_token = {"Authorization": f"Bearer {settings.service_token}"}
        calls = [
            (rule, app.view_functions[rule.endpoint], method)
            for rule in app.url_map.iter_rules()
            if rule.endpoint not in DOCUMENTATION_ENDPOINTS
            for method in rule.methods & set(WALKED_METHODS)
        ]
        # DELETEs last, the workspace's very last, so the rows survive the walk.
        calls.sort(key=lambda call: (call[2] == "DELETE", call[0].rule == WORKSPACE_RULE))
        offenders, limited_wrongly = [], []
        for rule, view, method in calls:
            caller = service_token if rule.rule.startswith("/internal") else headers
            path = _path_for(rule, values)
            body = None if method in ("GET", "DELETE") else {}
            response = await client.open(path, method=method, json=body, headers=caller)
            answer = await response.get_data(as_text=True)
            if response.status_code >= 500 and response.status_code != 503:
                offenders.append(f"{method} {path} -> {response.status_code} {answer[:200]}")
            fails_closed = _uses_the_rate_limiter(view) and not getattr(
                view, FAIL_OPEN_ATTRIBUTE, False
            )
            if fails_closed and (response.status_code != 503 or "Redis" not in answer):
                limited_wrongly.append(f"{method} {path} -> {response.status_code} {answer[:200]}")
            if response.status_code == 503 and rule.rule != "/health":
                error = await response.get_json()
                if error.get("code") != "SERVICE_UNAVAILABLE" or "Redis" not in error["detail"]:
                    offenders.append(f"{method} {path} -> 503 not naming Redis: {error}")
        assert len(calls) > 50, "the walk should reach every route"
        assert offenders == [], "answers while Redis is down:\n" + "\n".join(offenders)
        assert limited_wrongly == [], "rate-limited routes not failing closed:\n" + "\n".join(
            limited_wrongly
        )
    finally:
        await app.extensions["redis"].aclose()


# `voxline serve` in a child process with one server out of reach.


@contextlib.asynccontextmanager
async def serve(env_overrides: dict[str, str]) -> AsyncIterator[tuple[str, Process]]:
    """`voxline serve` on a free port; yields its URL once it answers `/health` at all."""
    port = free_port()
    env = {
        **os.environ,
        "VOXLINE_DATA_DIR": TEST_DATA_DIR,
        "VOXLINE_BACKGROUND_WORKERS": "false",
        "VOXLINE_ENV": "test",
        "VOXLINE_SERVICE_TOKEN": "test-service-token",  # outside development, never the default
        **env_overrides,
    }
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stall the child
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "voxline", "serve", "--port", str(port)),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            deadline = time.monotonic() + 60
            while True:
                assert process.returncode is None, "voxline serve exited:\n" + _tail(log)
                with contextlib.suppress(httpx.TransportError):
                    await http.get("/health")
                    break
                assert time.monotonic() < deadline, "voxline serve did not answer"
                await asyncio.sleep(0.25)
        yield url, process
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
        log.close()


def _tail(log, characters: int = 4000) -> str:
    log.seek(0)
    return log.read()[-characters:]


async def _wait_for_health(http, status: int, seconds: float = 20):
    """`/health` until it answers `status` (it reuses a check for up to a second); the answer.

    `http` is an httpx client or Quart's test client.
    """
    deadline = time.monotonic() + seconds
    while True:
        response = await http.get("/health")
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status
            return response
        await asyncio.sleep(0.25)


async def test_serve_starts_with_redis_down_and_recovers_without_restart(
    db, settings, private_redis
):
    env = {"VOXLINE_DATABASE_URL": settings.database_url, "VOXLINE_REDIS_URL": private_redis.url}
    async with serve(env) as (url, process), httpx.AsyncClient(base_url=url, timeout=10) as http:
        health = await http.get("/health")
        assert health.status_code == 503
        body = health.json()
        assert (body["redis"], body["database"]) == ("unavailable", "ok")
        login = await http.post(
            "/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
        )
        assert login.status_code == 503
        assert login.json()["code"] == "SERVICE_UNAVAILABLE"
        assert login.json()["detail"].startswith("Redis is unavailable")
        assert process.returncode is None

        private_redis.start()
        recovered = (await _wait_for_health(http, 200)).json()
        assert (recovered["status"], recovered["database"], recovered["redis"]) == ("ok",) * 3
        login = await http.post(
            "/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
        )
        assert login.status_code == 401, login.text


class TcpRelay:
    """A TCP relay to PostgreSQL that can be closed and opened: the database going away."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self._target_port
        )

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                sink.close()

        tasks = {
            asyncio.create_task(pipe(reader, upstream_writer)),
            asyncio.create_task(pipe(upstream_reader, writer)),
        }
        self._tasks |= tasks
        await asyncio.gather(*tasks)
        self._tasks -= tasks


@pytest.mark.postgres_only("the outage is PostgreSQL going away")
async def test_serve_starts_with_postgres_down_and_recovers_without_restart(
    db, settings, redis, livekit
):
    target = urlsplit(settings.database_url)
    relay = TcpRelay(target.port or 5432)
    database_url = settings.database_url.replace(target.netloc, f"postgres@127.0.0.1:{relay.port}")
    env = {
        "VOXLINE_DATABASE_URL": database_url,
        "VOXLINE_REDIS_URL": settings.redis_url,
        "VOXLINE_JWT_SECRET": settings.jwt_secret,
        "LIVEKIT_URL": livekit.url,
        "LIVEKIT_API_KEY": livekit.api_key,
        "LIVEKIT_API_SECRET": livekit.api_secret,
    }
    user, _ = await make_user("admin@example.com", role=Role.ADMIN)
    headers = auth_headers(settings, user)
    event, signature = livekit.webhook("room_started", room_name="r1", event_id="EV_OUTAGE")
    webhook = {"content": event, "headers": {"Authorization": signature}}
    try:
        async with (
            serve(env) as (url, process),
            httpx.AsyncClient(base_url=url, timeout=10) as http,
        ):
            health = await http.get("/health")
            assert health.status_code == 503
            body = health.json()
            assert (body["database"], body["redis"]) == ("unavailable", "ok")
            assert "database" in body["detail"]
            for method, path in (
                ("GET", "/agents"),
                ("GET", "/workspaces"),
                ("POST", "/auth/login"),
            ):
                json = {"email": user.email, "password": PASSWORD} if method == "POST" else None
                response = await http.request(method, path, headers=headers, json=json)
                assert response.status_code == 503, (path, response.text)
                error = response.json()
                assert error["code"] == "SERVICE_UNAVAILABLE", (path, error)
                assert error["detail"].startswith("The database is unavailable"), (path, error)
            # A LiveKit event whose write failed is refused, not counted: LiveKit sends it again.
            refused = await http.post("/webhook/livekit", **webhook)
            assert refused.status_code == 503, refused.text
            assert refused.json()["detail"].startswith("The database is unavailable")
            assert await redis.get(ACTIVE_CALLS_KEY) is None
            assert process.returncode is None

            await relay.open()
            await _wait_for_health(http, 200)
            agents = await http.get("/agents", headers=headers)
            assert agents.status_code == 200, agents.text
            # LiveKit's retry is applied, once.
            for duplicate in (False, True):
                retried = await http.post("/webhook/livekit", **webhook)
                assert retried.json() == {"received": "room_started", "duplicate": duplicate}
            assert await redis.get(ACTIVE_CALLS_KEY) == "1"
    finally:
        await relay.close()


def test_only_the_drivers_network_errors_count_as_outages():
    # Refused by a port nobody listens on, but not inside a driver (SMTP, HTTP): a bug, a 500.
    with pytest.raises(OSError) as refused:
        socket.create_connection(("127.0.0.1", free_port()), timeout=1)
    assert outage_of(refused.value) is None
    assert outage_of(FileNotFoundError("notes.txt")) is None
    assert outage_of(redis_errors.ConnectionError("Connection closed by server.")) == REDIS
    wrapped = OperationalError("lost")
    wrapped.__cause__ = asyncpg.ConnectionDoesNotExistError("connection was closed")
    assert outage_of(wrapped) == DATABASE
    assert outage_of(OperationalError(asyncpg.UndefinedTableError("no such table"))) is None
