"""Call logs: creating them, the call spec a worker runs, and storing a call's report."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from control.config import Settings
from control.errors import APIError
from control.models import Agent, Call, FileStatus, KnowledgeFile, PhoneNumber
from control.security import mask_phone, utcnow
from control.services import agents as agent_service
from control.services import livekit_events, phone_numbers, webhooks
from runtime.spec import AgentSpec, CallReport, CallSpec, CustomFunctionSpec
from telephony import sip
from telephony.config import TelephonySettings
from telephony.errors import TelephonyError

logger = logging.getLogger(__name__)

TERMINAL_STATUSES = frozenset({"completed", "failed", "no_answer", "busy", "rejected"})
WEB_TOKEN_TTL_SECONDS = 600


async def create_call(
    agent: Agent,
    *,
    direction: str,
    from_number: str | None = None,
    to_number: str | None = None,
    dynamic_variables: dict[str, Any] | None = None,
    room_name: str | None = None,
    batch_id: uuid.UUID | None = None,
) -> Call:
    """A new call log (queued) for `agent`; `direction` is inbound, outbound or web."""
    call_id = uuid.uuid4()
    call = await Call.create(
        id=call_id,
        workspace_id=agent.workspace_id,
        agent_id=agent.id,
        call_type="web" if direction == "web" else "phone",
        call_direction="outbound" if direction == "outbound" else "inbound",
        from_number=from_number,
        to_number=to_number,
        dynamic_variables={
            str(k): "" if v is None else str(v) for k, v in (dynamic_variables or {}).items()
        },
        room_name=room_name or f"call-{call_id}",
        batch_id=batch_id,
    )
    logger.info(
        "call %s queued: %s %s -> %s",
        call.id,
        direction,
        mask_phone(from_number),
        mask_phone(to_number),
    )
    return call


def _direction(call: Call) -> str:
    return "web" if call.call_type == "web" else call.call_direction


async def agent_spec(settings: Settings, agent: Agent) -> AgentSpec:
    """The agent as a worker runs it: decrypted headers, defaults resolved, knowledge state."""
    config = agent_service.plain_config(settings, agent)
    knowledge_ready = await KnowledgeFile.filter(
        agent_id=agent.id, status=FileStatus.READY
    ).exists()
    return AgentSpec(
        agent_id=str(agent.id),
        name=agent.agent_name,
        llm_provider=config["LLM_provider"],
        llm_model=config["LLM_model"],
        llm_base_url=config.get("LLM_base_url"),
        temperature=config["temperature"],
        max_tokens=config["max_tokens"],
        stt_provider=config["STT_provider"],
        stt_model=config["STT_model"],
        tts_provider=config["TTS_provider"],
        tts_model=config["TTS_model"],
        tts_voice=config.get("TTS_voice"),
        language=config["language"],
        system_prompt=config["system_prompt"],
        first_message=config["first_message"],
        interruptible=config["interruptible"],
        min_endpointing_delay=config["min_endpointing_delay"],
        max_endpointing_delay=config["max_endpointing_delay"],
        idle_warning_after=config.get("idle_warning_after"),
        idle_warning_message=config["idle_warning_message"],
        idle_hangup_after=config.get("idle_hangup_after"),
        max_call_duration=config["max_call_duration"],
        max_duration_message=config["max_duration_message"],
        end_call_phrases=tuple(config.get("end_call_phrases", [])),
        custom_functions=tuple(
            CustomFunctionSpec(
                name=function["name"],
                description=function["description"],
                url=function["url"],
                method=function["method"],
                parameters=function["parameters"],
                headers=function["headers"],
                speak_during=function.get("speak_during"),
                speak_after=function.get("speak_after"),
                timeout=function["timeout"],
            )
            for function in config["custom_functions"]
        ),
        knowledge_ready=knowledge_ready,
    )


async def call_spec(settings: Settings, call: Call) -> CallSpec:
    if call.agent_id is None:
        raise APIError(410, "AGENT_GONE", "The agent of this call has been deleted.")
    agent = await Agent.get(id=call.agent_id)
    sip_trunk_id = None
    if call.call_direction == "outbound" and call.call_type == "phone":
        number = await PhoneNumber.get_or_none(phone_number=call.from_number)
        sip_trunk_id = number.outbound_trunk_id if number else None
    return CallSpec(
        call_id=str(call.id),
        workspace_id=str(call.workspace_id),
        direction=_direction(call),
        call_type=call.call_type,
        from_number=call.from_number,
        to_number=call.to_number,
        dynamic_variables=call.dynamic_variables,
        agent=await agent_spec(settings, agent),
        room_name=call.room_name,
        sip_trunk_id=sip_trunk_id,
        allow_private_urls=settings.allow_private_urls,
    )


async def get_call(workspace_id: uuid.UUID | None, call_id: uuid.UUID) -> Call:
    """A call by id, within `workspace_id` (None only for the service-token endpoints)."""
    query = Call.filter(id=call_id)
    if workspace_id is not None:
        query = query.filter(workspace_id=workspace_id)
    call = await query.first()
    if call is None:
        raise APIError(404, "CALL_NOT_FOUND", "No call with that id.")
    return call


async def find_agent_by_number(number: str) -> Agent:
    agent = await Agent.get_or_none(phone_number=number)
    if agent is None:
        raise APIError(404, "NUMBER_NOT_MAPPED", f"No agent answers {mask_phone(number)}.")
    return agent


def _timestamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def apply_report(call: Call, report: CallReport) -> Call:
    """Store what the worker reports when the call ends (transcript, usage, latencies, outcome)."""
    call.status = report.status.value
    call.end_reason = report.end_reason.value if report.end_reason else None
    call.sip_status = report.sip_status
    call.started_at = _timestamp(report.started_at) or call.started_at
    call.answered_at = _timestamp(report.answered_at) or call.answered_at
    call.ended_at = _timestamp(report.ended_at) or call.ended_at
    call.duration_seconds = report.duration_seconds
    call.transcript = report.transcript
    call.usage = dict(report.usage)
    call.latencies = report.latencies
    call.error = report.error
    await call.save()
    logger.info("call %s ended: %s (%s)", call.id, call.status, call.end_reason)
    await emit_outcome(call)
    return call


async def _ensure_capacity(settings: Settings, redis: Redis) -> None:
    active = await livekit_events.active_calls(redis)
    if active >= settings.max_agent_sessions:
        raise APIError(
            429,
            "AT_CAPACITY",
            f"All {settings.max_agent_sessions} agent sessions are busy; try again in a minute.",
            headers={"Retry-After": "30"},
        )


async def _dispatch(telephony: TelephonySettings, call: Call, metadata: dict[str, Any]) -> str:
    try:
        return await sip.dispatch_agent(call.room_name, metadata=metadata, settings=telephony)
    except TelephonyError as error:
        await Call.filter(id=call.id).update(
            status="failed",
            end_reason="error",
            error=f"dispatch failed: {error}",
            ended_at=utcnow(),
        )
        raise phone_numbers.telephony_error(error) from error


async def start_outbound_call(
    settings: Settings,
    telephony: TelephonySettings,
    redis: Redis,
    workspace_id: uuid.UUID,
    agent_number: str,
    to_number: str,
    dynamic_variables: dict[str, Any],
) -> tuple[Call, str]:
    """Queue a call log and dispatch the agent to a new room; the worker then dials."""
    agent = await Agent.get_or_none(workspace_id=workspace_id, phone_number=agent_number)
    if agent is None:
        raise APIError(
            404,
            "AGENT_NOT_FOUND",
            f"No agent in this workspace is mapped to {mask_phone(agent_number)}.",
        )
    number = await PhoneNumber.get_or_none(workspace_id=workspace_id, phone_number=agent_number)
    if number is None or number.outbound_trunk_id is None:
        raise APIError(
            409,
            "NO_OUTBOUND_TRUNK",
            "That number has no outbound SIP trunk; register one (POST /phonenumbers/sip_trunk).",
        )
    await _ensure_capacity(settings, redis)
    call = await create_call(
        agent,
        direction="outbound",
        from_number=agent_number,
        to_number=to_number,
        dynamic_variables=dynamic_variables,
    )
    dispatch_id = await _dispatch(
        telephony, call, {"call_id": str(call.id), "direction": "outbound"}
    )
    await webhooks.emit(workspace_id, "call_started", _event_data(call))
    return call, dispatch_id


async def start_web_call(
    settings: Settings,
    telephony: TelephonySettings,
    redis: Redis,
    agent_number: str,
    session_id: str,
) -> tuple[Call, str]:
    """A web call: a call log, a new room with the agent dispatched, and a token for that room."""
    agent = await Agent.get_or_none(phone_number=agent_number)
    if agent is None:
        raise APIError(404, "AGENT_NOT_FOUND", "No agent answers that number.")
    if not agent.config.get("allow_web_calls", True):
        raise APIError(403, "WEB_CALLS_DISABLED", "This agent does not take web calls.")
    await _ensure_capacity(settings, redis)
    call_id = uuid.uuid4()
    call = await create_call(agent, direction="web", room_name=f"web-{call_id}")
    await _dispatch(telephony, call, {"call_id": str(call.id), "direction": "web"})
    try:
        token = sip.mint_room_token(
            call.room_name,
            identity=f"web-{session_id}",
            ttl_seconds=WEB_TOKEN_TTL_SECONDS,
            settings=telephony,
        )
    except TelephonyError as error:
        raise phone_numbers.telephony_error(error) from error
    await webhooks.emit(agent.workspace_id, "call_started", _event_data(call))
    return call, token


def _event_data(call: Call) -> dict[str, Any]:
    return {
        "call_id": str(call.id),
        "agent_id": str(call.agent_id) if call.agent_id else None,
        "call_type": call.call_type,
        "call_direction": call.call_direction,
        "from_number": call.from_number,
        "to_number": call.to_number,
        "status": call.status,
    }


# The event a call's final status fires, beside `call_ended` (PARITY.md).
OUTCOME_EVENTS = {
    "no_answer": "call_no_answer",
    "busy": "call_rejected",
    "rejected": "call_rejected",
    "failed": "call_failed",
}


async def emit_outcome(call: Call) -> None:
    data = {**_event_data(call), "sip_status": call.sip_status, "end_reason": call.end_reason}
    if call.status in OUTCOME_EVENTS:
        await webhooks.emit(call.workspace_id, OUTCOME_EVENTS[call.status], data)
    await webhooks.emit(
        call.workspace_id, "call_ended", {**data, "duration_seconds": call.duration_seconds}
    )


RIFF_MAGIC = b"RIFF"
MAX_RECORDING_BYTES = 200 * 1024 * 1024


def recording_path(settings: Settings, call: Call) -> Path:
    # Named by the call's id only: nothing from the client reaches the path.
    return settings.data_dir / "recordings" / f"{call.id}.wav"


async def store_recording(settings: Settings, call: Call, wav: bytes) -> str:
    if not wav.startswith(RIFF_MAGIC) or len(wav) > MAX_RECORDING_BYTES:
        raise APIError(400, "INVALID_RECORDING", "Send a WAV file (at most 200 MiB).")
    path = recording_path(settings, call)
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(path.write_bytes, wav)
    call.recording_url = f"/calls/{call.id}/recording"
    await call.save(update_fields=["recording_url"])
    return call.recording_url
