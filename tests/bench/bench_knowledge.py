"""Knowledge benchmark: ingestion of a 200-page PDF, and query latency over 10,000 chunks.

Run by hand from the repository root: ``python tests/bench/bench_knowledge.py``.
It prints its figures and asserts nothing. Targets: ingestion under 30 s, query p95 under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from knowledge import KnowledgeSettings, ingest, retrieve  # noqa: E402
from knowledge.chunking import chunk_sections  # noqa: E402
from knowledge.embeddings import get_embedder  # noqa: E402
from knowledge.loaders import load  # noqa: E402
from knowledge.store import get_collection  # noqa: E402
from tests.bench.samples import positive, require  # noqa: E402
from tests.knowledge.pdfgen import make_pdf  # noqa: E402

logger = logging.getLogger(__name__)

PAGES = 200
LINES_PER_PAGE = 36
TARGET_CHUNKS = 10_000
QUERIES = 200
QUESTIONS = REPO / "tests/knowledge/data/labelled/questions.json"

SUBJECTS = [
    "The purifier", "Each filter", "The warranty", "Our support team", "The mobile app",
    "A replacement unit", "The return label", "The particle sensor", "Express delivery",
    "The subscription", "The showroom", "The firmware update", "The night mode", "An invoice",
]  # fmt: skip
VERBS = [
    "covers", "requires", "includes", "reduces", "protects", "records", "schedules", "reports",
    "replaces", "ships with", "depends on", "is checked against", "is described in",
]  # fmt: skip
OBJECTS = [
    "the serial number printed under the filter door", "rooms of up to forty square metres",
    "a two-year limited warranty", "the carbon layer and the HEPA layer",
    "a prepaid return label sent by email", "the hours the fan has run", "a refund in five days",
    "the status ring on the front panel", "orders placed before two in the afternoon",
    "the customs form for Canadian returns", "a factory reset of the Wi-Fi settings",
    "the energy used in sleep mode", "deliveries to Alaska and Hawaii", "the child lock",
]  # fmt: skip
QUALIFIERS = [
    "in most homes", "unless the unit was dropped", "during the first year",
    "after the inspection", "on business days only", "as the manual explains",
    "when the light blinks red", "for every registered customer", "without extra cost",
]  # fmt: skip


def prose_pages(pages: int, seed: int = 7) -> list[list[str]]:
    """Pages of varied, manual-like prose wrapped at about 75 characters a line."""
    rng = random.Random(seed)
    result = []
    for page in range(1, pages + 1):
        words: list[str] = [f"Section {page}."]
        while sum(len(w) + 1 for w in words) < LINES_PER_PAGE * 72:
            sentence = (
                f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
                f"{rng.choice(QUALIFIERS)}, reference {rng.randint(100, 9999)}."
            )
            words.extend(sentence.split())
        lines, line = [], ""
        for word in words:
            if len(line) + len(word) + 1 > 75:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
        result.append(lines[:LINES_PER_PAGE])
    return result


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def bench_ingestion(settings: KnowledgeSettings, pdf: bytes) -> str:
    t0 = time.perf_counter()
    sections = load("pdf", pdf)
    t1 = time.perf_counter()
    chunks = chunk_sections("manual.pdf", sections, settings.chunk_size, settings.chunk_overlap)
    t2 = time.perf_counter()
    print(
        f"  extract {t1 - t0:.2f} s, chunk {t2 - t1:.2f} s: {len(chunks)} chunks of "
        f"<= {settings.chunk_size} chars, {sum(len(s.text) for s in sections) / len(sections):.0f}"
        " chars a page"
    )
    rss_before = rss_mib()
    start, cpu_start = time.perf_counter(), time.process_time()
    result = await ingest("bench-ingest", "manual.pdf", "pdf", pdf, settings=settings)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    print(
        f"  ingest (load + chunk + embed + upsert): {seconds:.2f} s for {result.pages} pages "
        f"= {result.pages / seconds:.1f} pages/s, {result.chunks} chunks "
        f"({result.chunks / seconds:.0f} chunks/s); CPU time {cpu_seconds:.1f} s"
    )
    print(f"  peak RSS {rss_mib():.0f} MiB (was {rss_before:.0f} MiB with the model loaded)")
    return "bench-ingest"


async def fill_collection(
    settings: KnowledgeSettings, source_agent: str, agent_id: str, embed_all: bool, chunks: int
) -> None:
    """Puts `chunks` chunks (TARGET_CHUNKS by default) in one collection.

    By default the PDF's real chunk vectors are reused, and the rest are copies of them with
    small noise (embedding 10,000 chunks takes minutes on two shared cores and says nothing
    about query latency). ``--embed-all`` embeds 10,000 distinct texts instead.
    """
    target = get_collection(agent_id, settings, create=True)
    source = get_collection(source_agent, settings, create=False)
    stored = source.get(include=["embeddings", "documents"])
    vectors = [list(map(float, v)) for v in stored["embeddings"]]
    documents = stored["documents"]
    rng = random.Random(11)
    start = time.perf_counter()
    batch_ids, batch_docs, batch_vectors, batch_meta = [], [], [], []
    for position in range(chunks):
        index = position % len(documents)
        text = documents[index]
        if embed_all or position < len(documents):
            vector = vectors[index]
        else:
            noisy = [x + rng.gauss(0, 0.02) for x in vectors[index]]
            norm = sum(x * x for x in noisy) ** 0.5
            vector = [x / norm for x in noisy]
        if embed_all and position >= len(documents):
            text = f"{text} (copy {position})"
            vector = None
        batch_ids.append(f"bench-{position:06d}")
        batch_docs.append(text)
        batch_vectors.append(vector)
        batch_meta.append({"file_name": f"file-{position // 500}.pdf", "position": position})
        if len(batch_ids) == 500 or position == chunks - 1:
            if embed_all:
                target.upsert(ids=batch_ids, documents=batch_docs, metadatas=batch_meta)
            else:
                target.upsert(
                    ids=batch_ids,
                    documents=batch_docs,
                    embeddings=batch_vectors,
                    metadatas=batch_meta,
                )
            batch_ids, batch_docs, batch_vectors, batch_meta = [], [], [], []
    print(
        f"  filled {target.count()} chunks in {time.perf_counter() - start:.1f} s "
        f"({'all embedded' if embed_all else f'{len(documents)} embedded, rest perturbed copies'})"
    )


async def bench_queries(
    settings: KnowledgeSettings, agent_id: str, chunks: int, queries: int
) -> None:
    questions = [q["question"] for q in json.loads(QUESTIONS.read_text())]
    embedder = get_embedder(settings)
    for question in questions[:5]:  # warm-up
        await retrieve(agent_id, question, top_k=5, settings=settings)
    total, embed_only = [], []
    for i in range(queries):
        question = questions[i % len(questions)]
        start = time.perf_counter()
        passages = await retrieve(agent_id, question, top_k=5, settings=settings)
        total.append((time.perf_counter() - start) * 1000)
        assert len(passages) == 5
        start = time.perf_counter()
        embedder.embed_query(question)
        embed_only.append((time.perf_counter() - start) * 1000)
    require(total, "retrieve(top_k=5)")
    print(
        f"  retrieve(top_k=5) over {chunks} chunks, {queries} queries: "
        f"p50 {statistics.median(total):.1f} ms, p95 {percentile(total, 0.95):.1f} ms, "
        f"max {max(total):.1f} ms"
    )
    print(
        f"  of which query embedding: p50 {statistics.median(embed_only):.1f} ms, "
        f"p95 {percentile(embed_only, 0.95):.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embed-all", action="store_true", help="embed all 10,000 chunks")
    parser.add_argument("--chroma-url", help="benchmark a Chroma server instead of embedded")
    parser.add_argument("--pages", type=positive, default=PAGES, help="pages of the PDF")
    parser.add_argument("--chunks", type=positive, default=TARGET_CHUNKS, help="chunks queried")
    parser.add_argument("--queries", type=positive, default=QUERIES, help="queries timed")
    parser.add_argument("--ingest-only", action="store_true", help="skip the query benchmark")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="voxline-bench-") as data_dir:
        settings = KnowledgeSettings(data_dir=Path(data_dir), chroma_url=args.chroma_url)
        mode = args.chroma_url or "embedded Chroma"
        print(f"knowledge benchmark ({mode}, embeddings: {get_embedder(settings).name})")
        print(
            f"  machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
            "(other work slows every figure below)"
        )
        start = time.perf_counter()
        get_embedder(settings).embed_query("warm up the model")
        print(f"  model load {time.perf_counter() - start:.2f} s, RSS {rss_mib():.0f} MiB")

        pdf = make_pdf(prose_pages(args.pages))
        print(f"ingestion: a {args.pages}-page text PDF of {len(pdf) / 1024:.0f} KiB")
        source = await bench_ingestion(settings, pdf)
        if args.ingest_only:
            return

        print(f"queries: one collection of {args.chunks} chunks")
        await fill_collection(settings, source, "bench-query", args.embed_all, args.chunks)
        await bench_queries(settings, "bench-query", args.chunks, args.queries)
        print(f"peak RSS of the whole run: {rss_mib():.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
