"""Field types shared by the request and response models of several blueprints, and the JSON
answer of the hottest routes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, PlainSerializer, WithJsonSchema
from quart import Quart, Response

# A timestamp as these routes have always written it: `datetime.isoformat()` ("+00:00", not "Z").
IsoTime = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

# Multipart file fields: documented as binary for client generators; the route reads them from
# `request.files` and answers its own error (NO_FILE, ...) when one is missing or wrong.
BINARY = {"type": "string", "format": "binary"}
FilePart = Annotated[Any, WithJsonSchema(BINARY)]
FileParts = Annotated[Any, WithJsonSchema({"type": "array", "items": BINARY})]


def file_fields_required(*names: str) -> Callable[[dict[str, Any]], None]:
    """A multipart form's `json_schema_extra`: its file fields are documented as required."""

    def extra(schema: dict[str, Any]) -> None:
        schema["required"] = [*schema.get("required", []), *names]
        for name in names:
            schema["properties"][name].pop("default", None)  # None: validated by the route

    return extra


def json_answer(answer: BaseModel) -> Response:
    """`answer`, a response model built (so validated) by the route, as its JSON answer.

    For the routes served thousands of times a second (`/health`, LiveKit's webhook), with
    `document_response` in place of `validate_response`: that validates the route's dict again
    through a `TypeAdapter` it builds on every request, dumps it and encodes it with the app's
    encoder; pydantic writes the same JSON in one step.
    """
    return Response(answer.model_dump_json(), content_type="application/json")


def pass_responses_through(app: Quart) -> None:
    """A route's answer that is a `Response` already (`json_answer`'s) goes out as it is.

    quart-schema wraps `app.make_response` to turn response models into JSON; for a `Response`
    it found nothing to turn after a dozen look-ups and type checks, on every request.
    Call after `QuartSchema(app)`.
    """
    convert_and_make = app.make_response

    async def make_response(result: Any) -> Any:
        if type(result) is Response:
            return result  # as Quart's `make_response` would: no status or headers to add
        return await convert_and_make(result)

    app.make_response = make_response  # type: ignore[method-assign]
