"""`Idempotency-Key`: a retried request gets the first request's answer instead of acting twice.

Each key space has its own table: clients' keys (`IdempotencyKey`) and the dialers' attempt keys
(`DialerAttemptKey`), so a client's key can never name, and so never poison, a dialer's attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from control.errors import Conflict, Invalid, Unprocessable
from control.models import DialerAttemptKey, IdempotencyKey
from control.models.calls import KeptAnswer
from control.security import utcnow

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255
WAIT_FOR_FIRST_SECONDS = 10.0


async def prune_expired() -> int:
    """Forget every key (both key spaces) older than its lifetime; returns how many went.

    A key past its lifetime answers nothing (its next use takes it over), so this only keeps
    the tables from growing with every call ever placed."""
    cutoff = utcnow() - KEY_LIFETIME
    pruned = 0
    for store in (IdempotencyKey, DialerAttemptKey):
        pruned += await store.filter(created_at__lt=cutoff).delete()
    return pruned


def fingerprint(body: Any) -> str:
    """What the request asked for: a retry must ask for the same thing."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


async def _claim(
    store: type[KeptAnswer], workspace_id: uuid.UUID, key: str, request_fingerprint: str
) -> bool:
    """True when this request is the first with `key` (an expired key is taken over)."""
    await store.filter(
        workspace_id=workspace_id, key=key, created_at__lt=utcnow() - KEY_LIFETIME
    ).delete()
    try:
        await store.create(workspace_id=workspace_id, key=key, fingerprint=request_fingerprint)
    except IntegrityError:
        return False
    return True


async def _first_response(
    store: type[KeptAnswer], workspace_id: uuid.UUID, key: str, request_fingerprint: str
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + WAIT_FOR_FIRST_SECONDS
    while True:
        first = await store.get_or_none(workspace_id=workspace_id, key=key)
        if first is not None and first.fingerprint != request_fingerprint:
            raise Unprocessable(
                "IDEMPOTENCY_KEY_REUSED",
                "This Idempotency-Key was used for a different request; use a new key.",
            )
        if first is not None and first.response is not None:
            return first.response
        if first is None or asyncio.get_running_loop().time() >= deadline:
            # Still being created (or it just failed and its key was freed): retry later.
            raise Conflict(
                "IN_PROGRESS",
                "A request with this Idempotency-Key is still in progress; retry in a moment.",
                retry_after=2,
            )
        await asyncio.sleep(0.1)


async def once(
    workspace_id: uuid.UUID,
    key: str | None,
    body: Any,
    act: Callable[[], Awaitable[dict[str, Any]]],
    *,
    store: type[KeptAnswer] = IdempotencyKey,
) -> tuple[dict[str, Any], bool]:
    """Run `act` once per key within 24 h; returns its response and whether this request ran it.

    A request whose `act` fails frees its key, so the client's retry can try again. `store` is
    the key space: the clients' by default, `DialerAttemptKey` for the dialers' attempts.
    """
    if key is None:
        return await act(), True
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise Invalid(
            "INVALID_IDEMPOTENCY_KEY",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.",
        )
    request_fingerprint = fingerprint(body)
    if not await _claim(store, workspace_id, key, request_fingerprint):
        return await _first_response(store, workspace_id, key, request_fingerprint), False
    try:
        response = await act()
    except BaseException:
        await store.filter(workspace_id=workspace_id, key=key).delete()
        raise
    await store.filter(workspace_id=workspace_id, key=key).update(response=response)
    return response, True
