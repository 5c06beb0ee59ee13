"""Answering from the agent's knowledge for LLMs too small to use it (the local models).

Measured on the demo agent (`tests/bench/eval_local_llm.py`): given the retrieved passages, the
small local LLMs still invent prices and hours, and asked to pick the right sentence out of
them (grammar-constrained) they pick no better than chance. The knowledge's own embedding
model picks it well. So, per turn: the retrieved passages are cut into sentences, each ranked
against the caller's message with the embedding model; when the best one matches closely, it
is the answer, word for word as the knowledge has it. Otherwise the turn goes to the LLM (a
greeting, a goodbye, small talk, a question the knowledge does not answer).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: The cosine similarity (all-MiniLM-L6-v2) from which a sentence is taken as the answer. On the
#: evaluation set, answering questions score 0.32-0.86 and goodbyes and unknown questions 0-0.19.
ANSWER_SCORE = 0.3

#: An embedding: a list of floats or a one-dimensional numpy array (what the embedders return).
Vector = Collection[float]
Embed = Callable[[str, list[str]], tuple[Vector, Collection[Vector]]]

_HEADING = re.compile(r"^\s*#+\s*(.*?)\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Fact:
    """A sentence of a passage, with the heading it sits under (context for ranking)."""

    sentence: str
    heading: str = ""

    @property
    def ranked_text(self) -> str:
        return f"{self.heading}: {self.sentence}" if self.heading else self.sentence


def _paragraphs(text: str) -> list[tuple[str, str]]:
    """(heading, paragraph text) pairs of a markdown-ish passage."""
    found: list[tuple[str, str]] = []
    heading = ""
    lines: list[str] = []
    for line in [*text.splitlines(), ""]:
        match = _HEADING.match(line)
        if (match or not line.strip()) and lines:
            found.append((heading, " ".join(" ".join(lines).split())))
            lines = []
        if match:
            heading = match.group(1)
        elif line.strip():
            lines.append(line.strip())
    return found


def passage_facts(passages: Sequence[dict[str, Any]]) -> list[Fact]:
    """The whole sentences of the passages, in order, without repeats (chunks overlap)."""
    facts: list[Fact] = []
    seen: set[str] = set()
    for passage in passages:
        for heading, paragraph in _paragraphs(str(passage.get("text") or "")):
            for sentence in _SENTENCE_END.split(paragraph):
                # a chunk may start or end mid-sentence: keep only whole sentences
                if sentence[-1:] in ".!?" and sentence[:1].isupper() and sentence not in seen:
                    seen.add(sentence)
                    facts.append(Fact(sentence, heading))
    return facts


def _default_embed(question: str, texts: list[str]) -> tuple[Vector, Collection[Vector]]:
    from knowledge import get_knowledge_settings
    from knowledge.embeddings import get_embedder

    embedder = get_embedder(get_knowledge_settings())
    return embedder.embed_query(question), embedder.embed_documents(texts)


def _cosine(a: Vector, b: Vector) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


async def best_fact(
    question: str, passages: Sequence[dict[str, Any]], embed: Embed | None = None
) -> tuple[Fact, float] | None:
    """The sentence of the passages that best answers `question`, with its score."""
    facts = passage_facts(passages)
    if not facts or not question.strip():
        return None
    query, vectors = await asyncio.to_thread(
        embed or _default_embed, question, [fact.ranked_text for fact in facts]
    )
    scored = [(_cosine(query, vector), fact) for fact, vector in zip(facts, vectors, strict=True)]
    score, fact = max(scored, key=lambda pair: pair[0])
    return fact, score
