"""Calls made in the same turn of the event loop, answered together by one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatch(Generic[Item, Result]):
    """`await batch(item)` from many requests at once: one `run(items)` answers them all.

    The requests that reach it in one turn of the event loop (under load, those whose bytes
    arrived together) are run together in the next turn; a request arriving meanwhile waits for
    the next run. `run` returns one result per item, in order; when it raises, every request
    of that run gets the error and decides for itself what it means. A request cancelled while
    it waits does not stop the run: its item may still take effect, as a statement sent just
    before a cancel may.

    Args:
        run: the one round trip for a list of items.
        max_items: at most this many items in one run (more are split into several runs).
    """

    def __init__(
        self, run: Callable[[list[Item]], Awaitable[Sequence[Result]]], max_items: int = 64
    ) -> None:
        self._run = run
        self._max_items = max_items
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (tests run several): nothing of the old one waits
            self._loop, self._waiting = loop, []
        if not self._waiting:
            loop.call_soon(self._start)
        future: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, future))
        return await future

    def _start(self) -> None:
        waiting, self._waiting = self._waiting, []
        for start in range(0, len(waiting), self._max_items):
            task = asyncio.ensure_future(self._answer(waiting[start : start + self._max_items]))
            self._running.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._running.discard)

    async def _answer(self, waiting: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._run([item for item, _ in waiting])
        except Exception as error:
            for _, future in waiting:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:  # cancelled (the loop is closing): nobody is left to answer
            for _, future in waiting:
                future.cancel()
            raise
        for (_, future), result in zip(waiting, results, strict=True):
            if not future.done():
                future.set_result(result)
