"""Telephony exceptions: each carries `retryable` and, for calls, the SIP status (`sip_status`)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

__all__ = [
    "DialError",
    "InvalidWebhook",
    "LiveKitError",
    "NotConfigured",
    "NumberVendorError",
    "TelephonyError",
]


class TelephonyError(Exception):
    """Base of every telephony failure.

    Attributes:
        retryable: whether trying the same thing again later may succeed.
        sip_status: the SIP response code behind the failure, when there was one.
    """

    def __init__(
        self, message: str, *, retryable: bool = False, sip_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.sip_status = sip_status


class NumberVendorError(TelephonyError):
    """A phone-number provider (Twilio, Vonage, ...) refused or failed a request.

    Attributes:
        provider: the provider's registry name ("twilio", "vonage").
        http_status: the provider's HTTP status, when it answered.
        provider_code: the provider's own error code (Twilio's 21452, Vonage's "420"), if any.
        provider_message: the provider's own words, safe to show to the user.
    """

    def __init__(
        self,
        provider: str,
        provider_message: str,
        *,
        http_status: int | None = None,
        provider_code: str | None = None,
        retryable: bool = False,
    ) -> None:
        detail = f" (code {provider_code})" if provider_code else ""
        super().__init__(f"{provider}: {provider_message}{detail}", retryable=retryable)
        self.provider = provider
        self.provider_message = provider_message
        self.http_status = http_status
        self.provider_code = provider_code


class LiveKitError(TelephonyError):
    """The LiveKit server API refused or failed a request.

    Attributes:
        code: the Twirp error code ("not_found", "invalid_argument", ...), or "unavailable"
            when the server could not be reached.
        http_status: the HTTP status of the Twirp error, when the server answered.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "unknown",
        http_status: int | None = None,
        retryable: bool = False,
        sip_status: int | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, sip_status=sip_status)
        self.code = code
        self.http_status = http_status


class DialError(LiveKitError):
    """An outbound SIP call did not connect.

    Attributes:
        call_status: what the call log should say: "busy", "no_answer", "rejected" or "failed"
            (a `runtime.spec.CallStatus`).
    """

    def __init__(self, message: str, *, call_status: str, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.call_status = call_status


class NotConfigured(TelephonyError):
    """Credentials are missing; the message names the environment variables to set."""


class InvalidWebhook(TelephonyError):
    """A LiveKit webhook whose signature, body hash or expiry does not check out (answer 401)."""
