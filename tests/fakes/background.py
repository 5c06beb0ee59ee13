"""Runs an aiohttp stand-in on its own thread and event loop, usable from any test."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)


class BackgroundServer:
    """An aiohttp application served on 127.0.0.1 from a daemon thread.

    Subclasses build the application in `make_app()`. Because the server has its own loop, it
    outlives any test's event loop and answers while a test blocks in synchronous code.
    """

    def __init__(self) -> None:
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def make_app(self) -> web.Application:
        raise NotImplementedError

    def start(self) -> BackgroundServer:
        """Starts serving on a free port; `url` is then "http://127.0.0.1:<port>"."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as e:  # surfaced to the starting thread below
                failure.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    async def _listen(self) -> None:
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Stops the server and its thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None


@dataclass
class HTTPRecord:
    """One request a REST stand-in received.

    Attributes:
        operation: the stand-in's name for what was asked ("search", "purchase", ...).
        method: the HTTP method.
        path: the URL path.
        query: the query parameters.
        form: the form-encoded body's fields.
        authorized: whether the credentials checked out.
    """

    operation: str
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    authorized: bool


@dataclass
class _Failure:
    status: int
    body: dict[str, Any]
    remaining: int | None


class RecordingServer(BackgroundServer):
    """A REST stand-in that records every request and can be told to fail an operation."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forgets recorded requests and injected failures, and restores the initial state."""
        with self._lock:
            self.requests: list[HTTPRecord] = []
            self._failures: dict[str, _Failure] = {}
            self.reset_state()

    def reset_state(self) -> None:
        """Restores the stand-in's own initial state (subclasses)."""

    def fail(
        self, operation: str, status: int, body: dict[str, Any], *, times: int | None = 1
    ) -> None:
        """Makes the next `times` requests for `operation` answer `status` with JSON `body`."""
        with self._lock:
            self._failures[operation] = _Failure(status, body, times)

    def calls(self, operation: str | None = None) -> list[HTTPRecord]:
        """Recorded requests, oldest first, optionally only those for `operation`."""
        with self._lock:
            return [r for r in self.requests if operation is None or r.operation == operation]

    async def record(
        self, request: web.Request, operation: str, authorized: bool
    ) -> tuple[HTTPRecord, web.Response | None]:
        """Records `request`; returns the record and an injected failure to answer, if any."""
        form = dict(await request.post()) if request.method in ("POST", "PUT") else {}
        record = HTTPRecord(
            operation=operation,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            form={key: str(value) for key, value in form.items()},
            authorized=authorized,
        )
        with self._lock:
            self.requests.append(record)
            failure = self._failures.get(operation) if authorized else None
            if failure is not None and failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    del self._failures[operation]
        if failure is None:
            return record, None
        return record, web.json_response(failure.body, status=failure.status)
