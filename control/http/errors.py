"""The one error type of the API and the handlers that render every error as `{detail, code}`."""

from __future__ import annotations

import logging
import socket
import traceback
from typing import Any

import asyncpg
from pydantic import ValidationError
from quart import Quart, jsonify, request
from quart_rate_limiter import RateLimitExceeded
from quart_schema import RequestSchemaValidationError
from redis import exceptions as redis_errors
from tortoise.exceptions import DBConnectionError
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)


class APIError(Exception):
    """An error the client should see: `raise APIError(404, "AGENT_NOT_FOUND", "No agent ...")`."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}  # more fields of the body, e.g. the `call_id` a 429 refused


HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "NOT_AUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


REDIS = "Redis"
DATABASE = "The database"
RETRY_AFTER_SECONDS = 5

# What the drivers raise when their server is gone, not when a query or command is wrong.
_REDIS_OUTAGES = (redis_errors.ConnectionError, redis_errors.TimeoutError)
_DATABASE_OUTAGES = (
    DBConnectionError,
    asyncpg.PostgresConnectionError,  # includes "connection does not exist"
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
# Socket-level failures; they count only when raised inside a driver (SMTP has them too).
_NETWORK_ERRORS = (ConnectionError, TimeoutError, socket.gaierror)
_DRIVER_MODULES = ((REDIS, ("redis.",)), (DATABASE, ("asyncpg.", "tortoise.", "aiosqlite.")))


def _raised_in(error: BaseException, prefixes: tuple[str, ...]) -> bool:
    return any(
        frame.f_globals.get("__name__", "").startswith(prefixes)
        for frame, _ in traceback.walk_tb(error.__traceback__)
    )


def outage_of(error: BaseException) -> str | None:
    """`REDIS` or `DATABASE` when `error` means that server cannot be reached, else None.

    The cause chain is followed, because tortoise wraps driver errors in its own.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _REDIS_OUTAGES):
            return REDIS
        if isinstance(current, _DATABASE_OUTAGES):
            return DATABASE
        if isinstance(current, _NETWORK_ERRORS):
            for part, prefixes in _DRIVER_MODULES:
                if _raised_in(current, prefixes):
                    return part
        current = current.__cause__ or current.__context__
    return None


def unavailable(part: str, error: BaseException | None = None) -> APIError:
    """The 503 for a server we depend on (`REDIS`, `DATABASE`) that cannot be reached."""
    timed_out = isinstance(error, (TimeoutError, redis_errors.TimeoutError))
    reason = "it did not answer in time" if timed_out else "it cannot be reached"
    return APIError(
        503,
        "SERVICE_UNAVAILABLE",
        f"{part} is unavailable: {reason}; try again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def field_errors(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as `[{field, message}]`, without echoing the submitted values."""
    return [
        {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


def _render(error: APIError):
    body: dict[str, Any] = {**error.extra, "detail": error.detail, "code": error.code}
    if error.errors is not None:
        body["errors"] = error.errors
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def register_error_handlers(app: Quart) -> None:
    """Render every failure, expected or not, in the documented error body."""

    @app.errorhandler(APIError)
    async def handle_api_error(error: APIError):
        return _render(error)

    @app.errorhandler(RequestSchemaValidationError)
    async def handle_validation_error(error: RequestSchemaValidationError):
        cause = error.validation_error
        if isinstance(cause, ValidationError):
            errors = field_errors(cause)
            summary = "; ".join(f"{item['field']}: {item['message']}" for item in errors[:5])
        else:
            errors = [{"field": "body", "message": str(cause)}]
            summary = str(cause)
        return _render(
            APIError(400, "VALIDATION_ERROR", f"Invalid request: {summary}", errors=errors)
        )

    @app.errorhandler(RateLimitExceeded)
    async def handle_rate_limited(error: RateLimitExceeded):
        headers = {"Retry-After": str(error.retry_after)}
        return _render(
            APIError(
                429,
                "RATE_LIMITED",
                f"Too many requests; retry in {error.retry_after} seconds.",
                headers=headers,
            )
        )

    @app.errorhandler(HTTPException)
    async def handle_http_exception(error: HTTPException):
        status = error.code or 500
        detail = {
            400: "The request body is not valid JSON or is malformed.",
            404: "No such endpoint.",
            405: "This endpoint does not accept that method.",
            413: "The request body is too large.",
        }.get(status, error.description or "Request failed.")
        return _render(APIError(status, HTTP_CODES.get(status, "HTTP_ERROR"), detail))

    @app.errorhandler(Exception)
    async def handle_unexpected(error: Exception):
        part = outage_of(error)
        if part is not None:
            # One line per request: an outage fails every request the same way.
            logger.warning(
                "%s %s: %s is unavailable (%s: %s)",
                request.method,
                request.path,
                part,
                type(error).__name__,
                error,
            )
            return _render(unavailable(part, error))
        logger.exception("unhandled error")
        return _render(
            APIError(500, "INTERNAL_ERROR", "Something went wrong on our side; it was logged.")
        )
