"""Batches: creating one from a CSV, reading its progress, pausing, rescheduling, cancelling."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Count, Min
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from control import jobs
from control.db import copy_many
from control.dialing import csv_reader, dnc
from control.dialing.window import CallingWindow
from control.errors import Conflict, Invalid, NotFound
from control.models import (
    Agent,
    Batch,
    BatchItem,
    BatchStatus,
    ItemStatus,
    PhoneNumber,
)
from control.security import utcnow
from control.services import webhooks
from runtime.spec.phone import mask_phone

logger = logging.getLogger(__name__)

MAX_ROWS = 100_000
MAX_BYTES = 20 * 1024 * 1024
REJECTS_KEPT = 1000
INSERT_CHUNK = 1000
RETRYABLE_OUTCOMES = ("busy", "no_answer", "failed")
OUTCOMES = ("answered", "no_answer", "busy", "failed", "voicemail")
OPEN_ITEM_STATUSES = (ItemStatus.PENDING, ItemStatus.CALLING, ItemStatus.RETRYING)
LIVE_BATCH_STATUSES = (BatchStatus.SCHEDULED, BatchStatus.RUNNING, BatchStatus.PAUSED)


@dataclass
class BatchOptions:
    """What an upload asks for, besides the file."""

    name: str
    agent_id: uuid.UUID
    agent_phone_number: str
    scheduled_time: datetime | None = None
    timezone: str = "UTC"
    default_country: str | None = None
    max_attempts: int = 1
    retry_delay_minutes: int = 30
    retry_on: list[str] = field(default_factory=lambda: list(RETRYABLE_OUTCOMES))
    calls_per_minute: int = 60
    earliest_time: str | None = None
    latest_time: str | None = None


def in_window(batch: Batch, now: datetime) -> bool:
    """Whether `now` is inside the batch's calling window (always, when it has none)."""
    return CallingWindow.of((batch.timezone,), batch.earliest_time, batch.latest_time).contains(now)


async def check_line(workspace_id: uuid.UUID, agent_id: Any, agent_phone_number: str) -> None:
    """The agent is the workspace's and is mapped to a number the workspace registered."""
    agent = await Agent.get_or_none(id=agent_id, workspace_id=workspace_id)
    if agent is None:
        raise NotFound("AGENT_NOT_FOUND", "No agent with that id in this workspace.")
    if not await PhoneNumber.exists(workspace_id=workspace_id, phone_number=agent_phone_number):
        raise NotFound(
            "NUMBER_NOT_REGISTERED",
            f"This workspace has not registered {mask_phone(agent_phone_number)}.",
        )
    if agent.phone_number != agent_phone_number:
        raise Invalid(
            "AGENT_NUMBER_MISMATCH",
            "The agent is not mapped to agent_phone_number; map it first "
            "(PUT /phonenumbers/map_agent).",
        )


async def create_batch(
    workspace_id: uuid.UUID, options: BatchOptions, stream: IO[bytes]
) -> tuple[Batch, list[dict[str, Any]]]:
    """Read the CSV as a stream into a new batch; returns it and the rejected rows (all or none).

    Rows that repeat an earlier row's number, or whose number is on the workspace's do-not-call
    list (`NUMBER_ON_DNC`), are rejected with the reason like invalid ones.

    Raises:
        Invalid: a file with no usable row, or one that is not a CSV (saying why).
        TooLarge: a file over the limits.
        NotFound: an agent or number this workspace does not have.
    """
    await check_line(workspace_id, options.agent_id, options.agent_phone_number)
    now = utcnow()
    starts_now = options.scheduled_time is None or options.scheduled_time <= now
    rejects: list[dict[str, Any]] = []
    rejected = accepted = 0
    limits = csv_reader.Limits(max_rows=MAX_ROWS, max_bytes=MAX_BYTES)
    async with in_transaction() as connection:
        batch = await Batch.create(
            workspace_id=workspace_id,
            agent_id=options.agent_id,
            name=options.name,
            agent_phone_number=options.agent_phone_number,
            status=BatchStatus.RUNNING if starts_now else BatchStatus.SCHEDULED,
            scheduled_time=options.scheduled_time,
            timezone=options.timezone,
            earliest_time=options.earliest_time,
            latest_time=options.latest_time,
            calls_per_minute=options.calls_per_minute,
            max_attempts=options.max_attempts,
            retry_delay_minutes=options.retry_delay_minutes,
            retry_on=options.retry_on,
            started_at=now if starts_now else None,
        )
        due = now if starts_now else options.scheduled_time
        rows = csv_reader.read_rows(stream, options.default_country, limits)
        async with contextlib.aclosing(chunks_read_ahead(rows)) as chunks:
            async for chunk in chunks:
                items = []
                for row in chunk:
                    if isinstance(row, csv_reader.Row):
                        items.append(row)
                        continue
                    rejected += 1
                    if len(rejects) < REJECTS_KEPT:
                        rejects.append({"line": row.line, "reason": row.reason})
                accepted += len(items)
                if items:
                    await _insert_items(connection, batch, items, due)
        duplicates, first_duplicates = await _remove_duplicates(connection, batch)
        listed, first_listed = await _remove_do_not_call(connection, batch)
        accepted -= duplicates + listed
        rejected += duplicates + listed
        rejects = sorted(rejects + first_duplicates + first_listed, key=lambda row: row["line"])
        rejects = rejects[:REJECTS_KEPT]
        if not accepted:
            raise Invalid(
                "NO_USABLE_ROWS",
                "The file has no usable row: "
                + (
                    f"all {rejected} rows were rejected (first: line {rejects[0]['line']}, "
                    f"{rejects[0]['reason']})."
                    if rejected
                    else "it has a header but no rows."
                ),
                extra={"rejected": rejects},
            )
        batch.total_items, batch.rejected_count, batch.rejects = accepted, rejected, rejects
        await batch.save(update_fields=["total_items", "rejected_count", "rejects"])
    logger.info("batch %s: %d rows accepted, %d rejected", batch.id, accepted, rejected)
    if starts_now:
        await emit_status(batch, "batch.started")
        await jobs.enqueue("dial_batches")  # the first dials need not wait for the next tick
    return batch, rejects


async def _remove_duplicates(
    connection: BaseDBAsyncClient, batch: Batch
) -> tuple[int, list[dict[str, Any]]]:
    """Drop the rows whose number an earlier line of the file has; returns how many, and the
    first of them as rejects. One pass in SQL, so the upload holds no set of numbers."""
    postgres = connection.capabilities.dialect == "postgres"
    batch_id = batch.id if postgres else str(batch.id)
    mark = "$1" if postgres else "?"
    later = (
        'SELECT "id", "line", "first" FROM (SELECT "id", "line", MIN("line") OVER '
        '(PARTITION BY "phone_number") AS "first" FROM "batch_items" '
        f'WHERE "batch_id" = {mark}) AS "numbered" WHERE "line" > "first"'
    )
    shown = await connection.execute_query_dict(
        f'{later} ORDER BY "line" LIMIT {REJECTS_KEPT}', [batch_id]
    )
    if not shown:
        return 0, []
    removed, _ = await connection.execute_query(
        f'DELETE FROM "batch_items" WHERE "id" IN (SELECT "id" FROM ({later}) AS "later")',
        [batch_id],
    )
    return removed, [
        {"line": row["line"], "reason": f"duplicate: the same number as line {row['first']}"}
        for row in shown
    ]


async def _remove_do_not_call(
    connection: BaseDBAsyncClient, batch: Batch
) -> tuple[int, list[dict[str, Any]]]:
    """Drop the rows whose number is on the workspace's do-not-call list; returns how many, and
    the first of them as rejects (one pass in SQL, like the duplicates)."""
    postgres = connection.capabilities.dialect == "postgres"
    ids = [batch.id, batch.workspace_id] if postgres else [str(batch.id), str(batch.workspace_id)]
    first, second = ("$1", "$2") if postgres else ("?", "?")
    listed = (
        f'FROM "batch_items" WHERE "batch_id" = {first} AND "phone_number" IN '
        f'(SELECT "phone_number" FROM "dnc_numbers" WHERE "workspace_id" = {second})'
    )
    shown = await connection.execute_query_dict(
        f'SELECT "line" {listed} ORDER BY "line" LIMIT {REJECTS_KEPT}', ids
    )
    if not shown:
        return 0, []
    removed, _ = await connection.execute_query(f"DELETE {listed}", ids)
    return removed, [{"line": row["line"], "reason": dnc.ON_DNC_REASON} for row in shown]


def _take(rows: Iterator[csv_reader.Row | csv_reader.Reject]) -> list[Any]:
    return list(itertools.islice(rows, INSERT_CHUNK))


async def chunks_read_ahead(
    rows: Iterator[csv_reader.Row | csv_reader.Reject],
) -> AsyncGenerator[list[csv_reader.Row | csv_reader.Reject], None]:
    """The rows in chunks, the next chunk read (in a thread) while the caller stores this one:
    parsing and the database's inserts overlap. One thread at a time reads the iterator."""
    ahead = asyncio.ensure_future(asyncio.to_thread(_take, rows))
    try:
        while chunk := await ahead:
            ahead = asyncio.ensure_future(asyncio.to_thread(_take, rows))
            yield chunk
    finally:
        if not ahead.done():  # the caller stopped early: let the reader finish before leaving
            with contextlib.suppress(Exception):
                await ahead


_ITEM_COLUMNS = (
    "id", "batch_id", "workspace_id", "line", "phone_number", "variables", "status",
    "attempts", "next_attempt_at", "attempt_log", "updated_at",
)  # fmt: skip


async def _insert_items(
    connection: BaseDBAsyncClient, batch: Batch, rows: list[csv_reader.Row], due: datetime | None
) -> None:
    """Insert a chunk of rows as pending items (by COPY on PostgreSQL)."""
    now = utcnow()
    await copy_many(
        connection,
        "batch_items",
        _ITEM_COLUMNS,
        (
            (
                uuid.uuid4(),
                batch.id,
                batch.workspace_id,
                row.line,
                row.phone_number,
                json.dumps(row.variables, ensure_ascii=False),
                ItemStatus.PENDING.value,
                0,
                due,
                "[]",
                now,
            )
            for row in rows
        ),
    )


def batches_of(workspace_id: uuid.UUID, status: str | None = None) -> QuerySet[Batch]:
    query = Batch.filter(workspace_id=workspace_id)
    if status is not None:
        query = query.filter(status=status)
    return query.order_by("-created_at", "-id")


async def get_batch(workspace_id: uuid.UUID, batch_id: uuid.UUID) -> Batch:
    batch = await Batch.get_or_none(id=batch_id, workspace_id=workspace_id)
    if batch is None:
        raise NotFound("BATCH_NOT_FOUND", "No batch with that id.")
    return batch


def items_of(batch: Batch, status: str | None = None) -> QuerySet[BatchItem]:
    query = BatchItem.filter(batch_id=batch.id, workspace_id=batch.workspace_id)
    if status is not None:
        query = query.filter(status=status)
    return query.order_by("line")


async def progress(batch: Batch) -> dict[str, Any]:
    """Counts per item status and per outcome, percent done, and the next attempt's time."""
    counts = {status.value: 0 for status in ItemStatus}
    rows = (
        await BatchItem.filter(batch_id=batch.id)
        .annotate(count=Count("id"))
        .group_by("status")
        .values("status", "count")
    )
    for row in rows:
        counts[str(row["status"])] = row["count"]
    outcomes = dict.fromkeys(OUTCOMES, 0)
    rows = (
        await BatchItem.filter(batch_id=batch.id, outcome__not_isnull=True)
        .annotate(count=Count("id"))
        .group_by("outcome")
        .values("outcome", "count")
    )
    for row in rows:
        outcomes[row["outcome"]] = row["count"]
    done = counts["completed"] + counts["failed"] + counts["cancelled"]
    total = batch.total_items or sum(counts.values())
    next_attempt = None
    if batch.status in (BatchStatus.SCHEDULED, BatchStatus.RUNNING):
        first = (
            await BatchItem.filter(
                batch_id=batch.id, status__in=(ItemStatus.PENDING, ItemStatus.RETRYING)
            )
            .annotate(first=Min("next_attempt_at"))
            .values("first")
        )
        next_attempt = first[0]["first"] if first else None
        if isinstance(next_attempt, str):  # SQLite's aggregate comes back as text
            next_attempt = datetime.fromisoformat(next_attempt)
        if next_attempt is not None and batch.next_dial_at and batch.next_dial_at > next_attempt:
            next_attempt = batch.next_dial_at
    return {
        "counts": counts,
        "outcomes": outcomes,
        "percent_done": round(100 * done / total, 1) if total else 100.0,
        "next_attempt_at": next_attempt,
    }


async def emit_status(batch: Batch, event_type: str, extra: dict[str, Any] | None = None) -> None:
    """Fire one of the events a batch has once (started, completed, cancelled)."""
    data = {"batch_id": str(batch.id), "name": batch.name, "status": batch.status, **(extra or {})}
    await webhooks.emit(batch.workspace_id, event_type, data, event_key=f"{batch.id}:{event_type}")


async def update_batch(
    workspace_id: uuid.UUID, batch_id: uuid.UUID, changes: dict[str, Any]
) -> Batch:
    """Pause, resume, reschedule or re-pace a batch that is not finished."""
    batch = await get_batch(workspace_id, batch_id)
    if batch.status not in LIVE_BATCH_STATUSES:
        raise Conflict("BATCH_FINISHED", f"The batch is {batch.status}; it can no longer change.")
    action = changes.pop("action", None)
    now = utcnow()
    fields = dict(changes)
    when = fields.get("scheduled_time")
    if when is not None:
        # Rows not yet dialed wait for the new time; a paused batch stays paused.
        await BatchItem.filter(batch_id=batch.id, status=ItemStatus.PENDING).update(
            next_attempt_at=when
        )
        pausing = action == "pause" or (batch.status == BatchStatus.PAUSED and action != "resume")
        if when > now and not pausing:
            fields["status"] = BatchStatus.SCHEDULED
    if action == "pause":
        fields["status"] = BatchStatus.PAUSED
    elif action == "resume" and batch.status == BatchStatus.PAUSED:
        scheduled = fields.get("scheduled_time", batch.scheduled_time)
        fields["status"] = (
            BatchStatus.SCHEDULED if scheduled and scheduled > now else BatchStatus.RUNNING
        )
    if fields.get("status") == BatchStatus.RUNNING and batch.started_at is None:
        fields["started_at"] = now
    if fields:
        await Batch.filter(id=batch.id, status__in=LIVE_BATCH_STATUSES).update(**fields)
        await batch.refresh_from_db()
    if batch.status == BatchStatus.RUNNING:
        if "started_at" in fields:
            await emit_status(batch, "batch.started")
        await jobs.enqueue("dial_batches")
    return batch


async def cancel_or_delete(workspace_id: uuid.UUID, batch_id: uuid.UUID) -> Batch | None:
    """Cancel a live batch (returns it), or delete a finished one (returns None).

    Cancelling leaves calls in flight to finish; pending and retrying items become cancelled.
    Call logs always stay.
    """
    batch = await get_batch(workspace_id, batch_id)
    if batch.status not in LIVE_BATCH_STATUSES:
        await batch.delete()
        return None
    updated = await Batch.filter(id=batch.id, status__in=LIVE_BATCH_STATUSES).update(
        status=BatchStatus.CANCELLED, finished_at=utcnow()
    )
    await BatchItem.filter(
        batch_id=batch.id, status__in=(ItemStatus.PENDING, ItemStatus.RETRYING)
    ).update(status=ItemStatus.CANCELLED, next_attempt_at=None)
    await batch.refresh_from_db()
    if updated:
        await emit_status(batch, "batch.cancelled", {"progress": await progress_data(batch)})
    return batch


async def progress_data(batch: Batch) -> dict[str, Any]:
    """A batch's progress as events carry it (JSON types)."""
    state = await progress(batch)
    next_attempt = state["next_attempt_at"]
    return {**state, "next_attempt_at": next_attempt.isoformat() if next_attempt else None}
