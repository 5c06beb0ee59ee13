"""Call capacity as reservations: a call holds a slot, keyed by its id, until its final state.

Each limit (the platform's agent sessions, a workspace's `max_concurrent_calls`, later a batch's
or a campaign's) is a Redis sorted set of call ids scored by when the slot expires. Admission
checks every limit and takes a slot in all of them in one script, so two requests at once can
never both take the last slot. Slots expire on their own unless the call's heartbeat refreshes
them, so a release lost to a crash heals instead of shrinking capacity for good. Expired slots
are dropped at each admission; a set left empty disappears from Redis.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from control.errors import AtCapacity

PLATFORM_KEY = "capacity:platform"
WORKSPACE_KEY = "capacity:workspace:{}"
WEB_KEY = "capacity:web:{}"

# KEYS: the limits' sets. ARGV: now, expiry, each set's limit (0: none), then the call ids.
# Takes a slot for each call in order (refreshes it, for a call already holding one) until one
# does not fit. Returns how many calls got a slot, and the 1-based index of the limit that was
# full (0 when all got one).
_RESERVE = """
local now, expires = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do redis.call('ZREMRANGEBYSCORE', key, '-inf', now) end
local first = 3 + #KEYS
for n = first, #ARGV do
  local call = ARGV[n]
  if not redis.call('ZSCORE', KEYS[1], call) then
    for i, key in ipairs(KEYS) do
      local limit = tonumber(ARGV[2 + i])
      if limit > 0 and redis.call('ZCARD', key) >= limit then return {n - first, i} end
    end
  end
  for i, key in ipairs(KEYS) do redis.call('ZADD', key, expires, call) end
end
return {#ARGV - first + 1, 0}
"""


@dataclass(frozen=True)
class Limit:
    """One capacity limit: its set in Redis, how many calls it allows, and what to call it."""

    key: str
    size: int | None
    name: str


def limits_for(
    platform_size: int, workspace_id: uuid.UUID, workspace_size: int | None
) -> list[Limit]:
    return [
        Limit(PLATFORM_KEY, platform_size, f"the platform's {platform_size} agent sessions"),
        Limit(
            WORKSPACE_KEY.format(workspace_id),
            workspace_size,
            f"this workspace's limit of {workspace_size} concurrent calls",
        ),
    ]


def web_limit(workspace_id: uuid.UUID, size: int | None) -> Limit:
    """The workspace's web calls (no login behind them) at once, beside its other limits."""
    return Limit(
        WEB_KEY.format(workspace_id), size, f"this workspace's limit of {size} concurrent web calls"
    )


async def reserve(
    redis: Redis, call_id: uuid.UUID, limits: list[Limit], hold_seconds: float
) -> None:
    """Take a slot for `call_id` in every limit, or raise 429 `AT_CAPACITY` naming the full one."""
    _, full = await reserve_many(redis, [call_id], limits, hold_seconds)
    if full is not None:
        raise AtCapacity(
            "AT_CAPACITY",
            f"At capacity: {full.name} are all in use; try again in a minute.",
            retry_after=30,
        )


async def reserve_many(
    redis: Redis, call_ids: list[uuid.UUID], limits: list[Limit], hold_seconds: float
) -> tuple[int, Limit | None]:
    """Take a slot in every limit for each of `call_ids` in order, in one script, until a limit
    is full. Returns how many got one (the first so many) and the full limit (None: none was)."""
    if not call_ids:
        return 0, None
    now = time.time()
    taken, full = await redis.eval(
        _RESERVE,
        len(limits),
        *[limit.key for limit in limits],
        now,
        now + hold_seconds,
        *[limit.size or 0 for limit in limits],
        *[str(call_id) for call_id in call_ids],
    )
    return int(taken), limits[int(full) - 1] if full else None


async def refresh(redis: Redis, call_id: uuid.UUID, keys: list[str], hold_seconds: float) -> None:
    """Keep a live call's slot from expiring for another `hold_seconds` (where it holds one)."""
    expires = time.time() + hold_seconds
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.zadd(key, {str(call_id): expires}, xx=True)
        await pipe.execute()


async def release(redis: Redis, call_id: uuid.UUID, keys: list[str]) -> None:
    """Free the call's slot in every limit (a no-op where it holds none)."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.zrem(key, str(call_id))
        await pipe.execute()


async def in_use(redis: Redis, key: str = PLATFORM_KEY) -> int:
    """Slots held now under one limit (expired ones do not count)."""
    return int(await redis.zcount(key, f"({time.time()}", "+inf"))


def keys_of(workspace_id: uuid.UUID) -> list[str]:
    """Every set a call of `workspace_id` may hold a slot in."""
    return [PLATFORM_KEY, WORKSPACE_KEY.format(workspace_id), WEB_KEY.format(workspace_id)]
