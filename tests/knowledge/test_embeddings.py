"""The local embedding model, OpenAI embeddings through a local stand-in, and the settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowledge import IngestError, KnowledgeError, KnowledgeSettings, ingest, retrieve
from knowledge.embeddings import LocalMiniLMEmbedder, get_embedder
from tests.fakes.openai_server import DIMENSIONS, FakeOpenAI
from tests.knowledge.helpers import stored_chunks

DOCUMENT = (
    b"# Returns\n\nYou may return a purifier within 30 days of delivery.\n\n"
    b"# Showroom\n\nThe showroom at 415 Alder Street opens at 10 am."
)


def test_local_model_embeds_offline_into_unit_vectors() -> None:
    embedder = get_embedder(KnowledgeSettings(embeddings="local"))
    assert isinstance(embedder, LocalMiniLMEmbedder)

    vectors = embedder.embed_documents(
        ["How do I get a refund?", "Can I return the product for my money back?", "Pasta recipe"]
    )

    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert np.allclose(embedder.embed_query("How do I get a refund?"), vectors[0], atol=1e-5)


def test_local_model_keeps_the_order_of_texts_of_mixed_lengths() -> None:
    embedder = get_embedder(KnowledgeSettings(embeddings="local"))
    texts = ["short", "a much longer sentence about warranty claims and serial numbers " * 3, "mid"]

    batch = embedder.embed_documents(texts)

    for text, vector in zip(texts, batch, strict=True):
        assert np.allclose(embedder.embed_documents([text])[0], vector, atol=1e-4)


@pytest.fixture
def openai_with_key(scripted_llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """The OpenAI stand-in, refusing requests without the key sk-test (for this test only)."""
    monkeypatch.setattr(scripted_llm, "api_key", "sk-test")
    return scripted_llm


def openai_settings(fake: FakeOpenAI, data_dir: Path, api_key: str = "sk-test"):
    return KnowledgeSettings(
        data_dir=data_dir,
        embeddings="openai",
        OPENAI_API_KEY=api_key,
        OPENAI_BASE_URL=fake.base_url,
        openai_embedding_model="text-embedding-3-small",
    )


async def test_openai_embeddings_serve_ingestion_and_queries(
    openai_with_key: FakeOpenAI, tmp_path: Path, agent_id: str
) -> None:
    settings = openai_settings(openai_with_key, tmp_path)

    result = await ingest(agent_id, "policy.md", "md", DOCUMENT, settings=settings)
    passages = await retrieve(agent_id, "when does the showroom open", settings=settings)

    assert result.chunks == 1 or result.chunks == 2
    assert "415 Alder Street" in passages[0].text
    request = openai_with_key.embedding_requests[0]
    assert request["path"] == "/v1/embeddings"
    assert request["model"] == "text-embedding-3-small"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert openai_with_key.embedding_requests[-1]["input"] == ["when does the showroom open"]
    assert get_embedder(settings).embed_query("x").shape == (DIMENSIONS,)


async def test_openai_refusal_is_a_clean_ingest_error(
    openai_with_key: FakeOpenAI, tmp_path: Path, agent_id: str
) -> None:
    settings = openai_settings(openai_with_key, tmp_path, api_key="sk-wrong")

    with pytest.raises(IngestError) as error:
        await ingest(agent_id, "policy.md", "md", DOCUMENT, settings=settings)

    assert "refused" in error.value.reason and "401" in error.value.reason
    assert "sk-wrong" not in error.value.reason
    assert not error.value.retryable
    assert stored_chunks(agent_id, settings) == []


async def test_openai_server_errors_are_retried(
    openai_with_key: FakeOpenAI, tmp_path: Path, agent_id: str
) -> None:
    settings = openai_settings(openai_with_key, tmp_path)
    openai_with_key.fail_with = [503, 429]

    result = await ingest(agent_id, "policy.md", "md", DOCUMENT, settings=settings)

    assert result.chunks >= 1
    assert openai_with_key.fail_with == []


async def test_openai_outage_fails_as_retryable(
    openai_with_key: FakeOpenAI, tmp_path: Path, agent_id: str
) -> None:
    settings = openai_settings(openai_with_key, tmp_path)
    openai_with_key.fail_with = [500, 500, 500]

    with pytest.raises(IngestError) as error:
        await ingest(agent_id, "policy.md", "md", DOCUMENT, settings=settings)

    assert error.value.retryable
    assert stored_chunks(agent_id, settings) == []


async def test_switching_embedding_provider_is_reported_clearly(
    openai_with_key: FakeOpenAI, tmp_path: Path, agent_id: str
) -> None:
    local = KnowledgeSettings(data_dir=tmp_path, embeddings="local")
    await ingest(agent_id, "policy.md", "md", DOCUMENT, settings=local)

    with pytest.raises(KnowledgeError, match="another embedding model"):
        await retrieve(agent_id, "returns", settings=openai_settings(openai_with_key, tmp_path))
    with pytest.raises(IngestError, match="another embedding model"):
        await ingest(
            agent_id, "b.md", "md", DOCUMENT, settings=openai_settings(openai_with_key, tmp_path)
        )


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXLINE_DATA_DIR", "/srv/voxline")
    monkeypatch.setenv("VOXLINE_CHROMA_URL", "http://chroma:8000")
    monkeypatch.setenv("VOXLINE_EMBEDDINGS", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("VOXLINE_MAX_FILE_BYTES", "1024")

    settings = KnowledgeSettings()

    assert settings.chroma_path == Path("/srv/voxline/chroma")
    assert settings.chroma_url == "http://chroma:8000"
    assert settings.embeddings == "openai"
    assert settings.openai_api_key.get_secret_value() == "sk-from-env"
    assert "sk-from-env" not in repr(settings)
    assert settings.max_file_bytes == 1024
    assert settings.max_request_bytes == 50 * 1024 * 1024


def test_settings_refuse_inconsistent_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        KnowledgeSettings(embeddings="openai")
    with pytest.raises(ValueError, match="CHUNK_OVERLAP"):
        KnowledgeSettings(chunk_size=200, chunk_overlap=200)
