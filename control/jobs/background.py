"""Background work of the control plane: the job runner and webhook delivery, in one loop."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from control import jobs
from control.config import Settings

# Importing the services registers their job kinds (ingestion, analysis, the reaper).
from control.services import webhooks

logger = logging.getLogger(__name__)


async def run_background_work(settings: Settings, redis: Redis, stop: asyncio.Event) -> None:
    """Run jobs and deliver webhooks until `stop` is set (in `serve`, or in `voxline jobs`)."""
    async with webhooks.delivery_client(settings) as client:
        await jobs.run_forever(
            jobs.JobContext(settings, redis),
            stop,
            also=lambda: webhooks.deliver_due(settings, client),
        )


class BackgroundWork:
    """Starts the background loop at start-up and stops it cleanly at shut-down."""

    def __init__(self) -> None:
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self, settings: Settings, redis: Redis) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(
            run_background_work(settings, redis, self._stop), name="background-work"
        )
        logger.info("background work (jobs, webhooks, the call reaper) runs in this process")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._task, 10)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        except Exception:
            logger.exception("background work failed")
        self._task = None
