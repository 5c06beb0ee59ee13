"""The one error type of the API and the handlers that render every error as `{detail, code}`."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from quart import Quart, jsonify
from quart_rate_limiter import RateLimitExceeded
from quart_schema import RequestSchemaValidationError
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
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


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


def field_errors(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as `[{field, message}]`, without echoing the submitted values."""
    return [
        {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


def _render(error: APIError):
    body: dict[str, Any] = {"detail": error.detail, "code": error.code}
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
        logger.exception("unhandled error")
        return _render(
            APIError(500, "INTERNAL_ERROR", "Something went wrong on our side; it was logged.")
        )
