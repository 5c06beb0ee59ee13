"""Helpers of the knowledge tests: reading Chroma directly."""

from __future__ import annotations

from pathlib import Path

from knowledge import KnowledgeSettings
from knowledge.store import get_collection

DATA_DIR = Path(__file__).parent / "data"


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
