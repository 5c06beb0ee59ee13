"""`/batch`: batch calling from a CSV (upload, list, progress, items, pause/resume, cancel)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from quart import Blueprint, request
from quart_schema import DataSource, validate_querystring, validate_request, validate_response

from control.dialing import batches
from control.dialing.batches import RETRYABLE_OUTCOMES
from control.dialing.window import check_timezone, parse_clock
from control.http.errors import APIError
from control.http.openapi import document_body
from control.http.pagination import Page, PageQuery, paginate
from control.http.principal import current_principal, require_role
from control.http.request import takes_upload
from control.http.schemas import FilePart, IsoTime, file_fields_required
from control.models import Batch, BatchItem, BatchStatus, ItemStatus, Role
from control.services.agent_config import E164

blueprint = Blueprint("batch", __name__, url_prefix="/batch")

Outcome = Literal["busy", "no_answer", "failed"]


def _check_clock(value: str | None) -> str | None:
    """`HH:MM` or `HH:MM:SS`, stored as `HH:MM`; empty means no bound."""
    return parse_clock(value).strftime("%H:%M") if value else None


class ScheduleFields(BaseModel):
    """Schedule and pace, shared by the upload and the update."""

    scheduled_time: datetime | None = None
    timezone: str | None = Field(default=None, max_length=64)
    calls_per_minute: int | None = Field(default=None, ge=1, le=600)
    earliest_time: str | None = Field(default=None, max_length=8)
    latest_time: str | None = Field(default=None, max_length=8)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return check_timezone(value) if value else None

    @field_validator("earliest_time", "latest_time")
    @classmethod
    def _clock(cls, value: str | None) -> str | None:
        return _check_clock(value)

    def scheduled_in_zone(self, zone: str) -> datetime | None:
        """A naive `scheduled_time` is in the batch's time zone; stored in UTC."""
        if self.scheduled_time is None:
            return None
        moment = self.scheduled_time
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(zone))
        return moment.astimezone(UTC)


class BatchUploadForm(ScheduleFields):
    """Multipart form: `file` (the CSV) and these fields."""

    # fields a client adds are allowed (and ignored)
    model_config = ConfigDict(extra="allow", json_schema_extra=file_fields_required("file"))

    file: FilePart = None

    name: str = Field(min_length=1, max_length=200)
    agent_id: uuid.UUID
    agent_phone_number: E164
    default_country: str | None = Field(default=None, min_length=2, max_length=2)
    max_attempts: int = Field(default=1, ge=1, le=10)
    retry_delay_minutes: int = Field(default=30, ge=0, le=7 * 24 * 60)
    retry_on: str | None = Field(
        default=None,
        max_length=100,
        description="Comma-separated outcomes that retry: busy, no_answer, failed (default all)",
    )

    @field_validator("retry_on")
    @classmethod
    def _outcomes(cls, value: str | None) -> str | None:
        if value is None:
            return None
        outcomes = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [part for part in outcomes if part not in RETRYABLE_OUTCOMES]
        if unknown:
            raise ValueError(f"unknown outcomes {unknown}; use {', '.join(RETRYABLE_OUTCOMES)}")
        return ",".join(outcomes)

    @field_validator("default_country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return value.upper() if value else None


class RejectedRow(BaseModel):
    line: int
    reason: str


class BatchProgressOut(BaseModel):
    counts: dict[str, int] = Field(description="Items per status")
    outcomes: dict[str, int] = Field(description="Items per outcome")
    percent_done: float
    next_attempt_at: IsoTime | None


class BatchOut(BaseModel):
    id: str
    workspace_id: str
    name: str
    agent_id: str | None
    agent_phone_number: str
    status: BatchStatus
    scheduled_time: IsoTime | None
    timezone: str
    earliest_time: str | None
    latest_time: str | None
    calls_per_minute: int
    max_attempts: int
    retry_delay_minutes: int
    retry_on: list[str]
    total_items: int
    rejected_count: int
    created_at: IsoTime
    started_at: IsoTime | None
    finished_at: IsoTime | None


class BatchDetailOut(BatchOut, BatchProgressOut):
    pass


class BatchUploadOut(BatchDetailOut):
    accepted: int
    rejected: list[RejectedRow] = Field(description="Rejected rows (the first 1,000)")


def batch_out(batch: Batch) -> dict[str, Any]:
    return {
        "id": str(batch.id),
        "workspace_id": str(batch.workspace_id),
        "name": batch.name,
        "agent_id": str(batch.agent_id) if batch.agent_id else None,
        "agent_phone_number": batch.agent_phone_number,
        "status": batch.status,
        "scheduled_time": batch.scheduled_time,
        "timezone": batch.timezone,
        "earliest_time": batch.earliest_time,
        "latest_time": batch.latest_time,
        "calls_per_minute": batch.calls_per_minute,
        "max_attempts": batch.max_attempts,
        "retry_delay_minutes": batch.retry_delay_minutes,
        "retry_on": batch.retry_on,
        "total_items": batch.total_items,
        "rejected_count": batch.rejected_count,
        "created_at": batch.created_at,
        "started_at": batch.started_at,
        "finished_at": batch.finished_at,
    }


async def batch_detail(batch: Batch) -> dict[str, Any]:
    return BatchDetailOut(**batch_out(batch), **await batches.progress(batch)).model_dump(
        mode="json"
    )


class BatchListQuery(PageQuery):
    status: BatchStatus | None = None


@blueprint.get("")
@require_role(Role.MEMBER)
@validate_querystring(BatchListQuery)
@validate_response(Page[BatchOut])
async def list_batches(query_args: BatchListQuery) -> dict:
    """List the workspace's batches, newest first.

    Filter by `status`.
    """
    query = batches.batches_of(current_principal().workspace_id, query_args.status)
    page = await paginate(query, query_args, lambda batch: BatchOut(**batch_out(batch)))
    return page.model_dump(mode="json")


@blueprint.post("/upload")
@takes_upload
@require_role(Role.DEVELOPER)
@validate_request(BatchUploadForm, source=DataSource.FORM_MULTIPART)
@validate_response(BatchUploadOut, 201)
async def upload_batch(data: BatchUploadForm) -> tuple[dict, int]:
    """Upload a CSV and create a batch (multipart: `file` and the batch's fields).

    Rows with an invalid or duplicate number, or one on the do-not-call list, are rejected with
    their line; the rest are dialed.
    """
    files = await request.files
    upload = files.get("file")
    if upload is None:
        raise APIError(400, "NO_FILE", "Send the CSV as the multipart form field `file`.")
    zone = data.timezone or "UTC"
    options = batches.BatchOptions(
        name=data.name,
        agent_id=data.agent_id,
        agent_phone_number=data.agent_phone_number,
        scheduled_time=data.scheduled_in_zone(zone),
        timezone=zone,
        default_country=data.default_country,
        max_attempts=data.max_attempts,
        retry_delay_minutes=data.retry_delay_minutes,
        retry_on=data.retry_on.split(",") if data.retry_on else list(RETRYABLE_OUTCOMES),
        calls_per_minute=data.calls_per_minute or 60,
        earliest_time=data.earliest_time,
        latest_time=data.latest_time,
    )
    batch, rejected = await batches.create_batch(
        current_principal().workspace_id, options, upload.stream
    )
    body = await batch_detail(batch)
    return {**body, "accepted": batch.total_items, "rejected": rejected}, 201


@blueprint.get("/<uuid:batch_id>")
@require_role(Role.MEMBER)
@validate_response(BatchDetailOut)
async def get_batch(batch_id: uuid.UUID) -> dict:
    """Get a batch's status and progress.

    Counts per item status and outcome, percent done and the next scheduled attempt.
    """
    batch = await batches.get_batch(current_principal().workspace_id, batch_id)
    return await batch_detail(batch)


class BatchUpdate(ScheduleFields):
    model_config = ConfigDict(extra="forbid")

    action: Literal["pause", "resume"] | None = None

    @model_validator(mode="after")
    def _something(self) -> BatchUpdate:
        if not self.model_fields_set:
            raise ValueError("send an action (pause or resume) or a schedule field to change")
        return self


@blueprint.patch("/<uuid:batch_id>")
@require_role(Role.DEVELOPER)
@validate_request(BatchUpdate)
@validate_response(BatchDetailOut)
async def update_batch(batch_id: uuid.UUID, data: BatchUpdate) -> dict:
    """Pause, resume or reschedule a batch.

    `{"action": "pause"|"resume"}` and/or `scheduled_time`, `timezone`, `calls_per_minute`,
    `earliest_time`, `latest_time`.
    """
    workspace_id = current_principal().workspace_id
    current = await batches.get_batch(workspace_id, batch_id)
    changes = data.model_dump(exclude_unset=True)
    zone = data.timezone or current.timezone
    if "scheduled_time" in changes:
        changes["scheduled_time"] = data.scheduled_in_zone(zone)
    for nullable_only in ("timezone", "calls_per_minute"):
        if nullable_only in changes and changes[nullable_only] is None:
            del changes[nullable_only]
    batch = await batches.update_batch(workspace_id, batch_id, changes)
    return await batch_detail(batch)


@blueprint.delete("/<uuid:batch_id>")
@require_role(Role.DEVELOPER)
@validate_response(BatchDetailOut, 200)
@document_body(204, description="The batch had ended and is deleted; no body.")
async def delete_batch(batch_id: uuid.UUID) -> tuple[dict | str, int]:
    """Cancel a live batch (200, still readable), or delete a finished one (204).

    Calls already made keep their call logs either way.
    """
    batch = await batches.cancel_or_delete(current_principal().workspace_id, batch_id)
    if batch is None:
        return "", 204
    return await batch_detail(batch), 200


class BatchItemQuery(PageQuery):
    status: ItemStatus | None = None


class ItemAttemptOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    attempt: int
    call_id: str
    room_name: str | None = None
    started_at: str | None = None
    outcome: str | None = None
    reason: str | None = None


class BatchItemOut(BaseModel):
    id: str
    line: int
    phone_number: str
    status: ItemStatus
    attempts: int
    outcome: str | None
    error: str | None
    call_id: str | None
    next_attempt_at: IsoTime | None
    variables: dict[str, str]
    attempt_log: list[ItemAttemptOut]


def item_out(item: BatchItem) -> BatchItemOut:
    waiting = item.status in (ItemStatus.PENDING, ItemStatus.RETRYING)
    return BatchItemOut(
        id=str(item.id),
        line=item.line,
        phone_number=item.phone_number,
        status=item.status,
        attempts=item.attempts,
        outcome=item.outcome,
        error=item.error,
        call_id=str(item.call_id) if item.call_id else None,
        next_attempt_at=item.next_attempt_at if waiting else None,
        variables=item.variables,
        attempt_log=item.attempt_log,
    )


@blueprint.get("/<uuid:batch_id>/items")
@require_role(Role.MEMBER)
@validate_querystring(BatchItemQuery)
@validate_response(Page[BatchItemOut])
async def list_batch_items(batch_id: uuid.UUID, query_args: BatchItemQuery) -> dict:
    """List a batch's items in file order, with their attempts and call ids.

    Filter by `status`.
    """
    batch = await batches.get_batch(current_principal().workspace_id, batch_id)
    page = await paginate(batches.items_of(batch, query_args.status), query_args, item_out)
    return page.model_dump(mode="json")
