"""`copy_many`: rows written by COPY on PostgreSQL (INSERT on SQLite), clashes skipped when asked,
inside a transaction too (rolled back with it)."""

from __future__ import annotations

import uuid

import pytest
from asyncpg.exceptions import UniqueViolationError
from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from control.db import copy_many
from control.models import DncNumber
from control.security import utcnow
from tests.conftest import make_user

COLUMNS = ("id", "workspace_id", "phone_number", "reason", "source", "created_at")


def rows(workspace_id: uuid.UUID, numbers: list[str]) -> list[tuple]:
    now = utcnow()
    return [(uuid.uuid4(), workspace_id, number, "copied", "api", now) for number in numbers]


async def test_rows_are_copied_and_clashes_skipped_when_asked(db) -> None:
    _, workspace = await make_user("dev@example.com")
    connection = connections.get("default")
    await copy_many(connection, "dnc_numbers", COLUMNS, rows(workspace.id, ["+1", "+2"]))
    await copy_many(
        connection,
        "dnc_numbers",
        COLUMNS,
        rows(workspace.id, ["+2", "+3"]),
        skip_conflicts_on=("workspace_id", "phone_number"),
    )
    stored = await DncNumber.filter(workspace_id=workspace.id).order_by("phone_number")
    assert [row.phone_number for row in stored] == ["+1", "+2", "+3"]
    assert {row.reason for row in stored} == {"copied"}
    with pytest.raises((IntegrityError, UniqueViolationError)):  # without skipping: an error
        await copy_many(connection, "dnc_numbers", COLUMNS, rows(workspace.id, ["+3"]))


async def test_a_copy_in_a_transaction_is_rolled_back_with_it(db) -> None:
    _, workspace = await make_user("dev@example.com")

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with in_transaction() as connection:
            await copy_many(connection, "dnc_numbers", COLUMNS, rows(workspace.id, ["+1"]))
            await copy_many(
                connection,
                "dnc_numbers",
                COLUMNS,
                rows(workspace.id, ["+1", "+2"]),
                skip_conflicts_on=("workspace_id", "phone_number"),
            )
            assert (
                await DncNumber.filter(workspace_id=workspace.id).using_db(connection).count() == 2
            )
            raise Abort
    assert await DncNumber.filter(workspace_id=workspace.id).count() == 0
