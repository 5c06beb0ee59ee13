"""Prospect lists: storing an uploaded CSV, reading it into prospects on the job queue (retried
without duplicates), and adding one prospect by hand.

An upload is processed by a job, in chunks: each prospect row is keyed by (upload, line), so a
job that dies or fails partway and is run again adds only the rows it had not added yet. A row
whose number the campaign already has (from another list, or an earlier line) is rejected as a
duplicate; two lists of one campaign processed at the same moment may both add a number, and
the dialer's `dupe_days` rule then keeps it from being called twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import uuid
from pathlib import Path
from typing import IO, Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from control import jobs
from control.config import Settings
from control.db import copy_many
from control.dialing import campaigns, csv_reader, dnc
from control.dialing.batches import REJECTS_KEPT, chunks_read_ahead
from control.errors import Conflict, Invalid, NotFound
from control.models import (
    Campaign,
    Prospect,
    ProspectStatus,
    ProspectUpload,
    ProspectUploadStatus,
)
from control.security import utcnow
from runtime.spec.phone import mask_phone

logger = logging.getLogger(__name__)

MAX_ROWS = 100_000
MAX_BYTES = 20 * 1024 * 1024
COPY_CHUNK_BYTES = 64 * 1024
# Columns with a meaning of their own; every other column becomes a variable.
NAME_COLUMN = "name"
TIMEZONE_COLUMNS = ("timezone", "time_zone", "tz")
JOB_KIND = "process_prospect_upload"
ERROR_TEXT_LIMIT = 2000


def _upload_path(settings: Settings, upload: ProspectUpload) -> Path:
    # Under the row ids only: a client's file name never reaches a filesystem path.
    return campaigns.files_dir(settings, upload.campaign_id) / f"{upload.id}.csv"


def _not_found() -> NotFound:
    return NotFound("UPLOAD_NOT_FOUND", "No prospect list with that uuid.")


async def get_upload(workspace_id: uuid.UUID, upload_id: uuid.UUID) -> ProspectUpload:
    upload = await ProspectUpload.get_or_none(
        id=upload_id, workspace_id=workspace_id
    ).prefetch_related("campaign")
    if upload is None:
        raise _not_found()
    return upload


def _write(stream: IO[bytes], path: Path) -> int:
    """Copy the upload to `path` in chunks, refusing more than MAX_BYTES; returns its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with path.open("wb") as out:
        while chunk := stream.read(COPY_CHUNK_BYTES):
            size += len(chunk)
            if size > MAX_BYTES:
                raise csv_reader.FileTooLarge(
                    "FILE_TOO_LARGE",
                    f"The file is larger than the limit of {MAX_BYTES // (1024 * 1024)} MiB; "
                    "split it into several lists.",
                )
            out.write(chunk)
    return size


def _limits() -> csv_reader.Limits:
    return csv_reader.Limits(max_rows=MAX_ROWS, max_bytes=MAX_BYTES)


def _check_header(path: Path, country: str) -> None:
    """Refuse at once a file whose header already says it cannot be used (empty, binary, no
    phone column); the rows themselves are read by the job."""
    with path.open("rb") as stream:
        next(csv_reader.read_rows(stream, country, _limits()), None)


async def store_upload(
    settings: Settings,
    campaign: Campaign,
    list_name: str,
    priority: int,
    stream: IO[bytes],
) -> ProspectUpload:
    """Keep the CSV under the data dir and queue its processing; the list starts `pending`.

    Raises:
        Invalid: an empty or binary file, or one with no phone column.
        TooLarge: a file over the size limit.
    """
    upload = ProspectUpload(
        id=uuid.uuid4(),
        campaign_id=campaign.id,
        workspace_id=campaign.workspace_id,
        list_name=list_name,
        priority=priority,
    )
    path = _upload_path(settings, upload)
    try:
        await asyncio.to_thread(_write, stream, path)
        await asyncio.to_thread(
            _check_header, path, campaigns.default_country(campaign.locale_name)
        )
    except csv_reader.BatchFileError:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    upload.file_path = str(path)
    await upload.save()
    await _queue(upload)
    return upload


async def _queue(upload: ProspectUpload) -> None:
    # A new key per queueing: a retry is a new job (the status change before it is the guard).
    await jobs.enqueue(
        JOB_KIND,
        {"upload_id": str(upload.id)},
        key=f"{JOB_KIND}:{upload.id}:{secrets.token_hex(4)}",
    )


async def retry_upload(workspace_id: uuid.UUID, upload_id: uuid.UUID) -> ProspectUpload:
    """Queue a failed upload again; the rows it added stay and are not added twice.

    Raises:
        Conflict: the upload did not fail.
    """
    upload = await get_upload(workspace_id, upload_id)
    moved = await ProspectUpload.filter(id=upload.id, status=ProspectUploadStatus.FAILED).update(
        status=ProspectUploadStatus.PENDING, error=None, finished_at=None
    )
    if not moved:
        raise Conflict(
            "UPLOAD_NOT_FAILED",
            f"The upload is {upload.status}; only a failed upload can be retried.",
        )
    await upload.refresh_from_db()
    await _queue(upload)
    return upload


async def process_upload(upload_id: uuid.UUID) -> None:
    """Read the upload's CSV into prospects, then record its counts and status.

    A file that cannot be used (too large, too many rows, not a CSV) fails the upload with the
    reason; any other failure fails it too and is raised, so the job queue tries again.
    """
    upload = await ProspectUpload.get_or_none(id=upload_id).prefetch_related("campaign")
    if upload is None or upload.status == ProspectUploadStatus.COMPLETED:
        return  # deleted with its campaign, or done by an earlier run
    await ProspectUpload.filter(id=upload.id).update(
        status=ProspectUploadStatus.PROCESSING, attempts=upload.attempts + 1, error=None
    )
    try:
        total, rejects, rejected = await _read_into_prospects(upload)
    except csv_reader.BatchFileError as error:
        await _finish(upload, ProspectUploadStatus.FAILED, error=error.detail)
        return
    except Exception as error:
        await _finish(upload, ProspectUploadStatus.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    await _finish(
        upload,
        ProspectUploadStatus.COMPLETED,
        total_rows=total,
        rejects=rejects,
        rejected_count=rejected,
    )


async def _finish(upload: ProspectUpload, status: ProspectUploadStatus, **fields: Any) -> None:
    if "error" in fields:
        fields["error"] = fields["error"][:ERROR_TEXT_LIMIT]
    added = await Prospect.filter(upload_id=upload.id).count()
    await ProspectUpload.filter(id=upload.id).update(
        status=status, added_count=added, finished_at=utcnow(), **fields
    )
    logger.info("prospect list %s: %s, %d prospects", upload.id, status, added)


def _split_columns(variables: dict[str, str]) -> tuple[str | None, str | None, dict[str, str]]:
    """The row's name and time zone cells, and the other columns (its variables)."""
    name = zone = None
    rest = {}
    for column, cell in variables.items():
        key = column.strip().lower()
        if key == NAME_COLUMN and name is None:
            name = cell.strip()[:200] or None
        elif key in TIMEZONE_COLUMNS and zone is None:
            zone = cell.strip() or None
        else:
            rest[column] = cell
    return name, zone, rest


async def _read_into_prospects(upload: ProspectUpload) -> tuple[int, list[dict[str, Any]], int]:
    """Add the file's rows the campaign does not have yet; returns rows read, the first
    rejects and how many were rejected."""
    campaign = upload.campaign
    country = campaigns.default_country(campaign.locale_name)
    rejects: list[dict[str, Any]] = []
    total = rejected = 0

    def reject(line: int, reason: str) -> None:
        nonlocal rejected
        rejected += 1
        if len(rejects) < REJECTS_KEPT:
            rejects.append({"line": line, "reason": reason})

    try:
        stream = await asyncio.to_thread(Path(upload.file_path or "").open, "rb")
    except OSError as error:
        raise csv_reader.FileGone(
            "FILE_GONE", "The stored file is gone; upload the list again."
        ) from error
    with stream:
        rows = csv_reader.read_rows(stream, country, _limits())
        async with contextlib.aclosing(chunks_read_ahead(rows)) as chunks:
            async for chunk in chunks:
                total += len(chunk)
                accepted = []
                for row in chunk:
                    if isinstance(row, csv_reader.Reject):
                        reject(row.line, row.reason)
                        continue
                    name, zone, variables = _split_columns(row.variables)
                    try:
                        zones = campaigns.prospect_timezones(row.phone_number, zone)
                    except ValueError as error:
                        reject(row.line, f"invalid time zone: {error}")
                        continue
                    accepted.append((row, name, zones, variables))
                for line, reason in await _insert_new(upload, accepted):
                    reject(line, reason)
    rejects.sort(key=lambda item: item["line"])
    return total, rejects, rejected


async def _insert_new(upload: ProspectUpload, accepted: list[tuple]) -> list[tuple[int, str]]:
    """Insert the chunk's rows whose number the campaign lacks; the duplicates, as rejects.

    A row this upload added on an earlier run (same line) is neither inserted nor rejected."""
    if not accepted:
        return []
    holders: dict[str, list[tuple[str, int | None]]] = {}
    numbers = list({row.phone_number for row, *_ in accepted})
    for number, upload_id, line in await Prospect.filter(
        campaign_id=upload.campaign_id, phone_number__in=numbers
    ).values_list("phone_number", "upload_id", "line"):
        holders.setdefault(number, []).append((str(upload_id), line))
    this_upload = str(upload.id)
    duplicates: list[tuple[int, str]] = []
    new_rows = []
    for row, name, zones, variables in accepted:
        held = holders.setdefault(row.phone_number, [])
        if (this_upload, row.line) in held:
            continue  # added by an earlier run of this upload
        if held:
            upload_id, line = held[0]
            where = f"line {line}" if upload_id == this_upload and line else "another list"
            duplicates.append((row.line, f"duplicate: the campaign already has it ({where})"))
            continue
        held.append((this_upload, row.line))
        new_rows.append((row.line, row.phone_number, name, zones, variables))
    if new_rows:
        await _insert(connections.get("default"), upload, new_rows)
    return duplicates


_PROSPECT_COLUMNS = (
    "id", "campaign_id", "upload_id", "workspace_id", "line", "phone_number", "name",
    "timezones", "variables", "priority", "status", "attempts", "next_attempt_at",
    "attempt_log", "created_at",
)  # fmt: skip


async def _insert(connection: BaseDBAsyncClient, upload: ProspectUpload, rows: list[tuple]) -> None:
    """Insert new prospects (by COPY on PostgreSQL); a (upload, line) already stored (a
    concurrent run of the same upload) is skipped by the database."""
    now = utcnow()
    await copy_many(
        connection,
        "prospects",
        _PROSPECT_COLUMNS,
        (
            (
                uuid.uuid4(),
                upload.campaign_id,
                upload.id,
                upload.workspace_id,
                line,
                number,
                name,
                json.dumps(zones),
                json.dumps(variables, ensure_ascii=False),
                upload.priority,
                ProspectStatus.PENDING.value,
                0,
                now,
                "[]",
                now,
            )
            for line, number, name, zones, variables in rows
        ),
        skip_conflicts_on=("upload_id", "line"),
    )


async def add_prospect(
    workspace_id: uuid.UUID,
    upload_id: uuid.UUID,
    phone_number: str,
    name: str | None,
    timezone: str | None,
    variables: dict[str, Any],
) -> Prospect:
    """Add one prospect to the list of `upload_id` (its priority, its campaign).

    Raises:
        Invalid: a bad number or zone.
        Conflict: the campaign already has the number.
    """
    upload = await get_upload(workspace_id, upload_id)
    campaign = upload.campaign
    number = dnc.normalise(phone_number, campaigns.default_country(campaign.locale_name))
    try:
        zones = campaigns.prospect_timezones(number, timezone)
    except ValueError as error:
        raise Invalid(
            "VALIDATION_ERROR",
            f"Invalid request: timezone: {error}",
            field="timezone",
            message=str(error),
        ) from error
    if await Prospect.exists(campaign_id=campaign.id, phone_number=number):
        raise Conflict("PROSPECT_EXISTS", f"The campaign already has {mask_phone(number)}.")
    prospect = await Prospect.create(
        campaign_id=campaign.id,
        upload_id=upload.id,
        workspace_id=workspace_id,
        phone_number=number,
        name=name,
        timezones=zones,
        variables=variables,
        priority=upload.priority,
        next_attempt_at=utcnow(),
    )
    await ProspectUpload.filter(id=upload.id).update(
        added_count=await Prospect.filter(upload_id=upload.id).count()
    )
    return prospect
