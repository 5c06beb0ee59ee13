"""Retrieval quality of the default embedding, measured on a labelled set of questions."""

from __future__ import annotations

import json
import re

from knowledge import KnowledgeSettings, check_upload, ingest, retrieve
from tests.knowledge.helpers import DATA_DIR

LABELLED = DATA_DIR / "labelled"
MIN_RECALL_AT_3 = 0.85


def _normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text)


async def test_recall_at_3_of_the_default_embedding(
    embedded_settings: KnowledgeSettings, agent_id: str
) -> None:
    """Every question is labelled with the fact that answers it; a hit is a top-3 passage
    that contains the fact."""
    questions = json.loads((LABELLED / "questions.json").read_text())
    documents = sorted(path for path in LABELLED.iterdir() if path.suffix != ".json")
    assert len(documents) >= 4 and len(questions) >= 30
    for path in documents:
        upload = check_upload(path.name, path.read_bytes(), embedded_settings)
        await ingest(
            agent_id, upload.safe_name, upload.kind, path.read_bytes(), settings=embedded_settings
        )

    misses = []
    for question in questions:
        passages = await retrieve(
            agent_id, question["question"], top_k=3, settings=embedded_settings
        )
        if not any(fact in _normalized(p.text) for p in passages for fact in question["facts"]):
            misses.append(question["question"])

    recall = 1 - len(misses) / len(questions)
    print(f"\nrecall@3 = {recall:.3f} over {len(questions)} questions; missed: {misses}")
    assert recall >= MIN_RECALL_AT_3, misses
