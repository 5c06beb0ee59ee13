"""The one provider registry: builds STT, LLM, TTS, VAD and turn detection from an AgentSpec.

The catalogue (names, models, voices, factories) lives in `runtime.spec.PROVIDERS`, which the
control plane validates against. This module turns a catalogue entry into a livekit plugin
instance: it imports the entry's factory and its `factory_kwargs` function lazily (so a worker
without the `local` extra still runs cloud agents). The `*_kwargs` functions below are the ones
the catalogue names: they map an agent's settings onto a factory's keyword arguments.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import importlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runtime.config import RuntimeSettings
from runtime.spec import (
    PROVIDERS,
    AgentSpec,
    EndReason,
    ProviderChoice,
    ProviderInfo,
    ResolvedProvider,
    URLNotAllowedError,
    address_allowed,
    check_url_allowed,
    literal_ip,
    pinned_http_transport,
    provider_info,
)
from runtime.spec.providers import AZURE_TTS_URL, install_advice

logger = logging.getLogger(__name__)


class ModelProviderError(Exception):
    """An AI model provider (STT, LLM, TTS) that cannot be built for this agent (bad
    configuration, missing key)."""

    retryable = False
    #: why a call that cannot build its providers ends
    end_reason = EndReason.ERROR


class MissingExtraError(ModelProviderError, ImportError):
    """A provider whose optional dependencies are not installed."""


def _import_attribute(reference: str) -> Any:
    """The attribute a "module:attribute" reference names, importing its module."""
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def load_factory(info: ProviderInfo) -> Callable[..., Any]:
    """Import a provider's factory ("module:attribute").

    Raises:
        MissingExtraError: when the import fails; the message names the extra to install.
    """
    try:
        return _import_attribute(info.factory)
    except ImportError as e:
        raise MissingExtraError(
            f"the {info.label} {info.kind.upper()} provider needs packages that are not "
            f"installed ({e.name or e}); install them with: {install_advice(info.extra)}"
        ) from e


class ProviderNotConfiguredError(ModelProviderError):
    """A provider with no credentials anywhere: not the agent's, the workspace's nor the
    platform's. The call ends at once with `provider_not_configured`."""

    end_reason = EndReason.PROVIDER_NOT_CONFIGURED

    def __init__(self, info: ProviderInfo):
        self.provider = info.name
        variables = [info.api_key_env] if info.api_key_env else []
        if info.base_url is None and info.base_url_env:  # no public endpoint: it needs one
            variables.append(info.base_url_env)
        needs = "set " + " and ".join(name for name in variables if name)
        super().__init__(
            f"provider_not_configured: the {info.label} {info.kind.upper()} provider "
            f"({info.name}) has no credentials: add them to the workspace "
            f"(PUT /workspaces/{{id}}/providers/{info.name}) or {needs} on the workers"
        )


# --------------------------------------------------------------------------------------------
# Where a provider is called, and with which key
# --------------------------------------------------------------------------------------------


def _origin(url: str | None) -> tuple[str, str, int] | None:
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme, 0)
    except ValueError:
        return None
    return scheme, (parts.hostname or "").lower(), port


def platform_urls(info: ProviderInfo) -> tuple[str, ...]:
    """The endpoints that may receive the platform's key for this vendor: the operator's own
    (`base_url_env`) and the vendor's."""
    operator = os.environ.get(info.base_url_env) if info.base_url_env else None
    return tuple(url for url in (operator, info.base_url) if url)


@dataclass(frozen=True)
class Endpoint:
    """Where one provider of a call is reached, and with which key.

    Attributes:
        base_url: the address.
        api_key: the key to send; None sends none.
        own: the address is the agent's or the workspace's own, not the vendor's or the
            operator's: connections to it are checked against the address policy.
    """

    base_url: str
    api_key: str | None
    own: bool = False


def resolve_endpoint(
    info: ProviderInfo,
    agent: AgentSpec,
    *,
    agent_key: str | None = None,
    agent_base_url: str | None = None,
    platform_url: str | None = None,
) -> Endpoint:
    """A provider's address and key: the agent's own, else the workspace's, else the platform's.

    Each key only goes where its owner sent it: the agent's key to the agent's endpoint (or the
    vendor's), the workspace's to the workspace's endpoint (or the vendor's), the platform's
    only to the vendor's or the operator's endpoint for that very vendor (`platform_urls`).

    Args:
        info: the provider.
        agent: the call's agent (its workspace credentials ride in `agent.credentials`).
        agent_key, agent_base_url: the agent's own key and endpoint (the LLM's).
        platform_url: the operator's endpoint when a setting, not `info.base_url_env`, holds it.

    Raises:
        ProviderNotConfiguredError: no key (or no address for a self-hosted server) anywhere.
    """
    vendor_urls = (platform_url,) if platform_url else platform_urls(info)
    vendor = {_origin(url) for url in vendor_urls}
    credential = agent.credentials.get(info.name)
    workspace_url = credential.base_url if credential else None
    workspace_key = credential.api_key if credential else None
    base_url = agent_base_url or workspace_url or (vendor_urls[0] if vendor_urls else None)
    if base_url is None:
        raise ProviderNotConfiguredError(info)  # a self-hosted server nobody has placed
    at_vendor = _origin(base_url) in vendor
    own = not at_vendor
    if agent_key:
        return Endpoint(base_url, agent_key, own)
    if workspace_key and (at_vendor or base_url == workspace_url):
        return Endpoint(base_url, workspace_key, own)
    if info.api_key_env is None:
        return Endpoint(base_url, None, own)
    platform_key = os.environ.get(info.api_key_env)
    if at_vendor and platform_key:
        return Endpoint(base_url, platform_key, own)
    overridden = info.base_url is not None and _origin(base_url) != _origin(info.base_url)
    if info.accepts_base_url and (own or overridden):
        # an agent's, a workspace's or the operator's own OpenAI-compatible server: many take
        # no key at all
        return Endpoint(base_url, None, own)
    raise ProviderNotConfiguredError(info)


def _key_or_placeholder(endpoint: Endpoint) -> str:
    # Plugins insist on a key; given none, they would read the vendor's variable themselves.
    return endpoint.api_key or "no-key"


def guarded_openai_client(base_url: str, api_key: str | None, allow_private: bool):
    """An OpenAI client for an agent's own endpoint: only the agent's key (or no
    Authorization at all), and every connection checked against the SSRF policy.

    Raises:
        ModelProviderError: the URL is refused outright (scheme, or a literal address not
            allowed).
    """
    import httpx
    import openai

    # The scheme and literal addresses now; host names when connecting (the pinned transport).
    try:
        check_url_allowed(base_url, allow_private=True)  # scheme and host syntax, no DNS
        host = (urlsplit(base_url.strip()).hostname or "").split("%", 1)[0]
        if literal_ip(host) is not None and not address_allowed(host, allow_private):
            raise URLNotAllowedError(f"{host} is a private, loopback or reserved address")
    except URLNotAllowedError as e:
        raise ModelProviderError(f"the agent's LLM_base_url is not allowed: {e}") from e
    http_client = httpx.AsyncClient(
        transport=pinned_http_transport(allow_private),
        timeout=httpx.Timeout(connect=15.0, read=5.0, write=5.0, pool=5.0),
        follow_redirects=False,
        trust_env=False,
    )
    return openai.AsyncClient(
        api_key=api_key or "no-key",  # not sent: see `no_authorization`
        base_url=base_url,
        max_retries=0,
        # openai's hints name only its own httpx2 client; at run time it takes an httpx one too
        http_client=http_client,  # type: ignore[arg-type]
    )


def no_authorization() -> dict[str, Any]:
    """Request headers that make the OpenAI client send no Authorization header at all."""
    import openai

    return {"Authorization": openai.Omit()}


# --------------------------------------------------------------------------------------------
# Keyword arguments per provider (named by each catalogue entry's `factory_kwargs`)
# --------------------------------------------------------------------------------------------


def openai_llm_kwargs(
    agent: AgentSpec, resolved: ResolvedProvider, settings: RuntimeSettings
) -> dict:
    """OpenAI and every OpenAI-compatible preset (the entry names the vendor)."""
    info = provider_info("llm", resolved.name)
    endpoint = resolve_endpoint(
        info, agent, agent_key=agent.llm_api_key, agent_base_url=agent.llm_base_url
    )
    kwargs: dict[str, Any] = {"model": resolved.model, "temperature": agent.temperature}
    if agent.max_tokens:
        kwargs["max_completion_tokens"] = agent.max_tokens
    if endpoint.own:
        # the agent's or the workspace's own server: checked on every connection
        kwargs["client"] = guarded_openai_client(
            endpoint.base_url, endpoint.api_key, settings.allow_private_urls
        )
        if not endpoint.api_key:
            kwargs["extra_headers"] = no_authorization()
        return kwargs
    kwargs["api_key"] = _key_or_placeholder(endpoint)
    kwargs["base_url"] = endpoint.base_url
    return kwargs


def groq_llm_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    endpoint = resolve_endpoint(provider_info("llm", "groq"), agent, agent_key=agent.llm_api_key)
    kwargs: dict[str, Any] = {
        "model": resolved.model,
        "temperature": agent.temperature,
        "api_key": _key_or_placeholder(endpoint),
        "base_url": endpoint.base_url,
    }
    if agent.max_tokens:
        kwargs["max_completion_tokens"] = agent.max_tokens
    return kwargs


def anthropic_llm_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    endpoint = resolve_endpoint(
        provider_info("llm", "anthropic"), agent, agent_key=agent.llm_api_key
    )
    kwargs: dict[str, Any] = {
        "model": resolved.model,
        "temperature": agent.temperature,
        "api_key": _key_or_placeholder(endpoint),
        "base_url": endpoint.base_url,
        # the framework retries (and fails over); the SDK's own retries would only delay that
        "max_retries": 0,
        **agent.llm_settings,
    }
    if agent.max_tokens:
        kwargs["max_tokens"] = agent.max_tokens
    return kwargs


def google_llm_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    from google.genai import types

    endpoint = resolve_endpoint(provider_info("llm", "google"), agent, agent_key=agent.llm_api_key)
    kwargs: dict[str, Any] = {
        "model": resolved.model,
        "temperature": agent.temperature,
        "api_key": _key_or_placeholder(endpoint),
        "vertexai": False,  # the Gemini API with a key, whatever GOOGLE_GENAI_USE_VERTEXAI says
        "http_options": types.HttpOptions(base_url=endpoint.base_url),
    }
    if agent.max_tokens:
        kwargs["max_output_tokens"] = agent.max_tokens
    return kwargs


#: The Azure OpenAI API version, unless OPENAI_API_VERSION (the SDK's variable) says otherwise.
AZURE_API_VERSION = "2024-10-21"


def azure_llm_kwargs(
    agent: AgentSpec, resolved: ResolvedProvider, settings: RuntimeSettings
) -> dict:
    """Azure OpenAI: the model is the deployment; the endpoint is the resource's."""
    import httpx
    import openai

    endpoint = resolve_endpoint(
        provider_info("llm", "azure"),
        agent,
        agent_key=agent.llm_api_key,
        agent_base_url=agent.llm_base_url,
    )
    http_client = None
    if endpoint.own:  # the workspace's or the agent's resource: checked on every connection
        http_client = httpx.AsyncClient(
            transport=pinned_http_transport(settings.allow_private_urls),
            follow_redirects=False,
            trust_env=False,
        )
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=endpoint.base_url,
        azure_deployment=resolved.model,
        api_key=_key_or_placeholder(endpoint),
        api_version=os.environ.get("OPENAI_API_VERSION", AZURE_API_VERSION),
        max_retries=0,
        http_client=http_client,  # type: ignore[arg-type]
    )
    kwargs: dict[str, Any] = {
        "model": resolved.model,
        "temperature": agent.temperature,
        "client": client,
    }
    if agent.max_tokens:
        kwargs["max_completion_tokens"] = agent.max_tokens
    return kwargs


def local_llm_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    return {
        "model": resolved.model,
        "temperature": agent.temperature,
        "max_tokens": agent.max_tokens,
        "reply_schema": agent.reply_schema,
    }


def deepgram_stt_kwargs(
    agent: AgentSpec, resolved: ResolvedProvider, settings: RuntimeSettings
) -> dict:
    endpoint = resolve_endpoint(
        provider_info("stt", "deepgram"), agent, platform_url=settings.deepgram_url
    )
    return {
        "model": resolved.model,
        "language": agent.language or "en",
        "api_key": _key_or_placeholder(endpoint),
        "base_url": endpoint.base_url,
        **agent.stt_settings,
    }


def assemblyai_stt_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    endpoint = resolve_endpoint(provider_info("stt", "assemblyai"), agent)
    kwargs: dict[str, Any] = {
        "model": resolved.model,
        "api_key": _key_or_placeholder(endpoint),
        "base_url": endpoint.base_url,
        **agent.stt_settings,
    }
    if resolved.model.endswith("multilingual"):
        kwargs["language_detection"] = True
    return kwargs


def local_stt_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    return {"model": resolved.model, "language": agent.language or "en"}


def openai_tts_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    endpoint = resolve_endpoint(provider_info("tts", "openai"), agent)
    return {
        "model": resolved.model,
        "voice": resolved.voice,
        "api_key": _key_or_placeholder(endpoint),
        "base_url": endpoint.base_url,
    }


def elevenlabs_tts_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    from livekit.plugins import elevenlabs

    endpoint = resolve_endpoint(provider_info("tts", "elevenlabs"), agent)
    kwargs: dict[str, Any] = {
        "model": resolved.model,
        "voice_id": resolved.voice,
        "api_key": _key_or_placeholder(endpoint),
        "base_url": endpoint.base_url,
        # raw PCM: nothing to decode per call (the plugin's default is MP3)
        "encoding": "pcm_24000",
    }
    if agent.tts_settings:
        tuned = {"stability": 0.5, "similarity_boost": 0.75, **agent.tts_settings}
        kwargs["voice_settings"] = elevenlabs.VoiceSettings(**tuned)
    if agent.language and resolved.model in ("eleven_flash_v2_5", "eleven_turbo_v2_5"):
        kwargs["language"] = agent.language.split("-")[0]
    return kwargs


def cartesia_tts_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    endpoint = resolve_endpoint(provider_info("tts", "cartesia"), agent)
    return {
        "model": resolved.model,
        "voice": resolved.voice,
        "language": (agent.language or "en").split("-")[0],
        "api_key": _key_or_placeholder(endpoint),
        "base_url": endpoint.base_url,
        **agent.tts_settings,
    }


def deepgram_tts_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    endpoint = resolve_endpoint(provider_info("tts", "deepgram"), agent)
    return {
        "model": resolved.model,
        "api_key": _key_or_placeholder(endpoint),
        "base_url": endpoint.base_url,
    }


def _regional_language(info: ProviderInfo, language: str | None) -> str:
    """A BCP-47 code with its region, as Google's speech services want it ("en" → "en-US")."""
    if not language:
        return "en-US"
    if "-" in language:
        return language
    prefix = language.lower() + "-"
    return next((code for code in info.languages if code.lower().startswith(prefix)), language)


def google_tts_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    """Google Cloud TTS: the key (an API key or a service-account key) as credentials, and the
    endpoint its client is built for (`runtime.google_speech`)."""
    from runtime.google_speech import google_credentials

    info = provider_info("tts", "google")
    endpoint = resolve_endpoint(info, agent)
    kwargs: dict[str, Any] = {
        "endpoint": endpoint.base_url,
        "credentials": google_credentials(_key_or_placeholder(endpoint)),
        "voice_name": resolved.voice,
        "language": _regional_language(info, agent.language),
        **agent.tts_settings,
    }
    if resolved.model != "chirp_3":
        kwargs["model_name"] = resolved.model
    return kwargs


def google_stt_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    from runtime.google_speech import google_credentials

    info = provider_info("stt", "google")
    endpoint = resolve_endpoint(info, agent)
    return {
        "endpoint": endpoint.base_url,
        "credentials": google_credentials(_key_or_placeholder(endpoint)),
        "model": resolved.model,
        "languages": _regional_language(info, agent.language),
        **agent.stt_settings,
    }


#: An Azure region name ("eastus", "westeurope"): all that goes into the vendor's host name.
AZURE_REGION = re.compile(r"[a-z0-9]{2,40}")


def _azure_speech(info: ProviderInfo, agent: AgentSpec) -> tuple[str, str | None, str | None]:
    """Azure AI Speech's key, region and the operator's endpoint (`base_url_env`): the
    workspace's key and region, else AZURE_SPEECH_KEY and AZURE_SPEECH_REGION. Either goes only
    to the region's Microsoft host or the operator's; the workspace's `base_url` (its Azure
    OpenAI resource) is not used.

    Raises:
        ProviderNotConfiguredError: no key, or neither a region nor the operator's endpoint.
        ModelProviderError: a region that is not a region name.
    """
    credential = agent.credentials.get("azure")
    region = (credential.region if credential else None) or os.environ.get("AZURE_SPEECH_REGION")
    operator = os.environ.get(info.base_url_env or "")
    key = (credential.api_key if credential else None) or os.environ.get("AZURE_SPEECH_KEY")
    if not key or not (operator or region):
        raise ProviderNotConfiguredError(info)
    if not operator and region and not AZURE_REGION.fullmatch(region):
        raise ModelProviderError(f"the Azure Speech region {region!r} is not a region name")
    return key, region, operator


def azure_tts_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    """Azure AI Speech's TTS: at the region's endpoint, or the operator's
    `VOXLINE_AZURE_TTS_URL` (`_azure_speech`)."""
    from livekit.plugins.azure import tts as azure_tts

    info = provider_info("tts", "azure")
    key, region, operator = _azure_speech(info, agent)
    kwargs: dict[str, Any] = {
        "voice": resolved.voice,
        "language": _regional_language(info, agent.language),
        "speech_key": key,
        "speech_endpoint": operator or AZURE_TTS_URL.format(region=region),
    }
    if "rate" in agent.tts_settings:
        kwargs["prosody"] = azure_tts.ProsodyConfig(rate=agent.tts_settings["rate"])
    if "style" in agent.tts_settings:
        kwargs["style"] = azure_tts.StyleConfig(style=agent.tts_settings["style"])
    return kwargs


def azure_stt_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    """Azure AI Speech's STT (the native Speech SDK): the region's host, or the operator's
    `VOXLINE_AZURE_STT_URL` as the SDK's `host` (`wss://…`, or `ws://…` for a container)."""
    info = provider_info("stt", "azure")
    key, region, operator = _azure_speech(info, agent)
    kwargs: dict[str, Any] = {
        "speech_key": key,
        "language": _regional_language(info, agent.language),
        **agent.stt_settings,
    }
    if operator:
        kwargs["speech_host"] = operator
    else:
        kwargs["speech_region"] = region
    return kwargs


def local_tts_kwargs(agent: AgentSpec, resolved: ResolvedProvider, _: RuntimeSettings) -> dict:
    return {"voice": resolved.voice}


def _build(kind: str, name: str, agent: AgentSpec, resolved: ResolvedProvider, settings) -> Any:
    info = provider_info(kind, name)
    if info.factory_kwargs is None:  # a catalogue entry without one is a programming error
        raise ModelProviderError(f"no factory_kwargs for {kind} provider {info.name!r}")
    factory = load_factory(info)
    factory_kwargs = _import_attribute(info.factory_kwargs)
    return factory(**factory_kwargs(agent, resolved, settings or RuntimeSettings()))


#: How long a fallback LLM's first answer may take before the next one is tried (seconds).
LLM_ATTEMPT_TIMEOUT = 5.0


def _fallback_agent(kind: str, agent: AgentSpec, choice: ProviderChoice) -> AgentSpec:
    """The agent as its fallback runs it: the fallback's provider, model and voice, none of the
    primary's own endpoint, key or settings."""
    if kind == "llm":
        return agent.replace(
            llm_provider=choice.provider,
            llm_model=choice.model,
            llm_base_url=None,
            llm_api_key=None,
            llm_settings={},
        )
    if kind == "stt":
        return agent.replace(stt_provider=choice.provider, stt_model=choice.model, stt_settings={})
    return agent.replace(
        tts_provider=choice.provider,
        tts_model=choice.model,
        tts_voice=choice.voice,
        tts_settings={},
    )


def _resolved(kind: str, agent: AgentSpec) -> ResolvedProvider:
    return {"llm": agent.resolved_llm, "stt": agent.resolved_stt, "tts": agent.resolved_tts}[kind]()


def _build_with_fallbacks(kind: str, agent: AgentSpec, settings: RuntimeSettings) -> Any:
    """The agent's provider of `kind`, behind livekit's `FallbackAdapter` when it lists
    fallbacks: the call carries on with the next one when a provider errors or times out.

    A fallback that cannot be built here (no credentials, extra missing) is left out, with a
    warning: the call still runs on the others. The primary must build.
    """
    primary = _build(
        kind, getattr(agent, f"{kind}_provider"), agent, _resolved(kind, agent), settings
    )
    instances = [primary]
    for choice in getattr(agent, f"{kind}_fallbacks"):
        fallback = _fallback_agent(kind, agent, choice)
        try:
            instances.append(
                _build(kind, choice.provider, fallback, _resolved(kind, fallback), settings)
            )
        except ModelProviderError as error:
            logger.warning("agent %s: %s fallback left out: %s", agent.agent_id, kind, error)
    if len(instances) == 1:
        return primary
    if kind == "llm":
        from livekit.agents import llm

        return llm.FallbackAdapter(instances, attempt_timeout=LLM_ATTEMPT_TIMEOUT)
    if kind == "stt":
        from livekit.agents import stt

        streaming = all(instance.capabilities.streaming for instance in instances)
        return stt.FallbackAdapter(instances, vad=None if streaming else build_vad())
    from livekit.agents import tts

    return tts.FallbackAdapter(instances)


def served_by(agent: AgentSpec, kind: str, metadata: Any) -> str | None:
    """The catalogue name of the provider that served a turn, from the metrics metadata the
    framework puts on the reply (a fallback adapter's is its active provider's): the agent's
    primary or fallback whose model it names; None when unknown."""
    if not metadata:
        return None
    model = metadata.get("model_name") if isinstance(metadata, dict) else None
    model = model or getattr(metadata, "model_name", None)
    if not model:
        return None
    runs = [agent, *(_fallback_agent(kind, agent, c) for c in getattr(agent, f"{kind}_fallbacks"))]
    for run in runs:
        try:
            resolved = _resolved(kind, run)
        except ValueError:  # a fallback the catalogue no longer has
            continue
        # Azure's TTS names its model "<region>:<voice>"
        if resolved.model == model or (resolved.voice and model.endswith(f":{resolved.voice}")):
            return resolved.name
    return None


def build_llm(
    agent: AgentSpec,
    settings: RuntimeSettings | None = None,
    *,
    allow_private_urls: bool | None = None,
):
    """The agent's LLM as a `livekit.agents.llm.LLM` (a `FallbackAdapter` with fallbacks).

    `allow_private_urls` (default: the settings') lets an agent's own `llm_base_url` reach
    private addresses, as for custom functions.
    """
    settings = settings or RuntimeSettings()
    if allow_private_urls is not None:
        settings = settings.model_copy(update={"allow_private_urls": allow_private_urls})
    return _build_with_fallbacks("llm", agent, settings)


def build_stt(agent: AgentSpec, settings: RuntimeSettings | None = None):
    """The agent's STT as a `livekit.agents.stt.STT` (a `FallbackAdapter` with fallbacks)."""
    return _build_with_fallbacks("stt", agent, settings or RuntimeSettings())


def build_tts(agent: AgentSpec, settings: RuntimeSettings | None = None):
    """The agent's TTS as a `livekit.agents.tts.TTS` (a `FallbackAdapter` with fallbacks)."""
    return _build_with_fallbacks("tts", agent, settings or RuntimeSettings())


_VAD: Any = None


class InlineExecutor(concurrent.futures.Executor):
    """Runs each job at once, on the submitting thread.

    For the VAD's 32 ms windows: the native Silero model takes about 15 µs of CPU a window,
    far less than handing each window to a thread and waking the loop when it is done (the
    Silero plugin's ONNX model plus that hand-off cost a third more CPU per call).
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any):
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


def build_vad():
    """Silero VAD, the native build in `livekit-local-inference` (its model ships in the wheel),
    with the Silero plugin's defaults; one instance per process, a stream per call."""
    global _VAD
    if _VAD is None:
        from livekit.agents import inference

        _VAD = inference.VAD(
            min_speech_duration=0.05,
            min_silence_duration=0.55,
            prefix_padding_duration=0.5,
            activation_threshold=0.5,
            executor=InlineExecutor(),
        )
    return _VAD


# --------------------------------------------------------------------------------------------
# End of turn: one model per process, every call's predictions batched through it
# --------------------------------------------------------------------------------------------

#: How long a call waits for its end-of-turn prediction before it falls back to VAD endpointing.
#: The framework asks when the caller has been silent 200 ms and needs the answer when VAD ends
#: the speech (Silero's 550 ms of silence), so 300 ms is what a prediction can take unseen.
EOT_DEADLINE_SECONDS = 0.3
#: The most requests one pass of the inference thread takes.
EOT_MAX_BATCH = 32
#: What a late or failed prediction answers: "the turn ended", the framework's own default for
#: a prediction it has no answer to, so the session commits after `min_endpointing_delay`
#: (VAD endpointing) instead of waiting `max_endpointing_delay`.
EOT_FALLBACK_PROBABILITY = 1.0

BatchRunner = Callable[[list[Any]], list[float]]


def native_eot_runner() -> BatchRunner:
    """The end-of-turn model of `livekit-local-inference` (loaded once; about 108 MB).

    Its API takes one 1.2 s window per call (no batch dimension), and releases the GIL.
    """
    from livekit.local_inference import EOT, init_eot

    init_eot()
    model = EOT()

    def run(windows: list[Any]) -> list[float]:
        return [float(model.predict(window)) for window in windows]

    return run


class _Request:
    __slots__ = ("window", "deadline", "future")

    def __init__(self, window: Any, deadline: float) -> None:
        self.window = window
        self.deadline = deadline
        self.future: concurrent.futures.Future[float] = concurrent.futures.Future()


class TurnPredictor:
    """The process's one end-of-turn inference path, shared by every call it runs.

    Calls submit 16 kHz windows from their own event loops (one per job thread, or one for
    all); a single inference thread takes whatever has queued up as one batch and answers each
    request's future. A request whose deadline passed while it waited is not run at all: its
    call has already fallen back to VAD endpointing, and skipping it sheds load when the
    process is behind.
    """

    def __init__(
        self, runner: BatchRunner | None = None, *, max_batch: int = EOT_MAX_BATCH
    ) -> None:
        """`runner` defaults to the native model (loaded here, on the caller's thread)."""
        self._runner = runner or native_eot_runner()
        self.max_batch = max_batch
        self._queue: collections.deque[_Request] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False
        #: size of every batch run so far, newest last (bounded)
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=1000)
        self.expired = 0
        self._thread = threading.Thread(target=self._serve, name="voxline-eot", daemon=True)
        self._thread.start()

    def submit(self, window: Any, *, deadline: float) -> concurrent.futures.Future[float]:
        """Queue one prediction; `deadline` is a `time.monotonic()` instant."""
        request = _Request(window, deadline)
        with self._ready:
            if self._closed:
                raise RuntimeError("the turn predictor is closed")
            self._queue.append(request)
            self._ready.notify()
        return request.future

    async def predict(self, window: Any, *, within: float = EOT_DEADLINE_SECONDS) -> float | None:
        """The end-of-turn probability of `window`, or None when it is not ready `within` s."""
        future = self.submit(window, deadline=time.monotonic() + within)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), within)
        except TimeoutError:
            future.cancel()
            return None

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=5)

    def _take_batch(self) -> list[_Request] | None:
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            if self._closed:
                return None
            batch: list[_Request] = []
            now = time.monotonic()
            while self._queue and len(batch) < self.max_batch:
                request = self._queue.popleft()
                if request.deadline < now:
                    request.future.cancel()  # its call has fallen back already
                if not request.future.set_running_or_notify_cancel():
                    self.expired += 1
                    continue
                batch.append(request)
            return batch

    def _serve(self) -> None:
        while (batch := self._take_batch()) is not None:
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            try:
                probabilities = self._runner([request.window for request in batch])
            except Exception as error:
                logger.exception("end-of-turn batch of %d failed", len(batch))
                for request in batch:
                    request.future.set_exception(error)
                continue
            for request, probability in zip(batch, probabilities, strict=True):
                request.future.set_result(probability)


_PREDICTOR: TurnPredictor | None = None
_PREDICTOR_LOCK = threading.Lock()


def turn_predictor() -> TurnPredictor:
    """The process's shared `TurnPredictor` (model loaded on first use; `preload_models`)."""
    global _PREDICTOR
    with _PREDICTOR_LOCK:
        if _PREDICTOR is None:
            _PREDICTOR = TurnPredictor()
        return _PREDICTOR


@functools.cache
def _batched_transport_class():
    from livekit.agents.inference.eot.transports import _LocalTransport

    class BatchedLocalTransport(_LocalTransport):
        """The framework's local transport, predicting through the shared `TurnPredictor`.

        Keeps its per-call audio window; only the model run is shared. A prediction later than
        the deadline answers `EOT_FALLBACK_PROBABILITY`.
        """

        def __init__(self, *, opts: Any, predictor: TurnPredictor, deadline: float) -> None:
            # the parent's __init__ would open a native model handle per call: set up by hand
            from livekit.agents import utils
            from livekit.agents.inference.eot.base import DEFAULT_SAMPLE_RATE
            from livekit.agents.inference.eot.transports import _CLIENT_BUFFER_SAMPLES

            self._opts = opts
            self._buf = utils.AudioArrayBuffer(
                buffer_size=_CLIENT_BUFFER_SAMPLES, sample_rate=DEFAULT_SAMPLE_RATE
            )
            self._stream_ref = None
            self._tasks = set()
            self._predictor = predictor
            self._deadline = deadline

        async def _predict(self, request_id: str, pcm_snapshot: Any) -> None:
            started = time.monotonic()
            try:
                probability = await self._predictor.predict(pcm_snapshot, within=self._deadline)
            except Exception:
                logger.exception("end-of-turn prediction failed")
                probability = None
            if probability is None:
                from runtime import metrics

                metrics.turn_predictions_late.inc()
                probability = EOT_FALLBACK_PROBABILITY
            stream = self._stream_ref() if self._stream_ref is not None else None
            if stream is not None:
                stream._resolve_prediction(
                    request_id, probability, inference_duration=time.monotonic() - started
                )

    return BatchedLocalTransport


def build_turn_detector(
    predictor: TurnPredictor | None = None, *, deadline: float = EOT_DEADLINE_SECONDS
):
    """LiveKit's local end-of-turn model (`turn-detector-v1-mini`), which runs offline.

    It listens to the audio itself (it is not a text model), so it only helps with audio
    input. The separate turn-detector plugin downloads from a model hub and is not used.
    Every call's predictions go through the process's one `TurnPredictor` (batched, on its
    own thread), and one later than `deadline` seconds falls back to VAD endpointing.
    """
    return _shared_detector_class()(predictor or turn_predictor(), deadline)


@functools.cache
def _shared_detector_class():
    from livekit.agents import inference
    from livekit.agents.inference.eot.base import _BaseStreamingTurnDetectorStream

    transport_class = _batched_transport_class()

    class SharedTurnDetector(inference.TurnDetector):
        """`TurnDetector("v1-mini")` whose streams predict through a shared `TurnPredictor`."""

        def __init__(self, predictor: TurnPredictor, deadline: float) -> None:
            super().__init__(version="v1-mini")
            self.predictor = predictor
            self.deadline = deadline

        def stream(self, **_: Any) -> _BaseStreamingTurnDetectorStream:
            transport = transport_class(
                opts=self._opts, predictor=self.predictor, deadline=self.deadline
            )
            return _BaseStreamingTurnDetectorStream(
                detector=self, opts=self._opts, transport=transport, model=self._model
            )

    return SharedTurnDetector


def preload_models(*, local: bool = False) -> None:
    """Load what every call shares, once per process, before the first call arrives.

    Imports the cloud plugins (importing openai alone blocked the event loop for most of a
    second when a call did it), loads Silero VAD and the end-of-turn model, and, with
    `local`, the offline STT and TTS plugins when the `local` extra is installed (their models
    load once, on first use, through `runtime.local`).
    """
    for providers in PROVIDERS.values():
        for info in providers.values():
            if info.extra and not local:
                continue
            try:
                load_factory(info)
            except MissingExtraError as error:
                logger.info("not preloaded: %s", error)
    # The openai client imports these on its first request: 0.3 s on a call's event loop.
    for module in ("openai.pagination", "openai.resources.chat", "openai.resources.audio"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    build_vad()
    turn_predictor()


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
    agent: AgentSpec,
    *,
    audio: bool = True,
    settings: RuntimeSettings | None = None,
    allow_private_urls: bool | None = None,
) -> Pipeline:
    """Build every model a call needs; with `audio=False` only the LLM (text chats).

    Raises:
        UnknownProviderError: the agent names a provider, model or voice the catalogue lacks.
        MissingExtraError: a provider's optional dependencies are not installed.
        ModelProviderError: a provider is misconfigured (for example its API key is missing).
    """
    settings = settings or RuntimeSettings()
    llm = build_llm(agent, settings, allow_private_urls=allow_private_urls)
    if not audio:
        return Pipeline(llm=llm)
    return Pipeline(
        llm=llm,
        stt=build_stt(agent, settings),
        tts=build_tts(agent, settings),
        vad=build_vad(),
        turn_detection=build_turn_detector(),
    )
