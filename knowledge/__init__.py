"""The knowledge base: uploads, loading, chunking, embeddings, the Chroma store and retrieval."""

import logging

from knowledge.config import KnowledgeSettings, get_knowledge_settings
from knowledge.errors import IngestError, KnowledgeError, StoreUnavailable, UploadRejected
from knowledge.service import (
    IngestResult,
    Passage,
    delete_agent,
    delete_file,
    ingest,
    retrieve,
)
from knowledge.uploads import CheckedUpload, check_upload, check_uploads

__all__ = [
    "CheckedUpload",
    "IngestError",
    "IngestResult",
    "KnowledgeError",
    "KnowledgeSettings",
    "Passage",
    "StoreUnavailable",
    "UploadRejected",
    "check_upload",
    "check_uploads",
    "delete_agent",
    "delete_file",
    "get_knowledge_settings",
    "ingest",
    "retrieve",
]

logger = logging.getLogger(__name__)
