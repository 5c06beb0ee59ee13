"""Agent dispatch into a room and outbound SIP calls into it, failures as `DialError`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from livekit import api as lk

from runtime.spec import CallStatus, call_status_for_sip, mask_phone
from telephony.config import TelephonySettings, get_settings
from telephony.errors import DialError
from telephony.sip.client import livekit_api, livekit_errors, metadata_json

logger = logging.getLogger(__name__)

#: How long an outbound call rings before it counts as not answered (PARITY.md: about 45 s).
DEFAULT_RINGING_TIMEOUT = 45.0


@dataclass(frozen=True, kw_only=True)
class DialResult:
    """The SIP participant of an answered (or, without waiting, started) outbound call."""

    participant_id: str
    participant_identity: str
    room_name: str
    sip_call_id: str


async def dispatch_agent(
    room_name: str,
    agent_name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    api: lk.LiveKitAPI | None = None,
    settings: TelephonySettings | None = None,
) -> str:
    """Creates the room (if it does not exist) and dispatches the agent worker into it.

    Args:
        room_name: the room; LiveKit's CreateRoom returns an existing room unchanged.
        agent_name: the worker's agent name; settings.agent_name (VOXLINE_AGENT_NAME) if None.
        metadata: JSON-serialisable job metadata (call id, dynamic variables, ...).
        api: an open LiveKit client to use instead of a new one.
        settings: telephony settings; the environment's by default.

    Returns:
        The dispatch id ("AD_...").

    Raises:
        LiveKitError: when LiveKit refuses or fails.
    """
    settings = settings or get_settings()
    agent = agent_name or settings.agent_name
    async with livekit_api(settings, api) as client:
        with livekit_errors(f"create room {room_name}"):
            await client.room.create_room(lk.CreateRoomRequest(name=room_name))
        with livekit_errors(f"dispatch agent {agent} to room {room_name}"):
            dispatch = await client.agent_dispatch.create_dispatch(
                lk.CreateAgentDispatchRequest(
                    agent_name=agent, room=room_name, metadata=metadata_json(metadata)
                )
            )
    logger.info("dispatched %s to room %s (%s)", agent, room_name, dispatch.id)
    return dispatch.id


async def dial(
    room_name: str,
    outbound_trunk_id: str,
    to_number: str,
    participant_identity: str,
    *,
    wait_until_answered: bool = True,
    krisp_enabled: bool = False,
    participant_name: str | None = None,
    from_number: str | None = None,
    ringing_timeout: float = DEFAULT_RINGING_TIMEOUT,
    max_call_duration: float | None = None,
    api: lk.LiveKitAPI | None = None,
    settings: TelephonySettings | None = None,
) -> DialResult:
    """Calls `to_number` over the outbound trunk and brings the callee into the room.

    Args:
        room_name: the room the agent is in.
        outbound_trunk_id: the caller's outbound trunk ("ST_...").
        to_number: the callee, E.164.
        participant_identity: the callee's identity in the room.
        wait_until_answered: return only once the callee answers (and fail if they do not).
        krisp_enabled: noise cancellation on the call.
        participant_name: the callee's display name in the room.
        from_number: caller id, if not the trunk's own number.
        ringing_timeout: seconds to ring before giving up.
        max_call_duration: hang up after this many seconds, if set.
        api: an open LiveKit client (the worker's `ctx.api`) instead of a new one.
        settings: telephony settings; the environment's by default.

    Returns:
        The SIP participant.

    Raises:
        DialError: when the call does not connect; `call_status` says "busy", "no_answer",
            "rejected" or "failed" and `sip_status` holds the SIP code when LiveKit gave one.
    """
    request = lk.CreateSIPParticipantRequest(
        sip_trunk_id=outbound_trunk_id,
        sip_call_to=to_number,
        room_name=room_name,
        participant_identity=participant_identity,
        participant_name=participant_name or "",
        wait_until_answered=wait_until_answered,
        krisp_enabled=krisp_enabled,
    )
    if from_number:
        request.sip_number = from_number
    request.ringing_timeout.seconds = int(ringing_timeout)
    if max_call_duration:
        request.max_call_duration.seconds = int(max_call_duration)
    masked = mask_phone(to_number)
    logger.info("dialling %s into room %s over %s", masked, room_name, outbound_trunk_id)
    async with livekit_api(settings, api) as client:
        try:
            participant = await client.sip.create_sip_participant(request)
        except lk.ServerError as e:
            raise _dial_error(e, masked) from e
        except TimeoutError as e:
            raise DialError(
                f"call to {masked} got no answer from LiveKit in time",
                call_status=CallStatus.NO_ANSWER,
                code="deadline_exceeded",
                retryable=True,
            ) from e
        except aiohttp.ClientError as e:
            raise DialError(
                f"call to {masked} failed: LiveKit unreachable ({type(e).__name__})",
                call_status=CallStatus.FAILED,
                code="unavailable",
                retryable=True,
            ) from e
    logger.info("call to %s connected (%s)", masked, participant.sip_call_id)
    return DialResult(
        participant_id=participant.participant_id,
        participant_identity=participant.participant_identity,
        room_name=participant.room_name,
        sip_call_id=participant.sip_call_id,
    )


def _dial_error(error: lk.ServerError, masked_number: str) -> DialError:
    raw = (error.metadata or {}).get("sip_status_code")
    sip_status = int(raw) if raw and str(raw).isdigit() else None
    status = call_status_for_sip(sip_status)
    reason = (error.metadata or {}).get("sip_status") or error.message or error.code
    detail = f"SIP {sip_status} {reason}" if sip_status else f"{reason} ({error.code})"
    logger.info("call to %s ended %s: %s", masked_number, status, detail)
    return DialError(
        f"call to {masked_number} {status}: {detail}",
        call_status=status,
        code=error.code,
        http_status=error.status,
        sip_status=sip_status,
        retryable=status in (CallStatus.BUSY, CallStatus.NO_ANSWER)
        or (sip_status is None and error.status >= 500),
    )
