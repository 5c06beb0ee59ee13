"""Long-running work started with the control plane: webhook delivery and resumed ingestion."""

from __future__ import annotations

import asyncio
import logging

from control.config import Settings
from control.services import knowledge_files, webhooks

logger = logging.getLogger(__name__)


class BackgroundWork:
    """Starts the loops at start-up and stops them cleanly at shut-down."""

    def __init__(self) -> None:
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self, settings: Settings) -> None:
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(webhooks.run_dispatcher(settings, self._stop), name="webhooks"),
            asyncio.create_task(self._resume_ingestion(settings), name="resume-ingestion"),
        ]

    @staticmethod
    async def _resume_ingestion(settings: Settings) -> None:
        resumed = await knowledge_files.resume_pending_ingestions(settings)
        if resumed:
            logger.info("resumed indexing of %d knowledge file(s) left by a restart", resumed)

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, 10)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:
                logger.exception("background task %s failed", task.get_name())
        self._tasks = []
