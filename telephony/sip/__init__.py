"""LiveKit SIP provisioning, agent dispatch, outbound dialing, room tokens and webhook checks.

Every function talks to the LiveKit server API through livekit-api's `LiveKitAPI` (Twirp over
HTTP). Each one opens a client from the settings and closes it afterwards, unless it is given
an open one as `api=` (the worker passes its job's `ctx.api`; a caller making several calls can
share one with `async with livekit_api() as api:`). LiveKit failures come out as `LiveKitError`
(or `DialError` for calls), never as livekit-api's own exceptions.

- `client`: the API client and the translation of its errors.
- `provisioning`: a number's trunks and dispatch rule.
- `dialing`: agent dispatch and outbound calls.
- `tokens`: room tokens.
- `webhooks`: LiveKit webhook checks.
"""

from __future__ import annotations

from runtime.spec import call_status_for_sip
from telephony.sip.client import close_shared_clients, livekit_api
from telephony.sip.dialing import DEFAULT_RINGING_TIMEOUT, DialResult, dial, dispatch_agent
from telephony.sip.provisioning import (
    ROOM_PREFIX,
    SipProvisioning,
    check_sip_address,
    deprovision,
    provision_number,
    update_provisioning,
)
from telephony.sip.tokens import mint_room_token
from telephony.sip.webhooks import verify_livekit_webhook

__all__ = [
    "close_shared_clients",
    "DEFAULT_RINGING_TIMEOUT",
    "ROOM_PREFIX",
    "DialResult",
    "SipProvisioning",
    "call_status_for_sip",
    "check_sip_address",
    "deprovision",
    "dial",
    "dispatch_agent",
    "livekit_api",
    "mint_room_token",
    "provision_number",
    "update_provisioning",
    "verify_livekit_webhook",
]
