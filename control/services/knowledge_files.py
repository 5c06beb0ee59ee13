"""Knowledge files of agents: storing uploads, background ingestion, status, deletion, queries."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

import knowledge
from control import jobs
from control.config import Settings
from control.errors import Conflict, Invalid, NotFound, TooLarge, Unavailable
from control.models import Agent, FileStatus, KnowledgeFile
from knowledge.config import get_knowledge_settings
from knowledge.errors import IngestError, KnowledgeError, UploadRejected, UploadTooLarge
from knowledge.uploads import CheckedUpload, check_uploads

logger = logging.getLogger(__name__)


def _agent_dir(settings: Settings, agent_id: uuid.UUID) -> Path:
    # Stored under the row ids only: a client's file name never reaches a filesystem path.
    return settings.data_dir / "knowledge" / str(agent_id)


def _blob_path(settings: Settings, file: KnowledgeFile) -> Path:
    return _agent_dir(settings, file.agent_id) / f"{file.id}.bin"


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


async def store_uploads(
    settings: Settings, workspace_id: uuid.UUID, agent: Agent, uploads: list[Upload]
) -> list[KnowledgeFile]:
    """Check every file, then store them and queue their ingestion; all or nothing."""
    if not uploads:
        raise Invalid("NO_FILES", "Send one or more files as multipart form fields `files`.")
    try:
        checked = check_uploads([(upload.filename, upload.data) for upload in uploads])
    except UploadTooLarge as error:
        raise TooLarge("UPLOAD_TOO_LARGE", error.reason) from error
    except UploadRejected as error:
        raise Invalid("UPLOAD_REJECTED", error.reason) from error
    names = [item.safe_name for item in checked]
    if len(set(names)) != len(names):
        raise Invalid("DUPLICATE_FILE_NAMES", "Two of the files have the same name.")
    await _check_workspace_room(workspace_id, agent.id, checked)

    directory = _agent_dir(settings, agent.id)
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    stored: list[KnowledgeFile] = []
    for item, upload in zip(checked, uploads, strict=True):
        file = await KnowledgeFile.get_or_none(agent_id=agent.id, filename=item.safe_name)
        if file is None:
            file = KnowledgeFile(
                id=uuid.uuid4(),
                workspace_id=workspace_id,
                agent_id=agent.id,
                filename=item.safe_name,
                version=0,
            )
        file.kind, file.size_bytes = item.kind, item.size
        file.status, file.error, file.chunk_count, file.page_count = (
            FileStatus.PROCESSING,
            None,
            0,
            item.pages,  # counted already, so the workspace's page limit sees it at once
        )
        file.version += 1
        await asyncio.to_thread(_blob_path(settings, file).write_bytes, upload.data)
        await file.save()
        stored.append(file)
    for file in stored:
        await _queue_ingestion(file)
    return stored


async def _workspace_totals(
    workspace_id: uuid.UUID, *, excluding: Q | None = None
) -> tuple[int, int]:
    """Pages and chunks the workspace's knowledge files hold (less the files `excluding` picks)."""
    files = KnowledgeFile.filter(workspace_id=workspace_id).exclude(status=FileStatus.FAILED)
    if excluding is not None:
        files = files.exclude(excluding)
    rows = await files.values_list("page_count", "chunk_count")
    return sum(pages or 0 for pages, _ in rows), sum(chunks or 0 for _, chunks in rows)


async def _check_workspace_room(
    workspace_id: uuid.UUID, agent_id: uuid.UUID, checked: list[CheckedUpload]
) -> None:
    """Refuse (413) an upload the workspace's page or chunk limits leave no room for."""
    limits = get_knowledge_settings()
    replaced = Q(agent_id=agent_id, filename__in=[item.safe_name for item in checked])
    pages, chunks = await _workspace_totals(workspace_id, excluding=replaced)
    new_pages = sum(item.pages or 0 for item in checked)
    if pages + new_pages > limits.max_workspace_pages:
        raise TooLarge(
            "UPLOAD_TOO_LARGE",
            f"The workspace's knowledge holds {pages} PDF pages; {new_pages} more would pass "
            f"its limit of {limits.max_workspace_pages}. Delete files to make room.",
        )
    if chunks >= limits.max_workspace_chunks:
        raise TooLarge(
            "UPLOAD_TOO_LARGE",
            f"The workspace's knowledge is full ({chunks} of {limits.max_workspace_chunks} "
            "chunks). Delete files to make room.",
        )


async def _queue_ingestion(file: KnowledgeFile) -> None:
    await jobs.enqueue(
        "ingest_file",
        {"file_id": str(file.id), "version": file.version},
        key=f"ingest:{file.id}:{file.version}",
    )


async def ingest_file(settings: Settings, file_id: uuid.UUID, version: int) -> None:
    """Load, chunk, embed and index one stored file, then record how it went."""
    file = await KnowledgeFile.get_or_none(id=file_id)
    if file is None or file.version != version:
        return  # deleted or replaced since it was queued; the newer upload has its own task
    try:
        data = await asyncio.to_thread(_blob_path(settings, file).read_bytes)
        _, chunks_elsewhere = await _workspace_totals(file.workspace_id, excluding=Q(id=file.id))
        room = get_knowledge_settings().max_workspace_chunks - chunks_elsewhere
        result = await knowledge.ingest(
            str(file.agent_id), file.filename, file.kind, data, max_chunks=room
        )
    except (IngestError, KnowledgeError) as error:
        await _finish(file_id, version, FileStatus.FAILED, error=error.reason)
        logger.info("knowledge file %s failed: %s", file_id, error.reason)
        return
    except Exception:
        logger.exception("ingesting knowledge file %s crashed", file_id)
        await _finish(file_id, version, FileStatus.FAILED, error="internal error while indexing")
        return
    await _finish(
        file_id, version, FileStatus.READY, chunk_count=result.chunks, page_count=result.pages
    )


async def _finish(file_id: uuid.UUID, version: int, status: FileStatus, **fields) -> None:
    # Only the newest upload of a file may set its status.
    await KnowledgeFile.filter(id=file_id, version=version).update(status=status, **fields)


def files_of(workspace_id: uuid.UUID, agent_id: uuid.UUID) -> QuerySet[KnowledgeFile]:
    return KnowledgeFile.filter(workspace_id=workspace_id, agent_id=agent_id).order_by("filename")


async def delete_file(
    settings: Settings, workspace_id: uuid.UUID, agent_id: uuid.UUID, filename: str
) -> None:
    file = await KnowledgeFile.get_or_none(
        workspace_id=workspace_id, agent_id=agent_id, filename=filename
    )
    if file is None:
        raise NotFound("FILE_NOT_FOUND", f"The agent has no file named {filename!r}.")
    await file.delete()
    await knowledge.delete_file(str(agent_id), filename)
    await asyncio.to_thread(_blob_path(settings, file).unlink, missing_ok=True)


async def forget_agent(settings: Settings, agent_id: uuid.UUID) -> None:
    """Drop every chunk and stored file of an agent (before the agent row goes)."""
    await knowledge.delete_agent(str(agent_id))
    await asyncio.to_thread(shutil.rmtree, _agent_dir(settings, agent_id), ignore_errors=True)


async def query(
    workspace_id: uuid.UUID, agent_id: uuid.UUID, text: str, top_k: int
) -> list[knowledge.Passage]:
    """The best passages for `text`, through the one retrieval function the runtime uses too."""
    ready = await KnowledgeFile.filter(
        workspace_id=workspace_id, agent_id=agent_id, status=FileStatus.READY
    ).exists()
    if not ready:
        raise Conflict(
            "KNOWLEDGE_NOT_READY",
            "No knowledge file of this agent is ready yet; upload one and wait for status ready.",
        )
    try:
        return await knowledge.retrieve(str(agent_id), text, top_k)
    except KnowledgeError as error:
        raise Unavailable("KNOWLEDGE_UNAVAILABLE", error.reason) from error
