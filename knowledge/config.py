"""Typed settings of the knowledge base, read from `VOXLINE_*` environment variables."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from voxline.common.settings import VoxlineSettings

logger = logging.getLogger(__name__)

MIB = 1024 * 1024


class KnowledgeSettings(VoxlineSettings):
    """Where chunks live, how they are embedded, and how big uploads may be."""

    chroma_url: str | None = None
    chroma_token: SecretStr | None = None

    embeddings: Literal["local", "openai"] = "local"
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str = Field(
        default="https://api.openai.com/v1", validation_alias="OPENAI_BASE_URL"
    )
    openai_embedding_model: str = "text-embedding-3-small"
    openai_timeout_seconds: float = 30.0
    # Threads of the local model; 0 lets onnxruntime use every core. A voice deployment that
    # ingests while calls run may set 1, so embedding never takes the last core.
    local_embedding_threads: int = Field(default=0, ge=0, le=64)

    max_file_bytes: int = Field(default=20 * MIB, gt=0)
    max_request_bytes: int = Field(default=50 * MIB, gt=0)
    # A DOCX is a zip: refuse archives that would inflate beyond these bounds.
    max_docx_uncompressed_bytes: int = Field(default=200 * MIB, gt=0)
    max_docx_compression_ratio: int = Field(default=100, gt=1)

    # Pages and chunks bound the CPU one upload costs (text extraction, then embedding).
    max_pdf_pages: int = Field(default=500, gt=0)
    max_file_chunks: int = Field(default=5000, gt=0)
    max_workspace_pages: int = Field(default=5000, gt=0)
    max_workspace_chunks: int = Field(default=50000, gt=0)

    chunk_size: int = Field(default=400, ge=100, le=8000)
    chunk_overlap: int = Field(default=80, ge=0)

    @model_validator(mode="after")
    def _check(self) -> KnowledgeSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("VOXLINE_CHUNK_OVERLAP must be smaller than VOXLINE_CHUNK_SIZE")
        if self.embeddings == "openai" and not self.openai_api_key:
            raise ValueError("VOXLINE_EMBEDDINGS=openai needs OPENAI_API_KEY to be set")
        return self

    @property
    def chroma_path(self) -> Path:
        """Directory of the embedded Chroma database."""
        return self.data_dir / "chroma"


@lru_cache(maxsize=1)
def get_knowledge_settings() -> KnowledgeSettings:
    """The process-wide knowledge settings, read once from the environment."""
    return KnowledgeSettings()
