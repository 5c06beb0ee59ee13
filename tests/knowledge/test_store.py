"""Ingestion, replacement, retrieval and deletion against embedded Chroma and a Chroma server."""

from __future__ import annotations

import asyncio

import pytest

from knowledge import (
    IngestError,
    KnowledgeSettings,
    delete_agent,
    delete_file,
    ingest,
    retrieve,
)
from knowledge.store import get_client
from tests.conftest import free_port
from tests.knowledge.builders import make_docx
from tests.knowledge.helpers import stored_chunks
from tests.knowledge.pdfgen import make_pdf

HOURS = (
    b"# Opening hours\n\nThe showroom opens at 10 am from Tuesday to Saturday.\n\n"
    b"# Parking\n\nFree parking is available in the garage behind the building."
)
REFUNDS = b"Refunds reach your card within five to seven business days after inspection."


def manual_pdf() -> bytes:
    return make_pdf(
        [
            ["Chapter 1. Installation", "Mount the bracket on a solid wall with four screws."],
            ["Chapter 2. Cleaning", "Wipe the sensor window with a dry cotton swab monthly."],
        ]
    )


async def test_ingest_then_retrieve_returns_the_answering_passage(
    settings: KnowledgeSettings, agent_id: str
) -> None:
    result = await ingest(agent_id, "manual.pdf", "pdf", manual_pdf(), settings=settings)
    await ingest(agent_id, "hours.md", "md", HOURS, settings=settings)

    passages = await retrieve(agent_id, "How do I clean the sensor?", top_k=2, settings=settings)

    assert result.chunks == 2
    assert result.pages == 2
    assert len(passages) == 2
    best = passages[0]
    assert (best.file_name, best.page, best.position) == ("manual.pdf", 2, 1)
    assert "cotton swab" in best.text
    assert passages[0].score >= passages[1].score
    assert 0 < best.score <= 1


async def test_chunks_carry_file_position_and_page(
    settings: KnowledgeSettings, agent_id: str
) -> None:
    await ingest(agent_id, "manual.pdf", "pdf", manual_pdf(), settings=settings)
    await ingest(agent_id, "hours.md", "md", HOURS, settings=settings)

    chunks = stored_chunks(agent_id, settings)

    summary = sorted((c["file_name"], c["position"], c.get("page")) for c in chunks)
    assert summary == [("hours.md", 0, None), ("manual.pdf", 0, 1), ("manual.pdf", 1, 2)]


async def test_replacing_a_file_leaves_only_the_new_chunks(
    settings: KnowledgeSettings, agent_id: str
) -> None:
    old = make_docx([f"Old paragraph {i} about the legacy return policy." for i in range(60)])
    new = make_docx(["The new policy: returns are accepted within 45 days."])
    first = await ingest(agent_id, "policy.docx", "docx", old, settings=settings)
    await ingest(agent_id, "hours.md", "md", HOURS, settings=settings)

    second = await ingest(agent_id, "policy.docx", "docx", new, settings=settings)

    policy_chunks = [
        c for c in stored_chunks(agent_id, settings) if c["file_name"] == "policy.docx"
    ]
    assert first.chunks > 1
    assert second.chunks == 1
    assert [c["text"] for c in policy_chunks] == [
        "The new policy: returns are accepted within 45 days."
    ]
    assert any(c["file_name"] == "hours.md" for c in stored_chunks(agent_id, settings))


async def test_corrupt_pdf_fails_cleanly_and_leaves_no_chunks(
    settings: KnowledgeSettings, agent_id: str
) -> None:
    await ingest(agent_id, "manual.pdf", "pdf", manual_pdf(), settings=settings)
    await ingest(agent_id, "hours.md", "md", HOURS, settings=settings)

    with pytest.raises(IngestError) as error:
        await ingest(agent_id, "manual.pdf", "pdf", manual_pdf()[:200], settings=settings)

    assert "the PDF is damaged" in error.value.reason
    files = {c["file_name"] for c in stored_chunks(agent_id, settings)}
    assert files == {"hours.md"}, "the failed replacement leaves none of the file's chunks"


async def test_a_failure_in_one_file_does_not_affect_the_others(
    settings: KnowledgeSettings, agent_id: str
) -> None:
    outcomes = await asyncio.gather(
        ingest(agent_id, "hours.md", "md", HOURS, settings=settings),
        ingest(agent_id, "broken.pdf", "pdf", b"%PDF-1.4 garbage", settings=settings),
        ingest(agent_id, "refunds.txt", "txt", REFUNDS, settings=settings),
        return_exceptions=True,
    )

    assert isinstance(outcomes[1], IngestError)
    assert outcomes[0].chunks >= 1 and outcomes[2].chunks == 1
    files = {c["file_name"] for c in stored_chunks(agent_id, settings)}
    assert files == {"hours.md", "refunds.txt"}


async def test_delete_file_removes_only_its_chunks(
    settings: KnowledgeSettings, agent_id: str
) -> None:
    await ingest(agent_id, "hours.md", "md", HOURS, settings=settings)
    await ingest(agent_id, "refunds.txt", "txt", REFUNDS, settings=settings)

    await delete_file(agent_id, "hours.md", settings=settings)
    await delete_file(agent_id, "never-uploaded.txt", settings=settings)

    assert {c["file_name"] for c in stored_chunks(agent_id, settings)} == {"refunds.txt"}
    passages = await retrieve(agent_id, "When does the showroom open?", settings=settings)
    assert {p.file_name for p in passages} == {"refunds.txt"}


async def test_delete_agent_drops_the_collection(
    settings: KnowledgeSettings, agent_id: str
) -> None:
    await ingest(agent_id, "hours.md", "md", HOURS, settings=settings)
    client = get_client(settings)
    assert f"agent-{agent_id}" in [c.name for c in client.list_collections()]

    await delete_agent(agent_id, settings=settings)
    await delete_agent(agent_id, settings=settings)

    assert f"agent-{agent_id}" not in [c.name for c in client.list_collections()]
    assert await retrieve(agent_id, "parking", settings=settings) == []


async def test_agents_never_see_each_other_s_chunks(
    settings: KnowledgeSettings, agent_id: str
) -> None:
    other_agent = agent_id[::-1]
    await ingest(agent_id, "hours.md", "md", HOURS, settings=settings)
    await ingest(other_agent, "refunds.txt", "txt", REFUNDS, settings=settings)

    mine = await retrieve(agent_id, "refund to my card", top_k=5, settings=settings)

    assert {p.file_name for p in mine} == {"hours.md"}
    await delete_agent(other_agent, settings=settings)


async def test_retrieve_before_any_file_returns_nothing(
    settings: KnowledgeSettings, agent_id: str
) -> None:
    assert await retrieve(agent_id, "anything?", settings=settings) == []
    await ingest(agent_id, "hours.md", "md", HOURS, settings=settings)
    await delete_file(agent_id, "hours.md", settings=settings)
    assert await retrieve(agent_id, "anything?", settings=settings) == []


async def test_retrieve_returns_at_most_what_exists(
    embedded_settings: KnowledgeSettings, agent_id: str
) -> None:
    await ingest(agent_id, "refunds.txt", "txt", REFUNDS, settings=embedded_settings)

    passages = await retrieve(agent_id, "refund", top_k=50, settings=embedded_settings)

    assert len(passages) == 1


@pytest.mark.parametrize("top_k", [0, -1, 51])
async def test_retrieve_refuses_top_k_out_of_range(
    embedded_settings: KnowledgeSettings, agent_id: str, top_k: int
) -> None:
    with pytest.raises(ValueError, match="top_k"):
        await retrieve(agent_id, "refund", top_k=top_k, settings=embedded_settings)


async def test_blank_query_returns_nothing(
    embedded_settings: KnowledgeSettings, agent_id: str
) -> None:
    await ingest(agent_id, "refunds.txt", "txt", REFUNDS, settings=embedded_settings)

    assert await retrieve(agent_id, "   ", settings=embedded_settings) == []


async def test_an_unreachable_server_is_a_clean_retryable_error(agent_id: str) -> None:
    settings = KnowledgeSettings(chroma_url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(IngestError) as error:
        await ingest(agent_id, "refunds.txt", "txt", REFUNDS, settings=settings)

    assert error.value.retryable
    assert "unreachable" in error.value.reason
