"""`/internal`: the endpoints agent workers call with the service token (specs and reports)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from quart import Blueprint, current_app, request
from quart_schema import validate_request, validate_response

from control.errors import field_errors
from control.http.errors import APIError
from control.http.principal import GUARD_ATTRIBUTE
from control.http.request import takes_upload
from control.security import constant_time_equals
from control.services import agents as agent_service
from control.services import calls as call_service
from control.services import demo, recordings
from control.services.agent_config import E164
from runtime.spec import CallReport

blueprint = Blueprint("internal", __name__, url_prefix="/internal")

SERVICE = "service"


def require_service_token(view: Callable) -> Callable:
    """Guard a route for agent workers: `Authorization: Bearer <VOXLINE_SERVICE_TOKEN>`."""

    @wraps(view)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        expected = current_app.config["SETTINGS"].service_token
        if not presented or not constant_time_equals(presented, expected):
            raise APIError(401, "INVALID_SERVICE_TOKEN", "This endpoint is for agent workers.")
        return await view(*args, **kwargs)

    setattr(wrapper, GUARD_ATTRIBUTE, SERVICE)
    return wrapper


def _settings():
    return current_app.config["SETTINGS"]


def _redis():
    return current_app.extensions["redis"]


async def _joined_spec(call) -> dict:
    """The call's spec, once the call holds its capacity slot (429 `AT_CAPACITY` if it can't).

    The spec is built first: a call that cannot run (e.g. an unreadable secret) takes no slot.
    """
    spec = await call_service.call_spec(_settings(), call)
    await call_service.join_call(_settings(), _redis(), call)
    return spec.to_dict()


class CallSpecOut(BaseModel):
    """The call spec a worker runs (`runtime.spec.CallSpec.to_dict()`)."""

    model_config = ConfigDict(extra="allow")  # the rest of CallSpec, as its dataclass defines

    call_id: str
    workspace_id: str
    agent: dict[str, Any]


class NewCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    direction: str = Field(default="web", pattern="^(inbound|outbound|web)$")
    from_number: str | None = Field(default=None, max_length=64)
    to_number: str | None = Field(default=None, max_length=64)
    room_name: str | None = Field(default=None, max_length=128)
    dynamic_variables: dict[str, Any] = Field(default_factory=dict)


class InboundCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_number: str | None = Field(default=None, max_length=64)
    room_name: str | None = Field(default=None, max_length=128)


async def _json_body(model: type[BaseModel]) -> Any:
    payload = await request.get_json(silent=True)
    try:
        return model.model_validate(payload or {})
    except ValidationError as error:
        raise APIError(
            400, "VALIDATION_ERROR", "Invalid request body.", errors=field_errors(error)
        ) from error


@blueprint.get("/calls/<uuid:call_id>/spec")
@require_service_token
@validate_response(CallSpecOut)
async def spec_by_call(call_id: uuid.UUID) -> dict:
    """The call spec of a dispatched call (outbound or web)."""
    call = await call_service.get_call(None, call_id)
    if call.status not in call_service.LIVE_STATUSES:
        raise APIError(409, "CALL_ENDED", f"This call has already ended ({call.status}).")
    return await _joined_spec(call)


@blueprint.post("/agents/<uuid:agent_id>/calls")
@require_service_token
@validate_response(CallSpecOut, 201)
async def spec_by_agent(agent_id: uuid.UUID) -> tuple[dict, int]:
    """Open a call log for an agent and return its spec (web rooms, simulations)."""
    data = await _json_body(NewCallIn)
    agent = await agent_service.get_agent(None, agent_id)
    call = await call_service.create_call(agent, **data.model_dump())
    return await _joined_spec(call), 201


class _Number(BaseModel):
    number: E164


@blueprint.post("/numbers/<number>/calls")
@require_service_token
@validate_response(CallSpecOut, 201)
async def spec_by_number(number: str) -> tuple[dict, int]:
    """Open an inbound call log for the agent that answers the dialled number."""
    try:
        number = _Number(number=number).number
    except ValidationError as error:
        raise APIError(400, "INVALID_NUMBER", "The dialled number must be E.164.") from error
    data = await _json_body(InboundCallIn)
    agent = await call_service.find_agent_by_number(number)
    call = await call_service.create_call(
        agent,
        direction="inbound",
        from_number=data.from_number,
        to_number=number,
        room_name=data.room_name,
    )
    return await _joined_spec(call), 201


class ReportedOut(BaseModel):
    id: str
    status: str
    applied: bool


class CallStatusOut(BaseModel):
    id: str
    status: str


class DemoAgentOut(BaseModel):
    agent_id: str
    agent_name: str


class RecordingOut(BaseModel):
    recording_url: str


@blueprint.post("/calls/<uuid:call_id>/report")
@require_service_token
@validate_response(ReportedOut)
async def report(call_id: uuid.UUID) -> dict:
    """Store a call's report: transcript, usage, latencies and how it ended."""
    payload = await request.get_json(silent=True)
    try:
        call_report = CallReport.from_dict({**(payload or {}), "call_id": str(call_id)})
    except (ValidationError, ValueError) as error:
        raise APIError(400, "VALIDATION_ERROR", f"Invalid call report: {error}") from error
    call = await call_service.get_call(None, call_id)
    applied = await call_service.apply_report(_redis(), call, call_report)
    # A report for a call already final changes nothing (a retry, or a duplicate): 200 all the
    # same, so the worker stops re-sending it.
    return {"id": str(call.id), "status": call.status, "applied": applied}


class TransfersIn(BaseModel):
    transfers: list[dict[str, Any]] = Field(max_length=50)


class TransfersOut(BaseModel):
    id: str
    applied: bool


@blueprint.post("/calls/<uuid:call_id>/transfers")
@require_service_token
@validate_request(TransfersIn)
@validate_response(TransfersOut)
async def transfers(call_id: uuid.UUID, data: TransfersIn) -> dict:
    """The call's transfer attempts so far, sent by the worker as each starts and ends: kept on
    the call log, and `transfer_initiated`/`_succeeded`/`_failed` fire as they happen."""
    call = await call_service.get_call(None, call_id)
    applied = await call_service.record_transfers(call, data.transfers)
    return {"id": str(call.id), "applied": applied}


@blueprint.post("/calls/<uuid:call_id>/heartbeat")
@require_service_token
@validate_response(CallStatusOut)
async def heartbeat(call_id: uuid.UUID) -> dict:
    """The worker's word that the call is alive: the reaper leaves it and its slot is kept."""
    call = await call_service.get_call(None, call_id)
    await call_service.heartbeat(_settings(), _redis(), call)
    return {"id": str(call.id), "status": call.status}


@blueprint.get("/demo-agent")
@require_service_token
@validate_response(DemoAgentOut)
async def demo_agent() -> dict:
    """The demo agent seeded by `voxline demo` (what `voxline simulate` calls by default)."""
    agent = await demo.find_demo_agent()
    if agent is None:
        raise APIError(404, "NO_DEMO_AGENT", "No demo agent yet: run `voxline demo` first.")
    return {"agent_id": str(agent.id), "agent_name": agent.agent_name}


@blueprint.put("/calls/<uuid:call_id>/recording")
@takes_upload
@require_service_token
@validate_response(RecordingOut)
async def store_recording(call_id: uuid.UUID) -> dict:
    """Store a call's recording (`audio/ogg` or `audio/wav`, streamed in, never held whole).

    It is then served at `/calls/{id}/recording`.
    """
    call = await call_service.get_call(None, call_id)
    url = await recordings.store_recording(_settings(), call, request.mimetype, request.body)
    return {"recording_url": url}
