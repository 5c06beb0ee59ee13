"""Rate limiting backed by Redis; when Redis is down, limited routes refuse with a 503.

Fail-closed is the default, so nobody can guess passwords or mint call tokens unmetered while
Redis is down; routes marked `@fail_open` (`/health`, `/auth/refresh`) are let through.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import timedelta

from quart import Quart, Response, current_app, request
from quart_rate_limiter import MemoryStore, RateLimiter, RateLimitExceeded, rate_limit
from redis.asyncio import Redis

from control.errors import outage_of

logger = logging.getLogger(__name__)

KEY_PREFIX = "ratelimit:"
PER_MINUTE = timedelta(minutes=1)
FAIL_OPEN_ATTRIBUTE = "_voxline_rate_limit_fail_open"

# GCRA (the algorithm quart-rate-limiter uses) in one round trip: read the theoretical arrival
# time, refuse if it is too far ahead, else move it on. Returns the seconds to wait, or "0".
_GCRA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
local limit = period - interval
if tat - now > limit then
  return tostring(tat - limit - now)
end
redis.call('SET', KEYS[1], tostring(tat + interval), 'EX', math.ceil(period) + 1)
return '0'
"""


def fail_open(view):
    """Let this route through unmetered when Redis is down (e.g. `/health` must answer)."""
    setattr(view, FAIL_OPEN_ATTRIBUTE, True)
    return view


class RedisRateLimiter(RateLimiter):
    """quart-rate-limiter's decorators and keys, checked with one atomic Redis call per limit."""

    def __init__(self, app: Quart, redis: Redis) -> None:
        # The store is never used: both request hooks are replaced below.
        super().__init__(app, store=MemoryStore())
        self._redis = redis

    async def _before_request(self) -> None:
        if not current_app.config["QUART_RATE_LIMITER_ENABLED"]:
            return
        view = current_app.view_functions.get(request.endpoint)
        if view is None:
            return
        blueprint = current_app.blueprints.get(request.blueprint)
        for limit in self._get_limits_for_view_function(view, blueprint):
            if await self._should_skip(limit):
                continue
            key = KEY_PREFIX + await self._create_key(request.endpoint, limit)
            try:
                wait = float(
                    await self._redis.eval(
                        _GCRA, 1, key, time.time(), limit.inverse, limit.period.total_seconds()
                    )
                )
            except Exception as error:
                # Fail closed: the error handlers answer 503 naming Redis.
                if outage_of(error) is None or not getattr(view, FAIL_OPEN_ATTRIBUTE, False):
                    raise
                logger.debug("rate limit of %s not checked: Redis is unavailable", request.path)
                return
            if wait > 0:
                raise RateLimitExceeded(max(1, math.ceil(wait)))

    async def _after_request(self, response: Response) -> Response:
        return response


def init_rate_limiter(app: Quart, redis: Redis) -> None:
    RedisRateLimiter(app, redis)


def per_minute(limit: int):
    """`@per_minute(10)`: at most `limit` requests a minute from one address to this route."""
    return rate_limit(limit, PER_MINUTE)


__all__ = ["fail_open", "init_rate_limiter", "per_minute", "rate_limit"]
