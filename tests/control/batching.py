"""Helpers of the batch tests: CSV bodies, uploads, ticks, and a stand-in worker's reports."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from control.dialing import dialer
from tests.servers import ControlPlaneProcess

SERVICE = {"Authorization": "Bearer test-service-token"}
BOUNDARY = "voxline-batch-boundary"


def numbers(count: int, start: int = 0) -> list[str]:
    """`count` distinct valid US numbers."""
    return [f"+1415555{index:04d}" for index in range(start, start + count)]


def csv_of(rows: list[str], header: str = "phone_number,name") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def phone_csv(count: int, start: int = 0) -> bytes:
    return csv_of(
        [f"{number},Person {index}" for index, number in enumerate(numbers(count, start))]
    )


def multipart(
    fields: dict[str, Any], file: bytes | None, filename: str = "leads.csv"
) -> tuple[bytes, str]:
    body = b""
    for name, value in fields.items():
        body += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    if file is not None:
        body += (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'
            ).encode()
            + file
            + b"\r\n"
        )
    return body + f"--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def batch_fields(line: dict, **fields: Any) -> dict[str, Any]:
    return {
        "name": "Spring reminders",
        "agent_id": str(line["agent"].id),
        "agent_phone_number": "+16505551234",
        "calls_per_minute": 600,
        **fields,
    }


async def upload(client, line: dict, file: bytes | None, headers=None, **fields: Any):
    body, content_type = multipart(batch_fields(line, **fields), file)
    return await client.post(
        "/batch/upload",
        data=body,
        headers={**(headers or line["headers"]), "Content-Type": content_type},
    )


async def report(client, call_id: str, status: str = "completed", **fields: Any) -> None:
    """What a worker posts when the call ends."""
    response = await client.post(
        f"/internal/calls/{call_id}/report",
        json={"status": status, **fields},
        headers=SERVICE,
    )
    assert response.status_code == 200, await response.get_data(as_text=True)


async def tick(settings, telephony_settings, redis, now=None) -> int:
    return await dialer.tick(settings, telephony_settings, redis, now=now)


def attempt_call(item_id: str, attempt: int) -> str:
    return str(dialer.attempt_call_id(uuid.UUID(item_id), attempt))


class StandInWorker:
    """Ends every dispatched call after `hold` seconds by posting its report (the worker's job)."""

    def __init__(self, client, livekit, hold: float = 0.3) -> None:
        self.client, self.livekit, self.hold = client, livekit, hold
        self.seen: dict[str, float] = {}
        self.reported: set[str] = set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            for dispatch in list(self.livekit.dispatches.values()):
                call_id = json.loads(dispatch.metadata)["call_id"]
                self.seen.setdefault(call_id, now)
            for call_id, seen_at in list(self.seen.items()):
                if call_id in self.reported or now - seen_at < self.hold:
                    continue
                response = await self.client.post(
                    f"/internal/calls/{call_id}/report",
                    json={"status": "completed", "end_reason": "user_hangup"},
                    headers=SERVICE,
                )
                if response.status_code == 200:
                    self.reported.add(call_id)
            await asyncio.sleep(0.05)


def serve(settings, livekit, log, **env) -> ControlPlaneProcess:
    return ControlPlaneProcess(
        settings,
        log,
        VOXLINE_BACKGROUND_WORKERS="true",
        VOXLINE_JOBS_POLL_SECONDS="0.1",
        VOXLINE_DIALER_TICK_SECONDS="0.25",
        VOXLINE_DIALER_CLAIM_SECONDS="3",
        VOXLINE_JWT_SECRET=settings.jwt_secret,
        VOXLINE_ENCRYPTION_KEY=settings.encryption_key,
        LIVEKIT_URL=livekit.url,
        LIVEKIT_API_KEY=livekit.api_key,
        LIVEKIT_API_SECRET=livekit.api_secret,
        VOXLINE_AGENT_NAME="voxline-test-agent",
        **env,
    )
