"""LiveKit's webhook events: the platform's active-call count and the call logs' progress."""

from __future__ import annotations

import logging
from typing import Any

from livekit import api as lk
from redis.asyncio import Redis

from control.models import Call
from control.security import utcnow
from control.services import webhooks

logger = logging.getLogger(__name__)

ACTIVE_CALLS_KEY = "livekit:active_calls"
ACTIVE_CALLS_TTL_SECONDS = 600  # heals a count left wrong by a crash (PARITY.md)
SEEN_EVENT_TTL_SECONDS = 24 * 3600
SEEN_EVENT_PREFIX = "livekit:event:"

# Decrement without going below zero, and refresh the TTL, atomically.
_DECREMENT = """
local value = tonumber(redis.call('GET', KEYS[1]) or '0')
if value > 0 then value = redis.call('DECR', KEYS[1]) else redis.call('SET', KEYS[1], 0) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return value
"""


async def active_calls(redis: Redis) -> int:
    return int(await redis.get(ACTIVE_CALLS_KEY) or 0)


async def _first_delivery(redis: Redis, event_id: str) -> bool:
    if not event_id:
        return True
    return bool(
        await redis.set(SEEN_EVENT_PREFIX + event_id, 1, nx=True, ex=SEEN_EVENT_TTL_SECONDS)
    )


async def _count_room(redis: Redis, event: str) -> None:
    if event == "room_started":
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(ACTIVE_CALLS_KEY)
            pipe.expire(ACTIVE_CALLS_KEY, ACTIVE_CALLS_TTL_SECONDS)
            await pipe.execute()
    elif event == "room_finished":
        await redis.eval(_DECREMENT, 1, ACTIVE_CALLS_KEY, ACTIVE_CALLS_TTL_SECONDS)


def _is_caller(participant: lk.ParticipantInfo) -> bool:
    """The human side of a call: a SIP participant, or a web participant that is not an agent."""
    return participant.kind in (lk.ParticipantInfo.Kind.SIP, lk.ParticipantInfo.Kind.STANDARD)


async def _move_call(event: lk.WebhookEvent) -> None:
    room_name = event.room.name if event.HasField("room") else ""
    if not room_name:
        return
    call = await Call.get_or_none(room_name=room_name)
    if call is None:
        return
    now = utcnow()
    changes: dict[str, Any] = {}
    emitted: str | None = None
    if event.event == "room_started" and call.started_at is None:
        changes["started_at"] = now
        if call.status == "queued":
            changes["status"] = "dialing" if call.call_direction == "outbound" else "ringing"
    elif event.event == "participant_joined" and _is_caller(event.participant):
        if call.answered_at is None and call.status in ("queued", "dialing", "ringing"):
            changes.update(answered_at=now, status="in_progress")
            emitted = "call_answered"
    elif event.event == "room_finished" and call.ended_at is None:
        changes["ended_at"] = now
    if not changes:
        return
    await Call.filter(id=call.id).update(**changes)
    if emitted:
        await webhooks.emit(
            call.workspace_id, emitted, {"call_id": str(call.id), "at": now.isoformat()}
        )


async def handle(redis: Redis, event: lk.WebhookEvent) -> bool:
    """Apply one verified event; returns False when its id was already handled."""
    if not await _first_delivery(redis, event.id):
        return False
    await _count_room(redis, event.event)
    await _move_call(event)
    return True
