"""The worker's HTTP client for the control plane's internal endpoints (specs in, reports out)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from runtime.config import RuntimeSettings
from runtime.spec import CallReport, CallSpec

logger = logging.getLogger(__name__)


class ControlPlaneError(Exception):
    """The control plane refused a request or could not be reached."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


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

    async def __aenter__(self) -> ControlPlane:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ControlPlaneError(
                f"cannot reach the control plane at {self.settings.api_url}: {error}",
                retryable=True,
            ) from error
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ControlPlaneError(
                f"{method} {path} answered {response.status_code}: {detail}",
                retryable=response.status_code >= 500,
            )
        return response.json()

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

    async def report(self, report: CallReport) -> None:
        path = f"/internal/calls/{report.call_id}/report"
        await self._request("POST", path, json=report.to_dict())

    async def upload_recording(self, call_id: str, wav: bytes) -> str:
        """Store a call's WAV recording with the control plane; returns its API path."""
        body = await self._request(
            "PUT",
            f"/internal/calls/{call_id}/recording",
            content=wav,
            headers={"Content-Type": "audio/wav"},
        )
        return body["recording_url"]
