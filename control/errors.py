"""The domain's errors: what went wrong, named for what it means, with no HTTP in sight.

Services, dialers and jobs raise these; `control.http.errors` maps each class to its status
and renders it as `{detail, code}` (plus `errors` and any extra fields), so a caller outside a
request (a job, the CLI) catches the kind it cares about, e.g. `except AtCapacity`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class DomainError(Exception):
    """An error the caller should see: a stable `code`, a `detail` for people, and optionally
    `errors` (`[{field, message}]`), `extra` fields of the body (e.g. `call_id`) and
    `retry_after` (seconds) when trying again later can succeed."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.errors = errors
        self.extra = extra or {}
        self.retry_after = retry_after


class Invalid(DomainError):
    """The request itself is wrong; `field` names where (its `message` defaults to the detail)."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        message: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if field is not None:
            errors = [{"field": field, "message": detail if message is None else message}]
        super().__init__(code, detail, errors=errors, extra=extra)


class Unauthenticated(DomainError):
    """Who is asking is unknown: no, a wrong or an expired credential or signature."""


class Forbidden(DomainError):
    """Who is asking is known but may not do this."""


class NotFound(DomainError):
    """The thing asked for does not exist, or not for this caller."""


class Conflict(DomainError):
    """The request clashes with the current state (a name taken, a state that forbids it)."""


class Gone(DomainError):
    """The thing existed but no longer does."""


class TooLarge(DomainError):
    """What was sent, or would be stored, is over a limit."""


class UnsupportedMediaType(DomainError):
    """What was sent is in a format this does not take."""


class RangeNotSatisfiable(DomainError):
    """The byte range asked for is not within the `size` bytes there are."""

    def __init__(self, code: str, detail: str, *, size: int) -> None:
        super().__init__(code, detail)
        self.size = size


class Unprocessable(DomainError):
    """The request is well formed but cannot be carried out as asked."""


class AtCapacity(DomainError):
    """Every call slot of a limit is in use; trying again later can succeed."""


class QuotaExceeded(DomainError):
    """A workspace used up its allowance for the current period."""


class UpstreamFailed(DomainError):
    """A service we call (LiveKit, a number vendor) refused or failed."""


class Unavailable(DomainError):
    """Something this needs is not installed, configured or reachable right now."""


def field_errors(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as `[{field, message}]`, without echoing the submitted values."""
    return [
        {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]
