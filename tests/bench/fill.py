"""Bulk rows for the benchmarks, built from the tortoise models and written with one COPY.

A bench says only what its rows are about (`{"workspace_id": ..., "status": ...}`); every other
column gets what the model gives it: its default, `now` for `auto_now(_add)`, NULL where the
field is nullable, the database's own default where the field declares one. So a new column
with a default needs no change in any bench, and a new required column (no default, not
nullable) stops the fill at once with its name, rather than with a NOT NULL error halfway
through a million rows.

The values go through asyncpg's binary COPY (`copy_records_to_table`), streamed from the
bench's generator: a million call logs, with their ten indexes, in about a minute on the busy
2-core machine, with flat memory (the rows stream through; nothing holds them all).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from enum import Enum
from operator import itemgetter
from typing import Any

from tortoise import connections
from tortoise.fields import JSONField
from tortoise.fields.base import Field
from tortoise.models import Model


class RequiredColumn(ValueError):
    """A column the model gives no value for (not nullable, no default) that the rows lack."""


def _encoder(field: Field) -> Callable[[Any], Any] | None:
    """How a Python value becomes what asyncpg's binary COPY takes, or None to pass it as is."""
    if isinstance(field, JSONField):
        return field.encoder  # jsonb travels as JSON text
    if getattr(field, "enum_type", None) is not None:
        return lambda value: value.value if isinstance(value, Enum) else value
    return None


def _model_value(field: Field, now: datetime) -> tuple[bool, Any]:
    """What the model puts in a column nobody gave: (per_row, value or factory).

    Raises:
        RequiredColumn: when the model gives nothing and the column may not be NULL.
    """
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return False, now
    default = field.default
    if default is not None:
        # A callable default is called once (list, dict: the same encoded value for every row),
        # except on a key, where each row needs its own (uuid4).
        if callable(default):
            if field.pk or field.unique:
                return True, default
            default = default()
        encode = _encoder(field)
        return False, encode(default) if encode else default
    if field.null:
        return False, None
    raise RequiredColumn(
        f"{field.model.__name__}.{field.model_field_name} has no default and may not be NULL: "
        "give it in the bench's rows"
    )


def plan(model: type[Model], given: Iterable[str]) -> tuple[list[str], list[tuple[str, bool, Any]]]:
    """What a fill of `model` writes: the given fields, then what the model gives the others.

    Returns:
        The given field names, and for each other column the model fills: (field name,
        per_row, value or factory), both in model order. Columns the database fills
        (generated keys, `db_default`) are left out.

    Raises:
        RequiredColumn: a required column is neither given nor defaulted.
        ValueError: a given name is no column of the model.
    """
    meta = model._meta
    given = set(given)
    unknown = given - set(meta.fields_db_projection)
    if unknown:
        raise ValueError(f"{model.__name__} has no column {', '.join(sorted(unknown))}")
    now = datetime.now(UTC)
    named, filled = [], []
    for name in meta.fields_db_projection:
        field = meta.fields_map[name]
        if name in given:
            named.append(name)
        elif not field.generated and not field.has_db_default():
            filled.append((name, *_model_value(field, now)))
    return named, filled


async def copy_rows(model: type[Model], rows: Iterable[Mapping[str, Any]]) -> int:
    """Writes `rows` (field name -> Python value) into `model`'s table with one COPY.

    Every row gives the same fields as the first; the model fills the rest (see the module).
    Foreign keys are given by their column field (`workspace_id`), JSON fields as Python
    values, enum fields as members or their values.

    Returns:
        The number of rows written.

    Raises:
        RequiredColumn: a required column is neither given nor defaulted.
    """
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return 0
    meta = model._meta
    named, filled = plan(model, first)
    constants = tuple(value for _, per_row, value in filled if not per_row)
    factories = [factory for _, per_row, factory in filled if per_row]
    order = [name for name, per_row, _ in filled if not per_row]
    order += [name for name, per_row, _ in filled if per_row]
    encoded = [
        (position, encode)
        for position, name in enumerate(named)
        if (encode := _encoder(meta.fields_map[name])) is not None
    ]
    pick = itemgetter(*named)
    single = len(named) == 1

    def records() -> Iterator[tuple[Any, ...]]:
        for row in itertools.chain((first,), iterator):
            values = [pick(row)] if single else list(pick(row))
            for position, encode in encoded:
                if values[position] is not None:
                    values[position] = encode(values[position])
            yield (*values, *constants, *[factory() for factory in factories])

    columns = [meta.fields_db_projection[name] for name in (*named, *order)]
    client: Any = connections.get(meta.default_connection or "default")
    async with client.acquire_connection() as connection:
        status = await connection.copy_records_to_table(
            meta.db_table, records=records(), columns=columns
        )
    return int(status.split()[-1])
