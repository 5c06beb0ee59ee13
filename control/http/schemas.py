"""Field types shared by the response models of several blueprints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import PlainSerializer, WithJsonSchema

# A timestamp as these routes have always written it: `datetime.isoformat()` ("+00:00", not "Z").
IsoTime = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
