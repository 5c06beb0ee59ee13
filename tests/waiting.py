"""Waiting in a test for what happens elsewhere (a process, a thread, a job): polling a check."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(
    check: Callable[[], Any | Awaitable[Any]], *, seconds: float = 10.0, every: float = 0.02
) -> Any:
    """Polls `check` (a function or an async function) until it returns something truthy.

    Args:
        check: what to poll; its truthy result is returned.
        seconds: how long to wait before failing the test.
        every: how long to sleep between two checks.

    Raises:
        AssertionError: `check` did not come true within `seconds`.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(every)
    raise AssertionError(f"{check} did not come true within {seconds} s")
