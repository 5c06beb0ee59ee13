"""The LiveKit server API client every SIP function uses, and its errors as `LiveKitError`."""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from livekit import api as lk

from telephony.config import TelephonySettings, get_settings
from telephony.errors import LiveKitError

logger = logging.getLogger(__name__)

#: Twirp error codes that may succeed when tried again (Twirp's own words, not HTTP statuses).
RETRYABLE_TWIRP_CODES = frozenset({"unavailable", "deadline_exceeded", "resource_exhausted"})


Credentials = tuple[str, str, str]


@dataclass
class _SharedClient:
    """A client shared by every request of one event loop, and how many are using it now."""

    client: lk.LiveKitAPI
    users: int = 0
    retired: bool = False  # a request on it failed in transport: closed when its last user ends


# One client per event loop and server: its connections stay open from one call to the next (a
# dialer opened a client, and a connection, for every dispatch). A client whose request failed
# in transport is retired: later requests get a new one, so a broken connection is never reused,
# and it is closed once the requests still using it (a dialer sends several at once) are done.
_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Credentials, _SharedClient]] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def livekit_api(
    settings: TelephonySettings | None = None, api: lk.LiveKitAPI | None = None
) -> AsyncIterator[lk.LiveKitAPI]:
    """A LiveKit server API client: `api` itself if given, else the process's (per event loop).

    Raises:
        NotConfigured: when LIVEKIT_URL, LIVEKIT_API_KEY or LIVEKIT_API_SECRET is missing.
    """
    if api is not None:
        yield api
        return
    credentials = (settings or get_settings()).livekit_credentials()
    clients = _shared.setdefault(asyncio.get_running_loop(), {})
    shared = clients.get(credentials)
    if shared is None:
        shared = clients[credentials] = _SharedClient(lk.LiveKitAPI(*credentials))
    shared.users += 1
    try:
        yield shared.client
    except (aiohttp.ClientError, TimeoutError, LiveKitError) as failed:
        if not isinstance(failed, LiveKitError) or failed.code == "unavailable":
            shared.retired = True
            if clients.get(credentials) is shared:
                del clients[credentials]
        raise
    finally:
        shared.users -= 1
        if shared.retired and shared.users == 0:
            await shared.client.aclose()


async def close_shared_clients() -> None:
    """Close this event loop's LiveKit clients (at shut-down)."""
    for shared in _shared.pop(asyncio.get_running_loop(), {}).values():
        await shared.client.aclose()


@contextmanager
def livekit_errors(action: str) -> Iterator[None]:
    """Turns livekit-api and transport failures into `LiveKitError`."""
    try:
        yield
    except lk.ServerError as e:
        raise LiveKitError(
            f"LiveKit could not {action}: {e.message or e.code}",
            code=e.code,
            http_status=e.status,
            retryable=e.status >= 500 or e.code in RETRYABLE_TWIRP_CODES,
        ) from e
    except (aiohttp.ClientError, TimeoutError) as e:
        raise LiveKitError(
            f"LiveKit did not answer while trying to {action} ({type(e).__name__})",
            code="unavailable",
            retryable=True,
        ) from e


def metadata_json(metadata: Mapping[str, Any] | None) -> str:
    """Job metadata as LiveKit takes it: compact JSON, or "" for none."""
    return json.dumps(dict(metadata), separators=(",", ":")) if metadata else ""
