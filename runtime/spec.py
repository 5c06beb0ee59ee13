"""The call-spec contract shared by the runtime and the control plane (stdlib and pydantic only).

Everything a worker needs to run one call travels as a `CallSpec` (JSON via `to_dict()` /
`from_dict()`), and everything the control plane stores afterwards comes back as a `CallReport`.
The provider catalogue, the custom-function URL policy, template rendering and parameter-schema
normalisation live here too, so that the control plane validates with exactly the rules the
runtime applies. Nothing in this module imports livekit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import TypeAdapter

logger = logging.getLogger(__name__)

__all__ = [
    "CALL_DIRECTIONS",
    "CALL_TYPES",
    "HTTP_METHODS",
    "PROVIDERS",
    "PROVIDER_KINDS",
    "RESERVED_TOOL_NAMES",
    "AgentSpec",
    "CallDirection",
    "CallReport",
    "CallSpec",
    "CallStatus",
    "CallType",
    "CustomFunctionSpec",
    "DTMF_DIGITS",
    "EndReason",
    "ProviderInfo",
    "ResolvedProvider",
    "TransferDestinationSpec",
    "URLNotAllowedError",
    "UnknownProviderError",
    "address_allowed",
    "builtin_variables",
    "check_dtmf_menu",
    "call_variables",
    "check_url_allowed",
    "check_url_allowed_async",
    "mask_phone",
    "normalise_parameters",
    "normalise_provider",
    "render_template",
    "resolve_provider",
]


# --------------------------------------------------------------------------------------------
# Provider catalogue
# --------------------------------------------------------------------------------------------

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
        ),
        "local": ProviderInfo(
            kind="llm",
            name="local",
            label="Local (llama.cpp)",
            models=("SmolLM2-135M-Instruct", "gemma-3-270m"),
            factory="runtime.local.llm:LlamaCppLLM",
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
        ),
        "local": ProviderInfo(
            kind="stt",
            name="local",
            label="Local (faster-whisper)",
            models=("tiny.en",),
            factory="runtime.local.stt:WhisperSTT",
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
        ),
        "local": ProviderInfo(
            kind="tts",
            name="local",
            label="Local (Piper)",
            models=("piper",),
            voices=("en_US-joe-medium",),
            factory="runtime.local.tts:PiperTTS",
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


# --------------------------------------------------------------------------------------------
# URL policy for custom functions (SSRF)
# --------------------------------------------------------------------------------------------


class URLNotAllowedError(ValueError):
    """A custom-function URL that the SSRF policy refuses."""


ALLOWED_URL_SCHEMES = ("http", "https")


def address_allowed(address: str, allow_private: bool) -> bool:
    """Whether an IP address may be the target of a custom function.

    Private, loopback, link-local, multicast, reserved, unspecified and other non-global
    addresses are refused unless `allow_private` is set. IPv4-mapped and 6to4/Teredo IPv6
    addresses are judged by the IPv4 address they carry.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if allow_private:
        return True
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            candidates.append(ip.sixtofour)
        if ip.teredo is not None:
            candidates.extend(ip.teredo)
    for candidate in candidates:
        if (
            candidate.is_private
            or candidate.is_loopback
            or candidate.is_link_local
            or candidate.is_multicast
            or candidate.is_reserved
            or candidate.is_unspecified
            or not candidate.is_global
        ):
            return False
    return True


def _split_url(url: str) -> tuple[str, int]:
    """Check scheme and host syntax; return (host, port)."""
    if not isinstance(url, str) or not url.strip():
        raise URLNotAllowedError("the URL is empty")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise URLNotAllowedError(f"the URL {url!r} is malformed: {e}") from e
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_URL_SCHEMES:
        raise URLNotAllowedError(
            f"the URL scheme {parts.scheme or '(none)'!r} is not allowed; use http or https"
        )
    host = parts.hostname
    if not host:
        raise URLNotAllowedError(f"the URL {url!r} has no host")
    if _literal_ip(host) is None:
        try:
            host.encode("idna")  # what getaddrinfo does first: it raises UnicodeError, not OSError
        except UnicodeError as e:
            raise URLNotAllowedError(f"the host {host!r} is not a valid host name") from e
    return host, port or (443 if scheme == "https" else 80)


def _check_addresses(host: str, addresses: list[str], allow_private: bool) -> None:
    if not addresses:
        raise URLNotAllowedError(f"the host {host!r} does not resolve to any address")
    for address in addresses:
        if not address_allowed(address, allow_private):
            where = f"the address {address}" if host == address else f"{host!r} ({address})"
            raise URLNotAllowedError(
                f"{where} is a private, loopback or reserved address; "
                "only public addresses may be called"
            )


def _literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        return None


def check_url_allowed(url: str, allow_private: bool) -> None:
    """Refuse URLs that custom functions must not call (blocking DNS; see the async variant).

    Only http and https are allowed. The host is resolved with getaddrinfo and every address it
    resolves to must be public, unless `allow_private`.

    Raises:
        URLNotAllowedError: with a message saying why.
    """
    host, port = _split_url(url)
    literal = _literal_ip(host)
    if literal is not None:
        _check_addresses(literal, [literal], allow_private)
        return
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise URLNotAllowedError(f"the host {host!r} does not resolve: {e}") from e
    _check_addresses(host, [str(info[4][0]) for info in infos], allow_private)


async def check_url_allowed_async(
    url: str, allow_private: bool, *, unresolvable_ok: bool = False
) -> None:
    """Async variant of `check_url_allowed`, resolving through the running loop.

    With `unresolvable_ok` (saving an agent), a host that does not resolve yet is accepted;
    the runtime checks again, after resolution, at call time.
    """
    host, port = _split_url(url)
    literal = _literal_ip(host)
    if literal is not None:
        _check_addresses(literal, [literal], allow_private)
        return
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        if unresolvable_ok:
            return
        raise URLNotAllowedError(f"the host {host!r} does not resolve: {e}") from e
    _check_addresses(host, [str(info[4][0]) for info in infos], allow_private)


def pinned_resolver(allow_private: bool) -> Any:
    """An aiohttp resolver that refuses non-public addresses (an `aiohttp.abc.AbstractResolver`).

    The addresses it approves are the very ones aiohttp connects to, so a DNS answer that
    changes between a check and the connection (DNS rebinding) cannot slip through. aiohttp
    is imported on first use: this module itself needs only the standard library and pydantic.
    """
    return _pinned_resolver_type()(allow_private)


@cache
def _pinned_resolver_type() -> type:
    import aiohttp
    from aiohttp.abc import AbstractResolver, ResolveResult

    class PinnedResolver(AbstractResolver):
        def __init__(self, allow_private: bool) -> None:
            self._inner = aiohttp.ThreadedResolver()
            self._allow_private = allow_private

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            results = await self._inner.resolve(host, port, family)
            _check_addresses(host, [result["host"] for result in results], self._allow_private)
            return results

        async def close(self) -> None:
            await self._inner.close()

    return PinnedResolver


# --------------------------------------------------------------------------------------------
# Templates and variables
# --------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s][^{}]*?)\s*\}\}")


def render_template(text: str | None, variables: Mapping[str, Any] | None) -> str:
    """Fill `{{variable}}` placeholders; missing variables render empty. Never raises."""
    if not text:
        return ""
    try:
        variables = dict(variables or {})
        lowered = {str(key).lower(): value for key, value in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            value = variables.get(name, lowered.get(name.lower()))
            return "" if value is None else str(value)

        return _PLACEHOLDER.sub(substitute, str(text))
    except Exception:  # a prompt must never crash a call
        logger.exception("rendering a template failed; using it unrendered")
        return str(text)


def mask_phone(number: str | None) -> str:
    """Mask a phone number for logs: "+16505551234" -> "+1650***1234"."""
    if not number:
        return ""
    number = str(number)
    if len(number) <= 8:
        return "***" + number[-2:]
    return f"{number[:5]}***{number[-4:]}"


# --------------------------------------------------------------------------------------------
# Custom-function parameters
# --------------------------------------------------------------------------------------------

JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_SCHEMA_KEYS = {"type", "properties", "required", "additionalProperties", "$schema", "title"}


def _normalise_property(name: str, prop: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not _PARAM_NAME.match(name):
        raise ValueError(
            f"parameter name {name!r} is invalid; use letters, digits and underscores "
            "(at most 64 characters)"
        )
    if isinstance(prop, str):  # {"city": "string"}
        prop = {"type": prop}
    if not isinstance(prop, Mapping):
        raise ValueError(
            f"parameter {name!r} must be an object such as "
            '{"type": "string", "description": "..."}'
        )
    prop = {key: value for key, value in prop.items() if key != "required"}
    types = prop.get("type")
    if types is None:
        if not any(key in prop for key in ("enum", "anyOf", "oneOf", "allOf", "$ref", "const")):
            prop["type"] = "string"
    else:
        for type_name in types if isinstance(types, list) else [types]:
            if type_name not in JSON_TYPES:
                raise ValueError(
                    f"parameter {name!r} has unknown type {type_name!r}; "
                    f"allowed: {', '.join(JSON_TYPES)}"
                )
    if "description" in prop and not isinstance(prop["description"], str):
        raise ValueError(f"parameter {name!r}: description must be a string")
    if prop.get("type") == "array" and "items" not in prop:
        prop["items"] = {"type": "string"}  # OpenAI rejects array schemas without items
    return dict(prop)


def normalise_parameters(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Turn custom-function parameters into a JSON Schema object.

    Accepts a JSON Schema object (`{"type": "object", "properties": {...}, "required": [...]}`),
    the flat form `{name: {"type": ..., "description": ..., "required": bool}}` (each parameter
    is required unless it says `"required": false`), or `{}`/None for no parameters.

    Returns:
        `{"type": "object", "properties": {...}, "required": [...]}` (plus any other schema keys
        the input carried, such as `additionalProperties`).

    Raises:
        ValueError: with a message naming the offending parameter.
    """
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ValueError("parameters must be an object (a JSON Schema or {name: {type, ...}})")

    is_schema = params.get("type") == "object" or isinstance(params.get("properties"), Mapping)
    if "type" in params and not isinstance(params["type"], Mapping) and not is_schema:
        raise ValueError(f"parameters must be an object schema, not type {params['type']!r}")

    if is_schema:
        properties = params.get("properties", {})
        if not isinstance(properties, Mapping):
            raise ValueError("'properties' must be an object")
        required = params.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise ValueError("'required' must be a list of parameter names")
        schema = {key: value for key, value in params.items() if key in _SCHEMA_KEYS}
        schema.pop("$schema", None)
        schema["type"] = "object"
        schema["properties"] = {
            name: _normalise_property(name, prop) for name, prop in properties.items()
        }
        unknown = [name for name in required if name not in schema["properties"]]
        if unknown:
            raise ValueError(f"required parameter(s) not in properties: {', '.join(unknown)}")
        schema["required"] = list(dict.fromkeys(required))
        return schema

    properties: dict[str, Any] = {}
    required_names: list[str] = []
    for name, prop in params.items():
        properties[name] = _normalise_property(name, prop)
        flag = prop.get("required", True) if isinstance(prop, Mapping) else True
        if not isinstance(flag, bool):
            raise ValueError(f"parameter {name!r}: 'required' must be true or false")
        if flag:
            required_names.append(name)
    return {"type": "object", "properties": properties, "required": required_names}


# --------------------------------------------------------------------------------------------
# Call specs and reports
# --------------------------------------------------------------------------------------------


class CallStatus(StrEnum):
    """A call log's progress (PARITY.md, "Calls and call logs")."""

    QUEUED = "queued"
    DIALING = "dialing"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    REJECTED = "rejected"


class EndReason(StrEnum):
    """Why a call ended (PARITY.md, "Calls and call logs")."""

    USER_HANGUP = "user_hangup"
    AGENT_HANGUP = "agent_hangup"
    MAX_DURATION_REACHED = "max_duration_reached"
    INACTIVITY = "inactivity"
    VOICEMAIL = "voicemail"
    TRANSFERRED = "transferred"
    DIAL_FAILED = "dial_failed"
    ERROR = "error"


_BUSY = frozenset({486, 600})
_NO_ANSWER = frozenset({408, 480, 487})
_REJECTED = frozenset({403, 603})


def call_status_for_sip(sip_status: int | None) -> CallStatus:
    """The call-log status for a failed call's SIP response code.

    486 Busy Here and 600 Busy Everywhere are "busy"; 408 Request Timeout, 480 Temporarily
    Unavailable and 487 Request Terminated (ringing cancelled) are "no_answer"; 403 Forbidden
    and 603 Decline are "rejected"; anything else, or no code at all, is "failed".
    """
    if sip_status in _BUSY:
        return CallStatus.BUSY
    if sip_status in _NO_ANSWER:
        return CallStatus.NO_ANSWER
    if sip_status in _REJECTED:
        return CallStatus.REJECTED
    return CallStatus.FAILED


CallDirection = Literal["inbound", "outbound", "web"]
CallType = Literal["phone", "web"]
CALL_DIRECTIONS: tuple[str, ...] = ("inbound", "outbound", "web")
CALL_TYPES: tuple[str, ...] = ("phone", "web")
HTTP_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: Tool names the runtime defines itself; custom functions may not use them.
RESERVED_TOOL_NAMES: frozenset[str] = frozenset(
    {"end_call", "lookup_knowledge", "transfer_call", "send_dtmf", "detected_answering_machine"}
)
#: The keys of a telephone keypad, as DTMF carries them.
DTMF_DIGITS = "0123456789*#"
VOICEMAIL_ACTIONS: tuple[str, ...] = ("hang_up", "leave_message")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SIP_URI = re.compile(r"^sips?:[^@\s]+@[^@\s]+$")
_DESTINATION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class _Serialisable:
    """JSON round-trip for the frozen dataclasses below (validated by pydantic)."""

    @classmethod
    def _adapter(cls) -> TypeAdapter[Any]:
        return _adapter_for(cls)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists, enums their values)."""
        return self._adapter().dump_python(self, mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """Build from a dict as produced by `to_dict()`; unknown keys are ignored.

        Raises:
            ValueError: (pydantic's ValidationError) when a field is missing or of the wrong type.
        """
        return cls._adapter().validate_python(dict(data))

    def replace(self, **changes: Any):
        """A copy with some fields changed (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)


@cache
def _adapter_for(cls: type) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


@dataclass(frozen=True, kw_only=True)
class CustomFunctionSpec(_Serialisable):
    """One custom function (an HTTP endpoint the LLM may call), with its headers decrypted."""

    name: str
    description: str = ""
    url: str
    method: str = "POST"
    parameters: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # secrets: never logged
    speak_during: str | None = None
    speak_after: str | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not _TOOL_NAME.match(self.name or ""):
            raise ValueError(
                f"custom function name {self.name!r} is invalid; use letters, digits, '_' or '-' "
                "(at most 64 characters)"
            )
        if self.name in RESERVED_TOOL_NAMES:
            raise ValueError(f"custom function name {self.name!r} is reserved")
        method = str(self.method or "").upper()
        if method not in HTTP_METHODS:
            raise ValueError(
                f"method {self.method!r} is not allowed; use {', '.join(HTTP_METHODS)}"
            )
        object.__setattr__(self, "method", method)
        if not 0 < float(self.timeout) <= 120:
            raise ValueError("timeout must be between 0 and 120 seconds")
        object.__setattr__(self, "timeout", float(self.timeout))
        object.__setattr__(self, "parameters", normalise_parameters(self.parameters))
        object.__setattr__(
            self, "headers", {str(key): str(value) for key, value in self.headers.items()}
        )


@dataclass(frozen=True, kw_only=True)
class TransferDestinationSpec(_Serialisable):
    """Where `transfer_call` may send the caller: chosen by `name`, described to the LLM.

    `destination` is an E.164 number or a SIP URI; `transfer_to` is what a SIP REFER carries.
    """

    name: str
    destination: str
    description: str = ""

    def __post_init__(self) -> None:
        if not _DESTINATION_NAME.match(self.name or ""):
            raise ValueError(
                f"transfer destination name {self.name!r} is invalid; use lower-case letters, "
                "digits, '_' or '-' (at most 40 characters)"
            )
        if not (_E164.match(self.destination or "") or _SIP_URI.match(self.destination or "")):
            raise ValueError("a transfer destination must be an E.164 number or a SIP URI")

    @property
    def transfer_to(self) -> str:
        """The REFER target: `tel:+1...` for a number, the SIP URI as it is otherwise."""
        return self.destination if self.destination.startswith("sip") else f"tel:{self.destination}"

    @property
    def masked(self) -> str:
        """The destination as logs and call logs show it (numbers masked, SIP users too)."""
        if self.destination.startswith("sip"):
            scheme, _, rest = self.destination.partition(":")
            user, _, host = rest.partition("@")
            return f"{scheme}:{mask_phone(user)}@{host}"
        return mask_phone(self.destination)


def check_dtmf_menu(menu: Mapping[str, str]) -> dict[str, str]:
    """A keypad menu, digit -> instruction; raises ValueError naming a key that is no digit."""
    checked: dict[str, str] = {}
    for digit, instruction in menu.items():
        if len(str(digit)) != 1 or str(digit) not in DTMF_DIGITS:
            raise ValueError(f"dtmf_menu key {digit!r} is not a keypad digit (0-9, * or #)")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"dtmf_menu instruction for {digit!r} must be non-empty text")
        checked[str(digit)] = instruction.strip()
    return checked


@dataclass(frozen=True, kw_only=True)
class AgentSpec(_Serialisable):
    """An agent's settings as one call runs them.

    Model fields left None mean "the provider's default" (see `resolve_provider`). Prompt and
    first message may hold `{{variables}}`; they are rendered per call by the runtime.
    """

    agent_id: str
    name: str = ""
    llm_provider: str = "openai"
    llm_model: str | None = None
    llm_base_url: str | None = None
    #: The agent's own key for `llm_base_url`; the platform's key never goes to that endpoint.
    llm_api_key: str | None = field(default=None, repr=False)  # a secret: never logged
    temperature: float = 0.7
    max_tokens: int | None = None
    stt_provider: str = "deepgram"
    stt_model: str | None = None
    tts_provider: str = "openai"
    tts_model: str | None = None
    tts_voice: str | None = None
    language: str = "en"
    system_prompt: str = ""
    first_message: str = ""
    interruptible: bool = True
    min_endpointing_delay: float = 0.5
    max_endpointing_delay: float = 3.0
    idle_warning_after: float | None = None
    idle_warning_message: str = "Are you still there?"
    idle_hangup_after: float | None = None
    max_call_duration: int = 1800
    max_duration_message: str = (
        "I'm sorry, we have reached the time limit for this call. Thank you, goodbye!"
    )
    end_call_phrases: tuple[str, ...] = ()
    custom_functions: tuple[CustomFunctionSpec, ...] = ()
    knowledge_ready: bool = False
    #: Outbound calls only: tell a person from an answering machine in the first seconds.
    voicemail_detection: bool = False
    voicemail_action: Literal["hang_up", "leave_message"] = "hang_up"
    #: Said after the beep with `leave_message` (may hold `{{variables}}`).
    voicemail_message: str = ""
    transfer_destinations: tuple[TransferDestinationSpec, ...] = ()
    #: digit -> instruction the agent follows when the caller presses it
    dtmf_menu: dict[str, str] = field(default_factory=dict)
    recording_enabled: bool = False
    #: When set, each reply is one JSON object of this JSON Schema (post-call analysis); the
    #: local LLM constrains its decoding to it, so even a tiny model answers in that shape.
    reply_schema: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.temperature <= 2:
            raise ValueError("temperature must be between 0 and 2")
        if self.max_call_duration <= 0:
            raise ValueError("max_call_duration must be positive")
        names = [function.name for function in self.custom_functions]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate custom function name(s): {', '.join(duplicates)}")
        object.__setattr__(self, "end_call_phrases", tuple(self.end_call_phrases))
        object.__setattr__(self, "custom_functions", tuple(self.custom_functions))
        object.__setattr__(self, "transfer_destinations", tuple(self.transfer_destinations))
        names = [destination.name for destination in self.transfer_destinations]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate transfer destination name(s): {', '.join(duplicates)}")
        if self.voicemail_action not in VOICEMAIL_ACTIONS:
            raise ValueError(f"voicemail_action must be one of {', '.join(VOICEMAIL_ACTIONS)}")
        object.__setattr__(self, "dtmf_menu", check_dtmf_menu(self.dtmf_menu))

    def resolved_llm(self) -> ResolvedProvider:
        return resolve_provider("llm", self.llm_provider, self.llm_model, None, self.llm_base_url)

    def resolved_stt(self) -> ResolvedProvider:
        return resolve_provider("stt", self.stt_provider, self.stt_model)

    def resolved_tts(self) -> ResolvedProvider:
        return resolve_provider("tts", self.tts_provider, self.tts_model, self.tts_voice)


@dataclass(frozen=True, kw_only=True)
class CallSpec(_Serialisable):
    """Everything a worker needs to run one call."""

    call_id: str
    workspace_id: str
    direction: CallDirection = "web"
    call_type: CallType = "web"
    from_number: str | None = None
    to_number: str | None = None
    dynamic_variables: dict[str, str] = field(default_factory=dict)
    agent: AgentSpec
    room_name: str | None = None
    sip_trunk_id: str | None = None
    #: noise cancellation on the SIP leg the worker dials (the calling number's setting)
    krisp_enabled: bool = False
    allow_private_urls: bool = False

    def __post_init__(self) -> None:
        if self.direction not in CALL_DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(CALL_DIRECTIONS)}")
        if self.call_type not in CALL_TYPES:
            raise ValueError(f"call_type must be one of {', '.join(CALL_TYPES)}")
        object.__setattr__(
            self,
            "dynamic_variables",
            {
                str(key): "" if value is None else str(value)
                for key, value in self.dynamic_variables.items()
            },
        )

    @property
    def customer_number(self) -> str | None:
        """The other party's number: the caller on inbound calls, the callee on outbound ones."""
        return self.to_number if self.direction == "outbound" else self.from_number


@dataclass(frozen=True, kw_only=True)
class CallReport(_Serialisable):
    """What the runtime posts back when a call ends, however it ends.

    `transcript` items are `{role, text, started_at}` with `role` in user, assistant, tool_call,
    tool_result (tool items also carry `tool_name`, `arguments` and/or `result`); `usage` holds
    `llm_prompt_tokens`, `llm_completion_tokens`, `stt_seconds`, `tts_characters`; `latencies`
    items are `{turn, end_of_utterance_ms, llm_ttft_ms, tts_ttfb_ms, end_to_end_ms}`.
    Times are ISO 8601 strings in UTC.
    """

    call_id: str
    status: CallStatus
    end_reason: EndReason | None = None
    started_at: str | None = None
    answered_at: str | None = None
    ended_at: str | None = None
    sip_status: int | None = None
    transcript: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int | float] = field(
        default_factory=lambda: {
            "llm_prompt_tokens": 0,
            "llm_completion_tokens": 0,
            "stt_seconds": 0.0,
            "tts_characters": 0,
        }
    )
    latencies: list[dict[str, Any]] = field(default_factory=list)
    recording_path: str | None = None
    error: str | None = None
    #: each transfer attempt: `{destination_name, destination (masked), at, outcome, error}`,
    #: outcome "succeeded" or "failed"
    transfers: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", CallStatus(self.status))
        if self.end_reason is not None:
            object.__setattr__(self, "end_reason", EndReason(self.end_reason))

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from answer (or start) to end, when both are known."""
        begin = self.answered_at or self.started_at
        if not begin or not self.ended_at:
            return None
        return (
            datetime.fromisoformat(self.ended_at) - datetime.fromisoformat(begin)
        ).total_seconds()


# --------------------------------------------------------------------------------------------
# Built-in variables
# --------------------------------------------------------------------------------------------


def builtin_variables(call: CallSpec, now: datetime | None = None) -> dict[str, str]:
    """The variables every call has: now, today, caller_number, called_number, call_id, ...

    `caller_number` is the number that placed the call (`from_number`) and `called_number` the
    one that was dialled (`to_number`); `customer_number` is the other party whatever the
    direction. `now` defaults to the current UTC time; a naive `now` is taken as UTC.
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return {
        "now": now.strftime("%Y-%m-%d %H:%M %Z").strip(),
        "today": now.strftime("%Y-%m-%d"),
        "weekday": now.strftime("%A"),
        "caller_number": call.from_number or "",
        "called_number": call.to_number or "",
        "customer_number": call.customer_number or "",
        "call_id": call.call_id,
        "agent_name": call.agent.name,
        "direction": call.direction,
    }


def call_variables(call: CallSpec, now: datetime | None = None) -> dict[str, str]:
    """The dynamic variables of a call overlaid with the built-ins (which win: they are facts)."""
    return {**call.dynamic_variables, **builtin_variables(call, now)}
