"""The vocabulary shared by the runtime, the control plane and telephony, free of livekit.

- `calls`: the call spec and report, call statuses and end reasons.
- `providers`: the one provider catalogue, which names each provider's builder.
- `outbound`: the outbound-address (SSRF) policy and the one pinned resolution.
- `phone`: E.164 numbers: check, normalise, mask, time zones.
- `templates`: `{{variable}}` rendering and the built-in variables of a call.
- `functions`: custom-function parameters as one JSON Schema.

Nothing here imports livekit, nor anything else of the runtime, so the control plane and
telephony import it cheaply. Import names from `runtime.spec` itself.
"""

from runtime.spec.calls import (
    CALL_DIRECTIONS,
    CALL_TYPES,
    DTMF_DIGITS,
    HTTP_METHODS,
    RESERVED_TOOL_NAMES,
    VOICEMAIL_ACTIONS,
    AgentSpec,
    CallDirection,
    CallReport,
    CallSpec,
    CallStatus,
    CallType,
    CustomFunctionSpec,
    EndReason,
    TransferDestinationSpec,
    call_status_for_sip,
    check_dtmf_menu,
)
from runtime.spec.functions import JSON_TYPES, normalise_parameters
from runtime.spec.outbound import (
    ALLOWED_URL_SCHEMES,
    URLNotAllowedError,
    address_allowed,
    check_url_allowed,
    check_url_allowed_async,
    literal_ip,
    pinned_http_transport,
    pinned_resolver,
    resolve_allowed,
)
from runtime.spec.phone import (
    E164_PATTERN,
    is_e164,
    is_transfer_address,
    mask_phone,
    normalise_number,
    number_time_zones,
)
from runtime.spec.providers import (
    LOCAL_EXTRA,
    PROVIDER_KINDS,
    PROVIDERS,
    ProviderInfo,
    ProviderKind,
    ResolvedProvider,
    UnknownProviderError,
    normalise_provider,
    provider_info,
    resolve_provider,
)
from runtime.spec.templates import builtin_variables, call_variables, render_template

__all__ = [
    "ALLOWED_URL_SCHEMES",
    "CALL_DIRECTIONS",
    "CALL_TYPES",
    "DTMF_DIGITS",
    "E164_PATTERN",
    "HTTP_METHODS",
    "JSON_TYPES",
    "LOCAL_EXTRA",
    "PROVIDERS",
    "PROVIDER_KINDS",
    "RESERVED_TOOL_NAMES",
    "VOICEMAIL_ACTIONS",
    "AgentSpec",
    "CallDirection",
    "CallReport",
    "CallSpec",
    "CallStatus",
    "CallType",
    "CustomFunctionSpec",
    "EndReason",
    "ProviderInfo",
    "ProviderKind",
    "ResolvedProvider",
    "TransferDestinationSpec",
    "URLNotAllowedError",
    "UnknownProviderError",
    "address_allowed",
    "builtin_variables",
    "call_status_for_sip",
    "call_variables",
    "check_dtmf_menu",
    "check_url_allowed",
    "check_url_allowed_async",
    "is_e164",
    "is_transfer_address",
    "literal_ip",
    "mask_phone",
    "normalise_number",
    "normalise_parameters",
    "normalise_provider",
    "number_time_zones",
    "pinned_http_transport",
    "pinned_resolver",
    "provider_info",
    "render_template",
    "resolve_allowed",
    "resolve_provider",
]
