"""Reading call logs: the filters of `GET /calls`, pages, and a constant-memory CSV export."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from control.models import Call

EXPORT_BATCH = 1000
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = (
    "id",
    "created_at",
    "agent_id",
    "call_type",
    "call_direction",
    "from_number",
    "to_number",
    "status",
    "end_reason",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_seconds",
    "disposition",
    "sentiment",
    "summary",
    "recording_url",
    "batch_id",
    "campaign",
)


@dataclass(frozen=True)
class CallFilters:
    call_type: str | None = None
    call_direction: str | None = None
    agent_id: uuid.UUID | None = None
    disposition: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    batch_id: uuid.UUID | None = None


def filtered_calls(workspace_id: uuid.UUID, filters: CallFilters) -> QuerySet[Call]:
    """The workspace's calls matching `filters`, newest first (served by the composite indexes)."""
    query = Call.filter(workspace_id=workspace_id)
    for field in ("call_type", "call_direction", "agent_id", "disposition", "batch_id"):
        value = getattr(filters, field)
        if value is not None:
            query = query.filter(**{field: value})
    if filters.start is not None:
        query = query.filter(created_at__gte=filters.start)
    if filters.end is not None:
        query = query.filter(created_at__lte=filters.end)
    return query.order_by("-created_at", "-id")


def _safe_cell(value: object) -> str:
    """A CSV cell that spreadsheets will not run as a formula."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


async def export_csv(workspace_id: uuid.UUID, filters: CallFilters) -> AsyncIterator[bytes]:
    """Yield the CSV (header first) in batches, paging by key so memory stays flat."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> bytes:
        chunk = buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        return chunk

    writer.writerow(EXPORT_COLUMNS)
    yield flush()
    cursor: tuple[datetime, uuid.UUID] | None = None
    while True:
        query = filtered_calls(workspace_id, filters)
        if cursor is not None:
            created_at, call_id = cursor
            query = query.filter(
                Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=call_id)
            )
        rows = await query.limit(EXPORT_BATCH).values_list(*EXPORT_COLUMNS)
        if not rows:
            return
        for row in rows:
            writer.writerow([_safe_cell(value) for value in row])
        yield flush()
        last = rows[-1]
        cursor = (last[1], last[0])
        if len(rows) < EXPORT_BATCH:
            return
