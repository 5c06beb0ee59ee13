"""The suite's database switch (`--database`): the app runs on the chosen, migrated database."""

import asyncio
from pathlib import Path

import pytest
from tortoise import connections
from tortoise.exceptions import IntegrityError

import control.migrations
from control.models import Call, Membership, Role
from tests.conftest import TEST_DATA_DIR, make_user

MIGRATIONS_DIR = Path(control.migrations.__file__).parent


async def test_the_app_runs_on_the_selected_database(client, database, settings):
    assert connections.get("default").capabilities.dialect == database
    health = await client.get("/health")
    assert health.status_code == 200 and (await health.get_json())["database"] == "ok"
    if database == "sqlite":
        path = Path(settings.resolved_database_url.removeprefix("sqlite://"))
        assert await asyncio.to_thread(path.is_file) and path.name == "voxline.db"
        # A fresh file of its own, never a data dir where `make run` keeps its database.
        assert path.parent != Path(TEST_DATA_DIR) and path.parent.name.startswith("voxline-test-")


async def test_every_migration_was_applied(db):
    expected = sorted(path.stem for path in MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.py"))
    _, rows = await connections.get("default").execute_query(
        'SELECT "name" FROM "tortoise_migrations" WHERE "app" = \'models\' ORDER BY "name"'
    )
    assert expected and [row["name"] for row in rows] == expected


async def test_tables_are_empty_at_the_start_of_each_test(db):
    """Writes, then the next test (below) finds nothing: the per-test emptying works here too."""
    user, workspace = await make_user("first@example.com")
    await Call.create(workspace=workspace, call_type="web", call_direction="inbound")
    assert await Call.all().count() == 1


async def test_tables_were_emptied_after_the_previous_test(db):
    assert await Call.all().count() == 0
    user, workspace = await make_user("second@example.com")
    await workspace.delete()
    # Foreign keys are still enforced (SQLite turns them off to empty the tables): the delete
    # cascaded, and a row pointing at no workspace is refused.
    assert await Membership.filter(user=user).count() == 0
    with pytest.raises(IntegrityError):
        await Membership.create(user=user, workspace_id=workspace.id, role=Role.ADMIN)
