"""Reading call logs: the filters of `GET /calls`, pages, and a constant-memory CSV export."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from control.models import Call, Campaign

# The longest date range a list, export or report takes: ten years.
MAX_RANGE = timedelta(days=3660)
SLUG_LENGTH = 80  # what `Campaign.slug` holds
EXPORT_BATCH = 1000
COPY_QUEUE_CHUNKS = 16
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = (
    "id",
    "created_at",
    "agent_id",
    "agent_version",
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
    campaign: str | None = None
    agent_version: int | None = None  # the agent version the call ran


def filtered_calls(workspace_id: uuid.UUID, filters: CallFilters) -> QuerySet[Call]:
    """The workspace's calls matching `filters`, newest first (served by the composite indexes)."""
    query = Call.filter(workspace_id=workspace_id)
    equal = ("call_type", "call_direction", "agent_id", "disposition", "batch_id", "agent_version")
    for field in equal:
        value = getattr(filters, field)
        if value is not None:
            query = query.filter(**{field: value})
    if filters.campaign is not None:
        query = query.filter(_campaign_filter(workspace_id, filters.campaign))
    # In UTC, as times are stored: SQLite compares them as text, so an offset would mislead it.
    if filters.start is not None:
        query = query.filter(created_at__gte=filters.start.astimezone(UTC))
    if filters.end is not None:
        query = query.filter(created_at__lte=filters.end.astimezone(UTC))
    return query.order_by("-created_at", "-id")


def _campaign_filter(workspace_id: uuid.UUID, campaign: str) -> Q:
    """A campaign by id or slug (the calls its dialer placed), or a call's `campaign` label."""
    try:
        return Q(campaign_id=uuid.UUID(campaign)) | Q(campaign=campaign)
    except ValueError:
        pass
    if len(campaign) > SLUG_LENGTH:  # no slug is that long (and the ORM refuses to compare it)
        return Q(campaign=campaign)
    slugs = Campaign.filter(workspace_id=workspace_id, slug=campaign).values("id")
    return Q(campaign_id__in=Subquery(slugs)) | Q(campaign=campaign)


def _safe_cell(value: object) -> str:
    """A CSV cell that spreadsheets will not run as a formula."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _plain_cell(value: object) -> str:
    return "" if value is None else str(value)


def _time_cell(value: datetime | None) -> str:
    # Always with microseconds, as the COPY path's to_char writes them (isoformat drops zeros).
    return "" if value is None else value.isoformat(timespec="microseconds")


# Ids, times and numbers cannot start a formula; only free-text columns need escaping.
_CELL_WRITERS = tuple(
    _time_cell
    if column.endswith("_at")
    else _plain_cell
    if column.endswith("id") or column in ("duration_seconds", "agent_version")
    else _safe_cell
    for column in EXPORT_COLUMNS
)


def _csv_row(row: Sequence[Any]) -> list[str]:
    return [write(value) for write, value in zip(_CELL_WRITERS, row, strict=True)]


def _parameterized_sql(query: Any) -> tuple[str, list[Any]]:
    # tortoise has no public "SQL with parameters" call; pinned to tortoise-orm 1.1.
    query._choose_db_if_not_chosen()
    query._make_query()
    return query.query.get_parameterized_sql()


TEXT_COLUMNS = frozenset(
    {"call_type", "call_direction", "from_number", "to_number", "status", "end_reason",
     "disposition", "sentiment", "summary", "recording_url", "campaign"}
)  # fmt: skip
SQL_FORMULA_PATTERN = r"'^[-=+@\t\r]'"
SQL_ISO_UTC = """'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'"""


def _copy_expression(column: str) -> str:
    quoted = f'"{column}"'
    if column in TEXT_COLUMNS:  # the formula escape of `_safe_cell`, done by PostgreSQL
        return (
            f"CASE WHEN {quoted} ~ {SQL_FORMULA_PATTERN} THEN chr(39) || {quoted} ELSE {quoted} END"
        )
    if column.endswith("_at"):  # ISO 8601 in UTC, as the SQLite path writes it
        return f"to_char({quoted} AT TIME ZONE 'UTC', {SQL_ISO_UTC})"
    return quoted


async def _postgres_copy(workspace_id: uuid.UUID, filters: CallFilters) -> AsyncIterator[bytes]:
    """The rows as CSV straight from PostgreSQL's COPY, streamed with backpressure."""
    query = filtered_calls(workspace_id, filters).values_list(*EXPORT_COLUMNS)
    sql, params = _parameterized_sql(query)
    where_and_order = sql.split(' FROM "calls"', 1)[1]
    select = ", ".join(_copy_expression(column) for column in EXPORT_COLUMNS)
    copy_sql = f'SELECT {select} FROM "calls"{where_and_order}'
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=COPY_QUEUE_CHUNKS)

    async def produce() -> None:
        async def output(chunk: bytes) -> None:
            await chunks.put(bytes(chunk))

        try:
            async with connections.get("default").acquire_connection() as connection:
                await connection.copy_from_query(copy_sql, *params, output=output, format="csv")
        finally:
            await chunks.put(None)

    producer = asyncio.create_task(produce())
    try:
        while (chunk := await chunks.get()) is not None:
            yield chunk
        await producer  # re-raises a failed COPY
    finally:
        producer.cancel()


async def _keyset_rows(
    workspace_id: uuid.UUID, filters: CallFilters
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Batches by key (SQLite: short queries, so the single connection is never held long)."""
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
        yield rows
        if len(rows) < EXPORT_BATCH:
            return
        cursor = (rows[-1][1], rows[-1][0])


async def export_csv(workspace_id: uuid.UUID, filters: CallFilters) -> AsyncIterator[bytes]:
    """Yield the CSV (header first) in batches, streaming rows so memory stays flat."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> bytes:
        chunk = buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        return chunk

    writer.writerow(EXPORT_COLUMNS)
    yield flush()
    if connections.get("default").capabilities.dialect == "postgres":
        async for chunk in _postgres_copy(workspace_id, filters):
            yield chunk
        return
    async for rows in _keyset_rows(workspace_id, filters):
        writer.writerows(map(_csv_row, rows))
        yield flush()
