"""The worker's HTTP client for the control plane's internal endpoints (specs in, reports out)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from runtime.config import RuntimeSettings
from runtime.spec import CallReport, CallSpec
from voxline.common.retry import retryable_status

logger = logging.getLogger(__name__)


#: The error code of a call that could not get a capacity slot (a 429 from the spec endpoints).
AT_CAPACITY = "AT_CAPACITY"


class ControlPlaneError(Exception):
    """The control plane refused a request or could not be reached.

    Attributes:
        status: the HTTP status it answered; None when it could not be reached.
        code: the error code of its `{detail, code}` body (e.g. "AT_CAPACITY"), if any.
        body: the whole JSON error body ({} when there was none).
        retryable: whether sending the same request again later may succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        body: dict[str, Any] | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = body or {}
        self.retryable = retryable

    @property
    def at_capacity(self) -> bool:
        return self.status == 429 and self.code == AT_CAPACITY


class ControlPlane:
    """Talks to `/internal/*` with the service token; the runtime's only link to the platform."""

    def __init__(
        self,
        settings: RuntimeSettings | None = None,
        timeout: float = 15.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport` replaces the network (tests pass the app's ASGI transport)."""
        self.settings = settings or RuntimeSettings()
        self._client = httpx.AsyncClient(
            base_url=self.settings.api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {self.settings.service_token}"},
            timeout=timeout,
            transport=transport,
        )
        self._heartbeats: set[asyncio.Task] = set()

    async def __aenter__(self) -> ControlPlane:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the heartbeats still running, then close the connections."""
        for heartbeat in self._heartbeats:
            heartbeat.cancel()
        await asyncio.gather(*self._heartbeats, return_exceptions=True)
        await self._client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ControlPlaneError(
                f"cannot reach the control plane at {self.settings.api_url}: {error}",
                retryable=True,
            ) from error
        status = response.status_code
        if status >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            body = body if isinstance(body, dict) else {}
            code = body.get("code")
            raise ControlPlaneError(
                f"{method} {path} answered {status}: {body.get('detail', response.text)}",
                status=status,
                code=code if isinstance(code, str) else None,
                body=body,
                retryable=retryable_status(status),
            )
        try:
            return response.json()
        except ValueError:
            # taken, but with no JSON to show for it (a proxy's empty 204, say)
            return {}

    async def call_spec(self, call_id: str) -> CallSpec:
        """The spec of a call the control plane dispatched (outbound or web)."""
        return CallSpec.from_dict(await self._request("GET", f"/internal/calls/{call_id}/spec"))

    async def open_call(self, agent_id: str, **fields: Any) -> CallSpec:
        """Open a call log for an agent (web rooms, simulations) and get its spec."""
        return CallSpec.from_dict(
            await self._request("POST", f"/internal/agents/{agent_id}/calls", json=fields)
        )

    async def open_inbound_call(
        self, dialled_number: str, from_number: str | None, room_name: str | None
    ) -> CallSpec:
        """Open an inbound call log for the agent answering `dialled_number`."""
        body = {"from_number": from_number, "room_name": room_name}
        return CallSpec.from_dict(
            await self._request("POST", f"/internal/numbers/{dialled_number}/calls", json=body)
        )

    async def demo_agent_id(self) -> str:
        return (await self._request("GET", "/internal/demo-agent"))["agent_id"]

    async def report(self, report: CallReport) -> dict[str, Any]:
        """Post a call's report; the control plane answers `{id, status, applied}`.

        Posting the same report again is safe: a call already final answers `applied: false`.
        """
        path = f"/internal/calls/{report.call_id}/report"
        return await self._request("POST", path, json=without_nul(report.to_dict()))

    async def report_transfers(self, call_id: str, transfers: list[dict[str, Any]]) -> None:
        """The call's transfer attempts so far, as they happen (their events fire now)."""
        await self._request(
            "POST", f"/internal/calls/{call_id}/transfers", json={"transfers": transfers}
        )

    def start_heartbeat(self, call_id: str) -> asyncio.Task:
        """`keep_alive` in the background, until the task is cancelled or this client closes."""
        heartbeat = asyncio.create_task(self.keep_alive(call_id), name=f"heartbeat {call_id}")
        self._heartbeats.add(heartbeat)
        heartbeat.add_done_callback(self._heartbeats.discard)
        return heartbeat

    async def keep_alive(self, call_id: str) -> None:
        """Tell the control plane the call is alive every `heartbeat_seconds`, until cancelled.

        Without it the control plane's reaper finishes the call as `lost`, as it does when the
        worker dies. A missed heartbeat is only logged: the next one may get through.
        """
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await self._request("POST", f"/internal/calls/{call_id}/heartbeat")
            except ControlPlaneError as error:
                logger.warning("call %s: heartbeat not taken: %s", call_id, error)

    async def upload_recording(
        self, call_id: str, path: Path, *, content_type: str = "audio/ogg"
    ) -> str:
        """Stream a call's recording file to the control plane; returns its API path.

        The file is sent in chunks as it is read (chunked transfer), never read whole.
        """
        body = await self._request(
            "PUT",
            f"/internal/calls/{call_id}/recording",
            content=_file_chunks(path),
            headers={"Content-Type": content_type},
        )
        return body["recording_url"]


UPLOAD_CHUNK_BYTES = 256 * 1024


def without_nul(value: Any) -> Any:
    """`value` with NUL characters taken out of its strings: a recogniser or a model may emit
    one, no database column holds it, and the control plane refuses text that has one (400),
    which would lose the whole call's report."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A file's bytes, a chunk at a time, read off the event loop."""
    file = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(file.read, UPLOAD_CHUNK_BYTES):
            yield chunk
    finally:
        await asyncio.to_thread(file.close)
