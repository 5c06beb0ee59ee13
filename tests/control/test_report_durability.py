"""A call's report survives the control plane dying: it lands after the restart, once.

`voxline serve` runs in a child process on the test database; the worker's side is the real
report spool and control-plane client. The server is frozen (SIGSTOP) while the report is sent,
so the request is really in flight when it is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from control.config import Settings
from control.models import Call, Role, WebhookDelivery
from control.services import webhooks
from control.services.agents import create_agent
from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane
from runtime.report_spool import ReportSpool
from runtime.spec import CallReport, CallStatus, EndReason
from tests.conftest import make_user
from tests.servers import SERVICE_TOKEN, ControlPlaneProcess
from tests.waiting import until


@pytest.fixture
def server(settings: Settings, db: None, tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    process = ControlPlaneProcess(settings, tmp_path / "serve.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def agent_with_webhook(settings: Settings, db: None) -> Any:
    """An agent in a workspace with a webhook URL, so `call_ended` deliveries are queued."""
    _, workspace = await make_user("admin@example.com", role=Role.ADMIN)
    loopback = Settings(**{**settings.model_dump(), "allow_private_urls": True})
    await webhooks.set_endpoint(loopback, workspace.id, "http://127.0.0.1:9/hooks")
    return await create_agent(
        settings,
        workspace.id,
        {"agent_name": "Acme", "LLM_provider": "openai", "LLM_model": "gpt-4o-mini"},
    )


def worker_side(server: ControlPlaneProcess, outbox: Path) -> tuple[ControlPlane, ReportSpool]:
    settings = RuntimeSettings(api_url=server.url, service_token=SERVICE_TOKEN, outbox_dir=outbox)
    spool = ReportSpool(outbox, first_retry_seconds=0.1, max_retry_seconds=0.5)
    return ControlPlane(settings, timeout=5.0), spool


def the_report(call_id: str) -> CallReport:
    return CallReport(
        call_id=call_id,
        status=CallStatus.COMPLETED,
        end_reason=EndReason.USER_HANGUP,
        started_at="2025-01-01T10:00:00+00:00",
        answered_at="2025-01-01T10:00:02+00:00",
        ended_at="2025-01-01T10:01:32+00:00",
        transcript=[
            {"role": "assistant", "text": "Hello, this is Acme.", "started_at": 0.0},
            {"role": "user", "text": "Bye now.", "started_at": 3.0},
        ],
    )


async def call_ended_deliveries(call_id: str) -> list[WebhookDelivery]:
    deliveries = await WebhookDelivery.filter(event_type="call_ended")
    return [d for d in deliveries if d.payload.get("data", {}).get("call_id") == call_id]


@pytest.mark.postgres_only("two processes on one database")
async def test_a_report_in_flight_when_the_control_plane_is_killed_lands_once_after_restart(
    server, agent_with_webhook, tmp_path
):
    outbox = tmp_path / "outbox"
    await server.wait_until_up()
    control, spool = worker_side(server, outbox)
    try:
        call = await control.open_call(str(agent_with_webhook.id), direction="web")
        report = the_report(call.call_id)

        server.signal(signal.SIGSTOP)  # frozen: the report's request waits in its socket
        delivery = asyncio.create_task(spool.deliver(control, report))
        await until(lambda: (outbox / f"{call.call_id}.json").exists())
        await asyncio.sleep(0.5)
        server.kill()  # SIGKILL with the request in flight
        await asyncio.sleep(1.0)  # the worker retries against a dead port meanwhile

        assert not delivery.done()
        assert (outbox / f"{call.call_id}.json").exists()
        assert (await Call.get(id=call.call_id)).status not in ("completed", "failed")

        server.start()  # same port, same database
        assert await asyncio.wait_for(delivery, 90) is True
    finally:
        await control.aclose()

    stored = await Call.get(id=call.call_id)
    assert (stored.status, stored.end_reason) == ("completed", "user_hangup")
    assert [turn["text"] for turn in stored.transcript] == ["Hello, this is Acme.", "Bye now."]
    assert len(await call_ended_deliveries(call.call_id)) == 1
    assert list(outbox.iterdir()) == []


@pytest.mark.postgres_only("two processes on one database")
async def test_a_report_sent_again_after_a_lost_answer_changes_nothing(
    server, agent_with_webhook, tmp_path
):
    outbox = tmp_path / "outbox"
    await server.wait_until_up()
    control, spool = worker_side(server, outbox)
    try:
        call = await control.open_call(str(agent_with_webhook.id), direction="web")
        report = the_report(call.call_id)
        # the first post was applied but its answer never reached the worker
        first = await control.report(report)
        server.kill()
        delivery = asyncio.create_task(spool.deliver(control, report))
        await until(lambda: (outbox / f"{call.call_id}.json").exists())
        await asyncio.sleep(0.5)
        assert not delivery.done()

        server.start()
        assert await asyncio.wait_for(delivery, 90) is True
        again = await control.report(report)
    finally:
        await control.aclose()

    assert first.get("applied", True) is True and again.get("applied") is False
    stored = await Call.get(id=call.call_id)
    assert (stored.status, stored.end_reason) == ("completed", "user_hangup")
    assert len(await call_ended_deliveries(call.call_id)) == 1
    assert list(outbox.iterdir()) == []
