"""Database wiring: the tortoise configuration, start-up, shut-down and versioned migrations."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate

from control.config import Settings, get_settings

logger = logging.getLogger(__name__)

MODEL_MODULES = ["control.models"]


def tortoise_config(settings: Settings) -> dict[str, Any]:
    return {
        "connections": {"default": _connection(settings.resolved_database_url)},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "control.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _connection(url: str) -> str | dict[str, Any]:
    """The connection for `url`: on PostgreSQL, a pool that gives connections back without
    asyncpg's reset query."""
    config = expand_db_url(url)
    if config["engine"] != "tortoise.backends.asyncpg":
        return url
    config["credentials"]["reset"] = _keep_session
    return config


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What a pooled connection needs before its next query: nothing.

    asyncpg's default reset (`RESET ALL`, `UNLISTEN *`, `CLOSE ALL`, advisory locks released)
    is a round trip to PostgreSQL every time a connection goes back to the pool, that is after
    every query outside a transaction: as many round trips as the queries themselves. Voxline
    leaves none of that state on a connection (no `SET`, `LISTEN`, advisory lock or cursor
    outside a transaction), and asyncpg still rolls back a transaction left open before this
    is called.
    """


def __getattr__(name: str) -> Any:
    # `tortoise -c control.db.TORTOISE_ORM makemigrations` reads the config from here.
    if name == "TORTOISE_ORM":
        return tortoise_config(get_settings())
    raise AttributeError(name)


async def init_db(settings: Settings) -> None:
    # Quart serves each request in its own task; without the global fallback tortoise
    # raises "No TortoiseContext is currently active" (see DESIGN.md, library facts).
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_db() -> None:
    await Tortoise.close_connections()


async def insert_many(
    connection: BaseDBAsyncClient,
    table: str,
    columns: tuple[str, ...],
    rows: Iterable[Sequence[Any]],
    *,
    skip_conflicts_on: tuple[str, ...] = (),
) -> None:
    """Insert `rows` into `table` in one statement run many times, without ORM objects (at
    100,000 rows they cost more than the database does); rows clashing on the unique
    `skip_conflicts_on` columns are skipped by the database.

    On SQLite UUIDs are stored as text, as tortoise writes them (times go through the sqlite3
    adapter tortoise registers, so they compare with the times tortoise writes)."""
    postgres = connection.capabilities.dialect == "postgres"
    marks = [f"${index}" if postgres else "?" for index in range(1, len(columns) + 1)]
    sql = f'INSERT INTO "{table}" ({_quoted(columns)}) VALUES ({", ".join(marks)})'
    if skip_conflicts_on:
        sql += f" ON CONFLICT ({_quoted(skip_conflicts_on)}) DO NOTHING"

    def value(item: Any) -> Any:
        return str(item) if isinstance(item, uuid.UUID) and not postgres else item

    await connection.execute_many(sql, [[value(item) for item in row] for row in rows])


async def copy_many(
    connection: BaseDBAsyncClient,
    table: str,
    columns: tuple[str, ...],
    rows: Iterable[Sequence[Any]],
    *,
    skip_conflicts_on: tuple[str, ...] = (),
) -> None:
    """Like `insert_many`, by binary COPY on PostgreSQL: at 100,000 rows several times faster
    than an INSERT run per row. Works inside a transaction (the transaction's own connection).
    JSON columns take JSON text. With `skip_conflicts_on` the rows are copied into a temporary
    table, then inserted from it skipping the clashes. SQLite: `insert_many`."""
    if connection.capabilities.dialect != "postgres":
        await insert_many(connection, table, columns, rows, skip_conflicts_on=skip_conflicts_on)
        return
    async with connection.acquire_connection() as raw:
        if not skip_conflicts_on:
            await raw.copy_records_to_table(table, records=rows, columns=list(columns))
            return
        staging = f"_copy_{table}"
        async with raw.transaction():  # a savepoint when already in a transaction
            await raw.execute(
                f'CREATE TEMPORARY TABLE "{staging}" '
                f'(LIKE "{table}" INCLUDING DEFAULTS) ON COMMIT DROP'
            )
            await raw.copy_records_to_table(staging, records=rows, columns=list(columns))
            await raw.execute(
                f'INSERT INTO "{table}" ({_quoted(columns)}) SELECT {_quoted(columns)} '
                f'FROM "{staging}" ON CONFLICT ({_quoted(skip_conflicts_on)}) DO NOTHING'
            )
            await raw.execute(f'DROP TABLE "{staging}"')


def _quoted(names: tuple[str, ...]) -> str:
    return ", ".join(f'"{name}"' for name in names)


async def apply_migrations(settings: Settings, progress=None) -> None:
    """Apply every pending migration to the configured database."""
    await migrate(config=tortoise_config(settings), progress=progress)
    await Tortoise.close_connections()
