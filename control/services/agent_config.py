"""The validated shape of an agent's settings, checked against the runtime's provider catalogue."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from runtime.spec import (
    DEFAULT_MAX_HANDOFFS,
    DEFAULT_RING_TIMEOUT,
    DTMF_DIGITS,
    MAX_FALLBACKS,
    CustomFunctionSpec,
    TransferDestinationSpec,
    UnknownProviderError,
    check_dtmf_menu,
    install_advice,
    is_e164,
    is_transfer_address,
    provider_info,
    resolve_provider,
)

HEADER_NAME_PATTERN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
MAX_CUSTOM_FUNCTIONS = 32


def check_e164(number: str) -> str:
    number = number.strip()
    if not is_e164(number):
        raise ValueError("must be an E.164 phone number such as +16505551234")
    return number


E164 = Annotated[str, AfterValidator(check_e164)]

ORIGIN_PATTERN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")
MAX_WEB_CALL_ORIGINS = 20


def check_origin(origin: str) -> str:
    """A browser `Origin` (scheme://host[:port]), lower-cased, as the header will carry it."""
    origin = origin.strip().rstrip("/").lower()
    if not ORIGIN_PATTERN.match(origin):
        raise ValueError("must be an origin such as https://www.example.com (no path)")
    return origin


def without_nul(value: Any) -> Any:
    """`value` (text, or lists and dicts of it) unless it holds a NUL character.

    PostgreSQL's text and JSON cannot store NUL: it is refused here as bad input (a 400), not
    failed there (a 500).
    """
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, dict):
        for key, item in value.items():
            without_nul(key)
            without_nul(item)
    elif isinstance(value, list):
        for item in value:
            without_nul(item)
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return without_nul(value)


class CustomFunction(Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=1024)
    url: str = Field(min_length=1, max_length=2048)
    method: str = "POST"
    parameters: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict, max_length=20)
    speak_during: str | None = Field(default=None, max_length=500)
    speak_after: str | None = Field(default=None, max_length=500)
    timeout: float = Field(default=10.0, ge=1, le=30)

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not HEADER_NAME_PATTERN.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if len(value) > 4096 or "\n" in value or "\r" in value:
                raise ValueError(f"header {name!r} has an invalid value")
        return headers

    @model_validator(mode="after")
    def _as_the_runtime_will_run_it(self) -> CustomFunction:
        # One set of rules: the runtime's own spec validates name, method, timeout and
        # normalises the parameters to a JSON Schema object.
        spec = CustomFunctionSpec(
            name=self.name,
            description=self.description,
            url=self.url,
            method=self.method,
            parameters=self.parameters,
            headers=self.headers,
            speak_during=self.speak_during,
            speak_after=self.speak_after,
            timeout=self.timeout,
        )
        self.method = spec.method
        self.parameters = spec.parameters
        return self


class TransferDestination(Strict):
    """A cold-transfer target (SIP REFER); the LLM picks it by `name` and sees `description`.

    Without a name, the agent saves it as `destination_<n>` (its place in the list).
    """

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="lower-case name the agent uses, e.g. billing",
    )
    destination: str = Field(description="E.164 number or SIP URI")
    description: str = Field(default="", max_length=500)
    type: Literal["cold", "warm"] = Field(
        default="cold",
        description="cold: SIP REFER; warm: the human is briefed while the caller holds",
    )
    ring_timeout: float = Field(
        default=DEFAULT_RING_TIMEOUT,
        ge=5,
        le=120,
        description="warm: seconds the human may take to answer (and to accept once briefed)",
    )
    briefing_instructions: str = Field(default="", max_length=2000)
    hold_audio_url: str | None = Field(
        default=None, max_length=2048, description="warm: audio the caller hears on hold"
    )
    fallback_message: str = Field(default="", max_length=500)

    @field_validator("hold_audio_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.strip().lower().startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return url.strip() if url else None

    @field_validator("destination")
    @classmethod
    def _e164_or_sip(cls, destination: str) -> str:
        destination = destination.strip()
        if is_transfer_address(destination):
            return destination
        raise ValueError("must be an E.164 number or a SIP URI (sip:user@host)")


class HandoffDestination(Strict):
    """Another agent of the same workspace the `handoff` tool may pass the call to.

    Without a name, the agent saves it as `agent_<n>` (its place in the list).
    """

    agent_id: uuid.UUID
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="lower-case name the LLM chooses, e.g. billing",
    )
    description: str = Field(default="", max_length=500)
    carry: Literal["transcript", "summary"] = "transcript"
    greet_on_handoff: bool = False


MAX_DTMF_INSTRUCTION = 500


def _dtmf_menu(menu: dict[str, str]) -> dict[str, str]:
    if any(len(instruction) > MAX_DTMF_INSTRUCTION for instruction in menu.values()):
        raise ValueError(f"dtmf_menu instructions are at most {MAX_DTMF_INSTRUCTION} characters")
    return check_dtmf_menu(menu)


DtmfMenu = Annotated[
    dict[str, str],
    AfterValidator(_dtmf_menu),
    Field(
        default_factory=dict,
        max_length=len(DTMF_DIGITS),
        description="keypad digit (0-9, *, #) -> what the agent does when the caller presses it",
    ),
]


class Disposition(Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=500)


class DataPoint(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    description: str = Field(default="", max_length=500)
    type: Literal["string", "number", "integer", "boolean"] = "string"


class PostCallAnalysis(Strict):
    summary: bool = True
    sentiment: bool = True
    dispositions: list[Disposition] = Field(default_factory=list, max_length=50)
    data_points: list[DataPoint] = Field(default_factory=list, max_length=50)
    success_evaluation: str | None = Field(default=None, max_length=2000)


MAX_SPLIT_ENTRIES = 5


class SplitEntry(Strict):
    """One arm of an A/B split: a version of the agent and its share of new calls."""

    version: int = Field(ge=1)
    weight: int = Field(ge=0, le=100, description="percent of new calls")


def _check_split(split: list[SplitEntry] | None) -> list[SplitEntry] | None:
    if not split:
        return None
    if sum(entry.weight for entry in split) != 100:
        raise ValueError("the weights must sum to 100")
    versions = [entry.version for entry in split]
    if len(set(versions)) != len(versions):
        raise ValueError("each version may appear once")
    return split


TrafficSplit = Annotated[
    Annotated[list[SplitEntry], Field(max_length=MAX_SPLIT_ENTRIES)] | None,
    AfterValidator(_check_split),
    Field(
        default=None,
        description="A/B split of new calls over versions (weights sum to 100); null: the "
        "published version only",
    ),
]


class FallbackProvider(Strict):
    """A provider that takes over when the one before it fails (its model, voice: defaults)."""

    provider: str = Field(min_length=1, max_length=40)
    model: str | None = Field(default=None, max_length=200)
    voice: str | None = Field(default=None, max_length=200)


def _check_fallbacks(kind: str, primary: Any, fallbacks: list[FallbackProvider]) -> None:
    """Each fallback from the catalogue, installed, and none repeating one before it."""
    seen = [(primary.name, primary.model, primary.voice)]
    for fallback in fallbacks:
        try:
            resolved = resolve_provider(kind, fallback.provider, fallback.model, fallback.voice)
        except UnknownProviderError as error:
            raise ValueError(f"{kind.upper()}_fallbacks: {error}") from error
        _provider_ready(kind, resolved.name, {})
        if (resolved.name, resolved.model, resolved.voice) in seen:
            raise ValueError(
                f"{kind.upper()}_fallbacks: {resolved.name} {resolved.model} is already listed"
            )
        seen.append((resolved.name, resolved.model, resolved.voice))
        fallback.provider, fallback.model = resolved.name, resolved.model
        fallback.voice = resolved.voice


def _provider_ready(kind: str, name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The provider's settings checked, and its plugin installed (else the extra is named)."""
    info = provider_info(kind, name)
    if not info.installed():
        raise ValueError(
            f"the {info.label} {kind.upper()} provider is not installed on this platform; "
            f"install the '{info.extra}' extra: {install_advice(info.extra)}"
        )
    return info.check_settings(settings)


class AgentConfig(Strict):
    """Every setting of an agent, with defaults; the create body of API.md is valid as is."""

    agent_name: str = Field(min_length=1, max_length=200)
    phone_number: E164 | None = None
    LLM_provider: str = "openai"  # noqa: N815 (API.md's field names)
    LLM_model: str | None = None  # noqa: N815
    LLM_base_url: str | None = Field(default=None, max_length=2048)  # noqa: N815
    # The agent's own key for its `LLM_base_url` (write-only: encrypted, masked on read). The
    # platform's OPENAI_API_KEY never goes to an agent's own endpoint.
    LLM_api_key: str | None = Field(default=None, min_length=1, max_length=4096)  # noqa: N815
    STT_provider: str = "deepgram"  # noqa: N815
    STT_model: str | None = None  # noqa: N815
    TTS_provider: str = "openai"  # noqa: N815
    TTS_model: str | None = None  # noqa: N815
    TTS_voice: str | None = None  # noqa: N815
    # what each provider lets an agent tune (the catalogue's `settings`, GET /providers)
    LLM_settings: dict[str, Any] = Field(default_factory=dict, max_length=20)  # noqa: N815
    STT_settings: dict[str, Any] = Field(default_factory=dict, max_length=20)  # noqa: N815
    TTS_settings: dict[str, Any] = Field(default_factory=dict, max_length=20)  # noqa: N815
    # who takes over mid-call when the provider before errors or times out, in order
    LLM_fallbacks: list[FallbackProvider] = Field(  # noqa: N815
        default_factory=list, max_length=MAX_FALLBACKS
    )
    STT_fallbacks: list[FallbackProvider] = Field(  # noqa: N815
        default_factory=list, max_length=MAX_FALLBACKS
    )
    TTS_fallbacks: list[FallbackProvider] = Field(  # noqa: N815
        default_factory=list, max_length=MAX_FALLBACKS
    )
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    system_prompt: str = Field(default="", max_length=20000)
    first_message: str = Field(default="", max_length=2000)
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=1024, ge=1, le=16384)
    max_call_duration: int = Field(default=1800, ge=10, le=4 * 3600, description="seconds")
    max_duration_message: str = Field(
        default="We have reached the time limit for this call. Thank you, goodbye!",
        max_length=500,
    )
    interruptible: bool = True
    min_endpointing_delay: float = Field(default=0.5, ge=0, le=5)
    max_endpointing_delay: float = Field(default=3.0, ge=0.1, le=10)
    idle_warning_after: float | None = Field(default=10, ge=2, le=600)
    idle_warning_message: str = Field(default="Are you still there?", max_length=500)
    idle_hangup_after: float | None = Field(default=30, ge=5, le=3600)
    end_call_phrases: list[str] = Field(default_factory=list, max_length=20)
    voicemail_detection: bool = False
    voicemail_action: Literal["hang_up", "leave_message"] = "hang_up"
    voicemail_message: str = Field(default="", max_length=1000)
    transfer_destinations: list[TransferDestination] = Field(default_factory=list, max_length=20)
    handoff_destinations: list[HandoffDestination] = Field(default_factory=list, max_length=20)
    max_handoffs: int = Field(default=DEFAULT_MAX_HANDOFFS, ge=0, le=50)
    dtmf_menu: DtmfMenu
    recording_enabled: bool = False
    allow_web_calls: bool = False
    web_call_origins: list[Annotated[str, AfterValidator(check_origin)]] = Field(
        default_factory=list, max_length=MAX_WEB_CALL_ORIGINS
    )
    post_call_analysis: PostCallAnalysis = Field(default_factory=PostCallAnalysis)
    custom_functions: list[CustomFunction] = Field(
        default_factory=list, max_length=MAX_CUSTOM_FUNCTIONS
    )
    # The agent's version settings (its own: changing them makes no version), and a note for
    # the version a save makes (control.services.agent_versions).
    auto_publish: bool = Field(default=True, description="each save is published at once")
    require_passing_tests: bool = Field(
        default=False, description="publish only versions whose latest completed run passed"
    )
    traffic_split: TrafficSplit
    version_note: str | None = Field(default=None, max_length=500)

    @field_validator("LLM_api_key")
    @classmethod
    def _one_line_key(cls, key: str | None) -> str | None:
        if key is not None and (key != key.strip() or any(c in key for c in "\r\n")):
            raise ValueError("must be a single line without surrounding spaces")
        return key

    @model_validator(mode="after")
    def _providers_from_the_catalogue(self) -> AgentConfig:
        try:
            llm = resolve_provider(
                "llm", self.LLM_provider, self.LLM_model, None, self.LLM_base_url
            )
            stt = resolve_provider("stt", self.STT_provider, self.STT_model)
            tts = resolve_provider("tts", self.TTS_provider, self.TTS_model, self.TTS_voice)
        except UnknownProviderError as error:
            raise ValueError(str(error)) from error
        for kind, name, settings_field in (
            ("llm", llm.name, "LLM_settings"),
            ("stt", stt.name, "STT_settings"),
            ("tts", tts.name, "TTS_settings"),
        ):
            checked = _provider_ready(kind, name, getattr(self, settings_field))
            setattr(self, settings_field, checked)
        for kind, primary in (("llm", llm), ("stt", stt), ("tts", tts)):
            _check_fallbacks(kind, primary, getattr(self, f"{kind.upper()}_fallbacks"))
        self.LLM_provider, self.LLM_model = llm.name, llm.model
        self.STT_provider, self.STT_model = stt.name, stt.model
        self.TTS_provider, self.TTS_model, self.TTS_voice = tts.name, tts.model, tts.voice
        return self

    @model_validator(mode="after")
    def _consistent(self) -> AgentConfig:
        names = [function.name for function in self.custom_functions]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"custom function names must be unique: {', '.join(duplicates)}")
        targets: list[str] = []
        for index, destination in enumerate(self.transfer_destinations, start=1):
            destination.name = destination.name or f"destination_{index}"
            TransferDestinationSpec(**destination.model_dump())  # as the runtime will run it
            targets.append(destination.name)
        duplicates = sorted({name for name in targets if targets.count(name) > 1})
        if duplicates:
            raise ValueError(f"transfer destination names must be unique: {', '.join(duplicates)}")
        handoff_names: list[str] = []
        for index, handoff in enumerate(self.handoff_destinations, start=1):
            handoff.name = handoff.name or f"agent_{index}"
            handoff_names.append(handoff.name)
        duplicates = sorted({name for name in handoff_names if handoff_names.count(name) > 1})
        if duplicates:
            raise ValueError(f"hand-off destination names must be unique: {', '.join(duplicates)}")
        if self.min_endpointing_delay > self.max_endpointing_delay:
            raise ValueError("min_endpointing_delay must not exceed max_endpointing_delay")
        if (
            self.idle_warning_after is not None
            and self.idle_hangup_after is not None
            and self.idle_hangup_after <= self.idle_warning_after
        ):
            raise ValueError("idle_hangup_after must be longer than idle_warning_after")
        return self


class AgentUpdate(Strict):
    """A partial agent: only the fields sent change (`exclude_unset`)."""

    model_config = ConfigDict(extra="forbid")

    agent_name: str | None = None
    phone_number: str | None = None
    LLM_provider: str | None = None  # noqa: N815
    LLM_model: str | None = None  # noqa: N815
    LLM_base_url: str | None = None  # noqa: N815
    LLM_api_key: str | None = None  # noqa: N815
    STT_provider: str | None = None  # noqa: N815
    STT_model: str | None = None  # noqa: N815
    TTS_provider: str | None = None  # noqa: N815
    TTS_model: str | None = None  # noqa: N815
    TTS_voice: str | None = None  # noqa: N815
    LLM_settings: dict[str, Any] | None = None  # noqa: N815
    STT_settings: dict[str, Any] | None = None  # noqa: N815
    TTS_settings: dict[str, Any] | None = None  # noqa: N815
    LLM_fallbacks: list[dict[str, Any]] | None = None  # noqa: N815
    STT_fallbacks: list[dict[str, Any]] | None = None  # noqa: N815
    TTS_fallbacks: list[dict[str, Any]] | None = None  # noqa: N815
    language: str | None = None
    system_prompt: str | None = None
    first_message: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    max_call_duration: int | None = None
    max_duration_message: str | None = None
    interruptible: bool | None = None
    min_endpointing_delay: float | None = None
    max_endpointing_delay: float | None = None
    idle_warning_after: float | None = None
    idle_warning_message: str | None = None
    idle_hangup_after: float | None = None
    end_call_phrases: list[str] | None = None
    voicemail_detection: bool | None = None
    voicemail_action: str | None = None
    voicemail_message: str | None = None
    transfer_destinations: list[dict[str, Any]] | None = None
    handoff_destinations: list[dict[str, Any]] | None = None
    max_handoffs: int | None = None
    dtmf_menu: dict[str, Any] | None = None
    recording_enabled: bool | None = None
    allow_web_calls: bool | None = None
    web_call_origins: list[str] | None = None
    post_call_analysis: dict[str, Any] | None = None
    custom_functions: list[dict[str, Any]] | None = None
    auto_publish: bool | None = None
    require_passing_tests: bool | None = None
    traffic_split: list[dict[str, Any]] | None = None
    version_note: str | None = None
