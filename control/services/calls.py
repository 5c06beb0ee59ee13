"""Call logs: creating them, the call spec a worker runs, and storing a call's report."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from control.config import Settings
from control.errors import APIError
from control.models import Agent, Call, FileStatus, KnowledgeFile
from control.security import mask_phone
from control.services import agents as agent_service
from runtime.spec import AgentSpec, CallReport, CallSpec, CustomFunctionSpec

logger = logging.getLogger(__name__)

TERMINAL_STATUSES = frozenset({"completed", "failed", "no_answer", "busy", "rejected"})


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


async def call_spec(settings: Settings, call: Call, sip_trunk_id: str | None = None) -> CallSpec:
    if call.agent_id is None:
        raise APIError(410, "AGENT_GONE", "The agent of this call has been deleted.")
    agent = await Agent.get(id=call.agent_id)
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
    call.recording_url = report.recording_path or call.recording_url
    call.error = report.error
    await call.save()
    logger.info("call %s ended: %s (%s)", call.id, call.status, call.end_reason)
    return call
