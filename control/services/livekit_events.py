"""LiveKit's webhook events: the platform's active-call count and the call logs' progress."""

from __future__ import annotations

import logging

from livekit import api as lk
from redis.asyncio import Redis
from tortoise import connections

from control.microbatch import MicroBatch
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

# One round trip for the events that arrive together, after their database effects are written:
# for each event in turn, mark its id seen (a duplicate gets 0 and changes nothing), move the room
# count (never below zero) and refresh its TTL. KEYS: the count, then each event's seen mark;
# ARGV: the two TTLs, then each event's id and type. Returns 1 for each event applied, else 0.
_APPLY_EVENTS = """
local applied = {}
for index = 2, #KEYS do
  local id, kind = ARGV[2 * index - 1], ARGV[2 * index]
  if id ~= '' and not redis.call('SET', KEYS[index], 1, 'NX', 'EX', ARGV[1]) then
    applied[index - 1] = 0
  else
    if kind == 'room_started' then
      redis.call('INCR', KEYS[1])
      redis.call('EXPIRE', KEYS[1], ARGV[2])
    elseif kind == 'room_finished' then
      local value = tonumber(redis.call('GET', KEYS[1]) or '0')
      if value > 0 then redis.call('DECR', KEYS[1]) else redis.call('SET', KEYS[1], 0) end
      redis.call('EXPIRE', KEYS[1], ARGV[2])
    end
    applied[index - 1] = 1
  end
end
return applied
"""


async def active_calls(redis: Redis) -> int:
    return int(await redis.get(ACTIVE_CALLS_KEY) or 0)


def _is_caller(participant: lk.ParticipantInfo) -> bool:
    """The human side of a call: a SIP participant, or a web participant that is not an agent."""
    return participant.kind in (lk.ParticipantInfo.Kind.SIP, lk.ParticipantInfo.Kind.STANDARD)


async def _move_call(redis: Redis, event: lk.WebhookEvent) -> None:
    room_name = event.room.name if event.HasField("room") else ""
    if not room_name:
        return
    now = utcnow()
    calls = Call.filter(room_name=room_name)
    # Conditional updates: no read first (this is a hot path).
    if event.event == "room_finished":
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


# The calls in the rooms started now, unless started already; a queued outbound call is dialing.
# One conditional statement for every room started together, written once: tortoise took longer
# to build it than PostgreSQL took to run it. `{now}` and `{rooms}` are the dialect's parameters.
_DIALING = """("status" = 'queued' AND "call_direction" = 'outbound')"""
_START_ROOMS = (
    f'UPDATE "{Call._meta.db_table}" '
    f'SET "started_at" = COALESCE("started_at", {{now}}), '
    f""""status" = CASE WHEN {_DIALING} THEN 'dialing' ELSE "status" END """
    f'WHERE "room_name" {{rooms}} AND ("started_at" IS NULL OR {_DIALING})'
)
_START_ROOMS_POSTGRES = _START_ROOMS.format(now="$1", rooms="= ANY($2)")


async def _write_rooms_started(room_names: list[str]) -> None:
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        await connection.execute_query(_START_ROOMS_POSTGRES, [utcnow(), room_names])
        return
    sql = _START_ROOMS.format(now="?", rooms=f"IN ({', '.join('?' * len(room_names))})")
    await connection.execute_query(sql, [utcnow(), *room_names])


class LiveKitEvents:
    """Applies LiveKit's verified events. Under load many arrive at once: the rooms started
    together are written in one statement and counted in one Redis call, as are the other
    events' counts."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._apply_events = redis.register_script(_APPLY_EVENTS)  # by EVALSHA, not its text
        self._rooms_started: MicroBatch[lk.WebhookEvent, bool] = MicroBatch(self._start_rooms)
        self._counted: MicroBatch[lk.WebhookEvent, bool] = MicroBatch(self._apply_to_counters)

    async def handle(self, event: lk.WebhookEvent) -> bool:
        """Apply one verified event; returns False when its id was already handled.

        The event is marked seen only after its database effects are written, so a failed
        write answers 5xx and LiveKit's retry applies it. The effects are conditional updates,
        so a retry (or two deliveries at once) cannot apply them twice: a duplicate is not
        looked up first (a Redis round trip for every event, to save a no-op update on the rare
        duplicate), its updates find nothing to change and the seen mark refuses its count.
        """
        if event.event == "room_started" and event.room.name:
            return await self._rooms_started(event)
        await _move_call(self._redis, event)
        return await self._counted(event)

    async def _start_rooms(self, events: list[lk.WebhookEvent]) -> list[bool]:
        await _write_rooms_started([event.room.name for event in events])
        return await self._apply_to_counters(events)

    async def _apply_to_counters(self, events: list[lk.WebhookEvent]) -> list[bool]:
        applied = await self._apply_events(
            keys=[ACTIVE_CALLS_KEY, *(SEEN_EVENT_PREFIX + event.id for event in events)],
            args=[
                SEEN_EVENT_TTL_SECONDS,
                ACTIVE_CALLS_TTL_SECONDS,
                *(value for event in events for value in (event.id, event.event)),
            ],
        )
        return [bool(flag) for flag in applied]
