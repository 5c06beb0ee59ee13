"""Telling an outage of a server we depend on (Redis, the database) from a bug, and its error."""

from __future__ import annotations

import socket
import traceback

import asyncpg
from redis import exceptions as redis_errors
from tortoise.exceptions import DBConnectionError

from control.errors import Unavailable

REDIS = "Redis"
DATABASE = "The database"
RETRY_AFTER_SECONDS = 5

# What the drivers raise when their server is gone, not when a query or command is wrong.
_REDIS_OUTAGES = (redis_errors.ConnectionError, redis_errors.TimeoutError)
_DATABASE_OUTAGES = (
    DBConnectionError,
    asyncpg.PostgresConnectionError,  # includes "connection does not exist"
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
# Socket-level failures; they count only when raised inside a driver (SMTP has them too).
_NETWORK_ERRORS = (ConnectionError, TimeoutError, socket.gaierror)
_DRIVER_MODULES = ((REDIS, ("redis.",)), (DATABASE, ("asyncpg.", "tortoise.", "aiosqlite.")))


def _raised_in(error: BaseException, prefixes: tuple[str, ...]) -> bool:
    return any(
        frame.f_globals.get("__name__", "").startswith(prefixes)
        for frame, _ in traceback.walk_tb(error.__traceback__)
    )


def outage_of(error: BaseException) -> str | None:
    """`REDIS` or `DATABASE` when `error` means that server cannot be reached, else None.

    The cause chain is followed, because tortoise wraps driver errors in its own.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _REDIS_OUTAGES):
            return REDIS
        if isinstance(current, _DATABASE_OUTAGES):
            return DATABASE
        if isinstance(current, _NETWORK_ERRORS):
            for part, prefixes in _DRIVER_MODULES:
                if _raised_in(current, prefixes):
                    return part
        current = current.__cause__ or current.__context__
    return None


def unavailable(part: str, error: BaseException | None = None) -> Unavailable:
    """The error for a server we depend on (`REDIS`, `DATABASE`) that cannot be reached."""
    timed_out = isinstance(error, (TimeoutError, redis_errors.TimeoutError))
    reason = "it did not answer in time" if timed_out else "it cannot be reached"
    return Unavailable(
        "SERVICE_UNAVAILABLE",
        f"{part} is unavailable: {reason}; try again shortly.",
        retry_after=RETRY_AFTER_SECONDS,
    )
