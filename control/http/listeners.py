"""Two listeners for one app (`voxline serve --internal-port`): the public API without
`/internal`, and `/internal` (plus `/health`) alone, so that a deployment can keep the workers'
endpoints off its public proxy.

Both wrap the same app. The public listener runs the app's start-up and shut-down (lifespan);
the internal one waits for that start-up before it answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

# The scope is `Any` here: Quart's app is typed to take its own TypedDicts of it, and these
# listeners pass on whatever the server gave them.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

INTERNAL_PREFIX = "/internal"
#: Paths both listeners serve (load balancers and workers check them).
SHARED_PATHS = frozenset({"/health"})
_NOT_FOUND = json.dumps({"detail": "No such endpoint.", "code": "NOT_FOUND"}).encode()


def is_internal(path: str) -> bool:
    return path == INTERNAL_PREFIX or path.startswith(INTERNAL_PREFIX + "/")


async def _not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_NOT_FOUND)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _NOT_FOUND})


def public_listener(app: ASGIApp, started: asyncio.Event) -> ASGIApp:
    """The app without `/internal` (404); sets `started` once the app has started."""

    async def listener(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":

            async def send_and_mark(message: dict[str, Any]) -> None:
                if message["type"] == "lifespan.startup.complete":
                    started.set()
                await send(message)

            await app(scope, receive, send_and_mark)
            return
        if is_internal(scope.get("path", "")):
            await _not_found(scope, receive, send)
            return
        await app(scope, receive, send)

    return listener


def internal_listener(app: ASGIApp, started: asyncio.Event) -> ASGIApp:
    """`/internal` and `/health` of the app only (anything else is 404), once it has started."""

    async def listener(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # the public listener runs the app's own lifespan
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await started.wait()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope.get("path", "")
        if is_internal(path) or path in SHARED_PATHS:
            await app(scope, receive, send)
            return
        await _not_found(scope, receive, send)

    return listener
