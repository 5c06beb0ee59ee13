"""Ingestion, retrieval and deletion of an agent's knowledge, as async functions."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass

from knowledge.chunking import Chunk, chunk_sections
from knowledge.config import KnowledgeSettings, get_knowledge_settings
from knowledge.errors import IngestError, KnowledgeError
from knowledge.loaders import load
from knowledge.store import as_store_error, delete_collection, get_collection

logger = logging.getLogger(__name__)

MAX_TOP_K = 50
UPSERT_BATCH = 256


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What ingesting one file produced."""

    chunks: int
    pages: int | None


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk; ``score`` is cosine similarity, higher is better."""

    file_name: str
    position: int
    page: int | None
    score: float
    text: str


async def ingest(
    agent_id: str,
    filename: str,
    kind: str,
    data: bytes,
    *,
    max_chunks: int | None = None,
    settings: KnowledgeSettings | None = None,
) -> IngestResult:
    """Loads, chunks, embeds and stores a file, replacing any earlier file of the same name.

    Args:
        agent_id: the agent whose knowledge base receives the file.
        filename: the sanitised name (``CheckedUpload.safe_name``).
        kind: the kind ``check_upload`` told from the content.
        data: the file's bytes.
        max_chunks: the room left in the caller's budget (a workspace's), below the limit per
            file; a file over either is refused before anything is embedded.
        settings: the knowledge settings; the process settings when omitted.

    Returns:
        How many chunks were stored, and the page count for PDFs.

    Raises:
        IngestError: the file could not be ingested; none of its chunks are left behind.
    """
    return await asyncio.to_thread(
        ingest_sync, agent_id, filename, kind, data, settings, max_chunks
    )


async def retrieve(
    agent_id: str,
    query: str,
    top_k: int = 5,
    *,
    settings: KnowledgeSettings | None = None,
) -> list[Passage]:
    """The passages of an agent's files that best answer a query, best first.

    This is the one retrieval function: the API's query route, chats and the voice runtime
    all call it.

    Args:
        agent_id: the agent whose knowledge is searched.
        query: the question, in natural language.
        top_k: how many passages to return, from 1 to 50.
        settings: the knowledge settings; the process settings when omitted.

    Returns:
        Up to ``top_k`` passages; an empty list when the agent has no chunks yet.

    Raises:
        ValueError: ``top_k`` is out of range.
        StoreUnavailable: Chroma or the embedding service cannot be reached.
    """
    return await asyncio.to_thread(retrieve_sync, agent_id, query, top_k, settings)


async def delete_file(
    agent_id: str, filename: str, *, settings: KnowledgeSettings | None = None
) -> None:
    """Deletes every chunk of one file; a file with no chunks is not an error."""
    await asyncio.to_thread(delete_file_sync, agent_id, filename, settings)


async def delete_agent(agent_id: str, *, settings: KnowledgeSettings | None = None) -> None:
    """Drops an agent's whole collection; a missing collection is not an error."""
    await asyncio.to_thread(delete_collection, agent_id, settings)


# Two uploads of the same name must not interleave their delete and upsert steps.
_file_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_file_locks_guard = threading.Lock()


def _file_lock(agent_id: str, filename: str) -> threading.Lock:
    with _file_locks_guard:
        return _file_locks[(agent_id, filename)]


def ingest_sync(
    agent_id: str,
    filename: str,
    kind: str,
    data: bytes,
    settings: KnowledgeSettings | None = None,
    max_chunks: int | None = None,
) -> IngestResult:
    """Blocking body of :func:`ingest`."""
    settings = settings or get_knowledge_settings()
    with _file_lock(agent_id, filename):
        try:
            collection = get_collection(agent_id, settings, create=True)
            if collection is None:  # get-or-create never finds the collection missing
                raise RuntimeError(f"Chroma created no collection for agent {agent_id}")
            collection.delete(where={"file_name": filename})
            sections = load(kind, data, max_pages=settings.max_pdf_pages)
            chunks = chunk_sections(filename, sections, settings.chunk_size, settings.chunk_overlap)
            if not chunks:
                raise IngestError("the file holds no text")
            _check_chunk_count(len(chunks), settings.max_file_chunks, max_chunks)
            for start in range(0, len(chunks), UPSERT_BATCH):
                batch = chunks[start : start + UPSERT_BATCH]
                collection.upsert(
                    ids=[_chunk_id(chunk) for chunk in batch],
                    documents=[chunk.text for chunk in batch],
                    metadatas=[_metadata(chunk) for chunk in batch],
                )
        except Exception as e:
            _remove_partial(agent_id, filename, settings)
            if isinstance(e, IngestError):
                logger.info("ingesting %s for agent %s failed: %s", filename, agent_id, e.reason)
                raise
            error = as_store_error(e)
            if isinstance(error, KnowledgeError):
                logger.warning(
                    "ingesting %s for agent %s failed: %s", filename, agent_id, error.reason
                )
                raise IngestError(error.reason, retryable=error.retryable) from e
            logger.exception("ingesting %s for agent %s failed", filename, agent_id)
            raise IngestError("the file could not be indexed (internal error)") from e
    pages = len(sections) if kind == "pdf" else None
    logger.info("ingested %s for agent %s: %d chunks", filename, agent_id, len(chunks))
    return IngestResult(chunks=len(chunks), pages=pages)


def retrieve_sync(
    agent_id: str, query: str, top_k: int = 5, settings: KnowledgeSettings | None = None
) -> list[Passage]:
    """Blocking body of :func:`retrieve`."""
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}")
    if not query.strip():
        return []
    collection = get_collection(agent_id, settings, create=False)
    if collection is None:
        return []
    try:
        # Chroma returns fewer results when the collection holds fewer than top_k chunks.
        result = collection.query(
            query_texts=[query],
            n_results=top_k,
            include=["documents", "metadatas", "distances"],
        )
    except Exception as e:
        raise as_store_error(e) from e
    documents, metadatas, distances = result["documents"], result["metadatas"], result["distances"]
    if documents is None or metadatas is None or distances is None:  # all asked for in `include`
        raise RuntimeError("Chroma's query result lacks the fields it was asked to include")
    passages = []
    for text, metadata, distance in zip(documents[0], metadatas[0], distances[0], strict=True):
        page = metadata.get("page")
        passages.append(
            Passage(
                file_name=str(metadata["file_name"]),
                position=_metadata_int(metadata["position"]),
                page=_metadata_int(page) if page is not None else None,
                score=round(1.0 - float(distance), 4),
                text=text,
            )
        )
    return passages


def delete_file_sync(
    agent_id: str, filename: str, settings: KnowledgeSettings | None = None
) -> None:
    """Blocking body of :func:`delete_file`."""
    with _file_lock(agent_id, filename):
        collection = get_collection(agent_id, settings, create=False)
        if collection is None:
            return
        try:
            collection.delete(where={"file_name": filename})
        except Exception as e:
            raise as_store_error(e) from e


def _remove_partial(agent_id: str, filename: str, settings: KnowledgeSettings) -> None:
    try:
        collection = get_collection(agent_id, settings, create=False)
        if collection is not None:
            collection.delete(where={"file_name": filename})
    except Exception:
        # The store is failing; the caller reports the original error. Chunk ids are
        # per file and position, so a later upload of this name overwrites any leftovers.
        logger.exception("could not remove the chunks of %s for agent %s", filename, agent_id)


def _check_chunk_count(chunks: int, per_file: int, room: int | None) -> None:
    if chunks > per_file:
        raise IngestError(
            f"the file makes {chunks} chunks, over the limit of {per_file} per file; "
            "split it into smaller files"
        )
    if room is not None and chunks > room:
        raise IngestError(
            f"the file makes {chunks} chunks, but the workspace's knowledge has room for "
            f"only {max(room, 0)} more; delete files to make room"
        )


def _chunk_id(chunk: Chunk) -> str:
    file_key = hashlib.sha256(chunk.file_name.encode()).hexdigest()[:24]
    return f"{file_key}-{chunk.position:06d}"


def _metadata(chunk: Chunk) -> dict[str, str | int]:
    metadata: dict[str, str | int] = {"file_name": chunk.file_name, "position": chunk.position}
    if chunk.page is not None:
        metadata["page"] = chunk.page
    return metadata


def _metadata_int(value: object) -> int:
    """A number that `_metadata` wrote, read back (Chroma's values may also be lists)."""
    if not isinstance(value, str | int | float):
        raise TypeError(f"a chunk's metadata holds {value!r} where a number belongs")
    return int(value)
