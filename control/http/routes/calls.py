"""`/calls`: call logs (list, export, detail); outbound calls and web-call tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from quart import Blueprint, Response, current_app, request
from quart_schema import validate_querystring, validate_request, validate_response

from control.http.errors import APIError
from control.http.openapi import document_body
from control.http.pagination import Page, PageQuery, paginate
from control.http.principal import current_principal, public, require_role
from control.http.ratelimit import per_minute
from control.http.schemas import IsoTime
from control.models import Call, Role
from control.services import call_logs, idempotency, recordings
from control.services import calls as call_service
from control.services.agent_config import E164

blueprint = Blueprint("calls", __name__, url_prefix="/calls")


NO_STORE = {"Cache-Control": "private, no-store"}
RECORDING_TYPES = tuple(recordings.FORMATS)  # the media types recordings are stored in


def private_no_store(response: Response) -> Response:
    """Recordings, transcripts and exports: no shared cache or proxy may keep a copy."""
    response.headers.update(NO_STORE)
    response.headers.pop("Expires", None)
    return response


class CallFilterQuery(BaseModel):
    """Filters shared by the list and the export; `start_date`/`end_date` are accepted aliases."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    call_type: Literal["web", "phone"] | None = None
    call_direction: Literal["inbound", "outbound"] | None = None
    agent_id: uuid.UUID | None = None
    disposition: str | None = Field(default=None, max_length=64)
    start_datetime: datetime | None = Field(
        default=None, validation_alias=AliasChoices("start_datetime", "start_date")
    )
    end_datetime: datetime | None = Field(
        default=None, validation_alias=AliasChoices("end_datetime", "end_date")
    )
    batch_id: uuid.UUID | None = None
    campaign: str | None = Field(
        default=None, max_length=100, description="A campaign's id or slug"
    )
    agent_version: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="The agent version the call ran"
    )

    @model_validator(mode="after")
    def _sane_range(self) -> CallFilterQuery:
        # Naive datetimes are taken as UTC.
        if self.start_datetime and self.start_datetime.tzinfo is None:
            self.start_datetime = self.start_datetime.replace(tzinfo=UTC)
        if self.end_datetime and self.end_datetime.tzinfo is None:
            self.end_datetime = self.end_datetime.replace(tzinfo=UTC)
        if self.start_datetime and self.end_datetime:
            if self.end_datetime < self.start_datetime:
                raise ValueError("end_datetime must not be before start_datetime")
            if self.end_datetime - self.start_datetime > call_logs.MAX_RANGE:
                raise ValueError("the date range may span at most ten years")
        return self

    def filters(self) -> call_logs.CallFilters:
        return call_logs.CallFilters(
            call_type=self.call_type,
            call_direction=self.call_direction,
            agent_id=self.agent_id,
            disposition=self.disposition,
            start=self.start_datetime,
            end=self.end_datetime,
            batch_id=self.batch_id,
            campaign=self.campaign,
            agent_version=self.agent_version,
        )


class CallListQuery(CallFilterQuery, PageQuery):
    pass


class CallSummaryOut(BaseModel):
    id: str
    workspace_id: str
    agent_id: str | None
    agent_version: int | None = Field(description="the agent version the call ran")
    call_type: str
    call_direction: str
    from_number: str | None
    to_number: str | None
    status: str
    end_reason: str | None
    sip_status: int | None
    created_at: IsoTime
    started_at: IsoTime | None
    answered_at: IsoTime | None
    ended_at: IsoTime | None
    duration_seconds: float | None
    disposition: str | None
    sentiment: str | None
    summary: str | None
    recording_url: str | None
    batch_id: str | None
    campaign: str | None
    campaign_id: str | None


class CallOut(CallSummaryOut):
    room_name: str | None
    transcript: Any
    usage: Any
    latencies: Any
    transfers: Any = Field(
        description="each transfer attempt: destination_name, destination (masked), at, outcome"
    )
    handoffs: Any = Field(
        default_factory=list,
        description="each hand-off between agents: from_agent_id, to_agent_id, name, at, reason",
    )
    final_agent_id: str | None = Field(
        default=None, description="the agent speaking when the call ended"
    )
    extracted_data: Any
    dynamic_variables: Any
    error: str | None


def call_summary(call: Call) -> dict[str, Any]:
    return {
        "id": str(call.id),
        "workspace_id": str(call.workspace_id),
        "agent_id": str(call.agent_id) if call.agent_id else None,
        "agent_version": call.agent_version,
        "call_type": call.call_type,
        "call_direction": call.call_direction,
        "from_number": call.from_number,
        "to_number": call.to_number,
        "status": call.status,
        "end_reason": call.end_reason,
        "sip_status": call.sip_status,
        "created_at": call.created_at.isoformat(),
        "started_at": call.started_at.isoformat() if call.started_at else None,
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration_seconds": call.duration_seconds,
        "disposition": call.disposition,
        "sentiment": call.sentiment,
        "summary": call.summary,
        "recording_url": call.recording_url,
        "batch_id": str(call.batch_id) if call.batch_id else None,
        "campaign": call.campaign,
        "campaign_id": str(call.campaign_id) if call.campaign_id else None,
    }


def call_detail(call: Call) -> dict[str, Any]:
    return {
        **call_summary(call),
        "room_name": call.room_name,
        "transcript": call.transcript,
        "usage": call.usage,
        "latencies": call.latencies,
        "transfers": call.transfers,
        "handoffs": call.handoffs,
        "final_agent_id": str(call.final_agent_id) if call.final_agent_id else None,
        "extracted_data": call.extracted_data,
        "dynamic_variables": call.dynamic_variables,
        "error": call.error,
    }


@blueprint.get("")
@require_role(Role.MEMBER)
@validate_querystring(CallListQuery)
@validate_response(Page[CallSummaryOut])
async def list_calls(query_args: CallListQuery) -> dict:
    """List call logs, newest first.

    Filters: call_type, call_direction, agent_id, disposition, start/end datetime, batch_id,
    campaign (id or slug).
    """
    calls = call_logs.filtered_calls(current_principal().workspace_id, query_args.filters())
    return (await paginate(calls, query_args, call_summary)).model_dump(mode="json")


@blueprint.get("/export")
@require_role(Role.MEMBER)
@validate_querystring(CallFilterQuery)
@document_body(200, "text/csv", description="The call logs as CSV, one row per call")
async def export_calls(query_args: CallFilterQuery) -> Response:
    """Export call logs as CSV, streamed.

    Same filters as the list; cells are escaped against formula injection.
    """
    rows = call_logs.export_csv(current_principal().workspace_id, query_args.filters())
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return private_no_store(
        Response(
            rows,
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="calls-{stamp}.csv"'},
        )
    )


@blueprint.get("/<uuid:call_id>")
@require_role(Role.MEMBER)
@validate_response(CallOut)
async def get_call(call_id: uuid.UUID) -> tuple[dict, int, dict[str, str]]:
    """Get one call log.

    With its transcript, latencies, usage, recording and analysis.
    """
    call = await call_service.get_call(current_principal().workspace_id, call_id)
    return call_detail(call), 200, NO_STORE


class OutboundCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_phone_number: E164
    phone_number_to_dial: E164
    dynamic_variables: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, max_length=100
    )


class GenerateTokenQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    phone: E164 = Field(description="The agent's phone number")
    id: str = Field(
        default_factory=lambda: uuid.uuid4().hex,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The client's session id (the participant identity)",
    )
    public_key: str | None = Field(
        default=None, max_length=200, description="The agent's web_call_public_key"
    )


class OutboundCallOut(CallSummaryOut):
    call_id: str
    room_name: str | None
    dispatch_id: str | None


class WebCallTokenOut(BaseModel):
    token: str
    room_name: str | None
    url: str | None
    call_id: str


@blueprint.post("/outbound_call")
@require_role(Role.DEVELOPER)
@validate_request(OutboundCallIn)
@validate_response(OutboundCallOut, 201)
@validate_response(OutboundCallOut, 200)
async def outbound_call(data: OutboundCallIn) -> tuple[dict, int]:
    """Start an outbound call.

    Creates the call log (queued) and dispatches the agent, which dials the callee. With an
    `Idempotency-Key` header, a retry within 24 hours returns the first call (200), never a
    second dial.
    """
    if data.agent_phone_number == data.phone_number_to_dial:
        raise APIError(400, "SAME_NUMBER", "The agent cannot call its own number.")
    workspace_id = current_principal().workspace_id

    async def place_call() -> dict[str, Any]:
        call, dispatch_id = await call_service.start_outbound_call(
            current_app.config["SETTINGS"],
            current_app.config["TELEPHONY"],
            current_app.extensions["redis"],
            workspace_id,
            data.agent_phone_number,
            data.phone_number_to_dial,
            data.dynamic_variables,
        )
        body = {**call_summary(call), "room_name": call.room_name, "dispatch_id": dispatch_id}
        return {"call_id": str(call.id), **body}

    response, placed = await idempotency.once(
        workspace_id,
        request.headers.get("Idempotency-Key"),
        data.model_dump(mode="json"),
        place_call,
    )
    return response, 201 if placed else 200


@blueprint.get("/generate-token")
@per_minute(20)
@public
@validate_querystring(GenerateTokenQuery)
@validate_response(WebCallTokenOut)
async def generate_token(query_args: GenerateTokenQuery) -> dict:
    """Get a token for a web call with an agent.

    Needs the agent's `public_key` (and, when the agent lists origins, a page on one of them).
    The token joins only its own new room, where the agent is dispatched; it expires soon.
    """
    settings = current_app.config["SETTINGS"]
    telephony = current_app.config["TELEPHONY"]
    call, token = await call_service.start_web_call(
        settings,
        telephony,
        current_app.extensions["redis"],
        query_args.phone,
        query_args.id,
        query_args.public_key,
        request.headers.get("Origin"),
    )
    return {
        "token": token,
        "room_name": call.room_name,
        "url": settings.livekit_public_url or telephony.livekit_url,
        "call_id": str(call.id),
    }


@blueprint.get("/<uuid:call_id>/recording")
@require_role(Role.MEMBER)
@document_body(200, *RECORDING_TYPES, description="The whole recording")
@document_body(206, *RECORDING_TYPES, description="The requested byte range of the recording")
async def get_recording(call_id: uuid.UUID) -> Response:
    """Download a call's recording: both sides (Ogg/Opus, caller left, agent right; or WAV).

    Honours `Range: bytes=a-b` (206, or 416 when outside the recording); streamed from storage.
    """
    settings = current_app.config["SETTINGS"]
    call = await call_service.get_call(current_principal().workspace_id, call_id)
    recording = await recordings.find_recording(settings, call)
    requested = recordings.requested_range(request.headers.get("Range"), recording.size)
    start, end = requested or (0, recording.size)
    body = await recordings.read_recording(settings, recording, start, end)
    response = Response(body, status=206 if requested else 200, mimetype=recording.content_type)
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Content-Length"] = str(end - start)
    if requested:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{recording.size}"
    return private_no_store(response)
