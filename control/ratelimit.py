"""Rate limiting backed by Redis; when Redis is down, limited routes refuse with a 503."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from quart import Quart, Response, current_app, request
from quart_rate_limiter import RateLimiter, RateLimiterStoreABC, rate_limit
from redis.asyncio import Redis
from redis.exceptions import RedisError

from control.errors import APIError

logger = logging.getLogger(__name__)

KEY_PREFIX = "ratelimit:"
PER_MINUTE = timedelta(minutes=1)


class RedisRateStore(RateLimiterStoreABC):
    """GCRA arrival times in Redis, each expiring once it can no longer matter."""

    def __init__(self, redis: Redis, max_period: timedelta = timedelta(hours=1)) -> None:
        self._redis = redis
        self._ttl = int(max_period.total_seconds())

    async def before_serving(self) -> None:
        """The Redis client belongs to the app; nothing to open here."""

    async def after_serving(self) -> None:
        """The app closes its Redis client itself."""

    async def get(self, key: str, default: datetime) -> datetime:
        try:
            stored = await self._redis.get(KEY_PREFIX + key)
        except RedisError as error:
            logger.warning("rate limiter cannot reach Redis: %s", error)
            raise APIError(
                503,
                "SERVICE_UNAVAILABLE",
                "The rate limiter's store (Redis) is unavailable; try again shortly.",
            ) from error
        return default if stored is None else datetime.fromtimestamp(float(stored))

    async def set(self, key: str, tat: datetime) -> None:
        try:
            await self._redis.set(KEY_PREFIX + key, tat.timestamp(), ex=self._ttl)
        except RedisError as error:
            raise APIError(503, "SERVICE_UNAVAILABLE", "Redis is unavailable.") from error


FAIL_OPEN_ATTRIBUTE = "_voxline_rate_limit_fail_open"


def fail_open(view):
    """Let this route through when the limiter's store is down (e.g. `/health` must answer)."""
    setattr(view, FAIL_OPEN_ATTRIBUTE, True)
    return view


class VoxlineRateLimiter(RateLimiter):
    async def _before_request(self) -> None:
        try:
            await super()._before_request()
        except APIError:
            view = current_app.view_functions.get(request.endpoint)
            if not getattr(view, FAIL_OPEN_ATTRIBUTE, False):
                raise

    async def _after_request(self, response: Response) -> Response:
        # The after-request hook only adds informational headers; a Redis failure here must
        # not turn an answered request into an error.
        try:
            return await super()._after_request(response)
        except APIError:
            return response


def init_rate_limiter(app: Quart, redis: Redis) -> None:
    VoxlineRateLimiter(app, store=RedisRateStore(redis))


def per_minute(limit: int):
    """`@per_minute(10)`: at most `limit` requests a minute from one address to this route."""
    return rate_limit(limit, PER_MINUTE)


__all__ = ["fail_open", "init_rate_limiter", "per_minute", "rate_limit"]
