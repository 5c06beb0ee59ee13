"""The call-spec contract: what a worker runs (`CallSpec`) and what it reports (`CallReport`).

Everything a worker needs to run one call travels as a `CallSpec` (JSON via `to_dict()` /
`from_dict()`), and everything the control plane stores afterwards comes back as a `CallReport`,
with the call statuses and end reasons both sides use.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import TypeAdapter

from runtime.spec.functions import normalise_parameters
from runtime.spec.phone import is_transfer_address, mask_phone
from runtime.spec.providers import (
    ProviderChoice,
    ProviderCredential,
    ResolvedProvider,
    resolve_provider,
)


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
    #: a provider of the agent's had no credentials when the call started (it never rang on)
    PROVIDER_NOT_CONFIGURED = "provider_not_configured"
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
    {
        "end_call",
        "lookup_knowledge",
        "transfer_call",
        "send_dtmf",
        "detected_answering_machine",
        "handoff",
    }
)
#: The keys of a telephone keypad, as DTMF carries them.
DTMF_DIGITS = "0123456789*#"
VOICEMAIL_ACTIONS: tuple[str, ...] = ("hang_up", "leave_message")
TRANSFER_TYPES: tuple[str, ...] = ("cold", "warm")
#: What a hand-off gives the next agent: the conversation so far, or a summary of it.
HANDOFF_CARRY: tuple[str, ...] = ("transcript", "summary")
#: Seconds a warm transfer's human may take to answer, by default.
DEFAULT_RING_TIMEOUT = 30.0
DEFAULT_MAX_HANDOFFS = 5
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_DESTINATION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class _Serialisable:
    """JSON round-trip for the frozen dataclasses below (validated by pydantic)."""

    @classmethod
    def _adapter(cls) -> TypeAdapter[Any]:
        adapter = _ADAPTERS.get(cls)
        if adapter is None:  # built once per class: building one costs milliseconds
            adapter = _ADAPTERS[cls] = TypeAdapter(cls)
        return adapter

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
        # every subclass is a dataclass, which this mixin itself is not
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


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
    #: "cold": a SIP REFER hands the caller over; "warm": a human is dialled into the call's
    #: room, briefed while the caller holds, and bridged once they accept.
    type: Literal["cold", "warm"] = "cold"
    #: warm: seconds the human may take to answer, and again to accept once briefed
    ring_timeout: float = DEFAULT_RING_TIMEOUT
    #: warm: what the briefing the LLM writes for the human should say
    briefing_instructions: str = ""
    #: warm: the audio the caller hears on hold (a built-in tone when None)
    hold_audio_url: str | None = None
    #: warm: what the agent tells the caller when the human declines or cannot be reached
    fallback_message: str = ""

    def __post_init__(self) -> None:
        if not _DESTINATION_NAME.match(self.name or ""):
            raise ValueError(
                f"transfer destination name {self.name!r} is invalid; use lower-case letters, "
                "digits, '_' or '-' (at most 40 characters)"
            )
        if not is_transfer_address(self.destination):
            raise ValueError("a transfer destination must be an E.164 number or a SIP URI")
        if self.type not in TRANSFER_TYPES:
            raise ValueError(f"a transfer's type must be one of {', '.join(TRANSFER_TYPES)}")
        if not 0 < float(self.ring_timeout) <= 300:
            raise ValueError("ring_timeout must be between 0 and 300 seconds")

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


@dataclass(frozen=True, kw_only=True)
class HandoffDestinationSpec(_Serialisable):
    """Another agent of the workspace the `handoff` tool may pass the call to, by `name`.

    The agent's own spec travels in `CallSpec.handoff_agents` under `agent_id`.
    """

    agent_id: str
    name: str
    description: str = ""
    #: what the next agent gets: the conversation so far ("transcript") or a summary of it
    carry: Literal["transcript", "summary"] = "transcript"
    #: whether the next agent says its first message on taking over
    greet_on_handoff: bool = False

    def __post_init__(self) -> None:
        if not _DESTINATION_NAME.match(self.name or ""):
            raise ValueError(
                f"hand-off destination name {self.name!r} is invalid; use lower-case letters, "
                "digits, '_' or '-' (at most 40 characters)"
            )
        if self.carry not in HANDOFF_CARRY:
            raise ValueError(f"carry must be one of {', '.join(HANDOFF_CARRY)}")


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
    #: what the agent tunes per provider (`ProviderInfo.settings`), checked at save
    llm_settings: dict[str, Any] = field(default_factory=dict)
    stt_settings: dict[str, Any] = field(default_factory=dict)
    tts_settings: dict[str, Any] = field(default_factory=dict)
    #: who takes over, in order, when the provider before errors or times out mid-call
    llm_fallbacks: tuple[ProviderChoice, ...] = ()
    stt_fallbacks: tuple[ProviderChoice, ...] = ()
    tts_fallbacks: tuple[ProviderChoice, ...] = ()
    #: the workspace's credentials for the vendors this agent uses, by provider name; the
    #: platform's environment serves the rest (`runtime.providers`)
    credentials: dict[str, ProviderCredential] = field(default_factory=dict, repr=False)
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
    handoff_destinations: tuple[HandoffDestinationSpec, ...] = ()
    #: hand-offs one call may make at most (the answering agent's setting governs the call)
    max_handoffs: int = DEFAULT_MAX_HANDOFFS
    #: When set, each reply is one JSON object of this JSON Schema (post-call analysis); the
    #: local LLM constrains its decoding to it, so even a tiny model answers in that shape.
    reply_schema: dict[str, Any] | None = field(default=None, compare=False)
    #: The agent version these settings are (None: an agent saved before versions existed).
    agent_version: int | None = None

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
        for kind in ("llm", "stt", "tts"):
            fallbacks = f"{kind}_fallbacks"
            object.__setattr__(self, fallbacks, tuple(getattr(self, fallbacks)))
        object.__setattr__(self, "transfer_destinations", tuple(self.transfer_destinations))
        names = [destination.name for destination in self.transfer_destinations]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate transfer destination name(s): {', '.join(duplicates)}")
        if self.voicemail_action not in VOICEMAIL_ACTIONS:
            raise ValueError(f"voicemail_action must be one of {', '.join(VOICEMAIL_ACTIONS)}")
        object.__setattr__(self, "dtmf_menu", check_dtmf_menu(self.dtmf_menu))
        object.__setattr__(self, "handoff_destinations", tuple(self.handoff_destinations))
        names = [destination.name for destination in self.handoff_destinations]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate hand-off destination name(s): {', '.join(duplicates)}")
        if not 0 <= self.max_handoffs <= 50:
            raise ValueError("max_handoffs must be between 0 and 50")

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
    #: Agent tests: custom functions answered without a request, by name: `{"response": <JSON>}`
    #: (what the LLM sees) or `{"error": "<text>"}` (a failure the LLM is told about).
    function_mocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the agents hand-offs can reach from this call's agent (directly or along a chain), by id
    handoff_agents: dict[str, AgentSpec] = field(default_factory=dict)

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
    #: each hand-off between agents: `{from_agent_id, to_agent_id, name, at, reason}`
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    #: the agent speaking when the call ended (the answering one when nobody took over)
    final_agent_id: str | None = None

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
