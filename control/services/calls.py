"""Call logs: creating them, the call spec a worker runs, and storing a call's report."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from tortoise.expressions import Q

from control import jobs
from control.config import Settings
from control.dialing import dnc
from control.errors import (
    AtCapacity,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    QuotaExceeded,
)
from control.models import (
    Agent,
    AgentVersion,
    Call,
    FileStatus,
    KnowledgeFile,
    PhoneNumber,
    Workspace,
)
from control.security import SecretUnreadableError, utcnow
from control.services import agent_versions, capacity, phone_numbers, webhooks
from control.services import agents as agent_service
from control.services import providers as provider_service
from runtime.spec import (
    DEFAULT_MAX_HANDOFFS,
    AgentSpec,
    CallDirection,
    CallReport,
    CallSpec,
    CustomFunctionSpec,
    HandoffDestinationSpec,
    ProviderChoice,
    TransferDestinationSpec,
)
from runtime.spec.phone import mask_phone
from telephony import sip
from telephony.config import TelephonySettings
from telephony.errors import TelephonyError

logger = logging.getLogger(__name__)

# A call's states move one way; a final state is written once (DESIGN.md, call lifecycle).
LIVE_STATUSES = ("queued", "dialing", "ringing", "in_progress")
FINAL_STATUSES = frozenset({"completed", "failed", "busy", "no_answer", "rejected", "cancelled"})
LOST = "lost"  # the reaper's end reason: the only final state a later report may replace
AT_CAPACITY = "at_capacity"
RINGING_ALLOWANCE_SECONDS = 60.0  # an outbound call rings about 45 s before it is answered
WEB_TOKEN_TTL_SECONDS = 600


def new_call(
    agent: Agent,
    *,
    direction: str,
    from_number: str | None = None,
    to_number: str | None = None,
    dynamic_variables: dict[str, Any] | None = None,
    room_name: str | None = None,
    batch_id: uuid.UUID | None = None,
    campaign_id: uuid.UUID | None = None,
    campaign: str | None = None,
    call_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
) -> Call:
    """A new call log (queued) for `agent`, not saved yet: `create_call` saves one, a dialer
    many at once (`create_calls`). `direction` is inbound, outbound or web.

    A dialer passes its (injectable) clock as `created_at`; otherwise it is now."""
    call_id = call_id or uuid.uuid4()
    # Left out when not given: the column's `auto_now_add` stamps it (an explicit None is refused).
    clock: dict[str, Any] = {"created_at": created_at} if created_at is not None else {}
    return Call(
        id=call_id,
        workspace_id=agent.workspace_id,
        agent_id=agent.id,
        # the published version, or the traffic split's pick (fixed by the call id)
        agent_version=agent_versions.pick(agent, call_id),
        call_type="web" if direction == "web" else "phone",
        call_direction="outbound" if direction == "outbound" else "inbound",
        from_number=from_number,
        to_number=to_number,
        dynamic_variables={
            str(k): "" if v is None else str(v) for k, v in (dynamic_variables or {}).items()
        },
        room_name=room_name or f"call-{call_id}",
        batch_id=batch_id,
        campaign_id=campaign_id,
        campaign=campaign,
        **clock,
    )


async def create_call(agent: Agent, **fields: Any) -> Call:
    """A new call log (queued) for `agent`, saved; `fields` as `new_call` takes them."""
    call = new_call(agent, **fields)
    await call.save(force_create=True)
    _log_queued(call)
    return call


async def create_calls(calls: list[Call]) -> None:
    """Save new call logs (from `new_call`) in one statement."""
    await Call.bulk_create(calls)
    for call in calls:
        call._saved_in_db = True  # as `save` marks one (bulk_create does not), for later updates
        _log_queued(call)


def _log_queued(call: Call) -> None:
    logger.info(
        "call %s queued: %s %s -> %s",
        call.id,
        _direction(call),
        mask_phone(call.from_number) or "-",
        mask_phone(call.to_number) or "-",
    )


def _direction(call: Call) -> CallDirection:
    # `create_call` writes only these values.
    if call.call_type == "web":
        return "web"
    return "outbound" if call.call_direction == "outbound" else "inbound"


def room_of(call: Call) -> str:
    """The call's LiveKit room (the column is nullable, but `create_call` always names one)."""
    if call.room_name is None:
        raise ValueError(f"call {call.id} has no room")
    return call.room_name


async def agent_spec(
    settings: Settings, agent: Agent, version: AgentVersion | None = None
) -> AgentSpec:
    """The agent as a worker runs it: decrypted secrets, defaults resolved, knowledge state;
    as `version` has it, or the latest settings when it is None.

    Raises:
        Conflict: `SECRET_UNREADABLE` when a secret the agent needs cannot be decrypted.
    """
    try:
        config = agent_service.plain_config(settings, agent, version=version)
        fallbacks = {
            kind: tuple(ProviderChoice(**choice) for choice in config.get(f"{kind}_fallbacks", []))
            for kind in ("LLM", "STT", "TTS")
        }
        credentials = await provider_service.credentials_for(
            settings,
            agent.workspace_id,
            (config["LLM_provider"], config["STT_provider"], config["TTS_provider"])
            + tuple(choice.provider for choices in fallbacks.values() for choice in choices),
        )
    except SecretUnreadableError as error:
        raise Conflict(
            "SECRET_UNREADABLE", f"Agent {agent.agent_name!r} cannot run: {error}."
        ) from error
    knowledge_ready = await KnowledgeFile.filter(
        agent_id=agent.id, status=FileStatus.READY
    ).exists()
    return AgentSpec(
        agent_id=str(agent.id),
        name=agent.agent_name,
        llm_provider=config["LLM_provider"],
        llm_model=config["LLM_model"],
        llm_base_url=config.get("LLM_base_url"),
        llm_api_key=config.get("LLM_api_key"),
        temperature=config["temperature"],
        max_tokens=config["max_tokens"],
        stt_provider=config["STT_provider"],
        stt_model=config["STT_model"],
        tts_provider=config["TTS_provider"],
        tts_model=config["TTS_model"],
        tts_voice=config.get("TTS_voice"),
        llm_settings=config.get("LLM_settings") or {},
        stt_settings=config.get("STT_settings") or {},
        tts_settings=config.get("TTS_settings") or {},
        llm_fallbacks=fallbacks["LLM"],
        stt_fallbacks=fallbacks["STT"],
        tts_fallbacks=fallbacks["TTS"],
        credentials=credentials,
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
        voicemail_detection=config.get("voicemail_detection", False),
        voicemail_action=config.get("voicemail_action", "hang_up"),
        voicemail_message=config.get("voicemail_message", ""),
        transfer_destinations=tuple(
            TransferDestinationSpec(
                # agents saved before destinations had names get one the LLM can still pick
                name=destination.get("name") or f"destination_{index}",
                destination=destination["destination"],
                description=destination.get("description", ""),
                **{key: destination[key] for key in WARM_FIELDS if key in destination},
            )
            for index, destination in enumerate(config.get("transfer_destinations", []), 1)
        ),
        dtmf_menu=config.get("dtmf_menu", {}),
        recording_enabled=config.get("recording_enabled", False),
        agent_version=version.number if version else await _latest_number(agent),
        handoff_destinations=tuple(
            HandoffDestinationSpec(**handoff) for handoff in config.get("handoff_destinations", [])
        ),
        max_handoffs=config.get("max_handoffs", DEFAULT_MAX_HANDOFFS),
    )


#: A warm transfer destination's settings, carried into the call spec as they are stored.
WARM_FIELDS = (
    "type",
    "ring_timeout",
    "briefing_instructions",
    "hold_audio_url",
    "fallback_message",
)
#: How many agents one call's hand-offs may reach at most (a chain's agents are loaded up front).
MAX_HANDOFF_AGENTS = 20


async def handoff_agents(
    settings: Settings, agent: Agent, spec: AgentSpec, call_id: uuid.UUID
) -> dict[str, AgentSpec]:
    """The specs of every agent a call of `agent` (run as `spec`) can be handed to, along any
    chain, by id: only agents of its own workspace (a destination since deleted is left out),
    each as the version a call of its own would run."""
    found: dict[str, AgentSpec] = {}
    pending = [destination.agent_id for destination in spec.handoff_destinations]
    while pending and len(found) < MAX_HANDOFF_AGENTS:
        agent_id = pending.pop(0)
        if agent_id in found or agent_id == str(agent.id):
            continue
        target = await Agent.get_or_none(id=agent_id, workspace_id=agent.workspace_id)
        if target is not None:
            version = await agent_versions.recorded(target, agent_versions.pick(target, call_id))
            found[agent_id] = await agent_spec(settings, target, version)
            pending.extend(d.agent_id for d in found[agent_id].handoff_destinations)
    return found


async def _latest_number(agent: Agent) -> int | None:
    newest = await agent_versions.latest(agent)
    return newest.number if newest else None


async def call_spec(settings: Settings, call: Call) -> CallSpec:
    if call.agent_id is None:
        raise Gone("AGENT_GONE", "The agent of this call has been deleted.")
    agent = await Agent.get(id=call.agent_id)
    version = await agent_versions.recorded(agent, call.agent_version)
    sip_trunk_id = None
    krisp_enabled = False
    if call.call_direction == "outbound" and call.call_type == "phone":
        number = await PhoneNumber.get_or_none(
            workspace_id=call.workspace_id, phone_number=call.from_number
        )
        sip_trunk_id = number.outbound_trunk_id if number else None
        # the number's noise-cancellation setting, on the leg the worker dials
        krisp_enabled = bool(number and number.krisp_enabled)
    elif call.call_type == "phone":  # a warm transfer dials out on the answering number's trunk
        number = await PhoneNumber.get_or_none(
            workspace_id=call.workspace_id, phone_number=call.to_number
        )
        sip_trunk_id = number.outbound_trunk_id if number else None
    spec = await agent_spec(settings, agent, version)
    return CallSpec(
        call_id=str(call.id),
        workspace_id=str(call.workspace_id),
        direction=_direction(call),
        call_type="web" if call.call_type == "web" else "phone",
        from_number=call.from_number,
        to_number=call.to_number,
        dynamic_variables=call.dynamic_variables,
        agent=spec,
        room_name=call.room_name,
        sip_trunk_id=sip_trunk_id,
        krisp_enabled=krisp_enabled,
        allow_private_urls=settings.allow_private_urls,
        handoff_agents=await handoff_agents(settings, agent, spec, call.id),
    )


async def get_call(workspace_id: uuid.UUID | None, call_id: uuid.UUID) -> Call:
    """A call by id, within `workspace_id` (None only for the service-token endpoints)."""
    query = Call.filter(id=call_id)
    if workspace_id is not None:
        query = query.filter(workspace_id=workspace_id)
    call = await query.first()
    if call is None:
        raise NotFound("CALL_NOT_FOUND", "No call with that id.")
    return call


async def find_agent_by_number(number: str) -> Agent:
    """The agent a dialled number reaches: only ever one of the workspace that registered it."""
    registered = await PhoneNumber.get_or_none(phone_number=number)
    agent = (
        await Agent.get_or_none(workspace_id=registered.workspace_id, phone_number=number)
        if registered
        else None
    )
    if agent is None:
        raise NotFound("NUMBER_NOT_MAPPED", f"No agent answers {mask_phone(number)}.")
    return agent


def _timestamp(value: str | None) -> datetime | None:
    # In UTC: SQLite compares stored times as text, so every stored time has one offset.
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


async def _workspace_limit(workspace_id: uuid.UUID) -> int | None:
    workspace = await Workspace.get(id=workspace_id).only("id", "max_concurrent_calls")
    return workspace.max_concurrent_calls


async def capacity_limits(
    settings: Settings, workspace_id: uuid.UUID, *, web: bool = False
) -> list[capacity.Limit]:
    """The limits a call of the workspace takes a slot under: the platform's and the
    workspace's (read now), and with `web` the workspace's web calls'."""
    limits = capacity.limits_for(
        settings.max_agent_sessions, workspace_id, await _workspace_limit(workspace_id)
    )
    if web:
        limits.append(capacity.web_limit(workspace_id, settings.web_calls_max_concurrent))
    return limits


async def reserve_capacity(
    settings: Settings,
    redis: Redis,
    call_id: uuid.UUID,
    workspace_id: uuid.UUID,
    *,
    web: bool = False,
) -> None:
    """Take the call's slot under the platform's and the workspace's limits (429 when full)."""
    limits = await capacity_limits(settings, workspace_id, web=web)
    await capacity.reserve(redis, call_id, limits, _unjoined_hold(settings))


async def reserve_capacities(
    settings: Settings, redis: Redis, call_ids: list[uuid.UUID], workspace_id: uuid.UUID
) -> int:
    """Take slots for the workspace's `call_ids` in order, as `reserve_capacity` takes one,
    until a limit is full; returns how many got one (the first so many)."""
    limits = await capacity_limits(settings, workspace_id)
    taken, _ = await capacity.reserve_many(redis, call_ids, limits, _unjoined_hold(settings))
    return taken


def _unjoined_hold(settings: Settings) -> float:
    # Until a worker takes the call, its slot lasts as long as the reaper would wait for one.
    return settings.join_timeout_seconds + settings.reaper_grace_seconds


def _live_hold(settings: Settings) -> float:
    # A live call's slot outlasts a missed heartbeat or two, not a dead worker.
    return settings.heartbeat_timeout_seconds + settings.reaper_grace_seconds


async def _release_capacity(redis: Redis, call: Call) -> None:
    try:
        await capacity.release(redis, call.id, capacity.keys_of(call.workspace_id))
    except (RedisError, OSError) as error:  # the slot expires on its own
        logger.warning("call %s: its capacity slot could not be freed now: %s", call.id, error)


async def finish_call(redis: Redis, call: Call, **fields: Any) -> bool:
    """Move a call to its final state, once: free its slot and fire its final events.

    Returns False (and changes nothing) when the call is already final. A real outcome may
    replace the reaper's `lost`, and then fires its events anew; nothing replaces anything else.
    """
    fields.setdefault("ended_at", utcnow())
    replacing_lost = False
    updated = await Call.filter(id=call.id, status__in=LIVE_STATUSES).update(**fields)
    if not updated and fields.get("end_reason") != LOST:
        updated = await Call.filter(id=call.id, status="failed", end_reason=LOST).update(**fields)
        replacing_lost = bool(updated)
    if not updated:
        return False
    await call.refresh_from_db()
    logger.info("call %s ended: %s (%s)", call.id, call.status, call.end_reason)
    await _release_capacity(redis, call)
    await emit_outcome(call, revision="after-lost" if replacing_lost else None)
    if call.status == "completed":
        await jobs.enqueue("analyse_call", {"call_id": str(call.id)}, key=f"analyse:{call.id}")
    return True


async def apply_report(redis: Redis, call: Call, report: CallReport) -> bool:
    """Store what the worker reports when the call ends; False when the call was already final.

    The call's transfer attempts fire their events (`transfer_initiated`, then
    `transfer_succeeded` or `transfer_failed`) before its final ones. Either way `call` is then
    reloaded, so it shows the state the call is in now.
    """
    if report.status.value not in FINAL_STATUSES:
        raise Invalid(
            "VALIDATION_ERROR", f"A report needs a final status, not {report.status.value}."
        )
    transfers = [_transfer_record(transfer) for transfer in report.transfers]
    replaceable = Q(status__in=LIVE_STATUSES) | Q(status="failed", end_reason=LOST)
    if transfers and await Call.filter(replaceable, id=call.id).exists():
        # ids derive from the call and the attempt: a report sent twice fires them once
        await emit_transfers(call, transfers)
    handoffs = [_handoff_record(handoff) for handoff in report.handoffs]
    if handoffs and await Call.filter(replaceable, id=call.id).exists():
        await emit_handoffs(call, handoffs)
    applied = await finish_call(
        redis,
        call,
        status=report.status.value,
        end_reason=report.end_reason.value if report.end_reason else None,
        sip_status=report.sip_status,
        started_at=_timestamp(report.started_at) or call.started_at,
        answered_at=_timestamp(report.answered_at) or call.answered_at,
        ended_at=_timestamp(report.ended_at) or call.ended_at or utcnow(),
        duration_seconds=report.duration_seconds,
        transcript=report.transcript,
        usage=dict(report.usage),
        latencies=report.latencies,
        transfers=transfers,
        handoffs=handoffs,
        final_agent_id=_final_agent(call, report),
        error=report.error,
    )
    await call.refresh_from_db()
    return applied


async def record_transfers(call: Call, reported: list[dict[str, Any]]) -> bool:
    """The worker's word, during the call, on its transfer attempts so far: kept on the call
    log and their events fired as they happen (the end-of-call report fires none twice: the
    event ids derive from the call and the attempt). False when the call is already final."""
    transfers = [_transfer_record(transfer) for transfer in reported]
    kept = await Call.filter(id=call.id, status__in=LIVE_STATUSES).update(transfers=transfers)
    if kept:
        await emit_transfers(call, transfers)
    return bool(kept)


async def join_call(settings: Settings, redis: Redis, call: Call) -> None:
    """A worker took the call (it asked for the spec): hold its slot while it is alive.

    Inbound and web calls take their slot here; over capacity, the call log is finished as
    failed (`at_capacity`) and the worker gets 429 to play its busy message and hang up.
    """
    try:
        await reserve_capacity(settings, redis, call.id, call.workspace_id)
    except AtCapacity as refused:
        await finish_call(
            redis, call, status="failed", end_reason=AT_CAPACITY, error=refused.detail
        )
        refused.extra = {"call_id": str(call.id)}
        raise
    now = utcnow()
    agent = await Agent.get_or_none(id=call.agent_id) if call.agent_id else None
    ran = (
        agent_versions.runs_with(agent, await agent_versions.recorded(agent, call.agent_version))
        if agent
        else {}
    )
    max_duration = ran.get("max_call_duration") or 3600
    call.joined_at = call.joined_at or now
    call.heartbeat_at = now
    call.expires_at = now + timedelta(
        seconds=max_duration + RINGING_ALLOWANCE_SECONDS + settings.reaper_grace_seconds
    )
    await call.save(update_fields=["joined_at", "heartbeat_at", "expires_at"])
    await capacity.refresh(
        redis, call.id, capacity.keys_of(call.workspace_id), _live_hold(settings)
    )


async def heartbeat(settings: Settings, redis: Redis, call: Call) -> None:
    """The worker says the call is alive: the reaper leaves it be and its slot is kept."""
    if call.status not in LIVE_STATUSES:
        return
    await Call.filter(id=call.id).update(heartbeat_at=utcnow())
    await capacity.refresh(
        redis, call.id, capacity.keys_of(call.workspace_id), _live_hold(settings)
    )


async def reap_lost_calls(settings: Settings, redis: Redis) -> int:
    """Finish the calls that cannot be alive any more as failed/`lost`; returns how many."""
    now = utcnow()
    grace = timedelta(seconds=settings.reaper_grace_seconds)
    reasons = {
        "no worker took the call in time": Q(
            joined_at=None, created_at__lt=now - timedelta(seconds=settings.join_timeout_seconds)
        ),
        "the worker stopped reporting that the call is alive": Q(
            joined_at__not_isnull=True,
            heartbeat_at__lt=now - timedelta(seconds=settings.heartbeat_timeout_seconds),
        ),
        "the room closed and no report came": Q(ended_at__lt=now - grace),
        "the call outlived its maximum duration": Q(expires_at__lt=now),
    }
    reaped = 0
    for reason, condition in reasons.items():
        for call in await Call.filter(condition, status__in=LIVE_STATUSES).limit(500):
            if await finish_call(redis, call, status="failed", end_reason=LOST, error=reason):
                logger.warning("call %s finished as lost: %s", call.id, reason)
                reaped += 1
    return reaped


async def _dispatch(
    telephony: TelephonySettings, redis: Redis, call: Call, metadata: dict[str, Any]
) -> str:
    try:
        return await sip.dispatch_agent(room_of(call), metadata=metadata, settings=telephony)
    except TelephonyError as error:
        await finish_call(
            redis, call, status="failed", end_reason="error", error=f"dispatch failed: {error}"
        )
        raise phone_numbers.telephony_error(error) from error


async def dispatch_outbound(telephony: TelephonySettings, redis: Redis, call: Call) -> str:
    """Dispatch the agent into an outbound call's room (it dials the callee); returns the
    dispatch id. When LiveKit refuses, the call is finished as failed and the refusal raised
    (a DomainError)."""
    return await _dispatch(
        telephony, redis, call, {"call_id": str(call.id), "direction": "outbound"}
    )


async def outbound_agent(workspace_id: uuid.UUID, agent_number: str) -> Agent:
    """The agent that calls out from `agent_number`, once the number is checked: registered by
    the workspace, mapped to one of its agents, and on an outbound trunk (404 or 409 if not)."""
    number = await PhoneNumber.get_or_none(workspace_id=workspace_id, phone_number=agent_number)
    if number is None:
        raise NotFound(
            "NUMBER_NOT_REGISTERED",
            f"This workspace has not registered {mask_phone(agent_number)}; register it "
            "(POST /phonenumbers/purchase or /phonenumbers/sip_trunk) before calling from it.",
        )
    agent = await Agent.get_or_none(workspace_id=workspace_id, phone_number=agent_number)
    if agent is None:
        raise NotFound(
            "AGENT_NOT_FOUND",
            f"No agent in this workspace is mapped to {mask_phone(agent_number)}.",
        )
    if number.outbound_trunk_id is None:
        raise Conflict(
            "NO_OUTBOUND_TRUNK",
            "That number has no outbound SIP trunk; register one (POST /phonenumbers/sip_trunk).",
        )
    return agent


async def start_outbound_call(
    settings: Settings,
    telephony: TelephonySettings,
    redis: Redis,
    workspace_id: uuid.UUID,
    agent_number: str,
    to_number: str,
    dynamic_variables: dict[str, Any],
) -> tuple[Call, str]:
    """Take a capacity slot, queue a call log and dispatch the agent; the worker then dials.

    A number on the workspace's do-not-call list is refused first (Conflict `NUMBER_ON_DNC`):
    no slot, no call log, no dispatch. The dialers take the same steps for a tick's rows at once
    (`control.dialing.dialer`).
    """
    agent = await outbound_agent(workspace_id, agent_number)
    await dnc.refuse_listed(workspace_id, to_number)
    call_id = uuid.uuid4()
    await reserve_capacity(settings, redis, call_id, workspace_id)
    try:
        call = await create_call(
            agent,
            direction="outbound",
            from_number=agent_number,
            to_number=to_number,
            dynamic_variables=dynamic_variables,
            call_id=call_id,
        )
    except BaseException:
        await capacity.release(redis, call_id, capacity.keys_of(workspace_id))
        raise
    dispatch_id = await dispatch_outbound(telephony, redis, call)
    await emit_once(call, "call_started", _event_data(call))
    return call, dispatch_id


async def start_web_call(
    settings: Settings,
    telephony: TelephonySettings,
    redis: Redis,
    agent_number: str,
    session_id: str,
    public_key: str | None,
    origin: str | None,
) -> tuple[Call, str]:
    """A web call: a call log, a new room with the agent dispatched, and a token for that room.

    Only for an agent that allows web calls, with its public key, from one of its origins (when
    it lists any), within the workspace's web-call quotas (at once, and per hour).
    """
    agent = await _web_call_agent(agent_number, public_key, origin)
    call_id = uuid.uuid4()
    await reserve_capacity(settings, redis, call_id, agent.workspace_id, web=True)
    try:
        await _count_web_call(settings, redis, agent.workspace_id)
        call = await create_call(
            agent, direction="web", room_name=f"web-{call_id}", call_id=call_id
        )
    except BaseException:
        await capacity.release(redis, call_id, capacity.keys_of(agent.workspace_id))
        raise
    await _dispatch(telephony, redis, call, {"call_id": str(call.id), "direction": "web"})
    try:
        token = sip.mint_room_token(
            room_of(call),
            identity=f"web-{session_id}",
            ttl_seconds=WEB_TOKEN_TTL_SECONDS,
            settings=telephony,
        )
    except TelephonyError as error:
        raise phone_numbers.telephony_error(error) from error
    await emit_once(call, "call_started", _event_data(call))
    return call, token


async def _web_call_agent(agent_number: str, public_key: str | None, origin: str | None) -> Agent:
    # One answer for every refusal, so the route tells nobody which agents or numbers exist.
    agent_id = agent_service.agent_id_of_web_call_key(public_key) if public_key else None
    agent = await Agent.get_or_none(id=agent_id) if agent_id else None
    if agent is None or not _web_call_allowed(agent, agent_number, public_key or "", origin):
        raise Forbidden(
            "WEB_CALL_FORBIDDEN",
            "Web calls need an agent that allows them, its web_call_public_key as `public_key`, "
            "and a page on one of its web_call_origins.",
        )
    return agent


def _web_call_allowed(agent: Agent, agent_number: str, public_key: str, origin: str | None) -> bool:
    config = agent.config
    key = config.get(agent_service.WEB_CALL_KEY_FIELD) or ""
    if not config.get("allow_web_calls") or not hmac.compare_digest(
        key.encode(), public_key.encode()
    ):
        return False
    if config.get("phone_number", agent.phone_number) != agent_number:
        return False
    origins = config.get("web_call_origins") or []
    return not origins or (origin or "").strip().rstrip("/").lower() in origins


WEB_CALLS_HOUR_KEY = "webcalls:hour:{}:{}"


async def _count_web_call(settings: Settings, redis: Redis, workspace_id: uuid.UUID) -> None:
    """Count a web call against the workspace's hourly quota (429 once it is used up)."""
    if not settings.web_calls_per_hour:
        return
    hour, into_hour = divmod(int(time.time()), 3600)
    key = WEB_CALLS_HOUR_KEY.format(workspace_id, hour)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, 3600)
        started, _ = await pipe.execute()
    if started > settings.web_calls_per_hour:
        raise QuotaExceeded(
            "WEB_CALL_QUOTA",
            f"This workspace has used its {settings.web_calls_per_hour} web calls for this hour.",
            retry_after=3600 - into_hour,
        )


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


TRANSFER_OUTCOMES = ("initiated", "succeeded", "failed")
TRANSFER_FIELDS = ("destination_name", "destination", "at", "outcome", "error", "sip_status")
#: What a warm transfer adds: its type, why it ended as it did, and what the human was told.
WARM_TRANSFER_FIELDS = ("type", "reason", "briefing")


def _transfer_record(transfer: dict[str, Any]) -> dict[str, Any]:
    """A reported transfer attempt as the call log keeps it (known fields, destination masked)."""
    record = {key: transfer.get(key) for key in TRANSFER_FIELDS}
    record.update({key: transfer[key] for key in WARM_TRANSFER_FIELDS if key in transfer})
    if record["outcome"] not in TRANSFER_OUTCOMES:
        raise Invalid(
            "VALIDATION_ERROR", f"A transfer's outcome must be one of {TRANSFER_OUTCOMES}."
        )
    destination = str(record["destination"] or "")
    if "***" not in destination:  # the runtime masks it; a number in clear is masked here
        record["destination"] = mask_phone(destination) if destination else None
    return record


async def emit_transfers(call: Call, transfers: list[dict[str, Any]]) -> None:
    """`transfer_initiated` for each attempt, then its outcome; ids from the call and attempt."""
    for attempt, transfer in enumerate(transfers, start=1):
        data = {
            "call_id": str(call.id),
            "agent_id": str(call.agent_id) if call.agent_id else None,
            "attempt": attempt,
            "destination_name": transfer["destination_name"],
            "destination": transfer["destination"],
            "at": transfer["at"],
            "type": transfer.get("type") or "cold",
        }
        await webhooks.emit(
            call.workspace_id,
            "transfer_initiated",
            data,
            event_key=f"{call.id}:transfer:{attempt}:initiated",
        )
        if transfer["outcome"] in ("succeeded", "failed"):
            outcome = {
                **data,
                "error": transfer.get("error"),
                "sip_status": transfer["sip_status"],
                "reason": transfer.get("reason"),
            }
            await webhooks.emit(
                call.workspace_id,
                f"transfer_{transfer['outcome']}",
                outcome,
                event_key=f"{call.id}:transfer:{attempt}:{transfer['outcome']}",
            )


HANDOFF_FIELDS = ("from_agent_id", "to_agent_id", "name", "at", "reason")


def _handoff_record(handoff: dict[str, Any]) -> dict[str, Any]:
    """A reported hand-off as the call log keeps it (known fields only, agent ids checked)."""
    record = {key: handoff.get(key) for key in HANDOFF_FIELDS}
    for key in ("from_agent_id", "to_agent_id"):
        try:
            record[key] = str(uuid.UUID(str(record[key])))
        except ValueError as error:
            raise Invalid("VALIDATION_ERROR", f"A hand-off's {key} must be an agent id.") from error
    if record["reason"] is not None:
        record["reason"] = str(record["reason"])[:500]
    return record


def _final_agent(call: Call, report: CallReport) -> uuid.UUID | None:
    """The agent speaking at the end: the reported one, else the one that answered."""
    if report.final_agent_id:
        try:
            return uuid.UUID(report.final_agent_id)
        except ValueError as error:
            raise Invalid("VALIDATION_ERROR", "final_agent_id must be an agent id.") from error
    return call.agent_id


async def emit_handoffs(call: Call, handoffs: list[dict[str, Any]]) -> None:
    """`agent_handoff` for each hand-off; ids from the call and the hand-off's place."""
    for number, handoff in enumerate(handoffs, start=1):
        await webhooks.emit(
            call.workspace_id,
            "agent_handoff",
            {"call_id": str(call.id), "agent_id": str(call.agent_id), "handoff": number, **handoff},
            event_key=f"{call.id}:handoff:{number}",
        )


# The event a call's final status fires, beside `call_ended` (PARITY.md).
OUTCOME_EVENTS = {
    "no_answer": "call_no_answer",
    "busy": "call_rejected",
    "rejected": "call_rejected",
    "failed": "call_failed",
}


def _once_key(call: Call, event_type: str, revision: str | None = None) -> str:
    # The id of an event a call has once derives from the call and the event.
    return f"{call.id}:{event_type}" + (f":{revision}" if revision else "")


async def emit_once(
    call: Call, event_type: str, data: dict[str, Any], revision: str | None = None
) -> None:
    """Fire one of the events a call has once; its id derives from the call and the event."""
    await webhooks.emit(
        call.workspace_id, event_type, data, event_key=_once_key(call, event_type, revision)
    )


async def emit_started(calls: list[Call]) -> None:
    """`call_started` for each of `calls` (of one workspace), queued together."""
    if calls:
        await webhooks.emit_many(
            calls[0].workspace_id,
            [
                webhooks.Event("call_started", _event_data(call), _once_key(call, "call_started"))
                for call in calls
            ],
        )


async def emit_outcome(call: Call, revision: str | None = None) -> None:
    data = {**_event_data(call), "sip_status": call.sip_status, "end_reason": call.end_reason}
    if call.status in OUTCOME_EVENTS:
        await emit_once(call, OUTCOME_EVENTS[call.status], data, revision)
    await emit_once(
        call, "call_ended", {**data, "duration_seconds": call.duration_seconds}, revision
    )
