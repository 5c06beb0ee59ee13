"""LiveKit's webhook events: the platform's active-call count and the call logs' progress."""

from __future__ import annotations

import logging

from livekit import api as lk
from redis.asyncio import Redis
from tortoise.expressions import Case, F, Q, When
from tortoise.functions import Coalesce

from control.models import Call
from control.security import utcnow
from control.services import calls as call_service
from control.services import capacity

logger = logging.getLogger(__name__)

ACTIVE_CALLS_KEY = "livekit:active_calls"
ACTIVE_CALLS_TTL_SECONDS = 600  # heals a count left wrong by a crash (PARITY.md)
SEEN_EVENT_TTL_SECONDS = 24 * 3600
SEEN_EVENT_PREFIX = "livekit:event:"
# The SIP participant's call status (LiveKit's `sip.callStatus` attribute): a callee whose phone
# still rings is in the room already, but has not answered.
CALL_STATUS_ATTRIBUTE = "sip.callStatus"
NOT_ANSWERED_YET = frozenset({"dialing", "ringing"})
# A caller joining, or publishing its audio (a SIP callee publishes it once it picked up).
ANSWER_EVENTS = frozenset({"participant_joined", "track_published"})

# One round trip per event, after its database effects are written: mark the event id seen
# (a duplicate returns 0 and changes nothing), move the room count (never below zero) and
# refresh its TTL. Returns 1 when applied.
_APPLY_EVENT = """
if ARGV[1] ~= '' and not redis.call('SET', KEYS[2], 1, 'NX', 'EX', ARGV[2]) then
  return 0
end
if ARGV[3] == 'room_started' then
  redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
elseif ARGV[3] == 'room_finished' then
  local value = tonumber(redis.call('GET', KEYS[1]) or '0')
  if value > 0 then redis.call('DECR', KEYS[1]) else redis.call('SET', KEYS[1], 0) end
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return 1
"""


async def active_calls(redis: Redis) -> int:
    return int(await redis.get(ACTIVE_CALLS_KEY) or 0)


async def _apply_to_counters(redis: Redis, event: lk.WebhookEvent) -> bool:
    applied = await redis.eval(
        _APPLY_EVENT,
        2,
        ACTIVE_CALLS_KEY,
        SEEN_EVENT_PREFIX + event.id,
        event.id,
        SEEN_EVENT_TTL_SECONDS,
        event.event,
        ACTIVE_CALLS_TTL_SECONDS,
    )
    return bool(applied)


def _is_caller(participant: lk.ParticipantInfo) -> bool:
    """The human side of a call: a SIP participant, or a web participant that is not an agent."""
    return participant.kind in (lk.ParticipantInfo.Kind.SIP, lk.ParticipantInfo.Kind.STANDARD)


async def _move_call(redis: Redis, event: lk.WebhookEvent) -> None:
    room_name = event.room.name if event.HasField("room") else ""
    if not room_name:
        return
    now = utcnow()
    calls = Call.filter(room_name=room_name)
    # Conditional updates: one statement per event, no read first (this is a hot path).
    if event.event == "room_started":
        # Started now unless started already; a queued outbound call is dialing.
        dials = Q(status="queued", call_direction="outbound")
        await calls.filter(Q(started_at=None) | dials).update(
            started_at=Coalesce(F("started_at"), now),
            status=Case(When(dials, then="dialing"), default=F("status")),
        )
    elif event.event == "room_finished":
        await calls.filter(ended_at=None).update(ended_at=now)
        # The room is gone, so is the call: free its slot now; the report (or the reaper)
        # still brings the call log to its final state.
        for call_id, workspace_id in await calls.values_list("id", "workspace_id"):
            await capacity.release(redis, call_id, capacity.keys_of(workspace_id))
    elif (
        event.event == "participant_joined"
        and event.participant.kind == lk.ParticipantInfo.Kind.SIP
        and event.participant.attributes.get(CALL_STATUS_ATTRIBUTE) in NOT_ANSWERED_YET
    ):
        ringing = calls.filter(answered_at=None, status__in=("queued", "dialing"))
        call = await ringing.first()
        if call is None or not await ringing.filter(id=call.id).update(status="ringing"):
            return
        await call_service.emit_once(
            call, "call_ringing", {"call_id": str(call.id), "at": now.isoformat()}
        )
    elif event.event in ANSWER_EVENTS and _is_caller(event.participant):
        answering = calls.filter(answered_at=None, status__in=("queued", "dialing", "ringing"))
        call = await answering.first()
        if call is None or not await answering.filter(id=call.id).update(
            answered_at=now, status="in_progress"
        ):
            return
        await call_service.emit_once(
            call, "call_answered", {"call_id": str(call.id), "at": now.isoformat()}
        )


async def handle(redis: Redis, event: lk.WebhookEvent) -> bool:
    """Apply one verified event; returns False when its id was already handled.

    The event is marked seen only after its database effects are written, so a failed write
    answers 5xx and LiveKit's retry applies it. The effects are conditional updates, so a retry
    (or two deliveries at once) cannot apply them twice: a duplicate is not looked up first
    (a Redis round trip for every event, to save a no-op update on the rare duplicate), its
    updates find nothing to change and the seen mark refuses its count.
    """
    await _move_call(redis, event)
    return await _apply_to_counters(redis, event)
