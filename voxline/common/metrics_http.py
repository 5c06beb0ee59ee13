"""One `/metrics` endpoint for processes with no HTTP API of their own, and its token check."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST


def scrape_allowed(authorization: str, token: str | None) -> bool:
    """Whether an `Authorization` header may scrape: any when no token is set, else the bearer."""
    if not token:
        return True
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.encode(), token.encode())


async def serve_metrics(
    host: str, port: int, render: Callable[[], bytes], *, token: str | None = None
) -> web.AppRunner:
    """Serve `GET /metrics` with what `render` returns until the runner is cleaned up.

    Args:
        host: the address to listen on.
        port: the port.
        render: the text exposition; it runs in a thread, since adding up many processes'
            files takes a while.
        token: when set, a scrape must carry it as `Authorization: Bearer <token>`.
    """

    async def scrape(request: web.Request) -> web.Response:
        if not scrape_allowed(request.headers.get("Authorization", ""), token):
            return web.Response(status=401, text="metrics token required\n")
        body = await asyncio.get_running_loop().run_in_executor(None, render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    application = web.Application()
    application.router.add_get("/metrics", scrape)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
