"""`/health`: whether the database and Redis answer."""

from __future__ import annotations

import asyncio
import logging

from quart import Blueprint, current_app
from redis.exceptions import RedisError
from tortoise import connections

from control.principal import public
from control.ratelimit import fail_open, per_minute

logger = logging.getLogger(__name__)

blueprint = Blueprint("health", __name__)

CHECK_TIMEOUT_SECONDS = 2.0


async def _database_ok() -> bool:
    try:
        await asyncio.wait_for(
            connections.get("default").execute_query("SELECT 1"), CHECK_TIMEOUT_SECONDS
        )
        return True
    except Exception as error:  # any driver error means "not answering"
        logger.warning("health: database check failed: %s", error)
        return False


async def _redis_ok() -> bool:
    try:
        return bool(
            await asyncio.wait_for(current_app.extensions["redis"].ping(), CHECK_TIMEOUT_SECONDS)
        )
    except (RedisError, OSError, TimeoutError) as error:
        logger.warning("health: redis check failed: %s", error)
        return False


@blueprint.get("/health")
@per_minute(600)
@public
@fail_open
async def health() -> tuple[dict, int]:
    """Report whether the database and Redis answer.

    200 when both do, 503 with the failing part otherwise.
    """
    database, redis = await asyncio.gather(_database_ok(), _redis_ok())
    body = {
        "status": "ok" if database and redis else "degraded",
        "database": "ok" if database else "unavailable",
        "redis": "ok" if redis else "unavailable",
    }
    return body, 200 if database and redis else 503
