"""The dashboard's browser tests: `voxline serve` in a child process, Debian's Chromium headless.

One server and one browser serve the whole session; each test gets a fresh database (the `db`
fixture), a fresh browser context (no cookies) and signs up its own user.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import struct
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.servers import SERVICE_TOKEN, ControlPlaneProcess

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")

CHROMIUM = os.environ.get("VOXLINE_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "correct-horse-42"
SERVICE = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
# Playwright's waits, in milliseconds: long enough for two busy cores, never a fixed sleep.
WAIT_MS = 20_000

playwright_api.expect.set_options(timeout=WAIT_MS)

if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: `make setup` installs Debian's chromium package",
        allow_module_level=True,
    )


@pytest.fixture(scope="session")
async def dashboard_server(app, settings, livekit_server, tmp_path_factory) -> AsyncIterator[str]:
    """`voxline serve` on the test database, with its background work (ingestion, the dialer)."""
    log = tmp_path_factory.mktemp("web") / "serve.log"
    server = ControlPlaneProcess(
        settings,
        log,
        VOXLINE_BACKGROUND_WORKERS="true",
        VOXLINE_JOBS_POLL_SECONDS="0.2",
        VOXLINE_DIALER_TICK_SECONDS="0.5",
        VOXLINE_JWT_SECRET=settings.jwt_secret,
        VOXLINE_ENCRYPTION_KEY=settings.encryption_key,
        # the scripted LLM listens on loopback
        VOXLINE_ALLOW_PRIVATE_URLS="true",
        LIVEKIT_URL=livekit_server.url,
        LIVEKIT_API_KEY=livekit_server.api_key,
        LIVEKIT_API_SECRET=livekit_server.api_secret,
        VOXLINE_AGENT_NAME="voxline-test-agent",
    )
    server.start()
    try:
        await server.wait_until_up()
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator:
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        await chromium.close()


@pytest.fixture
async def context(browser, dashboard_server, db, livekit):
    """A fresh browser (no cookies) on an empty database and an empty LiveKit stand-in; errors
    in the pages' scripts fail the test."""
    context = await browser.new_context(
        base_url=dashboard_server, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    context.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    yield context
    await context.close()
    assert errors == [], f"errors in the pages' scripts: {errors}"


@pytest.fixture
async def page(context):
    return await context.new_page()


@pytest.fixture
async def api(dashboard_server) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the server: for what a test sets up outside the browser."""
    async with httpx.AsyncClient(base_url=dashboard_server, timeout=30) as client:
        yield client


async def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


async def sign_up(page, email: str = "ada@example.com") -> None:
    """Sign up through the page, as a new user does; ends on the agents page."""
    await page.goto("/app/signup")
    await page.get_by_label("Full name").fill("Ada Lovelace")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()
    await page.wait_for_url("**/app/agents")


def tone_wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A short 440 Hz WAV: what a worker uploads as a call's recording."""
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * index / rate)))
        for index in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as recording:
        recording.setnchannels(1)
        recording.setsampwidth(2)
        recording.setframerate(rate)
        recording.writeframes(frames)
    return buffer.getvalue()


async def simulated_call(api: httpx.AsyncClient, agent_id: str) -> str:
    """A finished web call with a transcript, latencies and a recording, as a worker reports it.

    Through the workers' own API (`/internal`, the service token), which is what a real worker
    or `voxline simulate` calls, without running speech models in the test.
    """
    spec = await api.post(
        f"/internal/agents/{agent_id}/calls", json={"direction": "web"}, headers=SERVICE
    )
    assert spec.status_code == 201, spec.text
    call_id = spec.json()["call_id"]
    stored = await api.put(
        f"/internal/calls/{call_id}/recording",
        content=tone_wav(),
        headers={**SERVICE, "Content-Type": "audio/wav"},
    )
    assert stored.status_code == 200, stored.text
    report = {
        "status": "completed",
        "end_reason": "user_hangup",
        "started_at": "2026-11-30T10:00:00+00:00",
        "answered_at": "2026-11-30T10:00:01+00:00",
        "ended_at": "2026-11-30T10:01:05+00:00",
        "transcript": [
            {
                "role": "assistant",
                "text": "Hello, Harbor Cafe.",
                "started_at": "2026-11-30T10:00:01+00:00",
            },
            {
                "role": "user",
                "text": "When do you open?",
                "started_at": "2026-11-30T10:00:04+00:00",
            },
            {
                "role": "tool_call",
                "text": "",
                "tool_name": "opening_hours",
                "arguments": {"day": "monday"},
                "started_at": "2026-11-30T10:00:05+00:00",
            },
            {
                "role": "tool_result",
                "text": "",
                "tool_name": "opening_hours",
                "result": "07:00-18:00",
                "started_at": "2026-11-30T10:00:06+00:00",
            },
            {
                "role": "assistant",
                "text": "We open at seven.",
                "started_at": "2026-11-30T10:00:07+00:00",
            },
        ],
        "latencies": [
            {
                "turn": 1,
                "end_of_utterance_ms": 310,
                "llm_ttft_ms": 420,
                "tts_ttfb_ms": 180,
                "end_to_end_ms": 910,
            },
            {
                "turn": 2,
                "end_of_utterance_ms": 280,
                "llm_ttft_ms": 390,
                "tts_ttfb_ms": 170,
                "end_to_end_ms": 840,
            },
        ],
    }
    reported = await api.post(f"/internal/calls/{call_id}/report", json=report, headers=SERVICE)
    assert reported.status_code == 200, reported.text
    return call_id
