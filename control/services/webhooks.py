"""Customer webhooks: endpoints, signed events, and delivery with retries from a durable queue."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet

from control import jobs
from control.config import Settings
from control.errors import Invalid, NotFound
from control.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from control.security import (
    SecretUnreadableError,
    decrypt_secret,
    encrypt_secret,
    mask_secret,
    new_secret,
    utcnow,
)
from runtime.spec import URLNotAllowedError, check_url_allowed_async, pinned_resolver
from voxline.common.retry import Backoff

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Voxline-Signature"
TIMESTAMP_HEADER = "X-Voxline-Timestamp"
EVENT_HEADER = "X-Voxline-Event"
SECRET_PREFIX = "whsec_"
CLAIM_BATCH = 20


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>` (PARITY.md)."""
    message = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


async def _check_url(settings: Settings, url: str, *, at_save: bool) -> None:
    try:
        await check_url_allowed_async(url, settings.allow_private_urls, unresolvable_ok=at_save)
    except URLNotAllowedError as error:
        raise Invalid("URL_NOT_ALLOWED", f"webhook URL refused: {error}") from error


async def get_endpoint(workspace_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await WebhookEndpoint.get_or_none(workspace_id=workspace_id)
    if endpoint is None:
        raise NotFound("WEBHOOK_NOT_CONFIGURED", "This workspace has no webhook URL yet.")
    return endpoint


async def set_endpoint(
    settings: Settings, workspace_id: uuid.UUID, url: str
) -> tuple[WebhookEndpoint, str | None]:
    """Set the webhook URL; a new endpoint gets a signing secret, returned this once."""
    await _check_url(settings, url, at_save=True)
    endpoint = await WebhookEndpoint.get_or_none(workspace_id=workspace_id)
    if endpoint is not None:
        endpoint.url = url
        await endpoint.save(update_fields=["url", "updated_at"])
        return endpoint, None
    secret = new_secret(SECRET_PREFIX)
    endpoint = await WebhookEndpoint.create(
        workspace_id=workspace_id,
        url=url,
        secret_encrypted=encrypt_secret(settings, secret),
        secret_hint=mask_secret(secret),
    )
    return endpoint, secret


async def rotate_secret(settings: Settings, workspace_id: uuid.UUID) -> tuple[WebhookEndpoint, str]:
    endpoint = await get_endpoint(workspace_id)
    secret = new_secret(SECRET_PREFIX)
    endpoint.secret_encrypted = encrypt_secret(settings, secret)
    endpoint.secret_hint = mask_secret(secret)
    await endpoint.save(update_fields=["secret_encrypted", "secret_hint", "updated_at"])
    return endpoint, secret


async def delete_endpoint(workspace_id: uuid.UUID) -> None:
    endpoint = await get_endpoint(workspace_id)
    await endpoint.delete()


def deliveries_of(
    workspace_id: uuid.UUID, call_id: uuid.UUID | None = None
) -> QuerySet[WebhookDelivery]:
    """The workspace's deliveries, newest first; those about one call with `call_id`."""
    deliveries = WebhookDelivery.filter(workspace_id=workspace_id)
    if call_id is not None:
        deliveries = deliveries.filter(call_id=call_id)
    return deliveries.order_by("-created_at").prefetch_related("attempt_log")


def _call_of(data: dict[str, Any]) -> uuid.UUID | None:
    """The call an event is about, if it is about one."""
    try:
        return uuid.UUID(str(data["call_id"]))
    except (KeyError, TypeError, ValueError):
        return None


# Event ids derive from what the event describes, so receivers can de-duplicate on them.
EVENT_ID_NAMESPACE = uuid.UUID("6f1d8c2e-3b7a-4c55-9e0f-5a2b7d9c1e44")


def event_id_for(workspace_id: uuid.UUID, event_key: str) -> uuid.UUID:
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{workspace_id}:{event_key}")


async def emit(
    workspace_id: uuid.UUID, event_type: str, data: dict[str, Any], *, event_key: str
) -> WebhookDelivery | None:
    """Queue an event for the workspace's webhook, if it has one. Durable: a row, not a task.

    `event_key` names what the event describes (a call id and the event type for a call's
    once-only events; with a sequence number for events that repeat): the same key is the same
    event id, queued once however often it is emitted.
    """
    endpoint = await WebhookEndpoint.get_or_none(workspace_id=workspace_id)
    if endpoint is None:
        return None
    delivery = _delivery(endpoint, Event(event_type, data, event_key), utcnow())
    try:
        await delivery.save(force_create=True)
    except IntegrityError:
        return None  # emitted before: the same event, already queued
    return delivery


@dataclass(frozen=True)
class Event:
    """An event to emit: its type, its data and its key (as `emit` takes them)."""

    event_type: str
    data: dict[str, Any]
    event_key: str


async def emit_many(workspace_id: uuid.UUID, events: list[Event]) -> None:
    """`emit` for several events of one workspace: one look-up of its webhook and one insert
    (an event queued before is skipped)."""
    endpoint = await WebhookEndpoint.get_or_none(workspace_id=workspace_id)
    if endpoint is None or not events:
        return
    now = utcnow()
    await WebhookDelivery.bulk_create(
        [_delivery(endpoint, event, now) for event in events], ignore_conflicts=True
    )


def _delivery(endpoint: WebhookEndpoint, event: Event, now: datetime) -> WebhookDelivery:
    """The (unsaved) delivery of `event` to the endpoint, due now; its id from its key."""
    event_id = event_id_for(endpoint.workspace_id, event.event_key)
    payload = {
        "id": str(event_id),
        "type": event.event_type,
        "created_at": now.isoformat(),
        "workspace_id": str(endpoint.workspace_id),
        "data": event.data,
    }
    return WebhookDelivery(
        id=event_id,
        workspace_id=endpoint.workspace_id,
        event_type=event.event_type,
        payload=payload,
        url=endpoint.url,
        next_attempt_at=now,
        call_id=_call_of(event.data),
    )


async def _claim_due(settings: Settings) -> list[WebhookDelivery]:
    """Claim due deliveries (leased, so a replica that dies mid-send leaves them due again)."""
    return await jobs.claim_due(
        WebhookDelivery.filter(status=DeliveryStatus.PENDING),
        "next_attempt_at",
        timedelta(seconds=settings.webhook_timeout_seconds * 3),
        CLAIM_BATCH,
    )


async def _attempt(
    settings: Settings, client: aiohttp.ClientSession, delivery: WebhookDelivery
) -> None:
    endpoint = await WebhookEndpoint.get_or_none(workspace_id=delivery.workspace_id)
    number = delivery.attempts + 1
    started = time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    secret: str | None = None
    if endpoint is None:
        error = "the workspace's webhook was removed"
    else:
        try:
            secret = decrypt_secret(settings, endpoint.secret_encrypted)
        except SecretUnreadableError:
            error = (
                "the signing secret cannot be decrypted with the configured encryption keys; "
                "rotate it (POST /webhook/endpoint/rotate-secret)"
            )
    if endpoint is not None and secret is not None:
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Voxline-Webhooks/1",
            EVENT_HEADER: delivery.event_type,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        status_code, error = await _post(settings, client, endpoint.url, body, headers)
    duration_ms = (time.perf_counter() - started) * 1000
    await WebhookAttempt.create(
        delivery_id=delivery.id,
        number=number,
        status_code=status_code,
        error=error,
        duration_ms=duration_ms,
    )
    delivery.attempts = number
    delivery.last_status_code = status_code
    delivery.last_error = error
    if error is None:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = utcnow()
    elif endpoint is None or number >= len(settings.webhook_retry_delays):
        delivery.status = DeliveryStatus.FAILED
        logger.warning(
            "webhook %s (%s) failed for good: %s", delivery.id, delivery.event_type, error
        )
    else:
        # The setting starts with the pause before the first attempt; the retries' pauses follow.
        retries = Backoff(settings.webhook_retry_delays[1:])
        delivery.next_attempt_at = utcnow() + timedelta(seconds=retries.delay(number))
    await delivery.save()


# What the log keeps of a failed attempt: a status and a short reason, never the receiver's body
# or what an address or port turned out to be, so the log cannot map a network for anyone.
REFUSED_REASON = "refused: the URL must lead to a public address, not a private or loopback one"


async def _post(
    settings: Settings,
    client: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
) -> tuple[int | None, str | None]:
    """Send one attempt; returns (HTTP status, short reason for a failure)."""
    try:
        # A literal IP never reaches the resolver, so it is checked here; a name is checked by
        # the client's pinned resolver on the addresses it then connects to.
        await check_url_allowed_async(url, settings.allow_private_urls, unresolvable_ok=True)
        async with client.post(url, data=body, headers=headers, allow_redirects=False) as response:
            status = response.status
    except URLNotAllowedError:
        return None, REFUSED_REASON
    except TimeoutError:
        return None, "timed out"
    except aiohttp.ClientConnectorError:
        return None, "could not connect"
    except aiohttp.ClientError as failure:
        return None, f"failed ({type(failure).__name__})"
    if not 200 <= status < 300:
        return status, f"the receiver answered {status}"
    return status, None


async def deliver_due(settings: Settings, client: aiohttp.ClientSession) -> int:
    """Attempt every due delivery once; returns how many were attempted."""
    due = await _claim_due(settings)
    await asyncio.gather(*(_attempt(settings, client, delivery) for delivery in due))
    return len(due)


def delivery_client(settings: Settings) -> aiohttp.ClientSession:
    """The HTTP client webhook deliveries are sent with; use it as `async with`.

    It connects only to addresses its resolver approved (the resolver custom functions use), so
    a name that resolves to a public address when checked and to a private one when connecting
    is refused. Redirects are not followed (each attempt sends to the endpoint's URL).
    """
    connector = aiohttp.TCPConnector(
        resolver=pinned_resolver(settings.allow_private_urls), force_close=True
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds),
    )
