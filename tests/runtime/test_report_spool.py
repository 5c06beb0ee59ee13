"""The report spool: a call's report stays on disk until the control plane has taken it.

The control plane here is a small real HTTP server (aiohttp) on a port the client was already
pointed at, so "unreachable" is a closed port and "back" is the server starting on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane
from runtime.report_spool import ReportSpool
from runtime.spec import AgentSpec, CallReport, CallSpec, CallStatus, EndReason
from runtime.worker import CallRunner, run_worker
from tests.conftest import free_port
from tests.waiting import until

SERVICE_TOKEN = "spool-test-token"
CALL_ID = "3f0c7d9e-2b7a-4a55-9a57-0f8c1d2e3b4a"


class ReportSink:
    """A stand-in control plane taking reports on a fixed port; answers from a script."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.answers: list[int] = []  # statuses to answer next, then 200
        self._runner: web.AppRunner | None = None

    async def _report(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SERVICE_TOKEN}":
            return web.json_response({"detail": "no", "code": "INVALID_SERVICE_TOKEN"}, status=401)
        self.received.append((request.match_info["call_id"], await request.json()))
        status = self.answers.pop(0) if self.answers else 200
        if status >= 400:
            return web.json_response({"detail": "scripted", "code": "SCRIPTED"}, status=status)
        return web.json_response(
            {"id": request.match_info["call_id"], "status": "completed", "applied": True}
        )

    async def _spec(self, request: web.Request) -> web.Response:
        # an agent whose LLM cannot be built here (no key): the job fails, and must report
        call = CallSpec(
            call_id=request.match_info["call_id"],
            workspace_id="ws-1",
            direction="web",
            call_type="web",
            agent=AgentSpec(agent_id="agent-1", name="Keyless", llm_provider="openai"),
        )
        return web.json_response(call.to_dict())

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/internal/calls/{call_id}/report", self._report)
        app.router.add_get("/internal/calls/{call_id}/spec", self._spec)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def sink() -> AsyncIterator[ReportSink]:
    server = ReportSink(free_port())  # not listening until a test starts it
    yield server
    await server.stop()


@pytest.fixture
async def control(sink: ReportSink, tmp_path: Path) -> AsyncIterator[ControlPlane]:
    settings = RuntimeSettings(
        api_url=f"http://127.0.0.1:{sink.port}",
        service_token=SERVICE_TOKEN,
        outbox_dir=tmp_path / "outbox",
    )
    client = ControlPlane(settings, timeout=2.0)
    yield client
    await client.aclose()


def fast_spool(directory: Path) -> ReportSpool:
    return ReportSpool(directory, first_retry_seconds=0.02, max_retry_seconds=0.1)


def make_report(call_id: str = CALL_ID, **fields: Any) -> CallReport:
    return CallReport(
        call_id=call_id,
        status=fields.pop("status", CallStatus.COMPLETED),
        end_reason=fields.pop("end_reason", EndReason.USER_HANGUP),
        started_at="2025-01-01T10:00:00+00:00",
        ended_at="2025-01-01T10:01:30+00:00",
        transcript=[{"role": "assistant", "text": "Hello, this is Acme.", "started_at": 0.0}],
        **fields,
    )


def spool_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


async def test_a_report_waits_on_disk_until_the_control_plane_is_back(sink, control, tmp_path):
    outbox = tmp_path / "outbox"
    report = make_report()

    delivery = asyncio.create_task(fast_spool(outbox).deliver(control, report))
    await until(lambda: (outbox / f"{CALL_ID}.json").exists())
    await asyncio.sleep(0.5)  # several attempts against the closed port

    assert not delivery.done()
    assert spool_files(outbox) == [f"{CALL_ID}.json"]  # no temporary files left about
    assert json.loads((outbox / f"{CALL_ID}.json").read_text()) == report.to_dict()

    await sink.start()
    assert await asyncio.wait_for(delivery, 10) is True

    assert sink.received == [(CALL_ID, report.to_dict())]
    assert spool_files(outbox) == []


async def test_5xx_408_and_429_are_retried_and_a_4xx_drops_the_report(
    sink, control, tmp_path, caplog
):
    outbox = tmp_path / "outbox"
    spool = fast_spool(outbox)
    await sink.start()
    sink.answers = [503, 429, 408, 500]

    assert await asyncio.wait_for(spool.deliver(control, make_report()), 10) is True
    assert len(sink.received) == 5 and spool_files(outbox) == []

    refused = "0b7e4c1a-9d2f-4e8b-8c3a-5f6e7d8c9b0a"
    sink.answers = [422]
    caplog.set_level(logging.ERROR, logger="runtime.report_spool")
    assert await asyncio.wait_for(spool.deliver(control, make_report(refused)), 10) is False

    assert [call_id for call_id, _ in sink.received[5:]] == [refused]  # asked once, not again
    assert spool_files(outbox) == []
    assert any(refused in record.getMessage() for record in caplog.records)


async def test_the_worker_resends_at_start_up_what_a_dead_worker_left(sink, tmp_path, monkeypatch):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    left = {
        CALL_ID: make_report(),
        "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f": make_report(
            "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
            status=CallStatus.FAILED,
            end_reason=EndReason.ERROR,
            error="RuntimeError: boom",
        ),
    }
    for call_id, report in left.items():  # what a killed job process leaves behind
        (outbox / f"{call_id}.json").write_text(json.dumps(report.to_dict()))
    (outbox / "not-a-report.json").write_text("{half a rep")
    await sink.start()
    monkeypatch.delenv("LIVEKIT_URL", raising=False)  # the worker waits for LiveKit meanwhile
    settings = RuntimeSettings(
        api_url=f"http://127.0.0.1:{sink.port}", service_token=SERVICE_TOKEN, outbox_dir=outbox
    )

    worker = asyncio.create_task(run_worker(settings, retry_seconds=0.05))
    try:
        await until(lambda: len(sink.received) >= 2 and not list(outbox.glob("*.json")))
        await asyncio.sleep(0.2)  # nothing is sent twice
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker

    assert sorted(sink.received) == sorted(
        (call_id, report.to_dict()) for call_id, report in left.items()
    )
    assert spool_files(outbox) == ["not-a-report.bad"]  # set aside, not retried forever


async def test_a_worker_stopped_mid_retry_leaves_the_report_for_the_next_one(
    sink, control, tmp_path, monkeypatch
):
    outbox = tmp_path / "outbox"
    report = make_report()
    delivery = asyncio.create_task(fast_spool(outbox).deliver(control, report))
    await until(lambda: (outbox / f"{CALL_ID}.json").exists())
    await asyncio.sleep(0.1)
    delivery.cancel()  # the job process is killed while the control plane is away
    with pytest.raises(asyncio.CancelledError):
        await delivery
    assert spool_files(outbox) == [f"{CALL_ID}.json"]

    await sink.start()
    monkeypatch.delenv("LIVEKIT_URL", raising=False)
    settings = RuntimeSettings(
        api_url=f"http://127.0.0.1:{sink.port}", service_token=SERVICE_TOKEN, outbox_dir=outbox
    )
    worker = asyncio.create_task(run_worker(settings, retry_seconds=0.05))
    try:
        await until(lambda: spool_files(outbox) == [])
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker

    assert sink.received == [(CALL_ID, report.to_dict())]


async def test_a_job_whose_control_plane_restarts_reports_once_it_is_back(
    sink, control, tmp_path, monkeypatch
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    outbox = tmp_path / "outbox"
    await sink.start()
    runner = CallRunner(control, audio=False, spool=fast_spool(outbox))
    metadata = json.dumps({"call_id": CALL_ID, "direction": "web"})
    with pytest.raises(Exception, match="OPENAI_API_KEY"):
        await runner.run(metadata, "web-room", None, None, None)

    await sink.stop()  # the control plane restarts as the job shuts down
    finishing = asyncio.create_task(runner.finish("error"))
    await until(lambda: (outbox / f"{CALL_ID}.json").exists())
    await asyncio.sleep(0.3)
    assert not finishing.done() and sink.received == []

    await sink.start()
    await asyncio.wait_for(finishing, 10)

    [(call_id, body)] = sink.received
    assert call_id == CALL_ID
    # the job could not start for want of a key: failed fast, naming what is missing
    assert (body["status"], body["end_reason"]) == ("failed", "provider_not_configured")
    assert "OPENAI_API_KEY" in body["error"]
    assert spool_files(outbox) == []
