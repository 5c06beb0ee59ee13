"""`/health`: whether the database and Redis answer."""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import BaseModel
from quart import Blueprint, Response, current_app
from quart_schema import document_response

from control import jobs
from control.http.errors import APIError
from control.http.principal import public
from control.http.ratelimit import fail_open, per_minute
from control.http.schemas import json_answer
from control.outages import RETRY_AFTER_SECONDS
from control.services import health as health_service

logger = logging.getLogger(__name__)

blueprint = Blueprint("health", __name__)

# The latest check and when it started: shared by every /health request that arrives while it
# runs, and answered again for a second after (a load balancer polling many times a second, or a
# burst of requests, costs one database and Redis check a second). A healthy check's answer is
# validated once, with the check.
_LATEST_CHECK = "health_check"
CHECK_REUSED_SECONDS = 1.0


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
@document_response(HealthOut)
async def health() -> Response:
    """Report whether the database and Redis answer, and how the background jobs fare.

    200 when both answer (with the job queue's depth and failed jobs), 503 naming the failing
    part otherwise.
    """
    problems, answer = await _shared_check()
    if answer is not None:
        return json_answer(answer)
    down = [part for part, problem in problems.items() if problem is not None]
    parts = {part: "unavailable" if part in down else "ok" for part in problems}
    logger.debug("health: unavailable: %s", problems)  # the dependency watch logs changes
    raise APIError(
        503,
        "SERVICE_UNAVAILABLE",
        f"Unavailable: {', '.join(down)}; try again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        extra={"status": "degraded", **parts},
    )


async def _check(redis) -> tuple[dict[str, str | None], HealthOut | None]:
    """What is down, and when nothing is, the 200 answer."""
    problems = await health_service.problems(redis)
    if any(problem is not None for problem in problems.values()):
        return problems, None
    queue = JobQueueOut(**await jobs.queue_state())
    return problems, HealthOut(status="ok", database="ok", redis="ok", jobs=queue)


async def _shared_check() -> tuple[dict[str, str | None], HealthOut | None]:
    """The dependencies' state and the job queue's, checked at most once a second.

    A request that arrives while a check runs waits for that check instead of starting its
    own; one that arrives within a second of its start gets its answer (under load, most of
    /health's work was these checks); a later one starts a new check.
    """
    latest = current_app.extensions.get(_LATEST_CHECK)
    now = time.monotonic()
    if latest is None or (latest[1].done() and now - latest[0] >= CHECK_REUSED_SECONDS):
        latest = (now, asyncio.ensure_future(_check(current_app.extensions["redis"])))
        current_app.extensions[_LATEST_CHECK] = latest
    if latest[1].done():
        return latest[1].result()
    return await asyncio.shield(latest[1])
