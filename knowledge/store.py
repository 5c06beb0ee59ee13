"""Chroma access: one client per process and one collection per agent."""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache
from typing import cast
from urllib.parse import urlsplit

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Embeddable, EmbeddingFunction
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError

from knowledge.config import KnowledgeSettings, get_knowledge_settings
from knowledge.embeddings import chroma_embedding_function
from knowledge.errors import KnowledgeError, StoreUnavailable

logger = logging.getLogger(__name__)

_CLIENT_LOCK = threading.Lock()

EMBEDDER_KEY = "voxline_embedder"
AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,60}$")


def collection_name(agent_id: str) -> str:
    """The name of an agent's collection (Chroma wants 3 to 512 safe characters)."""
    if not AGENT_ID.match(agent_id):
        raise ValueError(f"not a valid agent id for a collection name: {agent_id!r}")
    return f"agent-{agent_id}"


def get_client(settings: KnowledgeSettings | None = None) -> ClientAPI:
    """The Chroma client of this process: a server when ``chroma_url`` is set, else embedded."""
    settings = settings or get_knowledge_settings()
    # Chroma's client registry is not safe to populate from two threads at once (two uploads
    # ingesting in parallel); the first creation happens under this lock.
    with _CLIENT_LOCK:
        if settings.chroma_url:
            token = settings.chroma_token.get_secret_value() if settings.chroma_token else None
            return _http_client(settings.chroma_url, token)
        return _persistent_client(str(settings.chroma_path.resolve()))


def get_collection(
    agent_id: str, settings: KnowledgeSettings | None = None, *, create: bool
) -> Collection | None:
    """An agent's collection, with our embedding function attached.

    Args:
        agent_id: the agent's id.
        settings: the knowledge settings; the process settings when omitted.
        create: create the collection when it does not exist yet.

    Returns:
        The collection, or None when it does not exist and ``create`` is false.

    Raises:
        StoreUnavailable: Chroma cannot be reached.
        KnowledgeError: the collection was built with another embedding model.
    """
    settings = settings or get_knowledge_settings()
    client = get_client(settings)
    name = collection_name(agent_id)
    our_function = chroma_embedding_function(settings)
    embedder = our_function.embedder.name
    # Chroma's client hints want a function of documents *and* images, though Chroma documents
    # (and accepts) an `EmbeddingFunction[Documents]` such as ours for text collections.
    embedding_function = cast(EmbeddingFunction[Embeddable], our_function)
    try:
        if create:
            collection = client.get_or_create_collection(
                name,
                embedding_function=embedding_function,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={EMBEDDER_KEY: embedder},
            )
        else:
            collection = client.get_collection(name, embedding_function=embedding_function)
    except NotFoundError:
        return None
    except ValueError as e:
        if "does not exist" in str(e):
            return None
        if "embedding function" not in str(e).lower():
            raise
        collection = None
    except Exception as e:
        raise as_store_error(e) from e
    if collection is None or (collection.metadata or {}).get(EMBEDDER_KEY) != embedder:
        raise KnowledgeError(
            "this agent's files were indexed with another embedding model than the one "
            f"configured now ({embedder}); upload them again"
        )
    return collection


def delete_collection(agent_id: str, settings: KnowledgeSettings | None = None) -> None:
    """Drops an agent's collection; a missing one is not an error."""
    client = get_client(settings)
    try:
        client.delete_collection(collection_name(agent_id))
    except NotFoundError:
        pass
    except ValueError as e:
        if "does not exist" not in str(e):
            raise
    except Exception as e:
        raise as_store_error(e) from e


def as_store_error(error: Exception) -> Exception:
    """Turns a failure to reach Chroma into StoreUnavailable; leaves other errors as they are."""
    if isinstance(error, httpx.HTTPError | ConnectionError | TimeoutError) or (
        isinstance(error, ValueError) and "Could not connect" in str(error)
    ):
        return StoreUnavailable(f"the vector store is unreachable: {_first_line(error)}")
    return error


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def _chroma_settings() -> ChromaSettings:
    # Chroma's telemetry would try to reach the internet; this platform must run offline.
    return ChromaSettings(anonymized_telemetry=False)


@lru_cache(maxsize=4)
def _persistent_client(path: str) -> ClientAPI:
    logger.info("using the embedded Chroma database under %s", path)
    return chromadb.PersistentClient(path=path, settings=_chroma_settings())


@lru_cache(maxsize=4)
def _http_client(url: str, token: str | None) -> ClientAPI:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KnowledgeError(f"VOXLINE_CHROMA_URL is not an http(s) URL: {url}")
    ssl = parts.scheme == "https"
    port = parts.port or (443 if ssl else 8000)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    logger.info("using the Chroma server at %s://%s:%s", parts.scheme, parts.hostname, port)
    try:
        return chromadb.HttpClient(
            host=parts.hostname, port=port, ssl=ssl, headers=headers, settings=_chroma_settings()
        )
    except Exception as e:
        raise as_store_error(e) from e
