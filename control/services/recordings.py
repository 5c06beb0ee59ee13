"""Call recordings: stored in the data dir or an S3-compatible store, streamed in and out, and
deleted once their workspace's retention has run out.

One object-store client (obstore) serves both places, so the data dir and S3 take the same code
path: a `LocalStore` under `<data_dir>/recordings` by default, an `S3Store` when
`VOXLINE_RECORDINGS_URL` is `s3://...`. Uploads are streamed into the store (multipart), reads
are ranged gets streamed out; no recording is ever held whole in memory.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import obstore
from obstore.store import LocalStore, S3Store

from control.config import Settings, parse_recordings_url
from control.errors import Invalid, NotFound, RangeNotSatisfiable, TooLarge, UnsupportedMediaType
from control.models import Call, Workspace
from control.security import utcnow

logger = logging.getLogger(__name__)

#: The formats a recording may be in: content type -> (file extension, how its bytes begin).
FORMATS: dict[str, tuple[str, bytes]] = {
    "audio/ogg": ("ogg", b"OggS"),
    "audio/wav": ("wav", b"RIFF"),
}
CONTENT_TYPES = {extension: content_type for content_type, (extension, _) in FORMATS.items()}
MAX_RECORDING_BYTES = 1024 * 1024 * 1024
#: Multipart parts sent to the store, and how many at once: what an upload holds in memory.
PART_BYTES = 5 * 1024 * 1024
PART_CONCURRENCY = 2
READ_CHUNK_BYTES = 64 * 1024
EXPIRY_BATCH = 200

_stores: dict[tuple[str | None, str], Any] = {}


def recordings_store(settings: Settings) -> Any:
    """The store recordings live in (one client per location, kept for the process)."""
    key = (settings.recordings_url, str(settings.data_dir))
    if key not in _stores:
        _stores[key] = _open_store(settings)
    return _stores[key]


def _open_store(settings: Settings) -> Any:
    if not settings.recordings_url:
        return LocalStore(settings.data_dir.resolve() / "recordings", mkdir=True)
    location = parse_recordings_url(settings.recordings_url)
    if location.scheme == "file":
        return LocalStore(location.path, mkdir=True)
    options: dict[str, Any] = {}
    if location.endpoint:
        options["endpoint"] = location.endpoint
    if location.region:
        options["region"] = location.region
    return S3Store(
        location.path,
        prefix=location.prefix or None,
        # a plain-http endpoint is a local store (MinIO, moto) the operator named on purpose
        client_options={"allow_http": True},
        **options,
    )


def recording_path(call: Call) -> str:
    """The API path a call's recording is served at."""
    return f"/calls/{call.id}/recording"


def _stored_key(call: Call) -> str | None:
    if call.recording_key:
        return call.recording_key
    # recordings stored before `recording_key` existed: `<data_dir>/recordings/<call id>.wav`
    return f"{call.id}.wav" if call.recording_url else None


class _CheckedBody:
    """The upload's chunks, checked on the way through: its first bytes, then its size."""

    def __init__(self, first: bytes, rest: AsyncIterator[bytes], limit: int) -> None:
        self._first = first
        self._rest = rest
        self._limit = limit
        self.size = 0
        self.too_large = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = self._first
        while True:
            self.size += len(chunk)
            if self.size > self._limit:
                self.too_large = True
                raise ValueError("recording too large")  # aborts the store's multipart upload
            if chunk:
                yield chunk
            try:
                chunk = await anext(self._rest)
            except StopAsyncIteration:
                return


async def _first_bytes(body: AsyncIterator[bytes], count: int) -> bytes:
    """At least `count` bytes from the start of `body` (fewer only if it is shorter)."""
    first = b""
    while len(first) < count:
        try:
            first += await anext(body)
        except StopAsyncIteration:
            break
    return first


async def store_recording(
    settings: Settings,
    call: Call,
    content_type: str,
    body: AsyncIterable[bytes],
    *,
    limit: int = MAX_RECORDING_BYTES,
) -> str:
    """Stream `body` (Ogg or WAV) into the store as the call's recording; returns its API path.

    The call's `recording_url` is set only once the whole recording is stored; a refused or
    broken upload leaves no recording and no half-written object.
    """
    if content_type not in FORMATS:
        raise UnsupportedMediaType("UNSUPPORTED_MEDIA_TYPE", "Send audio/ogg (Opus) or audio/wav.")
    extension, magic = FORMATS[content_type]
    chunks = aiter(body)
    first = await _first_bytes(chunks, len(magic))
    if not first.startswith(magic):
        raise Invalid("INVALID_RECORDING", f"The body is not {content_type} (it starts wrongly).")
    key = f"{call.workspace_id}/{call.id}.{extension}"
    checked = _CheckedBody(first, chunks, limit)
    store = recordings_store(settings)
    # the type read back comes from the key's extension; S3 keeps it too, for other tools
    attributes = {"Content-Type": content_type} if isinstance(store, S3Store) else None
    try:
        await obstore.put_async(
            store,
            key,
            checked,
            attributes=attributes,
            chunk_size=PART_BYTES,
            max_concurrency=PART_CONCURRENCY,
        )
    except Exception as error:
        if checked.too_large:
            raise TooLarge(
                "PAYLOAD_TOO_LARGE", f"A recording may be at most {limit} bytes."
            ) from error
        raise
    previous = _stored_key(call)
    call.recording_key = key
    call.recording_url = recording_path(call)
    await call.save(update_fields=["recording_key", "recording_url"])
    if previous and previous != key:  # a recording in another format, now replaced
        await _delete_object(settings, previous)
    logger.info("call %s: recording stored (%d bytes, %s)", call.id, checked.size, content_type)
    return call.recording_url


@dataclass(frozen=True)
class StoredRecording:
    key: str
    size: int
    content_type: str


async def find_recording(settings: Settings, call: Call) -> StoredRecording:
    """The call's recording as stored; 404 `NO_RECORDING` when it has none."""
    key = _stored_key(call)
    if key is not None:
        try:
            meta = await obstore.head_async(recordings_store(settings), key)
        except FileNotFoundError:
            logger.warning("call %s: recording %s is missing from the store", call.id, key)
        else:
            extension = key.rsplit(".", 1)[-1]
            return StoredRecording(key, meta["size"], CONTENT_TYPES.get(extension, "audio/ogg"))
    raise NotFound("NO_RECORDING", "This call has no recording.")


async def read_recording(
    settings: Settings, recording: StoredRecording, start: int, end: int
) -> AsyncIterator[bytes]:
    """Bytes `start` to `end` (exclusive) of a recording, as a stream of chunks.

    The ranged get starts here, so a store error is raised before any byte is sent.
    """
    result = await obstore.get_async(
        recordings_store(settings), recording.key, options={"range": (start, end)}
    )

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in result.stream(min_chunk_size=READ_CHUNK_BYTES):
            yield bytes(chunk)

    return chunks()


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The byte range `[start, end)` a `Range` header asks of `size` bytes; None for all.

    One range of bytes is served (`a-b`, `a-`, `-n`); several ranges, or another unit, get the
    whole recording, as RFC 9110 allows. A malformed or unsatisfiable range is a 416.
    """
    if not header or not header.strip().startswith("bytes=") or "," in header:
        return None
    match = _RANGE.fullmatch(header.strip())
    start_text, end_text = match.groups() if match else ("", "")
    if start_text:
        start = int(start_text)
        end = min(int(end_text) + 1, size) if end_text else size
    elif end_text and int(end_text) > 0:
        start, end = max(size - int(end_text), 0), size
    else:
        start, end = 0, 0  # no numbers at all, or a suffix of zero bytes
    if start >= end or start >= size:
        raise RangeNotSatisfiable(
            "RANGE_NOT_SATISFIABLE",
            f"The requested range is not within the recording's {size} bytes.",
            size=size,
        )
    return start, end


async def _delete_object(settings: Settings, key: str) -> None:
    try:
        await obstore.delete_async(recordings_store(settings), key)
    except FileNotFoundError:
        pass


async def delete_recording(settings: Settings, call: Call) -> None:
    """Delete a call's recording from the store and clear its `recording_url`."""
    key = _stored_key(call)
    if key is not None:
        await _delete_object(settings, key)
    call.recording_key = None
    call.recording_url = None
    await call.save(update_fields=["recording_key", "recording_url"])


async def forget_workspace(settings: Settings, workspace_id: uuid.UUID) -> int:
    """Delete every recording a workspace has in the store (it is being deleted); how many."""
    store = recordings_store(settings)
    deleted = 0
    async for batch in obstore.list(store, prefix=f"{workspace_id}/"):
        paths = [meta["path"] for meta in batch]
        await obstore.delete_async(store, paths)
        deleted += len(paths)
    return deleted


async def expire_recordings(settings: Settings, now: datetime | None = None) -> int:
    """Delete the recordings of calls older than their workspace's retention; returns how many.

    A workspace without `recording_retention_days` keeps its recordings forever.
    """
    now = now or utcnow()
    expired = 0
    workspaces = await Workspace.filter(recording_retention_days__isnull=False)
    for workspace in workspaces:
        if workspace.recording_retention_days is None:  # the filter leaves none; narrows the type
            continue
        cutoff = now - timedelta(days=workspace.recording_retention_days)
        while True:
            calls = await Call.filter(
                workspace_id=workspace.id, recording_url__isnull=False, created_at__lt=cutoff
            ).limit(EXPIRY_BATCH)
            for call in calls:
                await delete_recording(settings, call)
            expired += len(calls)
            if len(calls) < EXPIRY_BATCH:
                break
    if expired:
        logger.info("deleted %d recordings past their workspace's retention", expired)
    return expired
