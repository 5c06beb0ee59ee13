"""The one provider registry: builds STT, LLM, TTS, VAD and turn detection from an AgentSpec.

The catalogue (names, models, voices, factories) lives in `runtime.spec.PROVIDERS`, which the
control plane validates against. This module turns a catalogue entry into a livekit plugin
instance: it imports the entry's factory lazily (so a worker without the `local` extra still
runs cloud agents) and maps the agent's settings onto the factory's keyword arguments.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.config import RuntimeSettings
from runtime.spec import AgentSpec, ProviderInfo, ResolvedProvider, provider_info

logger = logging.getLogger(__name__)


class ProviderError(Exception):
    """A provider that cannot be built for this agent (bad configuration, missing key)."""

    retryable = False


class MissingExtraError(ProviderError, ImportError):
    """A provider whose optional dependencies are not installed."""


def load_factory(info: ProviderInfo) -> Callable[..., Any]:
    """Import a provider's factory ("module:attribute").

    Raises:
        MissingExtraError: when the import fails; the message names the extra to install.
    """
    module_name, _, attribute = info.factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        extra = f"voxline[{info.extra}]" if info.extra else "voxline"
        raise MissingExtraError(
            f"the {info.label} {info.kind.upper()} provider needs packages that are not "
            f"installed ({e.name or e}); install them with: pip install '{extra}'"
        ) from e
    return getattr(module, attribute)


def _api_key(info: ProviderInfo, base_url: str | None) -> str:
    assert info.api_key_env is not None
    key = os.environ.get(info.api_key_env, "")
    if key:
        return key
    if base_url:
        # OpenAI-compatible servers (Ollama, vLLM, llama.cpp) usually take no key, but the
        # client insists on one.
        return "no-key"
    raise ProviderError(
        f"the {info.label} {info.kind.upper()} provider needs an API key: set {info.api_key_env}"
    )


# Keyword arguments per (kind, provider): how an agent's settings reach each factory.
_KwargsBuilder = Callable[[AgentSpec, ResolvedProvider, RuntimeSettings], dict[str, Any]]


def _openai_llm(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    info = provider_info("llm", "openai")
    kwargs: dict[str, Any] = {
        "model": resolved.model,
        "temperature": agent.temperature,
        "api_key": _api_key(info, agent.llm_base_url or os.environ.get("OPENAI_BASE_URL")),
    }
    if agent.llm_base_url:
        kwargs["base_url"] = agent.llm_base_url
    if agent.max_tokens:
        kwargs["max_completion_tokens"] = agent.max_tokens
    return kwargs


def _local_llm(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    return {
        "model": resolved.model,
        "temperature": agent.temperature,
        "max_tokens": agent.max_tokens,
    }


def _deepgram_stt(agent: AgentSpec, resolved: ResolvedProvider, settings: RuntimeSettings) -> dict:
    return {
        "model": resolved.model,
        "language": agent.language or "en",
        "api_key": _api_key(provider_info("stt", "deepgram"), None),
        "base_url": settings.deepgram_url,
    }


def _local_stt(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    return {"model": resolved.model, "language": agent.language or "en"}


def _openai_tts(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    base_url = os.environ.get("OPENAI_BASE_URL")
    return {
        "model": resolved.model,
        "voice": resolved.voice,
        "api_key": _api_key(provider_info("tts", "openai"), base_url),
    }


def _local_tts(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    return {"voice": resolved.voice}


_KWARGS: dict[tuple[str, str], _KwargsBuilder] = {
    ("llm", "openai"): _openai_llm,
    ("llm", "local"): _local_llm,
    ("stt", "deepgram"): _deepgram_stt,
    ("stt", "local"): _local_stt,
    ("tts", "openai"): _openai_tts,
    ("tts", "local"): _local_tts,
}


def _build(kind: str, name: str, agent: AgentSpec, resolved: ResolvedProvider, settings) -> Any:
    info = provider_info(kind, name)
    builder = _KWARGS.get((kind, info.name))
    if builder is None:  # a catalogue entry without a builder is a programming error
        raise ProviderError(f"no builder for {kind} provider {info.name!r}")
    factory = load_factory(info)
    return factory(**builder(agent, resolved, settings or RuntimeSettings()))


def build_llm(agent: AgentSpec, settings: RuntimeSettings | None = None):
    """The agent's LLM as a `livekit.agents.llm.LLM`."""
    return _build("llm", agent.llm_provider, agent, agent.resolved_llm(), settings)


def build_stt(agent: AgentSpec, settings: RuntimeSettings | None = None):
    """The agent's STT as a `livekit.agents.stt.STT`."""
    return _build("stt", agent.stt_provider, agent, agent.resolved_stt(), settings)


def build_tts(agent: AgentSpec, settings: RuntimeSettings | None = None):
    """The agent's TTS as a `livekit.agents.tts.TTS`."""
    return _build("tts", agent.tts_provider, agent, agent.resolved_tts(), settings)


_VAD: Any = None


def build_vad():
    """Silero VAD (its model ships inside the plugin's wheel); loaded once per process."""
    global _VAD
    if _VAD is None:
        try:
            from livekit.plugins import silero
        except ImportError as e:
            raise MissingExtraError(
                "silero VAD is not installed; install with: pip install voxline"
            ) from e
        _VAD = silero.VAD.load()
    return _VAD


def build_turn_detector():
    """LiveKit's local end-of-turn model (`turn-detector-v1-mini`), which runs offline.

    It listens to the audio itself (it is not a text model), so it only helps with audio
    input. The separate turn-detector plugin downloads from a model hub and is not used.
    """
    from livekit.agents import inference

    return inference.TurnDetector(version="v1-mini")


@dataclass
class Pipeline:
    """The models one call runs: STT, LLM, TTS, VAD and turn detection."""

    llm: Any
    stt: Any = None
    tts: Any = None
    vad: Any = None
    turn_detection: Any = None

    def session_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `AgentSession(...)` (stt, llm, tts, vad)."""
        return {"stt": self.stt, "llm": self.llm, "tts": self.tts, "vad": self.vad}


def build_pipeline(
    agent: AgentSpec, *, audio: bool = True, settings: RuntimeSettings | None = None
) -> Pipeline:
    """Build every model a call needs; with `audio=False` only the LLM (text chats).

    Raises:
        UnknownProviderError: the agent names a provider, model or voice the catalogue lacks.
        MissingExtraError: a provider's optional dependencies are not installed.
        ProviderError: a provider is misconfigured (for example its API key is missing).
    """
    settings = settings or RuntimeSettings()
    llm = build_llm(agent, settings)
    if not audio:
        return Pipeline(llm=llm)
    return Pipeline(
        llm=llm,
        stt=build_stt(agent, settings),
        tts=build_tts(agent, settings),
        vad=build_vad(),
        turn_detection=build_turn_detector(),
    )
