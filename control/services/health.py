"""Whether the servers the control plane depends on (the database and Redis) answer."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from tortoise import connections

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
WATCH_INTERVAL_SECONDS = 5.0


async def _database_problem() -> str | None:
    try:
        await asyncio.wait_for(
            connections.get("default").execute_query("SELECT 1"), CHECK_TIMEOUT_SECONDS
        )
    except Exception as error:  # any driver error means "not answering"
        return f"{type(error).__name__}: {error}"
    return None


async def _redis_problem(redis: Redis) -> str | None:
    try:
        await asyncio.wait_for(redis.ping(), CHECK_TIMEOUT_SECONDS)
    except Exception as error:  # any client error means "not answering"
        return f"{type(error).__name__}: {error}"
    return None


async def problems(redis: Redis) -> dict[str, str | None]:
    """Each part ("database", "redis") with why it does not answer, or None when it does."""
    database, redis_problem = await asyncio.gather(_database_problem(), _redis_problem(redis))
    return {"database": database, "redis": redis_problem}


class DependencyWatch:
    """Logs what is down at start-up, then each time a part goes down or comes back.

    Nothing waits for it: the app starts and serves while a part is down (the drivers
    reconnect by themselves), `/health` answers 503 and requests that need the part answer
    503 until it is back.
    """

    def __init__(self, redis: Redis, interval: float = WATCH_INTERVAL_SECONDS) -> None:
        self._redis = redis
        self._interval = interval
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._watch(), name="dependency-watch")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _watch(self) -> None:
        was_down: dict[str, bool] = {}
        while not self._stop.is_set():
            for part, problem in (await problems(self._redis)).items():
                if problem is not None and not was_down.get(part):
                    logger.warning(
                        "%s is unavailable (%s): /health and the requests that need it answer "
                        "503 until it is back; checking again every %gs",
                        part,
                        problem,
                        self._interval,
                    )
                elif problem is None and was_down.get(part):
                    logger.info("%s is available again", part)
                was_down[part] = problem is not None
            try:
                await asyncio.wait_for(self._stop.wait(), self._interval)
            except TimeoutError:
                pass
