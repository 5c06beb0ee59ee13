"""What makes an offline call answer fast: warm models, the reply's first clause spoken at once,
and the reply prepared (text and audio) from the final transcript before the turn ends.

Each is measured alone by `tests/bench/bench_offline_call.py` (its switches turn them off);
the figures are in the README's model table.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, TypeVar

from livekit.agents import FlushSentinel

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Speak a reply's first clause as soon as it exists (a flush to the TTS after it). On by
#: default; `bench_offline_call.py --whole-sentences` turns it off to measure it.
FIRST_CLAUSE = True
#: A clause shorter than this many words is not sent alone (it would sound clipped).
MIN_CLAUSE_WORDS = 3
_CLAUSE_END = re.compile(r"[,;:!?.](?=\s)|\s[-\u2013\u2014](?=\s)")


def first_clause(text: str) -> tuple[str, str]:
    """`text` cut after its first clause of at least `MIN_CLAUSE_WORDS` words: (head, rest);
    rest is "" when there is no such cut."""
    for match in _CLAUSE_END.finditer(text):
        head = text[: match.end()]
        if len(head.split()) >= MIN_CLAUSE_WORDS:
            return head, text[match.end() :]
    return text, ""


def spoken_in_clauses(text: str) -> list[str | FlushSentinel]:
    """A fixed reply as the LLM node yields it: its first clause, a flush, then the rest."""
    head, rest = first_clause(text) if FIRST_CLAUSE else (text, "")
    return [head, FlushSentinel(), rest] if rest else [text]


async def flush_after_first_clause(chunks: AsyncIterable[T]) -> AsyncIterator[T | FlushSentinel]:
    """An LLM's streamed reply, with a flush once its first clause is complete."""
    text = ""
    flushed = not FIRST_CLAUSE
    async for chunk in chunks:
        yield chunk
        if flushed:
            continue
        delta = getattr(getattr(chunk, "delta", None), "content", None)
        text += chunk if isinstance(chunk, str) else (delta or "")
        if first_clause(text)[1] or re.search(r"[,;:!?.]\s*$", text) and len(text.split()) >= 3:
            flushed = True
            yield FlushSentinel()


async def warm_models(pipeline: Any) -> float:
    """Run each local model of `pipeline` once, so the first turn does not pay for loading and
    first-inference set-up (whisper's, Piper's and llama.cpp's). Returns the seconds taken."""
    started = time.perf_counter()
    await asyncio.gather(
        *(
            asyncio.to_thread(warm)
            for model in (pipeline.stt, pipeline.tts, pipeline.llm)
            if model is not None and (warm := getattr(model, "warm_up", None)) is not None
        )
    )
    seconds = time.perf_counter() - started
    logger.info("local models warmed in %.2f s", seconds)
    return seconds
