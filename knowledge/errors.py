"""Exceptions of the knowledge base; each carries a reason that is safe to show to users."""

from __future__ import annotations


class KnowledgeError(Exception):
    """Base of the knowledge errors.

    Attributes:
        reason: a clear, user-facing message (no paths, no stack traces).
        retryable: whether trying the same thing again later may succeed.
    """

    retryable = False

    def __init__(self, reason: str, *, retryable: bool | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if retryable is not None:
            self.retryable = retryable


class UploadRejected(KnowledgeError):
    """An uploaded file was refused before ingestion (the API answers 400)."""


class UploadTooLarge(UploadRejected):
    """An upload over a size, page or chunk limit (the API answers 413)."""


class IngestError(KnowledgeError):
    """A file could not be turned into chunks; none of its chunks are kept."""


class StoreUnavailable(KnowledgeError):
    """The vector store or the embedding service could not be reached."""

    retryable = True
