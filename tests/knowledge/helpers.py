"""Helpers of the knowledge tests: reading Chroma directly, finding a free port."""

from __future__ import annotations

import socket
from pathlib import Path

from knowledge import KnowledgeSettings
from knowledge.store import get_collection

DATA_DIR = Path(__file__).parent / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stored_chunks(agent_id: str, settings: KnowledgeSettings) -> list[dict]:
    """Every chunk in an agent's collection, read straight from Chroma."""
    collection = get_collection(agent_id, settings, create=False)
    if collection is None:
        return []
    result = collection.get(include=["metadatas", "documents"])
    return [
        {**metadata, "text": text}
        for metadata, text in zip(result["metadatas"], result["documents"], strict=True)
    ]
