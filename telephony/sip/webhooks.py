"""LiveKit webhooks: the signature and body-hash check, then the parsed event."""

from __future__ import annotations

import logging

from livekit import api as lk

from telephony.config import TelephonySettings, get_settings
from telephony.errors import InvalidWebhook

logger = logging.getLogger(__name__)


def verify_livekit_webhook(
    body: str | bytes,
    auth_header: str | None,
    *,
    settings: TelephonySettings | None = None,
) -> lk.WebhookEvent:
    """Checks a LiveKit webhook's signature against the raw body and parses the event.

    LiveKit sends a JWT signed with the API secret in `Authorization`; its `sha256` claim is
    the base64 SHA-256 of the body. A "Bearer " prefix is tolerated.

    Args:
        body: the raw request body, exactly as received.
        auth_header: the `Authorization` header.
        settings: telephony settings; the environment's by default.

    Returns:
        The event (`event`, `id`, `room`, `participant`, `created_at`, ...).

    Raises:
        InvalidWebhook: when the header is missing, the signature, issuer or expiry is wrong,
            or the body does not match its hash.
    """
    if not auth_header:
        raise InvalidWebhook("LiveKit webhook without an Authorization header")
    _, key, secret = (settings or get_settings()).livekit_credentials()
    token = auth_header.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    try:
        text = body.decode() if isinstance(body, bytes) else body
        return lk.WebhookReceiver(lk.TokenVerifier(key, secret)).receive(text, token)
    except Exception as e:  # jwt errors, "hash mismatch", a body that is not an event
        raise InvalidWebhook(f"LiveKit webhook rejected: {e}") from e
