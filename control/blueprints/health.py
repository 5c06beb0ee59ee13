"""`/health`: whether the database and Redis answer."""

from __future__ import annotations

import asyncio
import logging

from pydantic import BaseModel
from quart import Blueprint, current_app
from quart_schema import validate_response

from control import jobs
from control.errors import RETRY_AFTER_SECONDS, APIError
from control.principal import public
from control.ratelimit import fail_open, per_minute
from control.services import health as health_service

logger = logging.getLogger(__name__)

blueprint = Blueprint("health", __name__)

# The check under way, shared by every /health request that arrives while it runs.
_RUNNING_CHECK = "health_check"


class JobQueueOut(BaseModel):
    due: int
    scheduled: int
    running: int
    failed: int


class HealthOut(BaseModel):
    status: str
    database: str
    redis: str
    jobs: JobQueueOut


@blueprint.get("/health")
@per_minute(600)
@public
@fail_open
@validate_response(HealthOut)
async def health() -> dict:
    """Report whether the database and Redis answer, and how the background jobs fare.

    200 when both answer (with the job queue's depth and failed jobs), 503 naming the failing
    part otherwise.
    """
    problems, queue = await _shared_check()
    down = [part for part, problem in problems.items() if problem is not None]
    parts = {part: "unavailable" if part in down else "ok" for part in problems}
    if not down:
        return {"status": "ok", **parts, "jobs": queue}
    logger.debug("health: unavailable: %s", problems)  # the dependency watch logs changes
    raise APIError(
        503,
        "SERVICE_UNAVAILABLE",
        f"Unavailable: {', '.join(down)}; try again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        extra={"status": "degraded", **parts},
    )


async def _check(redis) -> tuple[dict[str, str | None], dict[str, int] | None]:
    problems = await health_service.problems(redis)
    if any(problem is not None for problem in problems.values()):
        return problems, None
    return problems, await jobs.queue_state()


async def _shared_check() -> tuple[dict[str, str | None], dict[str, int] | None]:
    """The dependencies' state and the job queue's, checked once for concurrent requests.

    A request that arrives while a check runs waits for that check instead of starting its
    own (under load, most of /health's work); one that arrives after it starts a new one.
    """
    running = current_app.extensions.get(_RUNNING_CHECK)
    if running is None or running.done():
        running = asyncio.ensure_future(_check(current_app.extensions["redis"]))
        current_app.extensions[_RUNNING_CHECK] = running
    return await asyncio.shield(running)
