"""The API's error type, the status of each domain error, and the handlers that render every
error as `{detail, code}`."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from quart import Quart, jsonify, request
from quart_rate_limiter import RateLimitExceeded
from quart_schema import RequestSchemaValidationError
from tortoise.exceptions import ValidationError as ColumnValidationError
from werkzeug.exceptions import HTTPException

from control.errors import (
    AtCapacity,
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    QuotaExceeded,
    RangeNotSatisfiable,
    TooLarge,
    Unauthenticated,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
    UpstreamFailed,
    field_errors,
)
from control.outages import outage_of, unavailable

logger = logging.getLogger(__name__)


class FieldErrorOut(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    """The body of every error (`_render`'s): `{detail, code}`, and `errors` on a 400."""

    model_config = ConfigDict(extra="allow")  # more fields, e.g. the `call_id` a 429 refused

    detail: str = Field(description="What went wrong, for people")
    code: str = Field(description="What went wrong, for programs, e.g. `AGENT_NOT_FOUND`")
    errors: list[FieldErrorOut] = Field(
        default_factory=list, description="On a VALIDATION_ERROR: each invalid field"
    )


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


# The one place a domain error gets its HTTP status; a subclass takes its nearest ancestor's.
STATUS_OF: dict[type[DomainError], int] = {
    Invalid: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    RangeNotSatisfiable: 416,
    Unprocessable: 422,
    AtCapacity: 429,
    QuotaExceeded: 429,
    UpstreamFailed: 502,
    Unavailable: 503,
    DomainError: 500,
}


def status_of(error: DomainError) -> int:
    return next(STATUS_OF[kind] for kind in type(error).__mro__ if kind in STATUS_OF)


def api_error_of(error: DomainError) -> APIError:
    """A domain error as the API answers it: its status, body and headers."""
    headers: dict[str, str] = {}
    if isinstance(error, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{error.size}"
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return APIError(
        status_of(error),
        error.code,
        error.detail,
        errors=error.errors,
        headers=headers,
        extra=error.extra,
    )


def _render(error: APIError):
    body: dict[str, Any] = {**error.extra, "detail": error.detail, "code": error.code}
    if error.errors is not None:
        body["errors"] = error.errors
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def value_no_column_holds(error: BaseException) -> str | None:
    """What was wrong when `error` is a value no request model bounded that reached a column
    unable to hold it (a filter longer than its column, a number out of its range, text with
    NUL): the client's error, never a 500. None for anything else.

    The ORM checks some values itself; PostgreSQL refuses the rest with a "data exception"
    (SQLSTATE class 22), which the ORM wraps.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ColumnValidationError):
            return str(current)[:300]
        if isinstance(current, asyncpg.DataError):
            return f"a value the database cannot hold ({current.sqlstate}: {current})"[:300]
        current = current.__cause__ or current.__context__
    return None


def register_error_handlers(app: Quart) -> None:
    """Render every failure, expected or not, in the documented error body."""

    @app.errorhandler(APIError)
    async def handle_api_error(error: APIError):
        return _render(error)

    @app.errorhandler(DomainError)
    async def handle_domain_error(error: DomainError):
        return _render(api_error_of(error))

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
        unheld = value_no_column_holds(error)
        if unheld is not None:
            # Logged, so that the parameter or field gets its bound.
            logger.warning("%s %s: %s", request.method, request.path, unheld)
            return _render(APIError(400, "VALIDATION_ERROR", f"Invalid request: {unheld}"))
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
            return _render(api_error_of(unavailable(part, error)))
        logger.exception("unhandled error")
        return _render(
            APIError(500, "INTERNAL_ERROR", "Something went wrong on our side; it was logged.")
        )
