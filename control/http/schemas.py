"""Field types shared by the request and response models of several blueprints."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import PlainSerializer, WithJsonSchema

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
