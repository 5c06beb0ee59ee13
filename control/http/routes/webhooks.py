"""`/webhook`: the workspace's signed customer webhook, its delivery log, and LiveKit's events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, current_app, request
from quart_schema import (
    document_response,
    validate_querystring,
    validate_request,
    validate_response,
)

from control.http.errors import APIError
from control.http.pagination import Page, PageQuery, paginate
from control.http.principal import current_principal, public, require_role
from control.http.ratelimit import per_minute
from control.http.schemas import IsoTime, json_answer
from control.models import Role, WebhookDelivery, WebhookEndpoint
from control.security import secret_readable
from control.services import webhooks as webhook_service
from telephony.errors import InvalidWebhook, NotConfigured
from telephony.sip import verify_livekit_webhook

blueprint = Blueprint("webhooks", __name__, url_prefix="/webhook")


def _settings():
    return current_app.config["SETTINGS"]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://")


class EndpointOut(BaseModel):
    url: str
    secret_hint: str
    secret: str | None = Field(default=None, description="Shown once, when created or rotated")
    secret_readable: bool = Field(
        default=True,
        description="False when no configured encryption key decrypts the stored secret: "
        "deliveries fail until it is rotated",
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint, secret: str | None = None) -> EndpointOut:
        return cls(
            url=endpoint.url,
            secret_hint=endpoint.secret_hint,
            secret=secret,
            secret_readable=secret_readable(_settings(), endpoint.secret_encrypted),
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class DeliveryAttemptOut(BaseModel):
    number: int
    attempted_at: IsoTime
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryOut(BaseModel):
    id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: IsoTime
    last_status_code: int | None
    last_error: str | None
    created_at: IsoTime
    delivered_at: IsoTime | None
    attempt_log: list[DeliveryAttemptOut]
    payload: Any


class LiveKitEventOut(BaseModel):
    received: str
    duplicate: bool


def delivery_out(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "event_type": delivery.event_type,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at.isoformat(),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at.isoformat(),
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
        "attempt_log": [
            {
                "number": attempt.number,
                "attempted_at": attempt.attempted_at.isoformat(),
                "status_code": attempt.status_code,
                "error": attempt.error,
                "duration_ms": round(attempt.duration_ms, 1),
            }
            for attempt in sorted(delivery.attempt_log, key=lambda a: a.number)
        ],
        "payload": delivery.payload,
    }


@blueprint.get("/endpoint")
@require_role(Role.ADMIN)
@validate_response(EndpointOut)
async def get_endpoint() -> dict:
    """Get the workspace's webhook URL.

    The signing secret is shown only when created or rotated.
    """
    endpoint = await webhook_service.get_endpoint(current_principal().workspace_id)
    return EndpointOut.of(endpoint).model_dump(mode="json")


@blueprint.put("/endpoint")
@require_role(Role.ADMIN)
@validate_request(EndpointIn)
@validate_response(EndpointOut)
async def set_endpoint(data: EndpointIn) -> dict:
    """Set the workspace's webhook URL.

    The first time, a signing secret is generated and returned once.
    """
    endpoint, secret = await webhook_service.set_endpoint(
        _settings(), current_principal().workspace_id, data.url
    )
    return EndpointOut.of(endpoint, secret).model_dump(mode="json")


@blueprint.post("/endpoint/rotate-secret")
@require_role(Role.ADMIN)
@validate_response(EndpointOut)
async def rotate_secret() -> dict:
    """Replace the signing secret.

    The new secret is returned once; events are signed with it from now on.
    """
    endpoint, secret = await webhook_service.rotate_secret(
        _settings(), current_principal().workspace_id
    )
    return EndpointOut.of(endpoint, secret).model_dump(mode="json")


@blueprint.delete("/endpoint")
@require_role(Role.ADMIN)
async def delete_endpoint() -> tuple[str, int]:
    """Remove the webhook.

    Pending deliveries fail instead of being sent.
    """
    await webhook_service.delete_endpoint(current_principal().workspace_id)
    return "", 204


class DeliveryQuery(PageQuery):
    call_id: uuid.UUID | None = None


@blueprint.get("/deliveries")
@require_role(Role.ADMIN)
@validate_querystring(DeliveryQuery)
@validate_response(Page[DeliveryOut])
async def list_deliveries(query_args: DeliveryQuery) -> dict:
    """List webhook deliveries, newest first.

    Each with its status and every attempt. `call_id` lists the events about one call.
    """
    deliveries = webhook_service.deliveries_of(current_principal().workspace_id, query_args.call_id)
    return (await paginate(deliveries, query_args, delivery_out)).model_dump(mode="json")


@blueprint.post("/livekit")
@per_minute(60_000)
@public
@document_response(LiveKitEventOut)
async def receive_livekit_webhook() -> Response:
    """Receive LiveKit's webhook events.

    The `Authorization` signature is checked against the raw body; rooms move the active-call
    count and call logs.
    """
    body = await request.get_data(as_text=True)
    try:
        event = verify_livekit_webhook(
            body, request.headers.get("Authorization"), settings=current_app.config["TELEPHONY"]
        )
    except InvalidWebhook as error:
        raise APIError(401, "INVALID_SIGNATURE", str(error)) from error
    except NotConfigured as error:
        raise APIError(503, "TELEPHONY_NOT_CONFIGURED", str(error)) from error
    handled = await current_app.extensions["livekit_events"].handle(event)
    return json_answer(LiveKitEventOut(received=event.event, duplicate=not handled))
